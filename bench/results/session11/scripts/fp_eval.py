exec(open("setup.py").read())
from sklearn.ensemble import HistGradientBoostingClassifier
S = np.load("adv_X.npy"); lab = pd.read_parquet("adv_lab.parquet")
y = lab["crystal_system"].to_numpy().astype(str)
Mt = np.load("fp_train.npy"); Mr = np.load("fp_rruff.npy")
assert len(Mt) == len(S), (len(Mt), len(S))
jt = names.index("triples_excess_orthorhombic")
def extra(M, F):
    return M.astype(np.float32)
allv = [X, *views]
def report(name, Pm, cls):
    pr = np.asarray(cls)[Pm.argmax(1)].astype(object)
    pr[hit] = m["match_crystal_system"].to_numpy()[hit]
    rec = {c: np.mean(pr[true == c] == c) for c in np.unique(true)}
    print(f"{name:24s} acc {np.mean(pr == true):.3f} macro {np.mean(list(rec.values())):.3f} unmatched {np.mean(pr[~hit] == true[~hit]):.3f} tri {rec['triclinic']:.2f} mono {rec['monoclinic']:.2f} ortho {rec['orthorhombic']:.2f}", flush=True)
kw = dict(max_iter=100, learning_rate=0.2, max_leaf_nodes=31, min_samples_leaf=20, l2_regularization=1.0, early_stopping=False, random_state=0)
h0 = HistGradientBoostingClassifier(**kw).fit(S, y)
report("indexed4", np.mean([h0.predict_proba(V) for V in allv], 0), h0.classes_)
S2 = np.hstack([S, extra(Mt, S)])
h1 = HistGradientBoostingClassifier(**kw).fit(S2, y)
report("indexed4 + Q fingerprint", np.mean([h1.predict_proba(np.hstack([V, extra(Mr[i], V)])) for i, V in enumerate(allv)], 0), h1.classes_)
# held-out check on simulated: grouped split by structure id
from sklearn.model_selection import GroupShuffleSplit
tr, te = next(GroupShuffleSplit(1, test_size=0.2, random_state=0).split(S, y, lab["id"]))
for nm, A_ in (("indexed4", S), ("+fingerprint", S2)):
    h = HistGradientBoostingClassifier(**kw).fit(A_[tr], y[tr]); print(nm, "held-out simulated types acc %.3f" % np.mean(h.predict(A_[te]) == y[te]), flush=True)

exec(open("setup.py").read())
import time
from sklearn.ensemble import HistGradientBoostingClassifier, ExtraTreesClassifier
S = np.load("adv_X.npy"); lab = pd.read_parquet("adv_lab.parquet")
y = lab["crystal_system"].to_numpy().astype(str)
allv = [X, *views]
def report(name, Pm, cls):
    Pm = Pm[:, [list(cls).index(c) for c in classes]] if list(cls) != list(classes) else Pm
    pr = classes[Pm.argmax(1)].astype(object)
    pr[hit] = m["match_crystal_system"].to_numpy()[hit]
    rec = np.mean([np.mean(pr[true == c] == c) for c in np.unique(true)])
    print(f"{name:30s} acc {np.mean(pr == true):.3f} macro {rec:.3f} unmatched {np.mean(pr[~hit] == true[~hit]):.3f}", flush=True)
t0 = time.time()
hgb = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.2, max_leaf_nodes=31, min_samples_leaf=20, l2_regularization=1.0, early_stopping=False, random_state=0).fit(S, y)
print("hgb fit", time.time() - t0)
Ph = np.mean([hgb.predict_proba(V) for V in allv], 0); report("boost", Ph, hgb.classes_)
t0 = time.time()
et = ExtraTreesClassifier(n_estimators=100, max_features="sqrt", n_jobs=2, random_state=0).fit(S, y)
print("et fit", time.time() - t0)
Pe = np.mean([et.predict_proba(V) for V in allv], 0); report("forest", Pe, et.classes_)
for w in (0.3, 0.5, 0.7):
    report(f"avg w_boost={w}", w * Ph + (1 - w) * Pe, hgb.classes_)
hgb2 = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.2, max_leaf_nodes=31, min_samples_leaf=20, l2_regularization=1.0, early_stopping=False, random_state=1).fit(S, y)
Ph2 = np.mean([hgb2.predict_proba(V) for V in allv], 0); report("boost seed1", Ph2, hgb2.classes_); report("boost seeds 0+1", (Ph + Ph2) / 2, hgb.classes_)
np.save("/tmp/s11/ens_P.npy", np.stack([Ph, Pe, Ph2]))

"""Ranked space groups P(cs)^e P(sg|cs): boosted crystal system + product space-group forests, shift-averaged."""
import sys
exec(open("/tmp/s6/an6.py").read().split("for spec in sys.argv[1:]:")[0])
FF = build(F, tz["train"], None); GG = build(G, tz["rruff_minerals_dev"], None)
sg = lab["spacegroup_number"].to_numpy(); sgr = LR["space_group"].to_numpy()
Xtr = np.nan_to_num(FF[i0][~te], nan=-1)
hg = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0, random_state=0, early_stopping=False).fit(Xtr, y[~te])
# product: space-group forests learn from real structures and variants only (synthetic weight 0)
origin = lab["origin"].to_numpy() if "origin" in lab else None
print("origin column", origin is not None, flush=True)
sgm = {}
for cs in hg.classes_:
    tr = (~te) & (y == cs)
    w = None if origin is None else (origin[tr] != "synthetic").astype(float)
    sgm[cs] = ExtraTreesClassifier(n_estimators=60, min_samples_leaf=3, max_samples=0.5, bootstrap=True, max_features=0.5, n_jobs=2, random_state=0).fit(np.nan_to_num(FF[i0][tr], nan=-1), sg[tr], sample_weight=w)
def rank(GX, e):
    tot = 0
    out = []
    Pcs = np.mean([hg.predict_proba(np.nan_to_num(GX[i], nan=-1)) for i in vi], axis=0)
    S = np.zeros((Pcs.shape[0], 231))
    for k, cs in enumerate(hg.classes_):
        Psg = np.mean([sgm[cs].predict_proba(np.nan_to_num(GX[i], nan=-1)) for i in vi], axis=0)
        S[:, sgm[cs].classes_] += (Pcs[:, [k]] ** e) * Psg
    return np.argsort(-S, axis=1)
for name, GX, yy in (("heldout", FF[:, te], sg[te]), ("rruff", GG, sgr)):
    for e in (1.0, 0.5, 0.25):
        R = rank(GX, e)
        print(name, "e", e, f"sg1 {np.mean(R[:, 0] == yy)*100:.1f} sg5 {np.mean((R[:, :5] == yy[:, None]).any(1))*100:.1f} sg10 {np.mean((R[:, :10] == yy[:, None]).any(1))*100:.1f}", flush=True)

import sys
exec(open("/tmp/s6/an6.py").read().split("for spec in sys.argv[1:]:")[0])
FF = build(F, tz["train"], None); GG = build(G, tz["rruff_minerals_dev"], None)
Xtr = np.nan_to_num(FF[i0][~te], nan=-1)
et = ExtraTreesClassifier(n_estimators=100, max_features=0.3, min_samples_leaf=2, max_samples=0.5, bootstrap=True, n_jobs=2, random_state=0).fit(Xtr, y[~te])
hg = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0, random_state=0, early_stopping=False).fit(Xtr, y[~te])
def P(m, G): return np.mean([m.predict_proba(np.nan_to_num(G[i], nan=-1)) for i in vi], axis=0)
for name, GX, yy in (("heldout", FF[:, te], y[te]), ("rruff", GG, yr)):
    pe, ph = P(et, GX), P(hg, GX)
    for w in (0.0, 0.3, 0.5, 1.0):
        p = hg.classes_[(w * pe + (1 - w) * ph).argmax(1)]
        cl = np.unique(yy)
        print(name, "w_et", w, f"acc {np.mean(p == yy)*100:.1f} macro {np.mean([np.mean(p[yy == c] == c) for c in cl])*100:.1f}", flush=True)

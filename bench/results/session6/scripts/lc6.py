"""Learning curve of the boosted crystal-system model: a fraction of the training structure types."""
import sys, hashlib
exec(open("/tmp/s6/an6.py").read().split("for spec in sys.argv[1:]:")[0])
FF = build(F, tz["train"], None); GG = build(G, tz["rruff_minerals_dev"], None)
h = types.map(lambda t: int(hashlib.sha256(f"1:{t}".encode()).hexdigest()[:8], 16) / 16**8).to_numpy()
for frac in (0.25, 0.5, 1.0):
    rows = (~te) & (h < frac)
    for name in ("et", "hgb"):
        mdl = (ExtraTreesClassifier(n_estimators=100, max_features=0.3, min_samples_leaf=2, max_samples=0.5, bootstrap=True, n_jobs=2, random_state=0)
               if name == "et" else HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0, random_state=0, early_stopping=False))
        mdl.fit(np.nan_to_num(FF[i0][rows], nan=-1), y[rows])
        print(f"types {frac:.2f} rows {rows.sum()} {name}", "heldout", ev(mdl, FF[:, te], y[te]), "| rruff", ev(mdl, GG, yr), flush=True)

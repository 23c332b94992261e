import sys
exec(open("/tmp/s6/an6.py").read().split("for spec in sys.argv[1:]:")[0])
FF = build(F, tz["train"], None); GG = build(G, tz["rruff_minerals_dev"], None)
print("offs", offs)
w = float(sys.argv[1])
tv = [i0] + [i for i, o in enumerate(offs) if abs(abs(o) - w) < 1e-9]
Xtr = np.concatenate([np.nan_to_num(FF[i][~te], nan=-1) for i in tv]); ytr = np.concatenate([y[~te]] * len(tv))
t = time.time()
hg = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0, random_state=0, early_stopping=False).fit(Xtr, ytr)
print("views", tv, f"fit {time.time()-t:.0f}s", "heldout", ev(hg, FF[:, te], y[te]), "| rruff", ev(hg, GG, yr), flush=True)

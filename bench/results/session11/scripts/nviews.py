exec(open("setup.py").read())
for amp, k in ((0.06, 7), (0.06, 5), (0.04, 5), (0.06, 3), (0.04, 3), (0.08, 9)):
    offs = features.shift_offsets(amp, k)
    V = accuracy.measured_views("rruff_minerals_dev", cond, "indexed4", pp, cache, offs)
    raw = b.model.predict_proba_views([X, *V]); Pc = b.calibrator.transform(raw) if b.calibrator else raw
    mm = match.best_matches(b.library, X, names, views=V)
    fr = b.model.predict_frame(X, top_k=5, proba=Pc, views=V, matches=mm)
    pr = fr.crystal_system.values; h = match.decided(mm)
    rec = np.mean([np.mean(pr[true == c] == c) for c in np.unique(true)])
    t5 = (fr[[f"space_group_{i}" for i in range(1, 6)]].values == sgt[:, None]).any(1).mean()
    print(f"{k} views +-{amp}: acc {np.mean(pr == true):.3f} macro {rec:.3f} sg1 {np.mean(fr.space_group_1.values == sgt):.3f} sg5 {t5:.3f} matched {h.sum()} unmatched acc {np.mean(pr[~h] == true[~h]):.3f}", flush=True)

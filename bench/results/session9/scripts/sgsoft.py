# Session 9: below-threshold matches whose system agrees with the model put their space group at rank 2 (RRUFF dev; runs prior.py for its set-up, bundle36k).
exec(open("prior.py").read().split("true = labm")[0])
true = labm.crystal_system.values; sgt = labm.space_group.values
P = b.calibrator.transform(raw)
frame = b.model.predict_frame(X, top_k=5, proba=P, views=views, matches=m)
top = np.stack([frame[f"space_group_{k}"].values for k in range(1, 6)], 1)
print("base: sg1 %.3f sg5 %.3f" % (np.mean(top[:, 0] == sgt), np.mean((top == sgt[:, None]).any(1))))
dec = frame.matched.values
for t in (0.4, 0.5, 0.6, 0.7):
    for same_sys in (True, False):
        cand = (~dec) & (m.match_score.values >= t) & (m.match_index.values >= 0)
        if same_sys:
            cand &= m.match_crystal_system.values == frame.crystal_system.values
        new = top.copy()
        g = m.match_space_group.values.astype(int)
        for i in np.flatnonzero(cand):
            if g[i] not in new[i]:
                new[i] = np.concatenate([new[i][:1], [g[i]], new[i][1:4]])
        right = np.mean(g[cand] == sgt[cand]) if cand.any() else float("nan")
        print(f"t {t} same-system {same_sys}: {cand.sum()} rows, matched SG right in {right:.2f}; sg5 {np.mean((new == sgt[:, None]).any(1)):.3f}")

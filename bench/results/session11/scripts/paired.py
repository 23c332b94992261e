exec(open("setup.py").read())
S = np.load("adv_X.npy"); lab = pd.read_parquet("adv_lab.parquet")
Xi = np.load("adv_Xi.npy"); labi = pd.read_parquet("adv_labi.parquet")
sel = np.flatnonzero(hit)
ids = m["match_id"].to_numpy()[sel]
first = {}
for i, (sid, v) in enumerate(zip(lab["id"], lab["variant"])):
    if v == 0: first.setdefault(sid, []).append(i)
firsti = {}
for i, (sid, v) in enumerate(zip(labi["id"], labi["variant"])):
    if v == 0: firsti.setdefault(sid, i)
rows = [(r, first[s], firsti[s]) for r, s in zip(sel, ids) if s in first]
print("paired rows", len(rows))
feats = ["n_peaks", "n_peaks_above_0.05", "n_peaks_above_0.2", "n_peaks_above_0.5", "strongest_q_1", "log_density_20pct", "log_density_5pct",
         "height_1", "height_3", "height_5", "height_10", "q_1", "q_5", "q_10", "triples_zero_shift_deg", "triples_excess_orthorhombic", "index_excess_monoclinic"]
for f in feats:
    j = names.index(f)
    r = np.array([X[a, j] for a, _, _ in rows]); s = np.array([np.mean(S[c, j]) for _, c, _ in rows]); si = np.array([Xi[c, j] for _, _, c in rows])
    print(f"{f:28s} rruff med {np.median(r):7.3f}  aug med {np.median(s):7.3f}  ideal {np.median(si):7.3f}  median(rruff-aug) {np.median(r - s):+7.3f}  frac rruff>aug {np.mean(r > s):.2f}")

import sys, os, json, math
snap = sys.argv[1]; sys.path.insert(0, snap)
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features, lattice_hints as LH, simulate as sim
cond = A.target_conditions()
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
refls, labs = [], []
for cat, n in specs:
    r, l = A.reflections_of_catalog(cat, cond.d_min_angstrom * 0.98, A.DEFAULT_CACHE, n, 0)
    refls += r; labs.append(l)
lab = pd.concat(labs, ignore_index=True)
cat = pd.concat([pd.read_parquet(c, columns=["id", "a", "b", "c"]) for c, _ in specs]).drop_duplicates("id")
rng = np.random.default_rng(0)
idx = rng.choice(np.flatnonzero(lab.crystal_system == "orthorhombic"), 300, replace=False)
L = lab.iloc[idx].reset_index(drop=True).merge(cat, on="id", how="left")
kind = os.environ.get("KIND", "ideal")
rows = sim.patterns([refls[i] for i in idx], cond) if kind == "ideal" else augment.measured_patterns([refls[i] for i in idx], cond, seed=3)[0]
peaks = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, height_rel=0.04)
xs, tols, counts, ranks = LH._tested_peaks(peaks, LH.N_TEST_PEAKS_LOW, with_rank=True, tol_deg=LH.TOL_LOW_TWO_THETA_DEG)
F, cells = LH._low_symmetry(peaks)
res = []
for p in range(len(idx)):
    k = counts[p]
    if k < 5: continue
    x = xs[p, :k]; t = tols[p, :k]
    a, b, c = 1 / L.a[p] ** 2, 1 / L.b[p] ** 2, 1 / L.c[p] ** 2
    h, ch, r = LH._ortho_eval(x, t, k, a, b, c, 0, 1.0)
    hb, chb, rb = LH._ortho_eval(x, t, k, *cells[p, :3], 0, 1.0)
    res.append((h / k, (h - ch) / k, hb / k, (hb - chb) / k, LH._n_calc_ortho(x[-1], a, b, c) / k))
R = np.array(res)
print(kind, "true cell matched>=.95: %.1f%%, median excess %.3f; search best matched>=.95 %.1f%% median excess %.3f" % (np.mean(R[:, 0] >= .95) * 100, np.median(R[:, 1]), np.mean(R[:, 2] >= .95) * 100, np.median(R[:, 3])))
print("true excess > best excess + 0.01: %.1f%%;  true lines/peak > MAX (%g): %.1f%%" % (np.mean(R[:, 1] > R[:, 3] + .01) * 100, LH.MAX_LINES_PER_PEAK, np.mean(R[:, 4] > LH.MAX_LINES_PER_PEAK) * 100))
print("lines per peak of true cell: quartiles", np.percentile(R[:, 4], [25, 50, 75, 90]))

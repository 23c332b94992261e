import sys, os
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/tmp/s11")
import numpy as np, pandas as pd, math
import accuracy as A
from xrdbatch import features, lattice_hints as LH, simulate as sim
pp = {"height_rel": 0.04}; cond = A.target_conditions()
refls, lab = A.reflections_of_catalog("/tmp/xrdbatch-acc/catalog_real.parquet", cond.d_min_angstrom * 0.98, A.DEFAULT_CACHE, 0, 0)
cat = pd.read_parquet("/tmp/xrdbatch-acc/catalog_real.parquet").set_index("id")
rng = np.random.default_rng(0)
CL = ("orthorhombic", "monoclinic", "triclinic")
idx = np.concatenate([rng.choice(np.flatnonzero(lab.crystal_system == cs), 120, replace=False) for cs in CL])
cs = lab.crystal_system.to_numpy()[idx]
rows = sim.patterns([refls[i] for i in idx], cond)
peaks = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, **pp)
xs, tols, gs, counts = LH._tested_peaks_g(peaks, LH.N_TEST_PEAKS_LOW, tol_deg=LH.TOL_LOW_TWO_THETA_DEG)
M = np.load("M_ideal.npy")  # same rng/order? recompute instead
import mono
import json; M = mono.search(peaks, **json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))
out = []
for r, i in enumerate(idx):
    k = counts[r]
    x = xs[r, :k]; t = tols[r, :k]
    dcalc = np.unique(np.round(refls[i].d_angstrom, 6))
    xc = np.sort(1 / dcalc ** 2)
    pos = np.searchsorted(xc, x)
    near = np.minimum(np.abs(xc[np.clip(pos, 0, len(xc) - 1)] - x), np.abs(xc[np.clip(pos - 1, 0, len(xc) - 1)] - x))
    hits = (near <= t).sum()
    V = cat.loc[lab.id.iloc[i], "volume"]
    m = {"orthorhombic": 8, "monoclinic": 4, "triclinic": 2}[cs[r]]
    cvol = 2 * math.pi * V / m
    chance = LH._chance(x, t, k, cvol, 0.0, 0.0)
    out.append((k, hits / k, (hits - chance) / k, V))
o = np.array(out)
for c in CL:
    s = cs == c
    print(c, "n_tested %.1f" % o[s, 0].mean(), "true cell matched %.2f excess %.2f (median %.2f)" % (o[s, 1].mean(), o[s, 2].mean(), np.median(o[s, 2])),
          "search excess %.2f" % M[s, 0].mean(), "V median %.0f" % np.median(o[s, 3]), "frac search>=true-0.02 %.2f" % np.mean(M[s, 0] >= o[s, 2] - 0.02))

import sys, numpy as np, pandas as pd
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "/work/main")
from xrdbatch import augment, features, simulate as sim
from xrdbatch.conditions import Conditions
cond = Conditions.from_radiation("CuKa12", two_theta_min_deg=5.0, two_theta_max_deg=89.99, two_theta_step_deg=0.01)
z = np.load("/tmp/xrdbatch-acc/refl_catalog_real_9842759d4ffd536b.npz")
off = z["offsets"]; D, II, H = z["d"], z["i"], z["hkl"]; n = 600
rng = np.random.default_rng(0); idx = rng.choice(len(off) - 1, n, replace=False)
refls = [sim.Reflections(D[off[i]:off[i+1]], II[off[i]:off[i+1]], H[off[i]:off[i+1]]) for i in idx]
pp = dict(height_rel=0.04)
extra = {} if len(sys.argv) < 3 else eval(sys.argv[2])
params = augment.AugmentParams().without("shift", "strain", "impurity")
pats, _ = augment.measured_patterns(refls, cond, params=params, seed=0)
tt = cond.two_theta_deg()
peaks = features.find_peaks(tt, pats, cond.wavelength_angstrom, **pp, **extra)
lam = cond.wavelength_angstrom
errs = []; nf = []
for r, refl in enumerate(refls):
    d = refl.d_angstrom; I = refl.intensity
    s = lam / (2 * d); ok = s < 1
    t = np.degrees(2 * np.arcsin(s[ok])); I = I[ok]
    # merge lines closer than 0.02
    o = np.argsort(t); t, I = t[o], I[o]
    iso = np.ones(len(t), bool)
    for k in range(len(t)):
        near = (np.abs(t - t[k]) < 0.35) & (np.arange(len(t)) != k) & (I > 0.05 * I[k])
        iso[k] = not near.any()
    found = peaks.two_theta_deg[peaks.offsets[r]:peaks.offsets[r+1]]
    found = found[np.isfinite(found)]
    nf.append(len(found))
    for f in found:
        k = np.argmin(np.abs(t - f))
        if iso[k] and abs(t[k] - f) < 0.2:
            errs.append((t[k], f - t[k]))
e = np.array(errs)
print("patterns", n, "matched isolated peaks", len(e), "median found", np.median(nf))
for lo in range(5, 90, 15):
    m = (e[:, 0] >= lo) & (e[:, 0] < lo + 15)
    if m.any():
        print(f"2theta {lo}-{lo+15}: n {m.sum():5d} mean err {e[m,1].mean():+.4f} median {np.median(e[m,1]):+.4f} "
              f"p90|err| {np.percentile(np.abs(e[m,1]),90):.4f}")

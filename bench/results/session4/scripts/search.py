import sys, os, json, time
snap = sys.argv[1]; sys.path.insert(0, snap)
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features, lattice_hints as LH, simulate as sim
pp = {"height_rel": 0.04}
cond = A.target_conditions()
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
refls, labs = [], []
for cat, n in specs:
    r, l = A.reflections_of_catalog(cat, cond.d_min_angstrom * 0.98, A.DEFAULT_CACHE, n, 0)
    refls += r; labs.append(l)
lab = pd.concat(labs, ignore_index=True)
rng = np.random.default_rng(0)
idx = np.concatenate([rng.choice(np.flatnonzero(lab.crystal_system == cs), k, replace=False)
                      for cs, k in (("orthorhombic", 400), ("monoclinic", 400), ("triclinic", 200))])
kind = os.environ.get("KIND", "ideal")
if kind == "ideal":
    rows = sim.patterns([refls[i] for i in idx], cond)
else:
    rows, _ = augment.measured_patterns([refls[i] for i in idx], cond, seed=3)
peaks = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, **pp)
cs = lab.crystal_system.to_numpy()[idx]
names = list(LH.LOW_SYMMETRY_NAMES)
jo, jm = names.index("index_matched_orthorhombic"), names.index("index_matched_monoclinic")
LH.low_symmetry_features(peaks[:1] if False else peaks)  # warm-up compile
for spec in sys.argv[2:]:
    kw = json.loads(spec)
    for k, v in kw.items():
        setattr(LH, k, v)
    t0 = time.process_time()
    F = LH.low_symmetry_features(peaks)
    dt = (time.process_time() - t0) / len(idx) * 1e3
    o, m, t = cs == "orthorhombic", cs == "monoclinic", cs == "triclinic"
    print(f"{spec:60s} {kind}: ortho>=.95 {np.mean(F[o, jo] >= .95)*100:5.1f} mono(mono)>=.95 {np.mean(F[m, jm] >= .95)*100:5.1f} "
          f"tri(mono)>=.95 {np.mean(F[t, jm] >= .95)*100:5.1f} mono(ortho) {np.mean(F[m, jo] >= .95)*100:5.1f} | {dt:.2f} ms/pattern", flush=True)
if os.environ.get("TRUECELL"):
    cat = pd.concat([pd.read_parquet(c, columns=["id", "a", "b", "c", "alpha", "beta", "gamma"]) for c, _ in specs]).drop_duplicates("id")
    L = lab.iloc[idx].reset_index(drop=True).merge(cat, on="id", how="left")
    lam = cond.wavelength_angstrom
    hkl = np.array([(h, k, l) for h in range(-12, 13) for k in range(0, 13) for l in range(-12, 13) if (h, k, l) != (0, 0, 0)], float)
    fr = []
    for i in range(len(idx)):
        r = L.iloc[i]
        al, be, ga = np.radians([r.alpha, r.beta, r.gamma])
        a, b, c = r.a, r.b, r.c
        # direct metric -> reciprocal metric
        G = np.array([[a*a, a*b*np.cos(ga), a*c*np.cos(be)], [a*b*np.cos(ga), b*b, b*c*np.cos(al)], [a*c*np.cos(be), b*c*np.cos(al), c*c]])
        Gs = np.linalg.inv(G)
        s2 = np.einsum("ij,jk,ik->i", hkl, Gs, hkl)
        tt_calc = np.degrees(2 * np.arcsin(np.clip(np.sqrt(s2) * lam / 2, 0, 1)))
        tt_calc = np.sort(tt_calc[np.sqrt(s2) * lam / 2 < 1])
        obs = peaks.two_theta_deg[peaks.offsets[i]:peaks.offsets[i + 1]][:20]
        pos = np.searchsorted(tt_calc, obs)
        dmin = np.minimum(np.abs(obs - tt_calc[np.clip(pos - 1, 0, len(tt_calc) - 1)]), np.abs(obs - tt_calc[np.clip(pos, 0, len(tt_calc) - 1)]))
        fr.append(np.mean(dmin <= 0.08) if len(obs) else np.nan)
    fr = np.array(fr)
    for c_ in ("orthorhombic", "monoclinic", "triclinic"):
        m = cs == c_
        print(f"TRUE cell indexes >=95% of first 20 peaks: {c_} {np.mean(fr[m] >= .95)*100:.1f}%  median {np.nanmedian(fr[m]):.3f}")

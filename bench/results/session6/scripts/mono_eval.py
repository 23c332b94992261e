import sys, os, json, time
sys.path.insert(0, "/tmp/s6/snap"); sys.path.insert(0, "/tmp/s6")
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features, lattice_hints as LH, simulate as sim
import mono
pp = {"height_rel": 0.04}
cond = A.target_conditions()
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
refls, labs = [], []
for cat, n in specs:
    r, l = A.reflections_of_catalog(cat, cond.d_min_angstrom * 0.98, A.DEFAULT_CACHE, n, 0)
    refls += r; labs.append(l)
lab = pd.concat(labs, ignore_index=True)
rng = np.random.default_rng(0)
N = int(os.environ.get("N", 200))
classes = (("orthorhombic", N), ("monoclinic", N), ("tetragonal", N // 2), ("hexagonal", N // 2), ("triclinic", N // 2))
idx = np.concatenate([rng.choice(np.flatnonzero(lab.crystal_system == cs), k, replace=False) for cs, k in classes])
cs = lab.crystal_system.to_numpy()[idx]
for kind in ("ideal", "aug"):
    rows = sim.patterns([refls[i] for i in idx], cond) if kind == "ideal" else augment.measured_patterns([refls[i] for i in idx], cond, seed=3)[0]
    peaks = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, **pp)
    F = LH.low_symmetry_features(peaks); jm = list(LH.LOW_SYMMETRY_NAMES).index("index_matched_monoclinic"); je = 1
    mono.search(peaks)
    for spec in sys.argv[1:]:
        kw = json.loads(spec)
        t0 = time.process_time(); T = mono.search(peaks, **kw); dt = (time.process_time() - t0) / len(idx) * 1e3
        line = f"{kind:5s} {spec:30s}"
        for c, _ in classes:
            m = cs == c
            line += f" {c[:4]} {np.mean(T[m, 7] >= .95)*100:4.0f}/{np.mean(F[m, jm] >= .95)*100:3.0f} ex {np.mean(T[m,6]):.2f}/{np.mean(F[m,je]):.2f}"
        print(line + f" | {dt:.2f} ms", flush=True)

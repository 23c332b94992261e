# ZR=1 needs the code of 8137770 or earlier (git archive 8137770 | tar -x -C /tmp/s5/snap): lattice_hints._low_symmetry(refine=True)
# (the zone search refined, block low_symmetry_refined) was removed after it.
import sys, os, json, time
sys.path.insert(0, "/tmp/s5/snap"); sys.path.insert(0, "/tmp/s5")
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features, lattice_hints as LH, simulate as sim
import treor
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
idx = np.concatenate([rng.choice(np.flatnonzero(lab.crystal_system == cs), k, replace=False)
                      for cs, k in (("orthorhombic", N), ("monoclinic", N), ("tetragonal", N // 2), ("triclinic", N // 2))])
cs = lab.crystal_system.to_numpy()[idx]
for kind in ("ideal", "aug"):
    rows = sim.patterns([refls[i] for i in idx], cond) if kind == "ideal" else augment.measured_patterns([refls[i] for i in idx], cond, seed=3)[0]
    peaks = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, **pp)
    F = LH._low_symmetry(peaks, refine=bool(int(os.environ.get("ZR", "0"))))[0]; jo = list(LH.LOW_SYMMETRY_NAMES).index("index_matched_orthorhombic"); je = 0
    treor.search(peaks[:2] if False else peaks, n_seed=4)  # compile
    for spec in sys.argv[1:]:
        kw = json.loads(spec)
        t0 = time.process_time(); T = treor.search(peaks, **kw); dt = (time.process_time() - t0) / len(idx) * 1e3
        line = f"{kind:5s} {spec:40s}"
        for c in ("orthorhombic", "monoclinic", "tetragonal", "triclinic"):
            m = cs == c
            line += f" {c[:5]} {np.mean(T[m, 1] >= .95)*100:5.1f}/{np.mean(F[m, jo] >= .95)*100:4.1f} ex {np.mean(T[m,0]):.2f}/{np.mean(F[m,je]):.2f}"
        print(line + f" | {dt:.2f} ms", flush=True)

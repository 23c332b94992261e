import sys, os, json, time
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/tmp/s11")
import numpy as np, pandas as pd
import accuracy as A
from xrdbatch import augment, features, lattice_hints as LH, simulate as sim
import mono
pp = {"height_rel": 0.04}
cond = A.target_conditions()
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 0)]
refls, labs = [], []
for cat, n in specs:
    r, l = A.reflections_of_catalog(cat, cond.d_min_angstrom * 0.98, A.DEFAULT_CACHE, n, 0)
    refls += r; labs.append(l)
lab = pd.concat(labs, ignore_index=True)
rng = np.random.default_rng(0)
N = int(os.environ.get("N", 120))
CL = ("orthorhombic", "monoclinic", "tetragonal", "triclinic", "hexagonal", "cubic")
idx = np.concatenate([rng.choice(np.flatnonzero(lab.crystal_system == cs), min(N, (lab.crystal_system == cs).sum()), replace=False) for cs in CL])
cs = lab.crystal_system.to_numpy()[idx]
kw = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
for kind in ("ideal", "aug"):
    rows = sim.patterns([refls[i] for i in idx], cond) if kind == "ideal" else augment.measured_patterns([refls[i] for i in idx], cond, seed=3)[0]
    peaks = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, **pp)
    F = LH.low_symmetry_features(peaks); names = list(LH.LOW_SYMMETRY_NAMES)
    T = LH.triples_features(peaks)
    mono.search(peaks[:5] if hasattr(peaks, "__getitem__") else peaks, **kw) if False else None
    t0 = time.process_time(); M = mono.search(peaks, **kw); dt = (time.process_time() - t0) / len(idx) * 1e3
    print(f"{kind} {kw} {dt:.2f} ms/pattern")
    for c in CL:
        m = cs == c
        print(f"  {c[:5]} n={m.sum():3d} mono found {np.mean(M[m,1]>=.95)*100:5.1f} (old {np.mean(F[m,names.index('index_matched_monoclinic')]>=.95)*100:5.1f})"
              f" excess {np.mean(M[m,0]):.2f} (old {np.mean(F[m,1]):.2f}) ortho-triples found {np.mean(T[m,1]>=.95)*100:5.1f} ex {np.mean(T[m,0]):.2f}"
              f" mono-ortho {np.median(M[m,0]-T[m,0]):+.3f}")
    np.save(f"/tmp/s11/M_{kind}.npy", np.column_stack([M, T[:, :2]])); np.save("/tmp/s11/cs.npy", cs)

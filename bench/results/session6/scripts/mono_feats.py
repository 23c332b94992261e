"""Monoclinic-step columns (mono.py) of every augmented training row and of the measured sets."""
import sys, time, json
sys.path.insert(0, "/tmp/s6/snap"); sys.path.insert(0, "/tmp/s6"); KW = json.loads(sys.argv[1]); TAG = sys.argv[2]
sys.argv = sys.argv[:1]
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features
from joblib import Parallel, delayed
pp = {"height_rel": 0.04}
cond = A.target_conditions()

def chunk(items, kw):
    import mono
    rows = np.concatenate([augment.measured_patterns([refl], cond, params=augment.AugmentParams(), seed=0, copy=copy, index_offset=index)[0]
                           for refl, copy, index in items])
    peaks = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, **pp)
    return mono.search(peaks, **kw), peaks.count.copy()

specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
blocks = []
for cat, n_sub in specs:
    refls, lab = A.reflections_of_catalog(cat, cond.d_min_angstrom * 0.98, A.DEFAULT_CACHE, n_sub, 0)
    blocks.append({"refls": refls, "copies": 2})
items = []
for b in blocks:
    n = len(b["refls"])
    for copy in range(b["copies"]):
        for index in range(n):
            items.append((b["refls"][index], copy, index))
t = time.time()
parts = Parallel(n_jobs=2)(delayed(chunk)(items[a:a + 500], KW) for a in range(0, len(items), 500))
T = np.concatenate([p[0] for p in parts]); cnt = np.concatenate([p[1] for p in parts])
print("train", T.shape, time.time() - t, flush=True)
import mono
M = {}
for s in ("rruff_minerals_dev", "pvlab_thin_films", "iucr_rietveld"):
    files = A.MEASURED_SETS[s]()
    out = []
    for rec, tt, y in A.measured_patterns(files, cond):
        peaks = features.find_peaks(tt, y[None, :], cond.wavelength_angstrom, **pp)
        out.append(mono.search(peaks, **KW)[0])
    M[s] = np.array(out)
np.savez(f"/tmp/s6/mono_{TAG}.npz", train=T, count=cnt, **M)
print("done", time.time() - t)

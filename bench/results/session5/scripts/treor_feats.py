"""Triples (or, with a third argument zr, refined zone-search) columns of every augmented training row and of the
measured sets: python treor_feats.py '{"n_seed": 5}' s5  |  python treor_feats.py '{}' zr zr"""
import sys, time, json
sys.path.insert(0, "/tmp/s5/snap"); sys.path.insert(0, "/tmp/s5"); KW = json.loads(sys.argv[1]); TAG = sys.argv[2]
MOD = sys.argv[3] if len(sys.argv) > 3 else "treor"  # "zr": the zone search refined (zr.py)
sys.argv = sys.argv[:1]
import importlib
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features
from joblib import Parallel, delayed
pp = {"height_rel": 0.04}
cond = A.target_conditions()

def chunk(items, kw):
    treor = importlib.import_module(MOD)
    rows = np.concatenate([augment.measured_patterns([refl], cond, params=augment.AugmentParams(), seed=0, copy=copy, index_offset=index)[0]
                           for refl, copy, index in items])
    peaks = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, **pp)
    return treor.search(peaks, **kw), peaks.count.copy()

specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, ["indexed", "indexed3", "measured", "seed11"], pp, A.DEFAULT_CACHE, 0, 1)
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
treor = importlib.import_module(MOD)
M = {}
for s in ("rruff_minerals_dev", "pvlab_thin_films", "iucr_rietveld"):
    files = A.MEASURED_SETS[s]()
    out = []
    for rec, tt, y in A.measured_patterns(files, cond):
        peaks = features.find_peaks(tt, y[None, :], cond.wavelength_angstrom, **pp)
        out.append(treor.search(peaks, **KW)[0])
    M[s] = np.array(out)
np.savez(f"/tmp/s5/treor_{TAG}.npz", train=T, count=cnt, **M)
print("done", time.time() - t)

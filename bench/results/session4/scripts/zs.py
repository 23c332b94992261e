import sys, os, json
sys.path.insert(0, "/tmp/s3/final_snap"); sys.argv = sys.argv[:1]
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features
pp = {"height_rel": 0.04}
cond = A.target_conditions(); fset = "indexed3"
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, ["indexed", "indexed3", "measured", "seed11"], pp, A.DEFAULT_CACHE, 0, 1, log=lambda m: print("COMPUTING", m))
X, lab = A.stack(blocks, "aug", fset); Xi, labi = A.stack(blocks, "ideal", fset)
Xm, labm = A.measured_features("rruff_minerals_dev", cond, ["indexed", "indexed3", "measured", "seed11"], pp, A.DEFAULT_CACHE)
Xm = Xm[fset]; names = features.feature_names(fset)
for fam in ["cubic", "tetragonal", "hexagonal"]:
    je, jz = names.index(f"index_excess_refined_{fam}"), names.index(f"zero_shift_deg_{fam}")
    for nm, M in (("ideal", Xi), ("aug", X), ("rruff", Xm)):
        sel = M[:, je] > 0.8
        z = M[sel, jz]
        print(f"{fam:11s} {nm:6s} n {sel.sum():6d} zero shift median {np.median(z):+.4f} IQR {np.subtract(*np.percentile(z, [75, 25])):.4f} p5-p95 {np.percentile(z, 5):+.3f} {np.percentile(z, 95):+.3f}")

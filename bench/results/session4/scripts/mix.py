import sys, os, json, hashlib
sys.path.insert(0, "/tmp/s3/final_snap"); sys.argv = sys.argv[:1]
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment
pp = {"height_rel": 0.04}
cond = A.target_conditions(); fset = "indexed3"
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
SETS = ["indexed", "indexed3", "measured", "seed11"]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, SETS, pp, A.DEFAULT_CACHE, 0, 1, log=lambda m: print("COMPUTING", m))
X, lab = A.stack(blocks, "aug", fset); Xi, labi = A.stack(blocks, "ideal", fset)
Xm, labm = A.measured_features("rruff_minerals_dev", cond, SETS, pp, A.DEFAULT_CACHE); Xm = Xm[fset]
Xx = np.concatenate([X, Xi]); labx = pd.concat([lab, labi], ignore_index=True)
for name, XX, LL in (("aug+ideal", Xx, labx),):
    m = A.fit_model(XX, LL, n_jobs=2)
    r = A.scores(m, Xm, labm)
    print(name, f"acc {r['accuracy']*100:.1f} macro {r['macro_recall']*100:.1f} sg1 {r['sg_top1']*100:.1f} sg5 {r['sg_top5']*100:.1f}", {k[:4]: round(v*100) for k, v in r['recall'].items()})
    h = A.heldout_scores(XX, LL, n_jobs=2)
    print("  held-out (incl. ideal rows)", {k: round(v['accuracy']*100, 1) for k, v in h.items()})

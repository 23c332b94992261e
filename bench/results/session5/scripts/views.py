import sys, time
sys.path.insert(0, "/tmp/s5/snap"); sys.argv = sys.argv[:1]
import numpy as np
import bench.accuracy as A
from xrdbatch import augment, features
pp = {"height_rel": 0.04}
cond = A.target_conditions(); fset = "indexed3"
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, ["indexed", "indexed3", "measured", "seed11"], pp, A.DEFAULT_CACHE, 0, 1, log=lambda m: print("COMPUTING", m))
X, lab = A.stack(blocks, "aug", fset)
offs = np.round(np.arange(-0.10, 0.1001, 0.02), 3)
print(offs, X.shape, flush=True)
t = time.time()
vf = A.augmented_views(blocks, cond, augment.AugmentParams(), 0, fset, pp, offs, X, n_jobs=2)
X0, views = vf(np.arange(len(X)))
print("views", time.time() - t, flush=True)
np.savez("/tmp/s5/train_views.npz", X0=X0.astype(np.float32), V=np.stack(views).astype(np.float32), offs=offs)
lab.to_parquet("/tmp/s5/train_labels.parquet")

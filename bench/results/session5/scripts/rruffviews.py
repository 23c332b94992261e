import sys
sys.path.insert(0, "/tmp/s5/snap"); sys.argv = sys.argv[:1]
import numpy as np
import bench.accuracy as A
pp = {"height_rel": 0.04}
cond = A.target_conditions(); fset = "indexed3"
offs = np.round(np.arange(-0.10, 0.1001, 0.02), 3)
for s in ("rruff_minerals_dev", "pvlab_thin_films", "iucr_rietveld"):
    try:
        Xm, lab = A.measured_features(s, cond, ["indexed3"], pp, A.DEFAULT_CACHE)
        V = A.measured_views(s, cond, fset, pp, A.DEFAULT_CACHE, offs)
        np.savez(f"/tmp/s5/M_{s}.npz", X0=Xm["indexed3"], V=np.stack(V), offs=offs)
        lab.to_parquet(f"/tmp/s5/M_{s}.parquet"); print(s, Xm["indexed3"].shape, flush=True)
    except Exception as e:
        print(s, "failed", e)

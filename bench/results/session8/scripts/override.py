"""Model predictions on RRUFF dev (strain 0, 36k protocol) + search-match override rules."""
import sys, json, numpy as np, pandas as pd
sys.path.insert(0, "/tmp/s8/snap1/bench"); sys.path.insert(0, "/tmp/s8/snap1")
import accuracy
from xrdbatch import augment, features
from xrdbatch.train import BOOSTED_CRYSTAL_SYSTEM
strain = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
cache = accuracy.DEFAULT_CACHE; cond = accuracy.target_conditions(); pp = {"height_rel": 0.04}
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0),
         ("/tmp/s7/catalog_syn7_24000.parquet", 0)]
params = augment.AugmentParams.from_dict({"strain_rel": strain})
blocks = accuracy.training_blocks(specs, cond, params, 2, ["indexed4"], pp, cache, 0, 2)
X, lab = accuracy.stack(blocks, "aug", "indexed4")
model = accuracy.fit_model(X, lab, n_jobs=2, model_params={"crystal_system": BOOSTED_CRYSTAL_SYSTEM})
Xm, labm = accuracy.measured_features("rruff_minerals_dev", cond, ["indexed4"], pp, cache)
views = accuracy.measured_views("rruff_minerals_dev", cond, "indexed4", pp, cache, features.shift_offsets(0.06, 7))
frame = model.predict_frame(Xm["indexed4"], top_k=10, views=views)
frame["file"] = labm["file"].values
frame.to_parquet(f"/tmp/s8/an/pred_strain{strain:g}.parquet")
print(accuracy.scores(model, Xm["indexed4"], labm, views=views)["accuracy"])

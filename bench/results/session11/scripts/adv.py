import sys
sys.path.insert(0, "/work/main/bench")
import numpy as np, pandas as pd, json
import accuracy as A
from xrdbatch import augment, features
from sklearn.metrics import roc_auc_score
cond = A.target_conditions(); pp = {"height_rel": 0.04}
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0), ("/tmp/s7/catalog_syn7_24000.parquet", 0)]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, ["indexed4", "seed11"], pp, A.DEFAULT_CACHE, 0, 2)
X, lab = A.stack(blocks, "aug", "indexed4")
Xi, labi = A.stack(blocks, "ideal", "indexed4")
names = features.feature_names("indexed4")
Xm, labm = A.measured_features("rruff_minerals_dev", cond, ["indexed4"], pp, A.DEFAULT_CACHE)
R = Xm["indexed4"]
# reweight sim rows: real-origin only, then class mix like RRUFF
real = (lab["origin"] == "real").to_numpy()
np.save("/tmp/s11/adv_X.npy", X); lab.to_parquet("/tmp/s11/adv_lab.parquet"); np.save("/tmp/s11/adv_R.npy", R); labm.to_parquet("/tmp/s11/adv_labm.parquet")
np.save("/tmp/s11/adv_Xi.npy", Xi); labi.to_parquet("/tmp/s11/adv_labi.parquet")
rows = []
for j, nm in enumerate(names):
    for tag, S in (("aug_real", X[real]), ("aug_all", X), ("ideal_real", Xi[(labi["origin"] == "real").to_numpy()])):
        s = S[:, j]; r = R[:, j]
        y = np.r_[np.zeros(len(s)), np.ones(len(r))]
        try:
            a = roc_auc_score(y, np.r_[s, r])
        except ValueError:
            a = 0.5
        rows.append((nm, tag, a, np.median(s), np.median(r)))
d = pd.DataFrame(rows, columns=["feature", "sim", "auc", "med_sim", "med_rruff"])
d["dev"] = (d.auc - 0.5).abs()
w = d.pivot(index="feature", columns="sim", values="auc")
meds = d[d.sim == "aug_real"].set_index("feature")[["med_sim", "med_rruff"]]
w = w.join(meds).sort_values("aug_real", key=lambda s: -(s - 0.5).abs())
pd.set_option("display.width", 200)
print(w.head(14).round(3).to_string())

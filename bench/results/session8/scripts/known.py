"""How many RRUFF dev patterns have a near-identical structure among the training real structures?"""
import sys, numpy as np
sys.path.insert(0, "/tmp/s8/snap1/bench"); sys.path.insert(0, "/tmp/s8/snap1")
import accuracy
from xrdbatch import features
cache = accuracy.DEFAULT_CACHE
cond = accuracy.target_conditions()
pp = {"height_rel": 0.04}
refls, lab = accuracy.reflections_of_catalog("/tmp/xrdbatch-acc/catalog_real.parquet", cond.d_min_angstrom * 0.98, cache, 2, 0, log=print)
X = accuracy.simulated_features("catalog_real", refls, cond, None, 1, ["indexed4"], pp, cache, log=print)["indexed4"]
Xm, labm = accuracy.measured_features("rruff_minerals_dev", cond, ["indexed4"], pp, cache)
Xm = Xm["indexed4"]
names = features.feature_names("indexed4")
qi = [names.index(f"q_{i+1}") for i in range(20)]
si = [names.index(f"strongest_q_{i+1}") for i in range(10)]
Q = X[:, qi]; S = Xm[:, si]
Q = np.where(Q > 0, Q, np.nan); S = np.where(S > 0, S, np.nan)
best = np.zeros(len(S)); arg = np.zeros(len(S), int)
for i in range(len(S)):
    s = S[i][~np.isnan(S[i])]
    rel = np.abs(Q[:, :, None] - s[None, None, :]) / s[None, None, :]
    hit = (np.nanmin(rel, axis=1) < 0.006).mean(axis=1)
    arg[i] = np.argmax(hit); best[i] = hit[arg[i]]
import pandas as pd
out = pd.DataFrame({"file": labm["file"] if "file" in labm else range(len(labm)), "true": labm["crystal_system"].values,
                    "sg": labm["space_group"].values, "match": best, "match_sys": lab["crystal_system"].values[arg],
                    "match_sg": lab["spacegroup_number"].values[arg], "match_id": lab["id"].values[arg], "match_formula": lab["formula"].values[arg], "match_type": lab["structure_type"].values[arg]})
out.to_csv("/tmp/s8/an/known.csv", index=False)
for t in (0.6, 0.8, 0.9, 1.0):
    k = out[out.match >= t]
    print(f"match >= {t}: {len(k)} patterns; same system {np.mean(k.true == k.match_sys):.2f}, same SG {np.mean(k.sg == k.match_sg):.2f}")
print(out.groupby("true").match.describe())

import sys, numpy as np, pandas as pd
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main")
import accuracy
from xrdbatch import features, match
cache = accuracy.DEFAULT_CACHE; cond = accuracy.target_conditions(); pp = {"height_rel": 0.04}
refls, lab = accuracy.reflections_of_catalog("/tmp/xrdbatch-acc/catalog_real.parquet", cond.d_min_angstrom * 0.98, cache, 2, 0, log=lambda s: None)
X = accuracy.simulated_features("catalog_real", refls, cond, None, 1, ["indexed4"], pp, cache, log=lambda s: None)["indexed4"]
keep = lab.variant.values == 0
names = features.feature_names("indexed4")
lib = match.ReferenceLibrary.from_features(X[keep], names, lab[keep].rename(columns={"spacegroup_number": "space_group"}))
Xm, labm = accuracy.measured_features("rruff_minerals_dev", cond, ["indexed4"], pp, cache)
views = accuracy.measured_views("rruff_minerals_dev", cond, "indexed4", pp, cache, features.shift_offsets(0.06, 7))
m = match.best_matches(lib, Xm["indexed4"], names, views=views)
m.to_parquet("/tmp/s8/an/rruff_matches.parquet")
bad = (labm.crystal_system.values == "cubic") & (m.match_score.values >= 0.8) & (m.match_crystal_system.values != "cubic")
print(bad.sum(), "cubic patterns matched to non-cubic")
# all scores for those patterns: best cubic entry score
Xs = Xm["indexed4"]
for i in np.flatnonzero(bad):
    cub = np.flatnonzero(lib.labels.crystal_system.values == "cubic")
    f = match.best_matches(lib.subset(cub), Xs[i:i+1], names, views=[V[i:i+1] for V in views])
    print(i, labm.space_group.values[i], "best", m.match_score.values[i], m.match_crystal_system.values[i], m.match_space_group.values[i], m.match_formula.values[i], "| best cubic", f.match_score.values[0], f.match_space_group.values[0], f.match_formula.values[0])

# Session 9: search-match library with the element-substituted variants too (RRUFF dev, session-7 model predictions).
import sys, numpy as np, pandas as pd
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main")
import accuracy
from xrdbatch import features, match
cache = accuracy.DEFAULT_CACHE; cond = accuracy.target_conditions(); pp = {"height_rel": 0.04}
refls, lab = accuracy.reflections_of_catalog("/tmp/xrdbatch-acc/catalog_real.parquet", cond.d_min_angstrom * 0.98, cache, 2, 0, log=lambda s: None)
X = accuracy.simulated_features("catalog_real", refls, cond, None, 1, ["indexed4"], pp, cache, log=print)["indexed4"]
names = features.feature_names("indexed4")
Xm, labm = accuracy.measured_features("rruff_minerals_dev", cond, ["indexed4"], pp, cache)
views = accuracy.measured_views("rruff_minerals_dev", cond, "indexed4", pp, cache, features.shift_offsets(0.06, 7))
pred = pd.read_parquet("/tmp/s8/an/pred_strain0.03.parquet")
true = labm.crystal_system.values; sg = labm.space_group.values
print("model alone acc", np.mean(pred.crystal_system.values == true))
L = lab.rename(columns={"spacegroup_number": "space_group"})
for name, keep in [("real only", lab.variant.values == 0), ("real + variants", np.ones(len(lab), bool))]:
    lib = match.ReferenceLibrary.from_features(X[keep], names, L[keep])
    m = match.best_matches(lib, Xm["indexed4"], names, views=views)
    for thr in (0.8, 0.9):
        hit = match.decided(m, thr)
        cs = np.where(hit, m.match_crystal_system.values, pred.crystal_system.values)
        var = (m.match_variant.values[hit] > 0)
        print(f"{name} thr {thr}: matched {hit.sum()} (to variants {var.sum()}), system right {np.mean(m.match_crystal_system.values[hit]==true[hit]):.3f}, "
              f"variant-matches right {np.mean(m.match_crystal_system.values[hit][var]==true[hit][var]) if var.any() else float('nan'):.3f}, acc {np.mean(cs==true):.4f}")

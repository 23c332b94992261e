# Session 9: the sorted-line search against the session-8 dense comparison on RRUFF dev (identical matches, timing).
# match_old.py = `git show ee9be0e:xrdbatch/match.py`; needs the bench feature cache (/tmp/xrdbatch-acc).
import sys, time, numpy as np, pandas as pd
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main"); sys.path.insert(0, "/tmp/s9")
import accuracy, match_old
from xrdbatch import features, match
cache = accuracy.DEFAULT_CACHE; cond = accuracy.target_conditions(); pp = {"height_rel": 0.04}
refls, lab = accuracy.reflections_of_catalog("/tmp/xrdbatch-acc/catalog_real.parquet", cond.d_min_angstrom * 0.98, cache, 2, 0, log=lambda s: None)
X = accuracy.simulated_features("catalog_real", refls, cond, None, 1, ["indexed4"], pp, cache, log=print)["indexed4"]
keep = lab.variant.values == 0
names = features.feature_names("indexed4")
L = lab[keep].rename(columns={"spacegroup_number": "space_group"})
lib = match.ReferenceLibrary.from_features(X[keep], names, L)
libo = match_old.ReferenceLibrary.from_features(X[keep], names, L)
Xm, labm = accuracy.measured_features("rruff_minerals_dev", cond, ["indexed4"], pp, cache)
offs = features.shift_offsets(0.06, 7)
views = accuracy.measured_views("rruff_minerals_dev", cond, "indexed4", pp, cache, offs)
print(type(views), len(views))
t0 = time.perf_counter(); m = match.best_matches(lib, Xm["indexed4"], names, views=views); t1 = time.perf_counter()
mo = match_old.best_matches(libo, Xm["indexed4"], names, views=views); t2 = time.perf_counter()
print(f"fast {t1-t0:.2f} s, dense {t2-t1:.2f} s for {len(Xm['indexed4'])} x {len(lib)} x {1+len(views)}")
print("equal", m.drop(columns=[]).equals(mo), (m.match_score >= 0.8).sum(), (mo.match_score >= 0.8).sum())
print((m.match_score != mo.match_score).sum(), (m.match_index != mo.match_index).sum())
r = pd.read_parquet("/tmp/s8/an/rruff_matches.parquet"); print(r.columns.tolist()[:8], (r.match_score.values == m.match_score.values).all() if len(r)==len(m) else len(r))

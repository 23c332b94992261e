# Session 10: analysis set-up (bundle /tmp/s10/bundle36k from the 36k --save-bundle run; RRUFF dev features from the bench cache).
import sys, numpy as np, pandas as pd
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main")
import accuracy
from xrdbatch import features, match, bundle, train
cache = accuracy.DEFAULT_CACHE; cond = accuracy.target_conditions(); pp = {"height_rel": 0.04}
b = bundle.load_bundle("/tmp/s10/bundle36k")
names = features.feature_names("indexed4")
Xm, labm = accuracy.measured_features("rruff_minerals_dev", cond, ["indexed4"], pp, cache)
views = accuracy.measured_views("rruff_minerals_dev", cond, "indexed4", pp, cache, features.shift_offsets(0.06, 7))
X = Xm["indexed4"]
raw = b.model.predict_proba_views([X, *views])
P = b.calibrator.transform(raw) if b.calibrator else raw
m = match.best_matches(b.library, X, names, views=views)
hit = match.decided(m)
true = labm.crystal_system.values; sgt = labm.space_group.values
classes = np.array(b.model.classes_)

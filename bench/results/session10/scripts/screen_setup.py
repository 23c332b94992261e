# Session 10: shared set-up of the crystal-system screens (sysweight.py, dropgroups.py, maxfeat.py): the 36k rows
# (cached features of bench/accuracy.py), RRUFF dev with its 7 shift views, and a library of the real structures and
# their variants; report() prints accuracy, macro recall and per-class recall, alone and with the match.
import sys, time, json, numpy as np, pandas as pd
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main")
import accuracy
from xrdbatch import augment, features, match, train
from sklearn.ensemble import HistGradientBoostingClassifier
cache = accuracy.DEFAULT_CACHE; cond = accuracy.target_conditions(); pp = {"height_rel": 0.04}
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0),
         ("/tmp/s7/catalog_syn7_24000.parquet", 0)]
params = augment.AugmentParams.from_dict({})
blocks = accuracy.training_blocks(specs, cond, params, 2, ["indexed4"], pp, cache, 0, 2, log=lambda *a, **k: None)
X, lab = accuracy.stack(blocks, "aug", "indexed4")
y = lab["crystal_system"].to_numpy().astype(str)
origin = lab["origin"].to_numpy().astype(str)
print("rows", len(X), pd.Series(origin).value_counts().to_dict(), flush=True)
names = features.feature_names("indexed4")
Xm, labm = accuracy.measured_features("rruff_minerals_dev", cond, ["indexed4"], pp, cache)
views = accuracy.measured_views("rruff_minerals_dev", cond, "indexed4", pp, cache, features.shift_offsets(0.06, 7))
Xr = Xm["indexed4"]; true = labm.crystal_system.values
Xi, labi = accuracy.stack(blocks, "ideal", "indexed4")
real = labi["origin"].to_numpy() == "real"
lib_lab = labi[real].rename(columns={"spacegroup_number": "space_group"}).reset_index(drop=True)
lib = match.ReferenceLibrary.from_features(Xi[real], names, lib_lab)
m = match.best_matches(lib, Xr, names, views=views); hit = match.decided(m)
print("library", len(lib), "matched", hit.sum(), flush=True)
kw = train.BOOSTED_CRYSTAL_SYSTEM.estimator_kwargs()


def report(label, clf, keep=slice(None)):
    P = np.mean([clf.predict_proba(V[:, keep]) for V in [Xr, *views]], axis=0)
    pred = clf.classes_[P.argmax(1)]
    both = np.where(hit, m["match_crystal_system"].to_numpy().astype(str), pred)
    for name, p in (("model", pred), ("+match", both)):
        rec = {c: np.mean(p[true == c] == c) for c in sorted(set(true))}
        print(f"{label} {name:7s}: acc {100*np.mean(p == true):.1f} macro {100*np.mean(list(rec.values())):.1f} "
              + " ".join(f"{c[:5]} {100*v:.0f}" for c, v in rec.items()), flush=True)

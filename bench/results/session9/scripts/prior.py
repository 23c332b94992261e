# Session 9: label-shift correction of the crystal-system probabilities towards MINERAL_SYSTEM_SHARES (RRUFF dev, bundle36k).
import sys, numpy as np, pandas as pd
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main")
import accuracy
from xrdbatch import features, match, bundle, train
cache = accuracy.DEFAULT_CACHE; cond = accuracy.target_conditions(); pp = {"height_rel": 0.04}
b = bundle.load_bundle("/tmp/s9/bundle36k")
names = features.feature_names("indexed4")
Xm, labm = accuracy.measured_features("rruff_minerals_dev", cond, ["indexed4"], pp, cache)
views = accuracy.measured_views("rruff_minerals_dev", cond, "indexed4", pp, cache, features.shift_offsets(0.06, 7))
X = Xm["indexed4"]
raw = b.model.predict_proba_views([X, *views])
m = match.best_matches(b.library, X, names, views=views)
hit = match.decided(m)
true = labm.crystal_system.values
classes = list(b.model.classes_)
origins = b.manifest["training"]["origins"]
# training class mix: from the evaluation table? use the manifest's evaluation rows' true systems as proxy
ev = b.evaluation()
col = "true_crystal_system" if "true_crystal_system" in ev else "crystal_system"
train_mix = ev[col].value_counts(normalize=True)
print("train mix (held-out rows)", train_mix.round(3).to_dict())
target = train.MINERAL_SYSTEM_SHARES
def evaluate(P, name):
    pred = np.array(classes)[P.argmax(1)]
    pred = np.where(hit, m.match_crystal_system.values, pred)
    fam = {"trigonal": "hexagonal"}
    rec = {s: np.mean(pred[true == s] == s) for s in sorted(set(true))}
    print(f"{name:40s} acc {np.mean(pred == true):.3f} macro {np.mean(list(rec.values())):.3f} ", {k[:5]: round(v, 2) for k, v in rec.items()})
for label, P in [("calibrated (bundle)", b.calibrator.transform(raw) if b.calibrator else raw), ("raw", raw)]:
    evaluate(P, label)
    for power in (0.5, 1.0):
        w = np.array([(target[c] / train_mix.get(c, 1e-3)) ** power for c in classes])
        Q = P * w; Q /= Q.sum(1, keepdims=True)
        evaluate(Q, f"{label} x mineral prior^{power}")

import sys, os, json
sys.path.insert(0, "/tmp/s3/final_snap"); sys.argv = sys.argv[:1]
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features, readers, score
from xrdbatch.crystal import crystal_system_of
pp = {"height_rel": 0.04}
cond = A.target_conditions(); fset = "indexed3"
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, ["indexed", "indexed3", "measured", "seed11"], pp, A.DEFAULT_CACHE, 0, 1, log=lambda m: print("COMPUTING", m))
X, lab = A.stack(blocks, "aug", fset)
model = A.fit_model(X, lab, n_jobs=1)
files = A.MEASURED_SETS["rruff_minerals_dev"]()
ys, labels = [], []
for rec in files.to_dict("records"):
    pattern = readers.read_patterns(rec["path"])[0]
    tt, y, _ = score.prepare_pattern(pattern, cond, rec["wavelength"]); ys.append(y); labels.append(int(rec["space_group"]))
Y = np.stack(ys)
ym = np.array([crystal_system_of(s) for s in labels])
cls = np.array(model.classes_)
P = {}
for off in [-0.08, -0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06]:
    pk = features.find_peaks(tt + off, Y, cond.wavelength_angstrom, **pp)
    P[off] = model.predict_proba(features.from_peaks(pk, fset))
def rep(name, offs):
    p = np.mean([P[o] for o in offs], axis=0); pred = cls[p.argmax(1)]
    r = [np.mean(pred[ym == c] == c) for c in np.unique(ym)]
    print(f"{name:32s} acc {np.mean(pred == ym)*100:.1f} macro {np.mean(r)*100:.1f}", flush=True)
rep("single 0", [0.0])
rep("TTA -0.04..+0.04 step .02", [-0.04, -0.02, 0.0, 0.02, 0.04])
rep("TTA -0.06..+0.06 step .02", [-0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06])
rep("TTA -0.04, 0, +0.04", [-0.04, 0.0, 0.04])
rep("TTA -0.08..0 (RRUFF-side)", [-0.08, -0.06, -0.04, -0.02, 0.0])
p0 = cls[P[0.0].argmax(1)]
pt = cls[np.mean([P[o] for o in [-0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06]], axis=0).argmax(1)]
print("paired RRUFF: wrong->right", np.sum((p0 != ym) & (pt == ym)), " right->wrong", np.sum((p0 == ym) & (pt != ym)))
# held-out simulated check
import hashlib
from joblib import Parallel, delayed
refls = [r for b in blocks for r in b["refls"]]
Xi, labi = A.stack(blocks, "ideal", fset)
dig = lambda L: L["structure_type"].astype(str).map(lambda t: int(hashlib.sha256(f"0:{t}".encode()).hexdigest()[:8], 16) / 16**8).to_numpy() < 0.2
te, tei = dig(lab), dig(labi)
mh = A.fit_model(X[~te], lab[~te].reset_index(drop=True), n_jobs=1)
sel = np.random.default_rng(1).choice(np.flatnonzero(tei), 2000, replace=False)
yi = labi["crystal_system"].to_numpy().astype(str)[sel]
rows, _ = augment.measured_patterns([refls[i] for i in sel], cond, seed=7)
tg = cond.two_theta_deg()
PH = {}
for off in [-0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06]:
    pk = features.find_peaks(tg + off, rows, cond.wavelength_angstrom, **pp)
    PH[off] = mh.predict_proba(features.from_peaks(pk, fset))
ch = np.array(mh.classes_)
for name, offs in (("single", [0.0]), ("TTA 3", [-0.04, 0.0, 0.04]), ("TTA 7", [-0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06])):
    pred = ch[np.mean([PH[o] for o in offs], axis=0).argmax(1)]
    print(f"held-out simulated {name}: acc {np.mean(pred == yi)*100:.1f}")

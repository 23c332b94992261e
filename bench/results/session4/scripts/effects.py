"""Which measurement effect costs the features most? Model trained on full augmentation (held-out split);
held-out structures rendered with one effect switched off at a time (and only one effect on)."""
import sys, os, json, hashlib, time
snap = sys.argv[1]; sys.path.insert(0, snap); sys.argv = sys.argv[:1]
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features
from joblib import Parallel, delayed
pp = json.loads(open("/tmp/s4/pp.json").read())
cond = A.target_conditions(); fset = "indexed3"
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, ["indexed3", "seed11"], pp, A.DEFAULT_CACHE, 0, 2)
X, lab = A.stack(blocks, "aug", fset)
Xi, labi = A.stack(blocks, "ideal", fset)
refls = [r for b in blocks for r in b["refls"]]
y = lab["crystal_system"].to_numpy().astype(str); yi = labi["crystal_system"].to_numpy().astype(str)
dig = lambda L: L["structure_type"].astype(str).map(lambda t: int(hashlib.sha256(f"0:{t}".encode()).hexdigest()[:8], 16) / 16**8).to_numpy() < 0.2
te, tei = dig(lab), dig(labi)
rng = np.random.default_rng(1)
sel = rng.choice(np.flatnonzero(tei), 2000, replace=False)  # held-out structures (ideal-row indices = refls order)
from sklearn.ensemble import ExtraTreesClassifier
m = ExtraTreesClassifier(n_estimators=100, min_samples_leaf=2, max_samples=0.5, bootstrap=True, n_jobs=2, random_state=0).fit(X[~te], y[~te])
def feats(params, idx):
    def chunk(ix):
        rows, _ = augment.measured_patterns([refls[i] for i in ix], cond, params=params, seed=7, copy=0, index_offset=0)
        pk = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, **pp)
        return features.from_peaks(pk, fset)
    return np.concatenate(Parallel(n_jobs=2)(delayed(chunk)(idx[a:a + 250]) for a in range(0, len(idx), 250)))
full = augment.AugmentParams()
def acc(params):
    F = feats(params, sel); return np.mean(m.predict(F) == yi[sel])
print(f"full augmentation: {acc(full)*100:.1f}   ideal rows (cached): {np.mean(m.predict(Xi[sel]) == yi[sel])*100:.1f}", flush=True)
print(f"all effects off (IDEAL params): {acc(augment.IDEAL)*100:.1f}", flush=True)
for e in augment.EFFECTS:
    off = acc(full.without(e))
    only = acc(augment.IDEAL.__class__(**{**augment.IDEAL.__dict__, **{k: getattr(full, k) for k in augment.EFFECTS[e]}}))
    print(f"{e:24s} off: {off*100:5.1f}   only this on: {only*100:5.1f}", flush=True)

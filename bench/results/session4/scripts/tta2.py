import sys, os, json, hashlib
sys.path.insert(0, "/tmp/s3/final_snap"); sys.argv = sys.argv[:1]
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features, readers, score
from xrdbatch.crystal import crystal_system_of
pp = {"height_rel": 0.04}
cond = A.target_conditions(); fset = "indexed3"; lam = cond.wavelength_angstrom
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, ["indexed", "indexed3", "measured", "seed11"], pp, A.DEFAULT_CACHE, 0, 1, log=lambda m: print("COMPUTING", m))
X, lab = A.stack(blocks, "aug", fset)
def move(peaks, z, s):
    th = np.radians(peaks.two_theta_deg) / 2
    pos = peaks.two_theta_deg + z - np.degrees(2 * s * np.cos(th))
    return peaks._replace(two_theta_deg=pos, q_per_angstrom=4 * np.pi * np.sin(np.radians(pos) / 2) / lam)
refls = [r for b in blocks for r in b["refls"]]
Xi, labi = A.stack(blocks, "ideal", fset)
dig = lambda L: L["structure_type"].astype(str).map(lambda t: int(hashlib.sha256(f"0:{t}".encode()).hexdigest()[:8], 16) / 16**8).to_numpy() < 0.2
te, tei = dig(lab), dig(labi)
mh = A.fit_model(X[~te], lab[~te].reset_index(drop=True), n_jobs=1)
sel = np.random.default_rng(1).choice(np.flatnonzero(tei), 2000, replace=False)
yi = labi["crystal_system"].to_numpy().astype(str)[sel]
rows, _ = augment.measured_patterns([refls[i] for i in sel], cond, seed=7)
pk = features.find_peaks(cond.two_theta_deg(), rows, lam, **pp)
ch = np.array(mh.classes_)
cache = {}
def P(z, s):
    if (z, s) not in cache:
        cache[(z, s)] = mh.predict_proba(features.from_peaks(move(pk, z, s), fset))
    return cache[(z, s)]
def acc(views):
    pred = ch[np.mean([P(z, s) for z, s in views], axis=0).argmax(1)]
    return np.mean(pred == yi) * 100
Z7 = [(z, 0.0) for z in np.linspace(-0.06, 0.06, 7)]
print("single", acc([(0.0, 0.0)]))
print("zero 7", acc(Z7))
print("disp 3 (+-0.0006)", acc([(0.0, s) for s in (-0.0006, 0, 0.0006)]))
print("zero 7 x disp 3", acc([(z, s) for z, _ in Z7 for s in (-0.0006, 0, 0.0006)]))
print("zero 5 +-0.04", acc([(z, 0.0) for z in np.linspace(-0.04, 0.04, 5)]))
print("zero 9 +-0.08", acc([(z, 0.0) for z in np.linspace(-0.08, 0.08, 9)]))
print("zero 13 +-0.06", acc([(z, 0.0) for z in np.linspace(-0.06, 0.06, 13)]))

import sys, os, json
sys.path.insert(0, "/tmp/s3/final_snap"); sys.argv = sys.argv[:1]
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features, train
pp = {"height_rel": 0.04}
cond = A.target_conditions(); fset = "indexed3"
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
SETS = ["indexed", "indexed3", "measured", "seed11"]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, SETS, pp, A.DEFAULT_CACHE, 0, 1, log=lambda m: print("COMPUTING", m))
X, lab = A.stack(blocks, "aug", fset)
model = A.fit_model(X, lab, n_jobs=2)
prior = json.load(open("/tmp/s3/final_snap/xrdbatch/data/space_group_prior.json"))
w_sg = train.origin_weights(lab["origin"].to_numpy(), 0.0) > 0
sg_train = lab["spacegroup_number"].to_numpy()[w_sg]
train_counts = np.bincount(sg_train, minlength=231)[1:].astype(float)
def run(setname, alpha, db):
    Xm, labm = A.measured_features(setname, cond, SETS, pp, A.DEFAULT_CACHE)
    Xm = Xm[fset]
    proba = model.predict_proba(Xm)
    groups, blocks_ = [], []
    for j, system in enumerate(model.classes_):
        m = model.space_group_models_.get(system)
        if m is None: continue
        cls = m.classes_.astype(int)
        p = m.predict_proba(Xm)
        if alpha > 0:
            dbc = np.asarray(prior[db]["counts"], float)[cls - 1] + 0.5
            tc = train_counts[cls - 1] + 0.5
            r = (dbc / dbc.sum()) / (tc / tc.sum())
            p = p * r[None, :] ** alpha
            p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
        groups.append(cls); blocks_.append(p * proba[:, j:j + 1])
    G = np.concatenate(groups); P = np.concatenate(blocks_, axis=1)
    order = np.argsort(-P, axis=1)[:, :5]
    top = G[order]
    t = labm["space_group"].to_numpy()
    return np.mean(top[:, 0] == t) * 100, np.mean((top == t[:, None]).any(axis=1)) * 100
for s in ["rruff_minerals_dev", "pvlab_thin_films", "iucr_rietveld"]:
    for db in ["icsd", "cod", "mp"]:
        for a in [0, 0.5, 1.0]:
            if a == 0 and db != "icsd": continue
            r1, r5 = run(s, a, db)
            print(f"{s:20s} {db:5s} alpha {a:.1f}: SG@1 {r1:5.1f}  SG@5 {r5:5.1f}", flush=True)

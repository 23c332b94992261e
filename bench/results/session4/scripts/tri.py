import sys, os, json, hashlib
sys.path.insert(0, "/tmp/s3/final_snap"); sys.argv = sys.argv[:1]
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features, train
from sklearn.metrics import roc_auc_score
pp = {"height_rel": 0.04}
cond = A.target_conditions(); fset = "indexed3"
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
SETS = ["indexed", "indexed3", "measured", "seed11"]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, SETS, pp, A.DEFAULT_CACHE, 0, 1, log=lambda m: print("COMPUTING", m))
X, lab = A.stack(blocks, "aug", fset)
Xm, labm = A.measured_features("rruff_minerals_dev", cond, SETS, pp, A.DEFAULT_CACHE); Xm = Xm[fset]
dig = lab["structure_type"].astype(str).map(lambda t: int(hashlib.sha256(f"0:{t}".encode()).hexdigest()[:8], 16) / 16**8).to_numpy() < 0.2
y = lab["crystal_system"].to_numpy().astype(str); ym = labm["crystal_system"].to_numpy().astype(str)
m_ho = A.fit_model(X[~dig], lab[~dig].reset_index(drop=True), n_jobs=2)
m_all = A.fit_model(X, lab, n_jobs=2)
cls = list(m_all.classes_)
P_ho = m_ho.predict_proba(X[dig]); yh = y[dig]
P_m = m_all.predict_proba(Xm)
for c in ["triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic"]:
    j = cls.index(c)
    print(f"{c:13s} AUC held-out {roc_auc_score(yh == c, P_ho[:, j]):.3f}  rruff {roc_auc_score(ym == c, P_m[:, j]):.3f}")
# prior-shift decision: weights w_c = 1/prior_train^beta, beta chosen on held-out macro recall
prior = np.array([np.mean(y[~dig] == c) for c in cls])
def rec(P, yy, w):
    pred = np.array(cls)[np.argmax(P * w, axis=1)]
    r = [np.mean(pred[yy == c] == c) for c in cls if (yy == c).any()]
    return np.mean(pred == yy) * 100, np.mean(r) * 100, {c[:4]: round(np.mean(pred[yy == c] == c) * 100) for c in cls if (yy == c).any()}
for beta in [0, 0.25, 0.5, 0.75, 1.0]:
    w = prior ** -beta
    print(f"beta {beta:.2f}: held-out acc/macro {rec(P_ho, yh, w)[:2]}  rruff {rec(P_m, ym, w)}")

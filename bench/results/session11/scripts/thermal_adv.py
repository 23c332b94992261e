import sys, time
sys.path.insert(0, "/work/main/bench")
import numpy as np, pandas as pd
import accuracy as A
from xrdbatch import augment, features
from sklearn.metrics import roc_auc_score
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_val_predict, StratifiedKFold
cond = A.target_conditions()
refls, lab = A.reflections_of_catalog("/tmp/xrdbatch-acc/catalog_real.parquet", cond.d_min_angstrom * 0.98, A.DEFAULT_CACHE, 0, 0)
R = np.load("adv_R.npy"); names = features.feature_names("indexed4")
for b in [(0.0, 0.0), (0.3, 1.5), (0.5, 3.0)]:
    t0 = time.time()
    rows, _ = augment.measured_patterns(refls, cond, params=augment.AugmentParams(thermal_b_angstrom2=b), seed=0)
    pk = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, height_rel=0.04)
    S = features.from_peaks(pk, "indexed4")
    Z = np.r_[S, R]; y = np.r_[np.zeros(len(S)), np.ones(len(R))]
    p = cross_val_predict(HistGradientBoostingClassifier(max_iter=200, class_weight="balanced", random_state=0), Z, y,
                          cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")[:, 1]
    line = f"B {b}: adversarial AUC {roc_auc_score(y, p):.3f};"
    for f in ("strongest_q_1", "n_peaks", "log_density_20pct", "q_14", "height_10"):
        j = names.index(f); line += f" {f} {roc_auc_score(y, np.r_[S[:, j], R[:, j]]):.3f}"
    print(line, f"({time.time() - t0:.0f} s)", flush=True)

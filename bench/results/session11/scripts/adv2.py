import numpy as np, pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_val_predict, StratifiedKFold
from sklearn.metrics import roc_auc_score
from sklearn.inspection import permutation_importance
import sys; sys.path.insert(0, "/work/main")
from xrdbatch import features
names = features.feature_names("indexed4")
X = np.load("adv_X.npy"); lab = pd.read_parquet("adv_lab.parquet"); R = np.load("adv_R.npy")
real = (lab["origin"] == "real").to_numpy()
rng = np.random.default_rng(0)
S = X[real]; S = S[rng.choice(len(S), 5000, replace=False)]
Z = np.r_[S, R]; y = np.r_[np.zeros(len(S)), np.ones(len(R))]
clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, class_weight="balanced", random_state=0)
p = cross_val_predict(clf, Z, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")[:, 1]
print("adversarial AUC", roc_auc_score(y, p))
clf.fit(Z, y)
imp = permutation_importance(clf, Z, y, scoring="roc_auc", n_repeats=3, random_state=0, n_jobs=2)
o = np.argsort(-imp.importances_mean)[:15]
for j in o: print(f"{names[j]:40s} {imp.importances_mean[j]:.4f}")

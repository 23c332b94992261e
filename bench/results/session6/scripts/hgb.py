"""Crystal-system accuracy: ExtraTrees (product params) vs HistGradientBoosting, indexed3 views (avg0.06)."""
import sys, hashlib, time
sys.path.insert(0, "/tmp/s5/snap")
import numpy as np, pandas as pd
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
z = np.load("/tmp/s5/train_views.npz"); offs = z["offs"]; i0 = int(np.flatnonzero(offs == 0)[0])
F = np.insert(z["V"], i0, z["X0"], axis=0)
lab = pd.read_parquet("/tmp/s5/train_labels.parquet")
types = lab["structure_type"].astype(str)
te = (types.map(lambda t: int(hashlib.sha256(f"0:{t}".encode()).hexdigest()[:8], 16) / 16**8) < 0.2).to_numpy()
vi = [i for i, o in enumerate(offs) if abs(o) <= 0.06 + 1e-9]
m = np.load("/tmp/s5/M_rruff_minerals_dev.npz"); G = np.insert(m["V"], i0, m["X0"], axis=0); LR = pd.read_parquet("/tmp/s5/M_rruff_minerals_dev.parquet")
y = lab["crystal_system"].to_numpy(); yr = LR["crystal_system"].to_numpy()
def ev(model, G, y):
    P = np.mean([model.predict_proba(np.nan_to_num(G[i], nan=-1)) for i in vi], axis=0)
    p = model.classes_[P.argmax(1)]
    acc = np.mean(p == y); cl = np.unique(y); mac = np.mean([np.mean(p[y == c] == c) for c in cl])
    return f"acc {acc*100:.1f} macro {mac*100:.1f}"
Xtr = np.nan_to_num(F[i0][~te], nan=-1); ytr = y[~te]
for name in sys.argv[1:]:
    t = time.time()
    if name == "et":
        mdl = ExtraTreesClassifier(n_estimators=100, max_features=0.3, min_samples_leaf=2, max_samples=0.5, bootstrap=True, n_jobs=2, random_state=0)
    elif name.startswith("hgb"):
        it, lr, lv = (name[3:].split("_") + ["0.1", "63"])[:3]
        mdl = HistGradientBoostingClassifier(max_iter=int(it), learning_rate=float(lr), max_leaf_nodes=int(lv), l2_regularization=1.0, random_state=0, early_stopping=False)
    mdl.fit(Xtr, ytr)
    print(name, f"fit {time.time()-t:.0f}s", "heldout", ev(mdl, F[:, te], y[te]), "| rruff", ev(mdl, G, yr), flush=True)

"""indexed4-equivalent (indexed3 views + triples columns) [+ mono columns], ET or HGB, crystal system, avg0.06."""
import sys, hashlib, time, os
sys.path.insert(0, "/tmp/s6/snap")
import numpy as np, pandas as pd
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
from xrdbatch import features
names = features.feature_names("indexed3"); col = {n: i for i, n in enumerate(names)}
z = np.load("/tmp/s5/train_views.npz"); offs = z["offs"]; i0 = int(np.flatnonzero(offs == 0)[0])
F = np.insert(z["V"], i0, z["X0"], axis=0)
lab = pd.read_parquet("/tmp/s5/train_labels.parquet")
types = lab["structure_type"].astype(str)
te = (types.map(lambda t: int(hashlib.sha256(f"0:{t}".encode()).hexdigest()[:8], 16) / 16**8) < 0.2).to_numpy()
vi = [i for i, o in enumerate(offs) if abs(o) <= 0.06 + 1e-9]
m = np.load("/tmp/s5/M_rruff_minerals_dev.npz"); G = np.insert(m["V"], i0, m["X0"], axis=0); LR = pd.read_parquet("/tmp/s5/M_rruff_minerals_dev.parquet")
y = lab["crystal_system"].to_numpy(); yr = LR["crystal_system"].to_numpy()
tz = np.load("/tmp/s6/mono_m1.npz")
def derive(T, G0):
    L = 0.5 * np.log(np.maximum(T[:, 2:5], 1e-9)); d = np.abs(L[:, [0, 1, 0]] - L[:, [1, 2, 2]])
    mono = G0[:, col["index_excess_monoclinic"]]; uni = np.maximum(G0[:, col["index_excess_refined_tetragonal"]], G0[:, col["index_excess_refined_hexagonal"]])
    return np.column_stack([T[:, 0], T[:, 1], d.min(1), d.max(1), np.degrees(T[:, 5]), mono - T[:, 0], uni - T[:, 0]])
def mono_cols(Mo, G0, T):
    uni = np.maximum(G0[:, col["index_excess_refined_tetragonal"]], G0[:, col["index_excess_refined_hexagonal"]])
    return np.column_stack([Mo[:, 6], Mo[:, 7], Mo[:, 8], np.degrees(Mo[:, 9]), Mo[:, 10], uni - Mo[:, 6], Mo[:, 6] - G0[:, col["index_excess_monoclinic"]]])
def build(Gv, T, Mo):
    extra = [derive(T, Gv[i0])]
    if Mo is not None:
        extra.append(mono_cols(Mo, Gv[i0], T))
    E = np.concatenate(extra, axis=1)
    return np.concatenate([Gv, np.broadcast_to(E, (Gv.shape[0],) + E.shape)], axis=2)
def ev(model, G, y):
    P = np.mean([model.predict_proba(np.nan_to_num(G[i], nan=-1)) for i in vi], axis=0)
    p = model.classes_[P.argmax(1)]
    acc = np.mean(p == y); cl = np.unique(y); mac = np.mean([np.mean(p[y == c] == c) for c in cl])
    rec = " ".join(f"{c[:4]} {np.mean(p[y == c] == c)*100:.0f}" for c in cl)
    return f"acc {acc*100:.1f} macro {mac*100:.1f} [{rec}]"
for spec in sys.argv[1:]:
    feat, mdl_name = spec.split(":")
    Mz = np.load(f"/tmp/s6/mono_{feat}.npz") if feat != "none" else None
    FF = build(F, tz["train"], Mz["train"] if Mz is not None else None)
    GG = build(G, tz["rruff_minerals_dev"], Mz["rruff_minerals_dev"] if Mz is not None else None)
    t = time.time()
    if mdl_name == "et":
        mdl = ExtraTreesClassifier(n_estimators=100, max_features=0.3, min_samples_leaf=2, max_samples=0.5, bootstrap=True, n_jobs=2, random_state=0)
    else:
        kw = dict(max_iter=100, learning_rate=0.2, max_leaf_nodes=31, l2_regularization=1.0)
        for part in mdl_name.split(",")[1:]:
            k, v = part.split("=")
            kw[k] = type(kw[k])(v) if k in kw else (None if v == "None" else int(v) if v.isdigit() else v)
        mdl = HistGradientBoostingClassifier(**kw, random_state=0, early_stopping=False)
    mdl.fit(np.nan_to_num(FF[i0][~te], nan=-1), y[~te])
    print(spec, FF.shape[2], f"fit {time.time()-t:.0f}s", "heldout", ev(mdl, FF[:, te], y[te]), "| rruff", ev(mdl, GG, yr), flush=True)

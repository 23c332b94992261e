import sys, numpy as np, pandas as pd
sys.path.insert(0, "/tmp/s8/snap1/bench"); sys.path.insert(0, "/tmp/s8/snap1")
import accuracy
from xrdbatch import features
cache = accuracy.DEFAULT_CACHE; cond = accuracy.target_conditions(); pp = {"height_rel": 0.04}
refls, lab = accuracy.reflections_of_catalog("/tmp/xrdbatch-acc/catalog_real.parquet", cond.d_min_angstrom * 0.98, cache, 2, 0, log=lambda s: None)
X = accuracy.simulated_features("catalog_real", refls, cond, None, 1, ["indexed4"], pp, cache, log=lambda s: None)["indexed4"]
Xm, labm = accuracy.measured_features("rruff_minerals_dev", cond, ["indexed4"], pp, cache); Xm = Xm["indexed4"]
names = features.feature_names("indexed4")
qi = [names.index(f"q_{i+1}") for i in range(20)]; si = [names.index(f"strongest_q_{i+1}") for i in range(10)]
keep = lab["variant"].values == 0
X, lab = X[keep], lab[keep].reset_index(drop=True)
nan = lambda a: np.where(a > 0, a, np.nan)
Lall = nan(np.concatenate([X[:, qi], X[:, si]], 1)); Ls = nan(X[:, si])
Mall = nan(np.concatenate([Xm[:, qi], Xm[:, si]], 1)); Ms = nan(Xm[:, si])
tol = float(sys.argv[1]) if len(sys.argv) > 1 else 0.006
def frac(a, B):  # fraction of lines a (k,) found in each row of B (n, m)
    a = a[~np.isnan(a)]
    rel = np.abs(B[:, :, None] - a[None, None, :]) / a
    return (np.nanmin(rel, axis=1) < tol).mean(1)
rows = []
qmax = np.nanmax(Mall, 1)
for i in range(len(Xm)):
    if np.isnan(Ms[i]).all():
        rows.append((0, 0, 0, 0)); continue
    fwd = frac(Ms[i], Lall)
    # reverse: each entry's strongest lines (within the measured Q range) found among the measured lines
    rel = np.abs(Ls[:, :, None] - Mall[i][None, None, ~np.isnan(Mall[i])]) / Ls[:, :, None]
    found = np.nanmin(rel, axis=2) < tol
    inr = Ls <= qmax[i] * 1.01
    rev = np.where(inr.sum(1) > 0, (found & inr).sum(1) / np.maximum(inr.sum(1), 1), 0)
    score = np.minimum(fwd, rev)
    j = np.argmax(score)
    rows.append((score[j], fwd[j], rev[j], j))
r = np.array(rows)
out = pd.DataFrame({"true": labm.crystal_system.values, "sg": labm.space_group.values, "match": r[:, 0], "fwd": r[:, 1],
                    "rev": r[:, 2], "match_sys": lab.crystal_system.values[r[:, 3].astype(int)],
                    "match_sg": lab.spacegroup_number.values[r[:, 3].astype(int)],
                    "match_formula": lab.formula.values[r[:, 3].astype(int)], "match_type": lab.structure_type.values[r[:, 3].astype(int)]})
out.to_csv(f"/tmp/s8/an/known2_{tol:g}.csv", index=False)
p = pd.read_parquet("/tmp/s8/an/pred_strain0.03.parquet")
true_sys = out.true.values; true_sg = out.sg.values; pred_sys = p.crystal_system.values.astype(str)
sgr = np.stack([p[f"space_group_{i}"].values for i in range(1, 11)], 1)
for t in (0.6, 0.7, 0.8, 0.9, 1.0):
    m = out.match.values >= t
    sys2 = np.where(m, out.match_sys.values, pred_sys); sg2 = sgr.copy()
    for i in np.flatnonzero(m):
        sg2[i] = ([out.match_sg.values[i]] + [s for s in sgr[i] if s != out.match_sg.values[i]])[:10]
    print(f"tol {tol} t={t}: n={m.sum()} match sys {np.mean(out.match_sys.values[m]==true_sys[m]):.2f} model {np.mean(pred_sys[m]==true_sys[m]):.2f}; match sg {np.mean(out.match_sg.values[m]==true_sg[m]):.2f} model {np.mean(sgr[m,0]==true_sg[m]):.2f}"
          f" -> acc {np.mean(sys2==true_sys):.3f} sg1 {np.mean(sg2[:,0]==true_sg):.3f} sg5 {np.mean((sg2[:,:5]==true_sg[:,None]).any(1)):.3f}")

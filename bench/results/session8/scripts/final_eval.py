"""RRUFF dev: the shipped model's shift-averaged predictions (scripts/override.py) with xrdbatch.match deciding."""
import sys, numpy as np, pandas as pd
sys.path.insert(0, "/work/main")
from xrdbatch import match
p = pd.read_parquet("/tmp/s8/an/pred_strain0.03.parquet"); m = pd.read_parquet("/tmp/s8/an/rruff_matches.parquet")
lab = pd.read_csv("/work/shared/data/measured/rruff_minerals_dev/labels.csv").set_index("file").loc[p.file].reset_index()
ts, tg = lab.crystal_system.values, lab.space_group.values
def show(f, name):
    sg = np.stack([f[f"space_group_{i}"].values for i in range(1, 11)], 1)
    rec = {s: np.mean(f.crystal_system.values[ts == s] == s) for s in np.unique(ts)}
    print(f"{name:<28} acc {np.mean(f.crystal_system.values == ts):.3f} macro {np.mean(list(rec.values())):.3f} sg1 {np.mean(sg[:,0]==tg):.3f} sg5 {np.mean((sg[:,:5]==tg[:,None]).any(1)):.3f} | " + " ".join(f"{k[:5]} {v:.2f}" for k, v in rec.items()))
show(p, "model")
for t in (0.7, 0.8, 0.9):
    f = match.apply_matches(p, m, threshold=t)
    hit = f.matched.values
    show(f, f"search-match t={t} ({hit.sum()})")
    print(f"   matched system right {np.mean(m.match_crystal_system.values[hit]==ts[hit]):.3f} SG right {np.mean(m.match_space_group.values[hit].astype(float)==tg[hit]):.3f}")

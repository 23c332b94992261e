"""Screen: test-time views beyond zero shifts (weak-peak dropping), boosted crystal system on indexed4.
Rows: the issue-8 protocol (real:2 + syn3_12000, 2 copies), held-out types by hash (as bench/accuracy.py);
held-out rows re-rendered (all real held-out + a fixed sample of synthetic), RRUFF dev; each view set averaged."""
import sys, time, hashlib, json
sys.path.insert(0, "/tmp/s7/snapA"); sys.path.insert(0, "/tmp/s7/snapA/bench")
import numpy as np, pandas as pd
from pathlib import Path
from joblib import Parallel, delayed
import accuracy as A
from xrdbatch import augment, features
from xrdbatch.features import Peaks
from sklearn.ensemble import HistGradientBoostingClassifier
from xrdbatch.train import BOOSTED_CRYSTAL_SYSTEM

FSET = "indexed4"; PP = {"height_rel": 0.04}; cache = A.DEFAULT_CACHE
cond = A.target_conditions(); params = augment.AugmentParams()
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
blocks = A.training_blocks(specs, cond, params, 2, [FSET], PP, cache, 0, 2)
X, lab = A.stack(blocks, "aug", FSET)
types = lab["structure_type"].astype(str)
is_test = (types.map(lambda t: int(hashlib.sha256(f"0:{t}".encode()).hexdigest()[:8], 16) / 16**8) < 0.2).to_numpy()
train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
y = lab["crystal_system"].to_numpy().astype(str)
t = time.time()
mdl = HistGradientBoostingClassifier(**BOOSTED_CRYSTAL_SYSTEM.estimator_kwargs(), random_state=0)
mdl.fit(np.nan_to_num(X[train], nan=-1), y[train]); print(f"fit {time.time()-t:.0f}s", flush=True)

OFFS = features.shift_offsets(0.06, 7)
DROPS = [float(v) for v in sys.argv[1].split(",")] if len(sys.argv) > 1 else [0.0, 0.06, 0.1]

def drop(peaks, rel):
    if rel <= 0: return peaks
    keep = peaks.height >= rel
    counts = np.bincount(peaks.pattern[keep], minlength=peaks.n_patterns)
    return Peaks(peaks.pattern[keep], peaks.two_theta_deg[keep], peaks.q_per_angstrom[keep], peaks.height[keep],
                 np.concatenate([[0], np.cumsum(counts)]))

def views(peaks):
    out = {}
    for r in DROPS:
        p = drop(peaks, r)
        for o in OFFS:
            out[(r, float(o))] = features.from_peaks(features.shift_peaks(p, o, cond.wavelength_angstrom), FSET)
    return out

sizes = np.array([len(b["refls"]) for b in blocks]); starts = np.concatenate([[0], np.cumsum(sizes * 2)])
rng = np.random.default_rng(0)
real = lab["origin"].to_numpy()[test] != "synthetic"
sel = np.concatenate([test[real], rng.choice(test[~real], 2400, replace=False)])
def chunk(rows):
    items = []
    for row in rows:
        b = int(np.searchsorted(starts, row, side="right") - 1); copy, index = divmod(int(row - starts[b]), int(sizes[b]))
        items.append(augment.measured_patterns([blocks[b]["refls"][index]], cond, params=params, seed=0, copy=copy,
                                               index_offset=index)[0])
    pk = features.find_peaks(cond.two_theta_deg(), np.concatenate(items), cond.wavelength_angstrom, **PP)
    return views(pk)
t = time.time()
parts = Parallel(n_jobs=2)(delayed(chunk)(sel[a:a + 200]) for a in range(0, len(sel), 200))
HV = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
print(f"held-out views {time.time()-t:.0f}s", flush=True)
files = A.MEASURED_SETS["rruff_minerals_dev"]()
RV = {}; yr = []
for rec, tt, yy in A.measured_patterns(files, cond):
    pk = features.find_peaks(tt, yy[None, :], cond.wavelength_angstrom, **PP)
    for k, v in views(pk).items(): RV.setdefault(k, []).append(v[0])
    yr.append(A.crystal_system_of(int(rec["space_group"])))
RV = {k: np.array(v) for k, v in RV.items()}; yr = np.array(yr)
np.savez("/tmp/s7/tta_views.npz", sel=sel, **{f"H{r}_{o:.2f}": v for (r, o), v in HV.items()}, **{f"R{r}_{o:.2f}": v for (r, o), v in RV.items()})
yh = y[sel]; isreal = lab["origin"].to_numpy()[sel] != "synthetic"
P = {k: mdl.predict_proba(np.nan_to_num(v, nan=-1)) for k, v in HV.items()}
PR = {k: mdl.predict_proba(np.nan_to_num(v, nan=-1)) for k, v in RV.items()}
def rep(P, yt, keys, mask=None):
    p = mdl.classes_[np.mean([P[k] for k in keys], axis=0).argmax(1)]
    if mask is not None: p, yt = p[mask], yt[mask]
    cl = np.unique(yt); return f"{np.mean(p == yt)*100:.1f}/{np.mean([np.mean(p[yt == c] == c) for c in cl])*100:.1f}"
combos = {"none": [(0.0, 0.0)], "shift7": [(0.0, float(o)) for o in OFFS]}
for r in DROPS[1:]:
    combos[f"drop{r}"] = [(r, 0.0)]
    combos[f"shift7@drop{r}"] = [(r, float(o)) for o in OFFS]
    combos[f"shift7+shift7@drop{r}"] = [(0.0, float(o)) for o in OFFS] + [(r, float(o)) for o in OFFS]
combos["shift7 x all drops"] = [(r, float(o)) for r in DROPS for o in OFFS]
for name, keys in combos.items():
    print(f"{name:28s} heldout(all sel) {rep(P, yh, keys)} real {rep(P, yh, keys, isreal)} | rruff {rep(PR, yr, keys)}", flush=True)

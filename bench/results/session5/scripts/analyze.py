"""Zero-shift scan strategies on indexed3 features. Usage: python analyze.py STRATEGY..."""
import sys, hashlib, time
sys.path.insert(0, "/tmp/s5/snap"); args = sys.argv[1:]; sys.argv = sys.argv[:1]
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import features
names = features.feature_names("indexed3"); col = {n: i for i, n in enumerate(names)}
z = np.load("/tmp/s5/train_views.npz"); offs = z["offs"]; i0 = int(np.flatnonzero(offs == 0)[0])
F = np.insert(z["V"], i0, z["X0"], axis=0)  # (n_off, N, f)
lab = pd.read_parquet("/tmp/s5/train_labels.parquet")
types = lab["structure_type"].astype(str)
te = (types.map(lambda t: int(hashlib.sha256(f"0:{t}".encode()).hexdigest()[:8], 16) / 16**8) < 0.2).to_numpy()
M = {}
for s in ("rruff_minerals_dev", "pvlab_thin_films", "iucr_rietveld"):
    try:
        m = np.load(f"/tmp/s5/M_{s}.npz"); M[s] = (np.insert(m["V"], i0, m["X0"], axis=0), pd.read_parquet(f"/tmp/s5/M_{s}.parquet"))
    except FileNotFoundError:
        pass
EXC = ["index_excess_refined_cubic", "index_excess_refined_tetragonal", "index_excess_refined_hexagonal",
       "index_excess_orthorhombic", "index_excess_monoclinic"]
def sel_offsets(w):
    return [i for i, o in enumerate(offs) if abs(o) <= w + 1e-9]

def transform(G, strategy):
    """G (n_off, n, f) -> (list of feature matrices to average over)."""
    if strategy == "plain":
        return [G[i0]]
    if strategy.startswith("avg"):
        w = float(strategy[3:]); return [G[i] for i in sel_offsets(w)]
    if strategy.startswith("best"):   # best view by max excess over families
        w = float(strategy[4:]); idx = sel_offsets(w)
        q = np.max(G[idx][:, :, [col[e] for e in EXC]], axis=2)  # (v, n)
        q = np.nan_to_num(q, nan=-9)
        # prefer the smallest |offset| on ties
        q = q - 1e-6 * np.abs(offs[idx])[:, None]
        b = np.argmax(q, axis=0)
        X = G[idx][b, np.arange(G.shape[1])]
        return [np.column_stack([X, offs[idx][b]])]
    if strategy.startswith("maxcat"):  # plain + max over views of excess columns
        w = float(strategy[6:]); idx = sel_offsets(w)
        E = np.nanmax(G[idx][:, :, [col[e] for e in EXC]], axis=0)
        d = np.column_stack([E[:, 1] - E[:, 3], E[:, 2] - E[:, 3], E[:, 0] - E[:, 1], E[:, 4] - np.maximum(E[:, 3], E[:, 1]),
                             np.max(E[:, :3], axis=1) - E[:, 4]])
        return [np.column_stack([G[i0], E, d])]
    if strategy.startswith("mavg"):  # maxcat over +-w2, averaged over views +-0.06
        w = float(strategy[4:]); idx = sel_offsets(w)
        E = np.nanmax(G[idx][:, :, [col[e] for e in EXC]], axis=0)
        d = np.column_stack([E[:, 1] - E[:, 3], E[:, 2] - E[:, 3], E[:, 0] - E[:, 1], E[:, 4] - np.maximum(E[:, 3], E[:, 1]),
                             np.max(E[:, :3], axis=1) - E[:, 4]])
        return [np.column_stack([G[i], E, d]) for i in [i0] + [i for i in sel_offsets(0.06) if i != i0]]
    if strategy.startswith("bavg"):  # best view over +-w, then views of +-0.06 around it
        w = float(strategy[4:]); idx = sel_offsets(w)
        q = np.nan_to_num(np.max(G[idx][:, :, [col[e] for e in EXC]], axis=2), nan=-9) - 1e-6 * np.abs(offs[idx])[:, None]
        b = np.array(idx)[np.argmax(q, axis=0)]
        outs = []
        for k in (0, -1, 1, -2, 2, -3, 3):
            bb = np.clip(b + k, 0, len(offs) - 1)
            outs.append(np.column_stack([G[bb, np.arange(G.shape[1])], offs[b]]))
        return outs
    if strategy.startswith("mx"):  # mx<H|A><step>[a]: max over offsets multiple of step within +-0.1 of high-sym (H) or all (A) excess
        grp, step, avg = strategy[2], float(strategy[3:].rstrip("a")), strategy.endswith("a")
        idx = [i for i, o in enumerate(offs) if abs(round(o / step) * step - o) < 1e-9]
        cols = EXC[:3] if grp == "H" else EXC
        E = np.nanmax(G[idx][:, :, [col[e] for e in cols]], axis=0)
        P0 = G[i0][:, [col[e] for e in EXC]]
        if grp == "H":
            E = np.column_stack([E, P0[:, 3:]])
        d = np.column_stack([E[:, 1] - E[:, 3], E[:, 2] - E[:, 3], E[:, 0] - E[:, 1], E[:, 4] - np.maximum(E[:, 3], E[:, 1]),
                             np.max(E[:, :3], axis=1) - E[:, 4]])
        vs = [i0] + ([i for i in sel_offsets(0.06) if i != i0] if avg else [])
        return [np.column_stack([G[i], E, d]) for i in vs]
    if strategy.startswith("tri"):  # the views at -w, 0, +w
        w = float(strategy[3:]); return [G[i0]] + [G[i] for i, o in enumerate(offs) if abs(abs(o) - w) < 1e-9]
    if strategy.startswith("tr"):  # treor features appended; tr[a]: views averaged (treor unshifted)
        T = G.treor if hasattr(G, "treor") else None
        raise ValueError("use TR")
    raise ValueError(strategy)

import os, json
from xrdbatch import train as T
MP = json.loads(os.environ.get("MP", "{}"))
def fit(X, L):
    mp = {k: T.ForestParams(**v) for k, v in MP.items()}
    return A.fit_model(X, L.reset_index(drop=True), n_jobs=2, model_params=mp)

def report(name, model, Xs, L):
    r = A.scores(model, Xs[0], L.reset_index(drop=True), views=Xs[1:])
    rc = " ".join(f"{k[:4]} {v*100:.0f}" for k, v in r["recall"].items())
    print(f"  {name:22s} acc {r['accuracy']*100:5.1f} macro {r['macro_recall']*100:5.1f} sg1 {r['sg_top1']*100:5.1f} sg5 {r['sg_top5']*100:5.1f} | {rc}", flush=True)

TR = os.environ.get("TR")
if TR:
    tz = np.load(f"/tmp/s5/treor_{TR}.npz")
    def derive(T, G0):
        A_, B_, C_ = T[:, 2], T[:, 3], T[:, 4]
        L = 0.5 * np.log(np.maximum(np.column_stack([A_, B_, C_]), 1e-9))
        d = np.abs(L[:, [0, 1, 0]] - L[:, [1, 2, 2]])
        mono = G0[:, col["index_excess_monoclinic"]]; uni = np.maximum(G0[:, col["index_excess_refined_tetragonal"]], G0[:, col["index_excess_refined_hexagonal"]])
        return np.column_stack([T[:, 0], T[:, 1], d.min(1), d.max(1), mono - T[:, 0], uni - T[:, 0]])
    print("count mismatch", np.mean(tz["count"] != F[i0][:, col["n_peaks"]]))
    F = np.concatenate([F, np.broadcast_to(derive(tz["train"], F[i0]), (F.shape[0],) + (len(tz["train"]), 6))], axis=2)
    for s_ in M:
        G, L_ = M[s_]
        M[s_] = (np.concatenate([G, np.broadcast_to(derive(tz[s_], G[i0]), (G.shape[0], G.shape[1], 6))], axis=2), L_)
for strat in args:
    tr_strat, te_strat = (strat.split("/") + [strat])[:2]
    t = time.time()
    Xtr = transform(F[:, ~te], tr_strat)
    Xtr = np.concatenate(Xtr) if len(Xtr) > 1 else Xtr[0]
    Ltr = lab[~te]; Ltr = pd.concat([Ltr] * (len(Xtr) // len(Ltr)))
    model = fit(Xtr, Ltr)
    print(f"== train {tr_strat} ({len(Xtr)} rows, {time.time()-t:.0f} s) test {te_strat}", flush=True)
    report("held-out simulated", model, transform(F[:, te], te_strat), lab[te])
    for s, (G, L) in M.items():
        report(s[:22], model, transform(G, te_strat), L)

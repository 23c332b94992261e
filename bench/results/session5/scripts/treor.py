"""Prototype: TREOR-like orthorhombic search (three lines of the lowest n_seed given low indices, solved for
A, B, C, scored as excess over chance with early exit, best cells refined with a zero shift)."""
import math, sys
import numpy as np
from numba import njit
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 and sys.argv[1].startswith("/") else "/tmp/s5/snap")
from xrdbatch import lattice_hints as LH
from xrdbatch.lattice_hints import _ortho_hit, _sorted3, _chance, _chance_floor, _ortho_density, _n_calc_ortho, _refine_ortho, _ortho_eval

def vectors(max_s=6):
    v = []
    for h in range(3):
        for k in range(3):
            for l in range(3):
                if 0 < h*h + k*k + l*l <= max_s:
                    v.append((h*h, k*k, l*l))
    v = np.array(v, np.int64)
    canon = np.array([a >= b >= c for a, b, c in v])
    return v, canon

@njit(cache=True)
def _treor(x, tol, g, n, n_seed, vecs, canon, a_min, max_lpp, n_keep, max_z):
    kA = np.zeros(n_keep); kB = np.zeros(n_keep); kC = np.zeros(n_keep); kS = np.full(n_keep, -1e9); kH = np.zeros(n_keep)
    ns = min(n_seed, n)
    V = vecs.shape[0]
    for i in range(ns):
        for j in range(i + 1, ns):
            for k in range(j + 1, ns):
                for v1 in range(V):
                    if not canon[v1]:
                        continue
                    a1 = vecs[v1, 0]; b1 = vecs[v1, 1]; c1 = vecs[v1, 2]
                    for v2 in range(V):
                        if v2 == v1:
                            continue
                        a2 = vecs[v2, 0]; b2 = vecs[v2, 1]; c2 = vecs[v2, 2]
                        for v3 in range(V):
                            if v3 == v1 or v3 == v2:
                                continue
                            a3 = vecs[v3, 0]; b3 = vecs[v3, 1]; c3 = vecs[v3, 2]
                            det = a1 * (b2 * c3 - b3 * c2) - b1 * (a2 * c3 - a3 * c2) + c1 * (a2 * b3 - a3 * b2)
                            if det == 0:
                                continue
                            X1 = x[i]; X2 = x[j]; X3 = x[k]
                            A = (X1 * (b2 * c3 - b3 * c2) - b1 * (X2 * c3 - X3 * c2) + c1 * (X2 * b3 - X3 * b2)) / det
                            if A < a_min:
                                continue
                            B = (a1 * (X2 * c3 - X3 * c2) - X1 * (a2 * c3 - a3 * c2) + c1 * (a2 * X3 - a3 * X2)) / det
                            if B < a_min:
                                continue
                            C = (a1 * (b2 * X3 - b3 * X2) - b1 * (a2 * X3 - a3 * X2) + X1 * (a2 * b3 - a3 * b2)) / det
                            if C < a_min:
                                continue
                            if _n_calc_ortho(x[n - 1], A, B, C) > max_lpp * n:
                                continue
                            worst = 0
                            for q in range(n_keep):
                                if kS[q] < kS[worst]:
                                    worst = q
                            c_vol, c_face, c_edge = _ortho_density(A, B, C, 1.0)
                            chance = _chance_floor(x, tol, n, c_vol, c_face, c_edge)
                            if n - chance <= kS[worst]:
                                continue
                            ps, qs, ss = _sorted3(A, B, C)
                            hits = 0
                            for t in range(n):
                                if _ortho_hit(x[t], tol[t], A, B, C, ps, qs, ss):
                                    hits += 1
                                elif n - (t + 1 - hits) - chance <= kS[worst]:
                                    hits = -1
                                    break
                            if hits < 0:
                                continue
                            s = hits - _chance(x, tol, n, c_vol, c_face, c_edge)
                            if s <= kS[worst]:
                                continue
                            dup = False
                            for q in range(n_keep):
                                if abs(kA[q] * kB[q] * kC[q] - A * B * C) < 3e-3 * A * B * C and \
                                        abs(kA[q] + kB[q] + kC[q] - A - B - C) < 1e-3 * (A + B + C):
                                    dup = True
                                    if s > kS[q]:
                                        kS[q] = s
                                    break
                            if not dup:
                                kA[worst] = A; kB[worst] = B; kC[worst] = C; kS[worst] = s; kH[worst] = hits
    best = 0
    for q in range(n_keep):
        if max_z > 0 and kS[q] > -1e8:
            A, B, C, z, ok = _refine_ortho(x, tol, g, n, kA[q], kB[q], kC[q], max_z)
            if ok:
                hits, chance, res = _ortho_eval(x - z * g, tol, n, A, B, C, 0, 1.0)
                if hits - chance > kS[q]:
                    kA[q] = A; kB[q] = B; kC[q] = C; kS[q] = hits - chance; kH[q] = hits
        if kS[q] > kS[best]:
            best = q
    return kS[best] / n, kH[best] / n, kA[best], kB[best], kC[best]

def search(peaks, n_seed=6, max_s=6, max_lpp=30.0, n_keep=10, refine=True):
    xs, tols, counts, ranks = LH._tested_peaks(peaks, LH.N_TEST_PEAKS_LOW, with_rank=True, tol_deg=LH.TOL_LOW_TWO_THETA_DEG)
    dtheta = math.radians(LH.TOL_LOW_TWO_THETA_DEG / 2)
    gs = np.nan_to_num((tols - 2e-4 * xs) / dtheta, nan=0.0)
    xs = np.nan_to_num(xs); tols = np.nan_to_num(tols)
    vecs, canon = vectors(max_s)
    out = np.zeros((len(counts), 5))
    for p in range(len(counts)):
        k = counts[p]
        if k < 5:
            continue
        out[p] = _treor(xs[p, :k], tols[p, :k], gs[p, :k], k, n_seed, vecs, canon, 1.0 / LH.MAX_EDGE_ANGSTROM ** 2, max_lpp,
                        n_keep, math.radians(LH.MAX_ZERO_SHIFT_DEG) if refine else 0.0)
    return out

"""Prototype (measured in session 6, not kept): monoclinic step on the triples search's kept cells (D voted by the
lines the zero-shift-corrected cell leaves unindexed, then (P, U, R, D, z) refined by weighted least squares and
rescored). Its first half is a copy of xrdbatch.lattice_hints._triples_pattern as of fd098b7 (kept cells returned
for the monoclinic step); the record of what was measured, not product code."""
import math, sys, os
import numpy as np
from numba import njit
sys.path.insert(0, os.environ.get("SNAP", "/tmp/s6/snap"))
from xrdbatch import lattice_hints as LH
from xrdbatch.lattice_hints import (_ortho_hit, _sorted3, _chance, _chance_floor, _ortho_density, _n_calc_ortho,
                                    _refine_ortho, _ortho_eval, _kept_slot, _resid_mono, _TRIPLE_INV)


@njit(cache=True)
def _mono_density(p, u, r, d):
    det2 = p * r - d * d
    if det2 <= 0 or u <= 0:
        return -1.0, 0.0, 0.0
    return math.pi / 2.0 / math.sqrt(u * det2), math.pi / 4.0 / math.sqrt(det2), 0.25 / math.sqrt(u)


@njit(cache=True)
def _mono_hits(x, tol, n, p, u, r, d):
    h = 0
    for j in range(n):
        if _resid_mono(x[j], tol[j], p, u, r, d, 0, True) >= 0:
            h += 1
    return h


@njit(cache=True)
def _assign_mono(xj, tj, p, u, r, d):
    """(e, i, j, l) of the smallest |i^2 p + j^2 u + l^2 r + 2 i l d - xj| <= tj, e < 0 when none."""
    best = -1.0
    bi = 0; bj = 0; bl = 0
    rr = r - d * d / p
    if rr <= 0:
        return best, bi, bj, bl
    lmax = int(math.sqrt((xj + tj) / rr))
    jmax = int(math.sqrt((xj + tj) / u))
    for j in range(jmax + 1):
        r1 = xj - j * j * u
        for l in range(-lmax, lmax + 1):
            q = l * l * r - r1
            disc = l * l * d * d - p * q
            if disc < -tj * p:
                continue
            sd = math.sqrt(max(disc, 0.0))
            for root in ((-l * d + sd) / p, (-l * d - sd) / p):
                i = int(math.floor(root + 0.5))
                if i == 0 and j == 0 and l == 0:
                    continue
                e = abs(p * i * i + 2 * i * l * d + q)
                if e <= tj and (best < 0 or e < best):
                    best = e; bi = i; bj = j; bl = l
    return best, bi, bj, bl


@njit(cache=True)
def _refine_mono(x, tol, g, n, p, u, r, d, z, max_z, min_lines):
    ii = np.empty(n); jj = np.empty(n); ll = np.empty(n); ok = np.zeros(n, np.bool_)
    for it in range(2):
        loose = 4.0 if it == 0 else 2.0
        m = 0
        for j in range(n):
            e, a1, a2, a3 = _assign_mono(x[j] - z * g[j], tol[j] * loose, p, u, r, d)
            ok[j] = e >= 0
            if ok[j]:
                ii[j] = a1; jj[j] = a2; ll[j] = a3; m += 1
        if m < min_lines:
            return p, u, r, d, z, False
        M = np.zeros((5, 5)); rhs = np.zeros(5); row = np.zeros(5)
        for j in range(n):
            if not ok[j]:
                continue
            w = 1.0 / tol[j]
            row[0] = ii[j] * ii[j] * w; row[1] = jj[j] * jj[j] * w; row[2] = ll[j] * ll[j] * w
            row[3] = 2.0 * ii[j] * ll[j] * w; row[4] = g[j] * w
            for a in range(5):
                rhs[a] += row[a] * x[j] * w
                for b in range(5):
                    M[a, b] += row[a] * row[b]
        for a in range(4):
            if M[a, a] == 0.0:
                return p, u, r, d, z, False
        dg = np.sqrt(np.diag(M))
        if np.linalg.det(M / np.outer(dg, dg)) < 1e-9:
            return p, u, r, d, z, False
        sol = np.linalg.solve(M, rhs)
        if sol[0] <= 0 or sol[1] <= 0 or sol[2] <= 0 or sol[0] * sol[2] - sol[3] * sol[3] <= 0 or abs(sol[4]) > max_z:
            return p, u, r, d, z, False
        p = sol[0]; u = sol[1]; r = sol[2]; d = sol[3]; z = sol[4]
    return p, u, r, d, z, True


@njit(cache=True)
def _pattern(x, tol, g, n, inv, n_seed, n_keep, a_min, max_lpp, max_z, vote_loose, n_cand, refine_all, min_lines, out):
    kA = np.zeros(n_keep); kB = np.zeros(n_keep); kC = np.zeros(n_keep); kS = np.full(n_keep, -1e9)
    kH = np.zeros(n_keep); kZ = np.zeros(n_keep)
    ns = min(n_seed, n)
    for i in range(ns):
        for j in range(i + 1, ns):
            for t3 in range(j + 1, ns):
                x1 = x[i]; x2 = x[j]; x3 = x[t3]
                for m in range(inv.shape[0]):
                    a = inv[m, 0] * x1 + inv[m, 1] * x2 + inv[m, 2] * x3
                    if a < a_min:
                        continue
                    b = inv[m, 3] * x1 + inv[m, 4] * x2 + inv[m, 5] * x3
                    if b < a_min:
                        continue
                    c = inv[m, 6] * x1 + inv[m, 7] * x2 + inv[m, 8] * x3
                    if c < a_min:
                        continue
                    if _n_calc_ortho(x[n - 1], a, b, c) > max_lpp * n:
                        continue
                    worst = 0
                    for q in range(n_keep):
                        if kS[q] < kS[worst]:
                            worst = q
                    c_vol, c_face, c_edge = _ortho_density(a, b, c, 1.0)
                    chance = _chance_floor(x, tol, n, c_vol, c_face, c_edge)
                    if n - chance <= kS[worst]:
                        continue
                    ps, qs, ss = _sorted3(a, b, c)
                    hits = 3
                    misses = 0
                    for t in range(n):
                        if t == i or t == j or t == t3:
                            continue
                        if _ortho_hit(x[t], tol[t], a, b, c, ps, qs, ss):
                            hits += 1
                        else:
                            misses += 1
                            if n - misses - chance <= kS[worst]:
                                hits = -1
                                break
                    if hits < 0:
                        continue
                    s = hits - _chance(x, tol, n, c_vol, c_face, c_edge)
                    if s <= kS[worst]:
                        continue
                    if _kept_slot(kA, kB, kC, kS, a, b, c, s) < 0:
                        kA[worst] = a; kB[worst] = b; kC[worst] = c; kS[worst] = s; kH[worst] = hits
    best = 0
    for q in range(n_keep):
        if kS[q] <= -1e8:
            continue
        a, b, c, z, ok = _refine_ortho(x, tol, g, n, kA[q], kB[q], kC[q], max_z)
        if ok:
            hits, chance, _ = _ortho_eval(x - z * g, tol, n, a, b, c, 0, 1.0)
            if hits - chance > kS[q]:
                kA[q] = a; kB[q] = b; kC[q] = c; kS[q] = hits - chance; kH[q] = hits; kZ[q] = z
        if kS[q] > kS[best]:
            best = q
    for f in range(out.shape[0]):
        out[f] = 0.0
    if kS[best] <= -1e8:
        return
    out[0] = kS[best] / n; out[1] = kH[best] / n; out[2] = kA[best]; out[3] = kB[best]; out[4] = kC[best]; out[5] = kZ[best]
    # ---- monoclinic step
    m_best = -1e9; m_hits = 0; m_cell = np.zeros(5)
    xc = np.empty(n)
    cand = np.empty(n * 30); width = np.empty(n * 30)
    for q in range(n_keep):
        if kS[q] <= -1e8:
            continue
        z0 = kZ[q]
        for j in range(n):
            xc[j] = x[j] - z0 * g[j]
        ps, qs, ss = _sorted3(kA[q], kB[q], kC[q])
        axes = np.array((kA[q], kB[q], kC[q]))
        for ua in range(3):
            u = axes[ua]; p = axes[(ua + 1) % 3]; r = axes[(ua + 2) % 3]
            nv = 0
            for j in range(n):
                if _ortho_hit(xc[j], tol[j], kA[q], kB[q], kC[q], ps, qs, ss):
                    continue
                for i in range(1, 3):
                    for jj in range(3):
                        for l in range(-2, 3):
                            if l == 0:
                                continue
                            dval = (xc[j] - i * i * p - jj * jj * u - l * l * r) / (2.0 * i * l)
                            if abs(dval) >= 0.95 * math.sqrt(p * r):
                                continue
                            cand[nv] = dval; width[nv] = vote_loose * tol[j] / (2.0 * abs(i * l)); nv += 1
            if nv < 2:
                continue
            order = np.argsort(cand[:nv]); dv = cand[:nv][order]; wv = width[:nv][order]
            wmax = wv.max()
            top_d = np.zeros(n_cand); top_c = np.zeros(n_cand)
            for s_ in range(nv):
                cnt = 0
                reach = wv[s_] + wmax
                t = s_
                while t < nv and dv[t] - dv[s_] <= reach:
                    if dv[t] - dv[s_] <= wv[s_] + wv[t]:
                        cnt += 1
                    t += 1
                t = s_ - 1
                while t >= 0 and dv[s_] - dv[t] <= reach:
                    if dv[s_] - dv[t] <= wv[s_] + wv[t]:
                        cnt += 1
                    t -= 1
                wmin = 0
                for e in range(n_cand):
                    if top_c[e] < top_c[wmin]:
                        wmin = e
                if cnt >= 2 and cnt > top_c[wmin]:
                    near = False
                    for e in range(n_cand):
                        if top_c[e] > 0 and abs(top_d[e] - dv[s_]) <= 2 * wv[s_]:
                            near = True
                            if cnt > top_c[e]:
                                top_c[e] = cnt; top_d[e] = dv[s_]
                            break
                    if not near:
                        top_c[wmin] = cnt; top_d[wmin] = dv[s_]
            for e in range(n_cand):
                if top_c[e] < 2:
                    continue
                d = top_d[e]
                c_vol, c_face, c_edge = _mono_density(p, u, r, d)
                if c_vol < 0:
                    continue
                hits = _mono_hits(xc, tol, n, p, u, r, d)
                s = hits - _chance(xc, tol, n, c_vol, c_face, c_edge)
                pp_, uu, rr, dd, zz = p, u, r, d, z0
                if refine_all or s > m_best - 2:
                    p2, u2, r2, d2, z2, ok = _refine_mono(x, tol, g, n, p, u, r, d, z0, max_z, min_lines)
                    if ok:
                        cv2, cf2, ce2 = _mono_density(p2, u2, r2, d2)
                        if cv2 > 0:
                            xz = x - z2 * g
                            h2 = _mono_hits(xz, tol, n, p2, u2, r2, d2)
                            s2 = h2 - _chance(xz, tol, n, cv2, cf2, ce2)
                            if s2 > s:
                                s = s2; hits = h2; pp_, uu, rr, dd, zz = p2, u2, r2, d2, z2
                if s > m_best:
                    m_best = s; m_hits = hits
                    m_cell[0] = pp_; m_cell[1] = uu; m_cell[2] = rr; m_cell[3] = dd; m_cell[4] = zz
    if m_best > -1e8:
        out[6] = m_best / n; out[7] = m_hits / n
        out[8] = abs(m_cell[3]) / math.sqrt(m_cell[0] * m_cell[2]); out[9] = m_cell[4]
        out[10] = (m_best - kS[best]) / n


@njit(cache=True)
def _kernel(xs, tols, gs, counts, inv, n_seed, n_keep, a_min, max_lpp, max_z, vote_loose, n_cand, refine_all, min_lines, out):
    for p in range(xs.shape[0]):
        k = counts[p]
        if k < 5:
            continue
        _pattern(xs[p, :k], tols[p, :k], gs[p, :k], k, inv, n_seed, n_keep, a_min, max_lpp, max_z, vote_loose,
                 n_cand, refine_all, min_lines, out[p])


def search(peaks, n_keep=10, vote_loose=1.0, n_cand=3, refine_all=True, min_lines=7):
    xs, tols, gs, counts = LH._tested_peaks_g(peaks, LH.N_TEST_PEAKS_LOW, tol_deg=LH.TOL_LOW_TWO_THETA_DEG)
    out = np.zeros((peaks.n_patterns, 11))
    _kernel(np.nan_to_num(xs, nan=0.0), np.nan_to_num(tols, nan=0.0), np.nan_to_num(gs, nan=0.0), counts,
            _TRIPLE_INV, LH.N_SEED_TRIPLES, n_keep, 1.0 / LH.MAX_EDGE_ANGSTROM ** 2, LH.MAX_LINES_PER_PEAK_TRIPLES,
            math.radians(LH.MAX_ZERO_SHIFT_DEG), vote_loose, n_cand, refine_all, min_lines, out)
    return out

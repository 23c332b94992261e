"""Prototype: monoclinic search from oblique zones (3 low lines -> (P, R, D)) + a perpendicular unique axis."""
import math
import numpy as np
from numba import njit
from xrdbatch.lattice_hints import _chance, _chance_floor, _resid_mono, _n_calc_mono, _mono_excess

ZONE_HL = [(0, 1), (0, 2), (1, 0), (1, 1), (1, -1), (1, 2), (1, -2), (2, 0), (2, 1), (2, -1)]
AXIS_HL = np.array([(0, 0), (1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (2, -1), (1, 2), (1, -2)], dtype=np.int64)


def zone_solutions():
    vecs = [(h * h, l * l, 2 * h * l) for h, l in ZONE_HL]
    out = []
    for a in vecs:
        for b in vecs:
            for c in vecs:
                if len({a, b, c}) < 3:
                    continue
                m = np.array([a, b, c], dtype=np.float64)
                if abs(np.linalg.det(m)) < 0.5:
                    continue
                out.append(np.linalg.inv(m).ravel())
    return np.array(out)


ZONE_INV = zone_solutions()


@njit(cache=True, nogil=True)
def _reduce_zone(P, R, D):
    for _ in range(30):
        if P > R:
            P, R = R, P
        if abs(D) <= 0.5 * P:
            break
        m = math.floor(D / P + 0.5)
        R = R - 2 * m * D + m * m * P
        D = D - m * P
    if P > R:
        P, R = R, P
    return P, R, -abs(D)


@njit(cache=True, nogil=True)
def _assign_mono(xj, tj, p, u, r, d):
    """(residual or -1, i, j, l) of the closest (i, j, l) != 0 within tj."""
    best = -1.0
    bi = 0
    bj = 0
    bl = 0
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
                    best = e
                    bi = i
                    bj = j
                    bl = l
    return best, bi, bj, bl


@njit(cache=True, nogil=True)
def _mono_density(p, u, r, d):
    det2 = p * r - d * d
    return math.pi / 2.0 / math.sqrt(u * det2), math.pi / 4.0 / math.sqrt(det2), 0.25 / math.sqrt(u)


@njit(cache=True, nogil=True)
def _refine_mono(x, tol, g, n, p, u, r, d, max_z):
    ii = np.empty(n)
    jj = np.empty(n)
    ll = np.empty(n)
    ok = np.zeros(n, dtype=np.bool_)
    z = 0.0
    for it in range(2):
        loose = 4.0 if it == 0 else 2.0
        m = 0
        for t in range(n):
            e, i, j, l = _assign_mono(x[t] - z * g[t], tol[t] * loose, p, u, r, d)
            ok[t] = e >= 0
            if ok[t]:
                ii[t] = i
                jj[t] = j
                ll[t] = l
                m += 1
        if m < 7:
            return p, u, r, d, z, False
        M = np.zeros((5, 5))
        rhs = np.zeros(5)
        row = np.zeros(5)
        for t in range(n):
            if not ok[t]:
                continue
            w = 1.0 / tol[t]
            row[0] = ii[t] * ii[t] * w
            row[1] = jj[t] * jj[t] * w
            row[2] = ll[t] * ll[t] * w
            row[3] = 2.0 * ii[t] * ll[t] * w
            row[4] = g[t] * w
            for a in range(5):
                rhs[a] += row[a] * x[t] * w
                for b in range(5):
                    M[a, b] += row[a] * row[b]
        for a in range(4):
            if M[a, a] == 0.0:
                return p, u, r, d, z, False
        dg = np.sqrt(np.diag(M))
        corr = M / np.outer(dg, dg)
        if np.linalg.det(corr) < 1e-8:
            return p, u, r, d, z, False
        sol = np.linalg.solve(M, rhs)
        if sol[0] <= 0 or sol[1] <= 0 or sol[2] <= 0 or sol[0] * sol[2] - sol[3] ** 2 <= 0 or abs(sol[4]) > max_z:
            return p, u, r, d, z, False
        p = sol[0]
        u = sol[1]
        r = sol[2]
        d = sol[3]
        z = sol[4]
    return p, u, r, d, z, True


@njit(cache=True, nogil=True)
def _mono_pattern(x, tol, g, n, zinv, axis_hl, n_seed, n_zones, n_seed_axis, n_keep, a_min, max_lines_per_peak,
                  max_z, out):
    ns = min(n_seed, n)
    zP = np.zeros(n_zones)
    zR = np.zeros(n_zones)
    zD = np.zeros(n_zones)
    zS = np.full(n_zones, -1e9)
    for i in range(ns):
        for j in range(i + 1, ns):
            for t3 in range(j + 1, ns):
                for m in range(zinv.shape[0]):
                    P = zinv[m, 0] * x[i] + zinv[m, 1] * x[j] + zinv[m, 2] * x[t3]
                    if P < a_min:
                        continue
                    R = zinv[m, 3] * x[i] + zinv[m, 4] * x[j] + zinv[m, 5] * x[t3]
                    if R < a_min:
                        continue
                    D = zinv[m, 6] * x[i] + zinv[m, 7] * x[j] + zinv[m, 8] * x[t3]
                    if P * R - D * D <= a_min * a_min:
                        continue
                    P, R, D = _reduce_zone(P, R, D)
                    area = math.sqrt(P * R - D * D)
                    c_face = math.pi / (2.0 * area)
                    c_edge = 0.25 * (1.0 / math.sqrt(P) + 1.0 / math.sqrt(R))
                    worst = 0
                    for q in range(n_zones):
                        if zS[q] < zS[worst]:
                            worst = q
                    chance = _chance_floor(x, tol, n, 0.0, c_face, c_edge)
                    if n - chance <= zS[worst]:
                        continue
                    hits = 0
                    misses = 0
                    for t in range(n):
                        if _resid_mono(x[t], tol[t], P, 1e9, R, D, 0, True) >= 0:
                            hits += 1
                        else:
                            misses += 1
                            if n - misses - chance <= zS[worst]:
                                hits = -1
                                break
                    if hits < 0:
                        continue
                    s = hits - _chance(x, tol, n, 0.0, c_face, c_edge)
                    if s <= zS[worst]:
                        continue
                    dup = False
                    for q in range(n_zones):
                        if abs(zP[q] - P) < 1e-3 * P and abs(zR[q] - R) < 1e-3 * R and abs(zD[q] - D) < 1e-3 * P:
                            dup = True
                            if s > zS[q]:
                                zS[q] = s
                            break
                    if not dup:
                        zP[worst] = P
                        zR[worst] = R
                        zD[worst] = D
                        zS[worst] = s
    # ---- unique axis perpendicular to the zone
    kP = np.zeros(n_keep)
    kU = np.zeros(n_keep)
    kR = np.zeros(n_keep)
    kD = np.zeros(n_keep)
    kS = np.full(n_keep, -1e9)
    kH = np.zeros(n_keep)
    kZ = np.zeros(n_keep)
    nb = min(n, n_seed_axis)
    for zq in range(n_zones):
        if zS[zq] <= -1e8:
            continue
        P = zP[zq]
        R = zR[zq]
        D = zD[zq]
        for t in range(nb):
            for k in range(1, 3):
                for e in range(axis_hl.shape[0]):
                    h = axis_hl[e, 0]
                    l = axis_hl[e, 1]
                    U = (x[t] - h * h * P - l * l * R - 2 * h * l * D) / (k * k)
                    if U < a_min:
                        continue
                    if _n_calc_mono(x[n - 1], P, U, R, D) > max_lines_per_peak * n:
                        continue
                    worst = 0
                    for q in range(n_keep):
                        if kS[q] < kS[worst]:
                            worst = q
                    c_vol, c_face, c_edge = _mono_density(P, U, R, D)
                    chance = _chance_floor(x, tol, n, c_vol, c_face, c_edge)
                    if n - chance <= kS[worst]:
                        continue
                    hits = 0
                    misses = 0
                    for tt in range(n):
                        if _resid_mono(x[tt], tol[tt], P, U, R, D, 0, True) >= 0:
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
                    dup = False
                    for q in range(n_keep):
                        if abs(kP[q] - P) < 1e-3 * P and abs(kU[q] - U) < 1e-3 * U and abs(kR[q] - R) < 1e-3 * R:
                            dup = True
                            if s > kS[q]:
                                kS[q] = s
                            break
                    if not dup:
                        kP[worst] = P
                        kU[worst] = U
                        kR[worst] = R
                        kD[worst] = D
                        kS[worst] = s
                        kH[worst] = hits
    best = 0
    xs = np.empty(n)
    for q in range(n_keep):
        if kS[q] <= -1e8:
            continue
        p, u, r, d, z, ok = _refine_mono(x, tol, g, n, kP[q], kU[q], kR[q], kD[q], max_z)
        if ok:
            for t in range(n):
                xs[t] = x[t] - z * g[t]
            hits = 0
            for t in range(n):
                if _resid_mono(xs[t], tol[t], p, u, r, d, 0, True) >= 0:
                    hits += 1
            c_vol, c_face, c_edge = _mono_density(p, u, r, d)
            s = hits - _chance(xs, tol, n, c_vol, c_face, c_edge)
            if s > kS[q]:
                kP[q] = p
                kU[q] = u
                kR[q] = r
                kD[q] = d
                kS[q] = s
                kH[q] = hits
                kZ[q] = z
        if kS[q] > kS[best]:
            best = q
    for f in range(out.shape[0]):
        out[f] = 0.0
    if kS[best] <= -1e8:
        return
    out[0] = kS[best] / n
    out[1] = kH[best] / n
    out[2] = kP[best]
    out[3] = kU[best]
    out[4] = kR[best]
    out[5] = kD[best]
    out[6] = kZ[best]
    # tight recount: half the tolerance after the refinement
    bt = -1e9
    th = np.empty(n)
    for t in range(n):
        th[t] = 0.5 * tol[t]
    for q in range(n_keep):
        if kS[q] <= -1e8:
            continue
        for t in range(n):
            xs[t] = x[t] - kZ[q] * g[t]
        hits = 0
        for t in range(n):
            if _resid_mono(xs[t], th[t], kP[q], kU[q], kR[q], kD[q], 0, True) >= 0:
                hits += 1
        c_vol, c_face, c_edge = _mono_density(kP[q], kU[q], kR[q], kD[q])
        s = hits - _chance(xs, th, n, c_vol, c_face, c_edge)
        if s > bt:
            bt = s
    out[7] = bt / n


@njit(cache=True, nogil=True)
def _mono_kernel(xs, tols, gs, counts, zinv, axis_hl, n_seed, n_zones, n_seed_axis, n_keep, a_min, mlpp, max_z, out):
    for p in range(xs.shape[0]):
        k = counts[p]
        if k < 7:
            continue
        _mono_pattern(xs[p, :k], tols[p, :k], gs[p, :k], k, zinv, axis_hl, n_seed, n_zones, n_seed_axis, n_keep,
                      a_min, mlpp, max_z, out[p])


def search(peaks, n_seed=6, n_zones=8, n_seed_axis=8, n_keep=6, mlpp=30.0):
    from xrdbatch import lattice_hints as LH
    xs, tols, gs, counts = LH._tested_peaks_g(peaks, LH.N_TEST_PEAKS_LOW, tol_deg=LH.TOL_LOW_TWO_THETA_DEG)
    out = np.zeros((peaks.n_patterns, 8))
    _mono_kernel(np.nan_to_num(xs, nan=0.0), np.nan_to_num(tols, nan=0.0), np.nan_to_num(gs, nan=0.0), counts,
                 ZONE_INV, AXIS_HL, n_seed, n_zones, n_seed_axis, n_keep, 1.0 / LH.MAX_EDGE_ANGSTROM ** 2, mlpp,
                 math.radians(LH.MAX_ZERO_SHIFT_DEG), out)
    return out

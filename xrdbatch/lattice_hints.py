"""Lattice hints: scale-free, indexing-like features that survive missing and extra peaks.

Trees split one feature at a time; they cannot compute "these positions are consistent with a cubic
cell". Indexing programs can, and so can a cheap version of them run on every pattern:

* **Trial indexing per crystal family** (:func:`indexing_scores`). With ``x = 1/d^2 = (Q / 2 pi)^2``:

  - cubic: ``x = A N``, ``N = h^2 + k^2 + l^2`` (never of the form ``4^a (8b + 7)``);
  - tetragonal: ``x = A m + C l^2``, ``m = h^2 + k^2`` (a sum of two squares);
  - hexagonal / trigonal (hexagonal axes): ``x = A m + C l^2``, ``m = h^2 + hk + k^2`` (Loeschian numbers).

  Trial cells come from the lowest-angle strong peaks given small indices (the classic trial-and-error
  start of ITO / TREOR), every strong peak is then checked against the trial cell's allowed lines within
  a tolerance that follows the 2-theta precision, and the score is the number of matched peaks **minus the
  number expected by chance** for that cell (estimated by matching the same peaks shifted by a few percent,
  where no true line should sit: a large cell matches anything, and this subtracts exactly that). The best
  excess per family, as a fraction of the peaks tested, is a feature; a true cubic pattern scores near 1, a
  monoclinic one near 0.
* **Peak density** (:func:`density_features`): the number of distinct lines up to ``x`` is about
  ``(4 pi / 3) V x^(3/2) / (2 m)`` for a cell of volume ``V`` and a mean multiplicity ``m`` that grows with
  the symmetry (2 triclinic ... 48 cubic). ``V`` is estimated by ``(x_1 x_2 x_3)^(-1/2)`` from the three
  lowest-angle lines, so ``log(count / (V_est x_max^(3/2)))`` tracks the Laue class without knowing the cell.

Both are functions of a :class:`xrdbatch.features.Peaks` table; they are registered as feature blocks
(``lattice_hints``, ``density``) in :data:`xrdbatch.features.BLOCKS`.

Numbers only (numpy + one numba kernel).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Peaks (strongest first) tested against each trial cell.
N_TEST_PEAKS = 12
#: Lowest-angle peaks (among the tested) that seed the trial cells.
N_SEED_PEAKS = 3
#: Position tolerance in degrees of 2-theta (zero error + peak-position error of a measurement).
TOL_TWO_THETA_DEG = 0.05
#: Relative shifts of the peak positions at which the chance matches are counted.
CHANCE_SHIFTS = (-0.047, -0.029, 0.023, 0.041)

FAMILIES = ("cubic", "tetragonal", "hexagonal")


def _allowed_table(n_max: int):
    """Boolean tables (n_max + 1,) of allowed N (cubic), m (tetragonal), m (hexagonal)."""
    cubic = np.zeros(n_max + 1, dtype=np.bool_)
    tet = np.zeros(n_max + 1, dtype=np.bool_)
    hexa = np.zeros(n_max + 1, dtype=np.bool_)
    r = int(math.isqrt(n_max)) + 1
    for h in range(r + 1):
        for k in range(r + 1):
            v = h * h + k * k
            if v <= n_max:
                tet[v] = True
            w = h * h + h * k + k * k
            if w <= n_max:
                hexa[w] = True
            for l in range(r + 1):
                u = v + l * l
                if u <= n_max:
                    cubic[u] = True
    return cubic, tet, hexa


N_MAX = 400
_CUBIC, _TET, _HEX = _allowed_table(N_MAX)
# indices tried for the seed peaks of the trial cells
_SEED_N_CUBIC = np.array([n for n in range(1, 21) if _CUBIC[n]], dtype=np.int64)
_SEED_M_TET = np.array([1, 2, 4, 5], dtype=np.int64)
_SEED_M_HEX = np.array([1, 3, 4], dtype=np.int64)
_SEED_L = np.array([0, 1, 2], dtype=np.int64)


@njit(cache=True, nogil=True)
def _count_cubic(x, tol, a, allowed, scale):
    n = 0
    for j in range(x.shape[0]):
        v = x[j] * scale
        q = v / a
        m = int(q + 0.5)
        if m >= 1 and m < allowed.shape[0] and allowed[m] and abs(v - m * a) <= tol[j]:
            n += 1
    return n


@njit(cache=True, nogil=True)
def _count_two(x, tol, a, c, allowed, scale, l_max):
    n = 0
    for j in range(x.shape[0]):
        v = x[j] * scale
        for l in range(l_max + 1):
            r = v - l * l * c
            if r < -tol[j]:
                break
            m = int(r / a + 0.5)
            if m < 0 or m >= allowed.shape[0]:
                continue
            if (m > 0 or l > 0) and allowed[m] and abs(r - m * a) <= tol[j]:
                n += 1
                break
    return n


@njit(cache=True, nogil=True)
def _scores_kernel(xs, tols, counts, shifts, cubic, tet, hexa, seed_n, seed_m_tet, seed_m_hex, seed_l,
                   n_seed, out):
    """xs (n, K) 1/d^2 of the tested peaks (ascending, NaN-padded), tols (n, K), counts (n,)."""
    n_shift = shifts.shape[0]
    for p in range(xs.shape[0]):
        k = counts[p]
        if k < 3:
            for f in range(out.shape[1]):
                out[p, f] = 0.0
            continue
        x = xs[p, :k]
        tol = tols[p, :k]
        ns = min(n_seed, k)
        # --- cubic: A = x_i / N for the seed peaks
        best = -1e9
        for i in range(ns):
            for t in range(seed_n.shape[0]):
                a = x[i] / seed_n[t]
                hit = _count_cubic(x, tol, a, cubic, 1.0)
                if hit <= best:
                    continue
                chance = 0.0
                for s in range(n_shift):
                    chance += _count_cubic(x, tol, a, cubic, 1.0 + shifts[s])
                score = hit - chance / n_shift
                if score > best:
                    best = score
        out[p, 0] = best / k
        # --- tetragonal and hexagonal: two seed peaks with (m, l) each -> A, C
        for fam in range(2):
            allowed = tet if fam == 0 else hexa
            seed_m = seed_m_tet if fam == 0 else seed_m_hex
            best = -1e9
            for i in range(ns):
                for j in range(i + 1, ns):
                    for mi in range(seed_m.shape[0] + 1):
                        for li in range(seed_l.shape[0]):
                            m1 = seed_m[mi] if mi < seed_m.shape[0] else 0
                            l1 = seed_l[li]
                            if m1 == 0 and l1 == 0:
                                continue
                            for mj in range(seed_m.shape[0] + 1):
                                for lj in range(seed_l.shape[0]):
                                    m2 = seed_m[mj] if mj < seed_m.shape[0] else 0
                                    l2 = seed_l[lj]
                                    if m2 == 0 and l2 == 0:
                                        continue
                                    det = m1 * l2 * l2 - m2 * l1 * l1
                                    if det == 0:
                                        continue
                                    a = (x[i] * l2 * l2 - x[j] * l1 * l1) / det
                                    c = (m1 * x[j] - m2 * x[i]) / det
                                    if a <= 0 or c <= 0:
                                        continue
                                    # ratio of axes within 0.15 .. 8 (c/a), else a cubic-like degenerate or absurd cell
                                    ratio = math.sqrt(a / c)
                                    if ratio < 0.15 or ratio > 8.0:
                                        continue
                                    l_max = int(math.sqrt(x[k - 1] * 1.1 / c)) + 1
                                    if l_max > 30:
                                        continue
                                    hit = _count_two(x, tol, a, c, allowed, 1.0, l_max)
                                    if hit <= best:
                                        continue
                                    chance = 0.0
                                    for s in range(n_shift):
                                        chance += _count_two(x, tol, a, c, allowed, 1.0 + shifts[s], l_max)
                                    score = hit - chance / n_shift
                                    if score > best:
                                        best = score
            out[p, 1 + fam] = best / k if best > -1e8 else 0.0


def _tested_peaks(peaks, wavelength_hint: float = 1.5406):
    """(x (n, K) ascending 1/d^2 of the K strongest peaks, NaN-padded; tolerances (n, K); counts (n,))."""
    n = peaks.n_patterns
    K = N_TEST_PEAKS
    xs = np.full((n, K), np.nan)
    tols = np.full((n, K), np.nan)
    counts = np.zeros(n, dtype=np.int64)
    if peaks.pattern.size == 0:
        return xs, tols, counts
    order = np.lexsort((-peaks.height, peaks.pattern))  # by pattern, strongest first
    rank = np.arange(order.size) - peaks.offsets[peaks.pattern[order]]
    sel = order[rank < K]
    pat = peaks.pattern[sel]
    q = peaks.q_per_angstrom[sel]
    x = (q / (2 * np.pi)) ** 2
    # tolerance in x from the 2-theta tolerance: x = (2 sin(theta) / lambda)^2, dx = 4 sin cos dtheta / lambda^2;
    # with sin(theta) = lambda q / (4 pi) the wavelength cancels to first order for the stated angle tolerance
    theta = np.radians(peaks.two_theta_deg[sel] / 2)
    lam = 4 * np.pi * np.sin(theta) / np.maximum(q, 1e-12)
    dtheta = np.radians(TOL_TWO_THETA_DEG / 2)
    tol = 4 * np.sin(theta) * np.cos(theta) * dtheta / lam ** 2 + 2e-4 * x
    # sort each pattern's tested peaks by x ascending
    o2 = np.lexsort((x, pat))
    pat, x, tol = pat[o2], x[o2], tol[o2]
    counts = np.bincount(pat, minlength=n).astype(np.int64)
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    col = np.arange(pat.size) - start[pat]
    xs[pat, col] = x
    tols[pat, col] = tol
    return xs, tols, counts


def indexing_scores(peaks) -> np.ndarray:
    """``(n, 3)`` excess match fractions for cubic, tetragonal, hexagonal trial cells (see module doc)."""
    xs, tols, counts = _tested_peaks(peaks)
    out = np.zeros((peaks.n_patterns, len(FAMILIES)))
    _scores_kernel(np.nan_to_num(xs, nan=0.0), np.nan_to_num(tols, nan=0.0), counts,
                   np.asarray(CHANCE_SHIFTS, dtype=np.float64), _CUBIC, _TET, _HEX, _SEED_N_CUBIC, _SEED_M_TET,
                   _SEED_M_HEX, _SEED_L, N_SEED_PEAKS, out)
    return out


def density_features(peaks) -> np.ndarray:
    """``(n, 3)``: log peak density per estimated cell volume (all peaks, peaks >= 5 %, >= 20 %).

    Missing (fewer than 3 peaks) is -1 like every other MISSING value... encoded as -99 here, below any
    real log density, so a tree isolates it in one split.
    """
    n = peaks.n_patterns
    out = np.full((n, 3), -99.0)
    x = (peaks.q_per_angstrom / (2 * np.pi)) ** 2
    count = peaks.count
    ok = count >= 3
    if not ok.any():
        return out
    first = peaks.offsets[:-1]
    idx = np.flatnonzero(ok)
    x1, x2, x3 = x[first[idx]], x[first[idx] + 1], x[first[idx] + 2]
    v_est = 1.0 / np.sqrt(x1 * x2 * x3)
    x_max = x[peaks.offsets[1:][idx] - 1]
    norm = v_est * x_max ** 1.5
    for j, t in enumerate((0.0, 0.05, 0.2)):
        c = np.bincount(peaks.pattern, weights=(peaks.height >= t), minlength=n)[idx]
        out[idx, j] = np.log(np.maximum(c, 0.5) / norm)
    return out


def block_lattice_hints(peaks, k):
    return indexing_scores(peaks), [f"index_excess_{f}" for f in FAMILIES]


def block_density(peaks, k):
    return density_features(peaks), ["log_density_all", "log_density_5pct", "log_density_20pct"]

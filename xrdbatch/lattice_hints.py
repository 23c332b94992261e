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

* **Orthorhombic and monoclinic trial indexing** (:func:`low_symmetry_features`, :func:`best_cells`): ITO-like
  rectangular zones from pairs of low lines, a third axis from a further line, then the monoclinic ``2hlD``
  term by a Hough vote of the lines the orthorhombic cell leaves unindexed; chance matches are analytic
  (the lattice-point count of the trial cell). Features: excess over chance, a de Wolff M20-like figure,
  calculated lines per observed peak (fitted volume against peak density), axis ratios, ``|cos beta*|``,
  and centring / glide excesses (C, I, F; monoclinic C, I, glide) on the same cells.
* **Centring of the high-symmetry cells** (:func:`centring_features`): cubic I / F / Fd, tetragonal I,
  hexagonal R and 00l: l = 2n, each scored like the primitive cell on the best primitive trial cells.
* **Scale-free ratios** (:func:`ratio_features`, :func:`fraction_features`): pairs of lines whose
  ``1/d^2`` ratio sits at small fractions (counts per fraction, excess over chance, per denominator), and
  ``x / x_first`` of the strongest lines.
* **Zero-shift refinement** (:func:`refined_indexing_scores`, :func:`triples_features`): a zero error or
  sample displacement moves every line by about the same angle, which puts the trial cell from two low lines
  ~0.1-0.2 deg off at high angle (on simulated patterns with the augmentation's shifts, the best cubic cell of a
  cubic pattern indexed 60 % of the lines instead of 98 %). The best trial cells are refined by linear least
  squares with a zero-point term (``x_obs = A m + C l^2 + z x cot(theta)``) and rescored.
* **Evidence across systems** (:func:`cross_system_features`, block ``consensus``): differences of the excess
  matches (tetragonal - orthorhombic, ...), so the trees see "the simplest cell that explains the lines".
* **Orthorhombic search from line triples** (:func:`triples_features`, block ``consensus_triples``, feature set
  ``indexed4``): TREOR's start (three of the five lowest lines given small indices, one 3 x 3 solve), every cell
  scored against chance and the best refined with a zero-shift term; it finds the cell of 41 % of measurement-like
  orthorhombic patterns where the zone search finds 14 % (28 % with the same refinement, a block
  ``low_symmetry_refined`` removed in session 5: it added nothing to the models). ~6 ms CPU per pattern.

All are functions of a :class:`xrdbatch.features.Peaks` table; they are registered as feature blocks
(``lattice_hints``, ``density``, ``low_symmetry``, ``centring``, ``ratios``, ``fractions``, ``refined``,
``consensus``, ``consensus_centring``, ``consensus_triples``) in
:data:`xrdbatch.features.BLOCKS` and used by the feature sets ``measured``, ``indexed``, ``indexed2``, ``indexed3``
and ``indexed4``.
Cost per pattern (CPU, 504 RRUFF patterns, height_rel 0.04, 2 shared cores under load; ``bench/features.py``):
indexing_scores ~0.35 ms, refined ~0.85 ms, low_symmetry ~0.9 ms, centring ~0.5 ms alone and ~0 after the
consensus block (which shares its trial-cell scan), ratios + fractions < 0.05 ms. The searches are exact: their
shortcuts (bounded counts, lower bounds of the chance, line matches decided with the cheaper index enumeration
and a rounding margin) change no value, only how soon a hopeless cell is dropped.

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
    """Lines of ``x`` (scaled) a two-axis cell (a, c) indexes: :func:`_count_shifted` without a zero shift."""
    return _count_shifted(x, tol, x, a, c, 0.0, allowed, l_max, scale, False)


@njit(cache=True, nogil=True)
def _count_cubic_max(x, tol, a, allowed, bound):
    """:func:`_count_cubic` at scale 1, or -1 once the misses leave at most ``bound`` matches possible."""
    k = x.shape[0]
    n = 0
    for j in range(k):
        v = x[j]
        m = int(v / a + 0.5)
        if m >= 1 and m < allowed.shape[0] and allowed[m] and abs(v - m * a) <= tol[j]:
            n += 1
        elif k - (j + 1 - n) <= bound:
            return -1
    return n


@njit(cache=True, nogil=True)
def _count_two_max(x, tol, a, c, allowed, l_max, bound):
    """:func:`_count_two` at scale 1, or -1 once the misses leave at most ``bound`` matches possible."""
    k = x.shape[0]
    n = 0
    for j in range(k):
        v = x[j]
        ok = False
        for l in range(l_max + 1):
            r = v - l * l * c
            if r < -tol[j]:
                break
            m = int(r / a + 0.5)
            if m < 0 or m >= allowed.shape[0]:
                continue
            if (m > 0 or l > 0) and allowed[m] and abs(r - m * a) <= tol[j]:
                ok = True
                break
        if ok:
            n += 1
        elif k - (j + 1 - n) <= bound:
            return -1
    return n


@njit(cache=True, nogil=True)
def _two_axis_trials(x, k, ns, seed_m, seed_l):
    """Trial cells ``(a, c, l_max)`` of a two-parameter family (tetragonal / hexagonal, ``x = A m + C l^2``).

    Every pair of the ``ns`` lowest-angle peaks given small indices ``(m, l)`` from ``seed_m`` (plus 0) and
    ``seed_l`` fixes ``A`` and ``C``; cells with ``a/c`` outside 0.15 .. 8 (cubic-like degenerate or absurd)
    or needing ``l > 30`` are dropped. Shared by the indexing scores, the refined scores and the centring
    tests, in one order. Returns ``(a, c, l_max, seed_hi)``; ``seed_hi`` is the higher seed line of each trial
    (the trials of the first ``n < ns`` lines are those with ``seed_hi < n``, in the same order).
    """
    nm = seed_m.shape[0] + 1
    nl = seed_l.shape[0]
    size = max(1, ns * ns * nm * nm * nl * nl)
    ca = np.empty(size)
    cc = np.empty(size)
    cl = np.empty(size, dtype=np.int64)
    hi = np.empty(size, dtype=np.int64)
    n = 0
    for i in range(ns):
        for j in range(i + 1, ns):
            for mi in range(nm):
                for li in range(nl):
                    m1 = seed_m[mi] if mi < seed_m.shape[0] else 0
                    l1 = seed_l[li]
                    if m1 == 0 and l1 == 0:
                        continue
                    for mj in range(nm):
                        for lj in range(nl):
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
                            ratio = math.sqrt(a / c)
                            if ratio < 0.15 or ratio > 8.0:
                                continue
                            l_max = int(math.sqrt(x[k - 1] * 1.1 / c)) + 1
                            if l_max > 30:
                                continue
                            ca[n] = a
                            cc[n] = c
                            cl[n] = l_max
                            hi[n] = j
                            n += 1
    return ca[:n], cc[:n], cl[:n], hi[:n]


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
                hit = _count_cubic_max(x, tol, a, cubic, best)  # -1: cannot beat best (the same skip, sooner)
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
            ca, cc, cl, _ = _two_axis_trials(x, k, ns, seed_m, seed_l)
            for t in range(ca.shape[0]):
                a = ca[t]
                c = cc[t]
                l_max = cl[t]
                hit = _count_two_max(x, tol, a, c, allowed, l_max, best)
                if hit <= best:
                    continue
                chance = 0.0
                for s in range(n_shift):
                    chance += _count_two(x, tol, a, c, allowed, 1.0 + shifts[s], l_max)
                score = hit - chance / n_shift
                if score > best:
                    best = score
            out[p, 1 + fam] = best / k if best > -1e8 else 0.0


def _strongest(peaks, k: int):
    """``(sel, rank)``: indices of each pattern's ``k`` strongest peaks (by pattern, strongest first) and
    their strength rank within the pattern (0 = strongest)."""
    order = np.lexsort((-peaks.height, peaks.pattern))
    rank = np.arange(order.size) - peaks.offsets[peaks.pattern[order]]
    keep = rank < k
    return order[keep], rank[keep]


def _x_rel_tol(peaks):
    """``x = 1/d^2`` of every peak and its relative tolerance ``dx / x = 2 cot(theta) dtheta`` for the trial
    indexing's 2-theta tolerance (+ the same 2e-4 floor)."""
    x = (peaks.q_per_angstrom / (2 * np.pi)) ** 2
    theta = np.radians(peaks.two_theta_deg / 2)
    return x, 2 * np.radians(TOL_TWO_THETA_DEG / 2) / np.tan(np.maximum(theta, 1e-3)) + 2e-4


def _tested_peaks(peaks, K: int = N_TEST_PEAKS, with_rank: bool = False, tol_deg: float | None = None):
    """(x (n, K) ascending 1/d^2 of the K strongest peaks, NaN-padded; tolerances (n, K); counts (n,)).

    With ``with_rank``, also the strength rank (n, K) of each tested peak (0 = strongest, -1 padding).
    """
    n = peaks.n_patterns
    xs = np.full((n, K), np.nan)
    tols = np.full((n, K), np.nan)
    counts = np.zeros(n, dtype=np.int64)
    ranks = np.full((n, K), -1, dtype=np.int64)
    if peaks.pattern.size == 0:
        return (xs, tols, counts, ranks) if with_rank else (xs, tols, counts)
    sel, srank = _strongest(peaks, K)
    pat = peaks.pattern[sel]
    q = peaks.q_per_angstrom[sel]
    x = (q / (2 * np.pi)) ** 2
    # tolerance in x from the 2-theta tolerance: x = (2 sin(theta) / lambda)^2, dx = 4 sin cos dtheta / lambda^2;
    # with sin(theta) = lambda q / (4 pi) the wavelength cancels to first order for the stated angle tolerance
    theta = np.radians(peaks.two_theta_deg[sel] / 2)
    lam = 4 * np.pi * np.sin(theta) / np.maximum(q, 1e-12)
    dtheta = np.radians((TOL_TWO_THETA_DEG if tol_deg is None else tol_deg) / 2)
    tol = 4 * np.sin(theta) * np.cos(theta) * dtheta / lam ** 2 + 2e-4 * x
    # sort each pattern's tested peaks by x ascending
    o2 = np.lexsort((x, pat))
    pat, x, tol, srank = pat[o2], x[o2], tol[o2], srank[o2]
    counts = np.bincount(pat, minlength=n).astype(np.int64)
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    col = np.arange(pat.size) - start[pat]
    xs[pat, col] = x
    tols[pat, col] = tol
    ranks[pat, col] = srank
    return (xs, tols, counts, ranks) if with_rank else (xs, tols, counts)


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


# ================================================================== low-symmetry trial indexing ====
# Orthorhombic: x = h^2 A + k^2 B + l^2 C; monoclinic (unique axis u): x = h^2 A + k^2 B + l^2 C + 2 h l D.
#
# The search is ITO's zone idea cut down to what fits in ~1 ms per pattern:
#   1. rectangular zones (h k 0): two of the lowest-angle tested lines given (h^2, k^2) in {0, 1, 4}^2
#      -> (A, B); each zone is scored by its own excess over chance; the best N_ZONES are kept;
#   2. a third axis: every low line not indexed by the zone, given (h, k, l) with h, k <= 2 and l in {1, 2},
#      -> C; the full 3-D cell is scored (pruned by the bound k - chance <= best);
#   3. monoclinic: for the best orthorhombic cells and each choice of unique axis, the lines the cell leaves
#      unindexed vote for D = (x - i^2 P - j^2 U - l^2 R) / (2 i l) (a Hough transform over small indices);
#      the densest D values are scored as monoclinic cells.
# Chance matches are analytic here (the three-parameter searches would pay 4x for shifted copies): a cell
# with reciprocal volume V* has (4 pi / 3) x^(3/2) / (V* m) distinct lines below x (m = 8 orthorhombic,
# 4 monoclinic, further halved per centring condition), so a line with tolerance t is hit by chance with
# probability 1 - exp(-2 t dN/dx), dN/dx = 2 pi x^(1/2) / (V* m).
# Reference: Visser, J. Appl. Cryst. 2 (1969) 89 (ITO); Werner et al., J. Appl. Cryst. 18 (1985) 367 (TREOR);
# de Wolff, J. Appl. Cryst. 1 (1968) 108 (M20).

#: Strongest peaks tested against orthorhombic / monoclinic trial cells.
N_TEST_PEAKS_LOW = 20
#: Lowest-angle tested peaks that seed the zones (and the third axis).
N_SEED_PEAKS_LOW = 6
#: Rectangular zones kept for the third axis.
N_ZONES = 6
#: Orthorhombic cells kept for the monoclinic search (a monoclinic pattern's true a*, b*, c* cell indexes only
#: its h0l-free lines, so it ranks below cells that fit more lines by chance: keep enough of them).
N_ORTHO_KEEP = 10
#: Best orthorhombic cells on which the centring conditions are tested.
N_CENTRING_CELLS = 4
#: Position tolerance (degrees of 2-theta) of the low-symmetry searches: wider than the cubic/tetragonal/hexagonal
#: one because 20 peaks reach higher angles, where zero shift and sample displacement move lines most (0.08
#: separated orthorhombic from monoclinic/triclinic RRUFF patterns best among 0.03 / 0.05 / 0.08 / 0.12).
TOL_LOW_TWO_THETA_DEG = 0.08
#: Trial cells predicting more lines than this many per tested peak are not scored (they index anything).
MAX_LINES_PER_PEAK = 8.0
#: Longest cell edge tried (angstrom): A = 1/a^2 >= 1/MAX_EDGE^2.
MAX_EDGE_ANGSTROM = 30.0

#: Orthorhombic reflection conditions (h k l all >= 0): P, C (h+k even), A (k+l), B (h+l), I (h+k+l), F.
ORTHO_CONDITIONS = ("P", "C", "A", "B", "I", "F")
_ORTHO_FRAC = np.array([1.0, 0.5, 0.5, 0.5, 0.5, 0.25])
#: Monoclinic reflection conditions (axes p, u (unique), r): P, C-like (p+u even), A-like (u+r even),
#: I (p+u+r even), glide along r (p u=0 r: r even), glide along p (p even when u = 0).
MONO_CONDITIONS = ("P", "Cpu", "Aur", "I", "glide_r", "glide_p")
_MONO_FRAC = np.array([1.0, 0.5, 0.5, 0.5, 0.75, 0.75])

_ZONE_SQ = np.array([[1, 0], [0, 1], [1, 1], [4, 0], [0, 4], [4, 1], [1, 4], [4, 4]], dtype=np.int64)


@njit(cache=True, nogil=True, inline="always")
def _ortho_ok(h, k, l, cond):
    if cond == 0:
        return True
    if cond == 1:
        return (h + k) % 2 == 0
    if cond == 2:
        return (k + l) % 2 == 0
    if cond == 3:
        return (h + l) % 2 == 0
    if cond == 4:
        return (h + k + l) % 2 == 0
    return (h % 2 == k % 2) and (k % 2 == l % 2)


@njit(cache=True, nogil=True)
def _resid_ortho(xj, tj, a, b, c, cond, first=False):
    """Smallest |h^2 a + k^2 b + l^2 c - xj| over allowed (h, k, l) != 0, or -1 when above ``tj``.

    ``first``: return the residual of the first allowed (h, k, l) within ``tj`` instead of the smallest (for
    hit-or-miss tests: ``>= 0`` either way, found sooner)."""
    best = -1.0
    lmax = int(math.sqrt((xj + tj) / c))
    for l in range(lmax + 1):
        r1 = xj - l * l * c
        kmax = int(math.sqrt(max(r1 + tj, 0.0) / b))
        for k in range(kmax + 1):
            r = r1 - k * k * b
            h0 = int(math.sqrt(max(r, 0.0) / a))
            for h in range(h0, h0 + 2):
                if h == 0 and k == 0 and l == 0:
                    continue
                e = abs(h * h * a - r)
                if e <= tj and (best < 0 or e < best) and _ortho_ok(h, k, l, cond):
                    best = e
                    if first:
                        return best
    return best


#: Rounding margin of :func:`_ortho_match` and :func:`_zone_match`: residuals are differences of numbers
#: <= x + tol < 1 (1/angstrom^2), so a different summation order moves them by a few 1e-16; 1e-12 is far above that
#: and far below any tolerance (>= 2e-4 x), so undecided lines (then searched exactly) are rare.
MATCH_MARGIN = 1e-12


@njit(cache=True, nogil=True)
def _ortho_match(xj, tj, p, q, s):
    """Whether a primitive orthorhombic cell indexes the line ``xj``, decided cheaply: 1 (yes), 0 (no) or -1
    (within :data:`MATCH_MARGIN` of the tolerance: ask :func:`_resid_ortho`, whose rounding decides).

    ``p >= q >= s`` are the cell's metric coefficients sorted: the two largest (fewest indices below ``xj``)
    are enumerated and the index of the smallest is solved for, which visits ~(x/p)^1/2 (x/q)^1/2 index pairs
    instead of :func:`_resid_ortho`'s (x/c)^1/2 (x/b)^1/2 for whatever order the cell comes in.
    """
    lo = tj - MATCH_MARGIN
    hi = tj + MATCH_MARGIN
    undecided = False
    imax = int(math.sqrt((xj + hi) / p))
    for i in range(imax + 1):
        r1 = xj - i * i * p
        jmax = int(math.sqrt(max(r1 + hi, 0.0) / q))
        for j in range(jmax + 1):
            r = r1 - j * j * q
            h0 = int(math.sqrt(max(r, 0.0) / s))
            for h in range(h0, h0 + 2):
                if h == 0 and i == 0 and j == 0:
                    continue
                e = abs(h * h * s - r)
                if e <= lo:
                    return 1
                if e <= hi:
                    undecided = True
    return -1 if undecided else 0


@njit(cache=True, nogil=True, inline="always")
def _sorted3(a, b, c):
    """``(p, q, s)``: a, b, c in descending order."""
    if a < b:
        a, b = b, a
    if b < c:
        b, c = c, b
    if a < b:
        a, b = b, a
    return a, b, c


@njit(cache=True, nogil=True)
def _ortho_hit(xj, tj, a, b, c, p, q, s):
    """``_resid_ortho(xj, tj, a, b, c, 0) >= 0`` exactly, through :func:`_ortho_match` (``p, q, s`` =
    :func:`_sorted3` of ``a, b, c``) and the exact search only for undecided lines."""
    m = _ortho_match(xj, tj, p, q, s)
    if m >= 0:
        return m == 1
    return _resid_ortho(xj, tj, a, b, c, 0, True) >= 0


@njit(cache=True, nogil=True)
def _chance(x, tol, n, c_vol, c_face, c_edge):
    """Expected chance matches of ``n`` lines for a line density ``c_vol x^(1/2) + c_face + c_edge x^(-1/2)``.

    The three terms are the volume, face and edge terms of the lattice-point count (Euler-Maclaurin: the
    planes and axes through the origin hold extra distinct lines that a volume estimate alone misses,
    which matters for the few lowest lines of a small cell).
    """
    s = 0.0
    for j in range(n):
        sx = math.sqrt(x[j])
        s += 1.0 - math.exp(-2.0 * tol[j] * (c_vol * sx + c_face + c_edge / sx))
    return s


@njit(cache=True, nogil=True)
def _chance_floor(x, tol, n, c_vol, c_face, c_edge):
    """A lower bound of :func:`_chance` without ``exp`` (``1 - e^-y >= y / (1 + y)`` for ``y >= 0``), shaded
    (1e-9 relative + 1e-12) below anything rounding could give the exact sum: searches prune on it and compute
    the exact chance only for the cells that survive."""
    s = 0.0
    for j in range(n):
        sx = math.sqrt(x[j])
        y = 2.0 * tol[j] * (c_vol * sx + c_face + c_edge / sx)
        s += y / (1.0 + y)
    return s * (1.0 - 1e-9) - 1e-12


@njit(cache=True, nogil=True)
def _ortho_density(a, b, c, frac):
    """``(c_vol, c_face, c_edge)`` of :func:`_chance` for an orthorhombic cell (``frac`` of its lines allowed)."""
    c_vol = frac * math.pi / 4.0 / math.sqrt(a * b * c)
    c_face = frac * math.pi / 8.0 * (1.0 / math.sqrt(b * c) + 1.0 / math.sqrt(a * c) + 1.0 / math.sqrt(a * b))
    c_edge = frac / 8.0 * (1.0 / math.sqrt(a) + 1.0 / math.sqrt(b) + 1.0 / math.sqrt(c))
    return c_vol, c_face, c_edge


@njit(cache=True, nogil=True)
def _chance_ortho(x, tol, n, a, b, c, frac):
    c_vol, c_face, c_edge = _ortho_density(a, b, c, frac)
    return _chance(x, tol, n, c_vol, c_face, c_edge)


@njit(cache=True, nogil=True)
def _n_calc_ortho(x, a, b, c):
    """Approximate number of distinct orthorhombic lines below ``x`` (volume + face + edge terms)."""
    return (math.pi / 6.0 * x ** 1.5 / math.sqrt(a * b * c)
            + math.pi / 8.0 * x * (1.0 / math.sqrt(b * c) + 1.0 / math.sqrt(a * c) + 1.0 / math.sqrt(a * b))
            + 0.25 * math.sqrt(x) * (1.0 / math.sqrt(a) + 1.0 / math.sqrt(b) + 1.0 / math.sqrt(c)))


@njit(cache=True, nogil=True)
def _n_calc_mono(x, p, u, r, d):
    det2 = max(p * r - d * d, 1e-30)
    return (math.pi / 3.0 * x ** 1.5 / math.sqrt(u * det2) + math.pi / 4.0 * x / math.sqrt(det2)
            + 0.5 * math.sqrt(x / u))


@njit(cache=True, nogil=True)
def _zone_any(xj, tj, a, b):
    """Whether some (h, k) != 0 of the zone has ``|h^2 a + k^2 b - xj| <= tj`` (k enumerated, h solved for)."""
    kmax = int(math.sqrt((xj + tj) / b))
    for k in range(kmax + 1):
        r = xj - k * k * b
        h0 = int(math.sqrt(max(r, 0.0) / a))
        for h in range(h0, h0 + 2):
            if (h > 0 or k > 0) and abs(h * h * a - r) <= tj:
                return True
    return False


@njit(cache=True, nogil=True)
def _zone_match(xj, tj, a, b):
    """:func:`_zone_any` for ``a >= b`` decided with the fewer indices of ``a`` enumerated: 1 (yes), 0 (no) or
    -1 (within :data:`MATCH_MARGIN` of the tolerance: ask :func:`_zone_any`, whose rounding decides)."""
    lo = tj - MATCH_MARGIN
    hi = tj + MATCH_MARGIN
    undecided = False
    hmax = int(math.sqrt((xj + hi) / a))
    for h in range(hmax + 1):
        r = xj - h * h * a
        k0 = int(math.sqrt(max(r, 0.0) / b))
        for k in range(k0, k0 + 2):
            if h == 0 and k == 0:
                continue
            e = abs(k * k * b - r)
            if e <= lo:
                return 1
            if e <= hi:
                undecided = True
    return -1 if undecided else 0


@njit(cache=True, nogil=True)
def _zone_hits_bounded(x, tol, n, a, b, max_misses):
    """Lines the zone (h k 0), ``a >= b``, indexes (:func:`_zone_any`), or -1 as soon as the misses reach
    ``max_misses`` (the zone cannot be kept)."""
    hits = 0
    for j in range(n):
        m = _zone_match(x[j], tol[j], a, b)
        if m == 1 or (m < 0 and _zone_any(x[j], tol[j], a, b)):
            hits += 1
        elif j + 1 - hits >= max_misses:
            return -1
    return hits


@njit(cache=True, nogil=True)
def _ortho_eval(x, tol, n, a, b, c, cond, frac):
    """(hits, chance, mean residual) of an orthorhombic cell under a reflection condition."""
    hits = 0
    res = 0.0
    for j in range(n):
        e = _resid_ortho(x[j], tol[j], a, b, c, cond)
        if e >= 0:
            hits += 1
            res += e
    chance = _chance_ortho(x, tol, n, a, b, c, frac)
    return hits, chance, res / max(hits, 1)


@njit(cache=True, nogil=True, inline="always")
def _mono_ok(i, j, l, cond):
    if cond == 0:
        return True
    if cond == 1:
        return (i + j) % 2 == 0
    if cond == 2:
        return (j + l) % 2 == 0
    if cond == 3:
        return (i + j + l) % 2 == 0
    if cond == 4:
        return j != 0 or l % 2 == 0
    return j != 0 or i % 2 == 0


@njit(cache=True, nogil=True)
def _resid_mono(xj, tj, p, u, r, d, cond, first=False):
    """Smallest residual of x = i^2 p + j^2 u + l^2 r + 2 i l d over allowed (i, j, l), or -1.

    ``first``: return the residual of the first allowed (i, j, l) within ``tj`` instead of the smallest (for
    hit-or-miss tests: ``>= 0`` either way, found sooner)."""
    best = -1.0
    rr = r - d * d / p  # minimum over i of the (i, l) form per l^2
    if rr <= 0:
        return best
    lmax = int(math.sqrt((xj + tj) / rr))
    jmax = int(math.sqrt((xj + tj) / u))
    for j in range(jmax + 1):
        r1 = xj - j * j * u
        for l in range(-lmax, lmax + 1):
            # p i^2 + 2 l d i + (l^2 r - r1) = 0
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
                if e <= tj and (best < 0 or e < best) and _mono_ok(i, j, l, cond):
                    best = e
                    if first:
                        return best
    return best


@njit(cache=True, nogil=True)
def _mono_excess(x, tol, n, p, u, r, d, cond, frac):
    """``hits - chance`` of :func:`_mono_eval` (without the residuals)."""
    det = u * (p * r - d * d)
    if det <= 0:
        return -1e9
    hits = 0
    for j in range(n):
        if _resid_mono(x[j], tol[j], p, u, r, d, cond, True) >= 0:
            hits += 1
    return hits - _chance(x, tol, n, frac * math.pi / 2.0 / math.sqrt(det),
                          frac * math.pi / 4.0 / math.sqrt(p * r - d * d), frac * 0.25 / math.sqrt(u))


@njit(cache=True, nogil=True)
def _mono_eval(x, tol, n, p, u, r, d, cond, frac):
    hits = 0
    res = 0.0
    for j in range(n):
        e = _resid_mono(x[j], tol[j], p, u, r, d, cond)
        if e >= 0:
            hits += 1
            res += e
    det = u * (p * r - d * d)
    if det <= 0:
        return 0, 1e9, 0.0
    chance = _chance(x, tol, n, frac * math.pi / 2.0 / math.sqrt(det), frac * math.pi / 4.0 / math.sqrt(p * r - d * d),
                     frac * 0.25 / math.sqrt(u))
    return hits, chance, res / max(hits, 1)


@njit(cache=True, nogil=True)
def _refine_ortho(x, tol, g, n, a, b, c, max_z):
    """(A, B, C, z) of an orthorhombic trial cell refined by two rounds of weighted least squares over the lines
    it indexes within a widened window (x_obs = h^2 A + k^2 B + l^2 C + z x cot(theta)); ok False when
    underdetermined or the shift is beyond ``max_z`` (radians of 2-theta)."""
    hh = np.empty(n)
    kk = np.empty(n)
    ll = np.empty(n)
    z = 0.0
    for it in range(2):
        loose = 4.0 if it == 0 else 2.0
        m = 0
        for j in range(n):
            hh[j] = -1.0
            xj = x[j] - z * g[j]
            tj = tol[j] * loose
            best = tj + 1.0
            lmax = int(math.sqrt((xj + tj) / c))
            for l in range(lmax + 1):
                r1 = xj - l * l * c
                kmax = int(math.sqrt(max(r1 + tj, 0.0) / b))
                for k in range(kmax + 1):
                    r = r1 - k * k * b
                    h0 = int(math.sqrt(max(r, 0.0) / a))
                    for h in range(h0, h0 + 2):
                        if h == 0 and k == 0 and l == 0:
                            continue
                        e = abs(h * h * a - r)
                        if e <= tj and e < best:
                            best = e
                            hh[j] = h * h
                            kk[j] = k * k
                            ll[j] = l * l
            if hh[j] >= 0:
                m += 1
        if m < 6:
            return a, b, c, z, False
        M = np.zeros((4, 4))
        rhs = np.zeros(4)
        row = np.zeros(4)
        for j in range(n):
            if hh[j] < 0:
                continue
            w = 1.0 / tol[j]
            row[0] = hh[j] * w
            row[1] = kk[j] * w
            row[2] = ll[j] * w
            row[3] = g[j] * w
            for p in range(4):
                rhs[p] += row[p] * x[j] * w
                for q in range(4):
                    M[p, q] += row[p] * row[q]
        if M[0, 0] == 0.0 or M[1, 1] == 0.0 or M[2, 2] == 0.0:
            return a, b, c, z, False
        # scale-free conditioning test: the determinant of the correlation matrix
        d = np.sqrt(np.diag(M))
        corr = M / np.outer(d, d)
        if np.linalg.det(corr) < 1e-8:
            return a, b, c, z, False
        sol = np.linalg.solve(M, rhs)
        if sol[0] <= 0 or sol[1] <= 0 or sol[2] <= 0 or abs(sol[3]) > max_z:
            return a, b, c, z, False
        a = sol[0]
        b = sol[1]
        c = sol[2]
        z = sol[3]
    return a, b, c, z, True


#: Columns of :func:`low_symmetry_features`.
LOW_SYMMETRY_NAMES = (
    "index_excess_orthorhombic", "index_excess_monoclinic", "index_mono_minus_ortho",
    "index_matched_orthorhombic", "index_matched_monoclinic",
    "index_log_m_orthorhombic", "index_log_m_monoclinic",
    "index_log_lines_per_peak_orthorhombic", "index_log_lines_per_peak_monoclinic",
    "index_strong5_matched_orthorhombic",
    "ortho_axis_log_ratio_min", "ortho_axis_log_ratio_max", "mono_abs_cos_beta",
    "ortho_excess_C_minus_P", "ortho_excess_I_minus_P", "ortho_excess_F_minus_P",
    "mono_excess_C_minus_P", "mono_excess_I_minus_P", "mono_excess_glide_minus_P",
)


@njit(cache=True, nogil=True)
def _kept_slot(kA, kB, kC, kS, a, b, c, s):
    """Index of the kept orthorhombic cell equal to ``(a, b, c)`` up to a permutation of the axes (same product and
    same sum), its score raised to ``s`` when higher; -1 when the cell is new."""
    for q in range(kA.shape[0]):
        if abs(kA[q] * kB[q] * kC[q] - a * b * c) < 3e-3 * a * b * c and \
                abs(kA[q] + kB[q] + kC[q] - a - b - c) < 1e-3 * (a + b + c):
            if s > kS[q]:
                kS[q] = s
            return q
    return -1


@njit(cache=True, nogil=True)
def _low_sym_pattern(x, tol, n, strong, zone_sq, ortho_frac, mono_frac, n_seed, n_zones, n_keep, a_min,
                     max_lines_per_peak, out, cell):
    """One pattern: x (n,) ascending, strong (n,) bool = among the 5 strongest. Fills out (19,) and cell (7,):
    the best orthorhombic (A, B, C) and monoclinic (P, U, R, D) metric coefficients (1/angstrom^2)."""
    ns = min(n_seed, n)
    # ---- 1. zones
    zA = np.zeros(n_zones)
    zB = np.zeros(n_zones)
    zS = np.full(n_zones, -1e9)
    for i in range(ns):
        for j in range(i + 1, ns):
            for v1 in range(zone_sq.shape[0]):
                p1 = zone_sq[v1, 0]
                q1 = zone_sq[v1, 1]
                for v2 in range(zone_sq.shape[0]):
                    p2 = zone_sq[v2, 0]
                    q2 = zone_sq[v2, 1]
                    det = p1 * q2 - p2 * q1
                    if det == 0:
                        continue
                    a = (x[i] * q2 - x[j] * q1) / det
                    b = (p1 * x[j] - p2 * x[i]) / det
                    if a < b or b < a_min or a > 200 * b:
                        continue
                    # zone chance: constant density pi / (4 sqrt(ab)) of (h k 0) lines
                    c_face = math.pi / (4.0 * math.sqrt(a * b))
                    c_edge = 0.25 * (1.0 / math.sqrt(a) + 1.0 / math.sqrt(b))
                    z_min = zS[0]
                    for z in range(1, n_zones):
                        if zS[z] < z_min:
                            z_min = zS[z]
                    # a zone scoring <= the worst kept one changes nothing (neither a new entry nor a duplicate's
                    # update): count its lines only until the misses rule it out (on a lower bound of the chance,
                    # then exactly for the zones that survive)
                    floor = _chance_floor(x, tol, n, 0.0, c_face, c_edge)
                    hits = _zone_hits_bounded(x, tol, n, a, b, n - floor - z_min)
                    if hits < 0:
                        continue
                    zc = _chance(x, tol, n, 0.0, c_face, c_edge)
                    if hits - zc <= z_min:
                        continue
                    s = hits - zc
                    worst = 0
                    dup = False
                    for z in range(n_zones):
                        if abs(zA[z] - a) < 1e-3 * a and abs(zB[z] - b) < 1e-3 * b:
                            dup = True
                            if s > zS[z]:
                                zS[z] = s
                            break
                        if zS[z] < zS[worst]:
                            worst = z
                    if not dup and s > zS[worst]:
                        zA[worst] = a
                        zB[worst] = b
                        zS[worst] = s
    # ---- 2. third axis
    kA = np.zeros(n_keep)
    kB = np.zeros(n_keep)
    kC = np.zeros(n_keep)
    kS = np.full(n_keep, -1e9)
    kR = np.zeros(n_keep)
    kH = np.zeros(n_keep)
    nc = min(n, n_seed + 2)
    zone_hit = np.zeros(n, dtype=np.bool_)
    for z in range(n_zones):
        if zS[z] <= -1e8:
            continue
        a = zA[z]
        b = zB[z]
        # lines the zone itself indexes are matched by every cell built on it
        for j in range(n):
            zone_hit[j] = _zone_match(x[j], tol[j], a, b) == 1
        for t in range(nc):
            for h in range(3):
                for k in range(3):
                    r = x[t] - h * h * a - k * k * b
                    if r <= 0:
                        continue
                    for l in range(1, 3):
                        c = r / (l * l)
                        if c < a_min or c > 200 * b or a > 200 * c:
                            continue
                        if _n_calc_ortho(x[n - 1], a, b, c) > max_lines_per_peak * n:
                            continue
                        c_vol, c_face, c_edge = _ortho_density(a, b, c, 1.0)
                        worst = 0
                        for q in range(n_keep):
                            if kS[q] < kS[worst]:
                                worst = q
                        # prune on a lower bound of the chance, then exactly for the cells that survive
                        chance = _chance_floor(x, tol, n, c_vol, c_face, c_edge)
                        if n - chance <= kS[worst]:
                            continue
                        # matched lines, stopping once the misses rule the cell out (same result, most cells fail)
                        ps, qs, ss = _sorted3(a, b, c)
                        hits = 0
                        for j in range(n):
                            if zone_hit[j] or _ortho_hit(x[j], tol[j], a, b, c, ps, qs, ss):
                                hits += 1
                            elif n - (j + 1 - hits) - chance <= kS[worst]:
                                hits = -1
                                break
                        if hits < 0:
                            continue
                        chance = _chance(x, tol, n, c_vol, c_face, c_edge)
                        s = hits - chance
                        if s <= kS[worst]:
                            continue
                        if _kept_slot(kA, kB, kC, kS, a, b, c, s) < 0:
                            # a new kept cell (rare): its mean smallest residual, as _ortho_eval's
                            res = 0.0
                            for j in range(n):
                                e = _resid_ortho(x[j], tol[j], a, b, c, 0)
                                if e >= 0:
                                    res += e
                            kA[worst] = a
                            kB[worst] = b
                            kC[worst] = c
                            kS[worst] = s
                            kR[worst] = res / max(hits, 1)
                            kH[worst] = hits
    best = 0
    for q in range(n_keep):
        if kS[q] > kS[best]:
            best = q
    for f in range(out.shape[0]):
        out[f] = 0.0
    for f in range(cell.shape[0]):
        cell[f] = 0.0
    if kS[best] <= -1e8:
        return
    a = kA[best]
    b = kB[best]
    c = kC[best]
    cell[0] = a
    cell[1] = b
    cell[2] = c
    x_max = x[n - 1]
    n_calc = _n_calc_ortho(x_max, a, b, c)
    out[0] = kS[best] / n
    out[3] = kH[best] / n
    eps = max(kR[best], 1e-7)
    out[5] = math.log(max(x_max / (2.0 * eps * max(n_calc, 1.0)) * kH[best] / n, 1e-3))
    out[7] = math.log(max(n_calc, 0.5) / n)
    n_strong = 0
    hit_strong = 0
    for j in range(n):
        if strong[j]:
            n_strong += 1
            if _resid_ortho(x[j], tol[j], a, b, c, 0, True) >= 0:
                hit_strong += 1
    out[9] = hit_strong / max(n_strong, 1)
    la = 0.5 * math.log(a)
    lb = 0.5 * math.log(b)
    lc = 0.5 * math.log(c)
    d1 = abs(la - lb)
    d2 = abs(lb - lc)
    d3 = abs(la - lc)
    out[10] = min(d1, min(d2, d3))
    out[11] = max(d1, max(d2, d3))
    # centrings on the kept cells: best excess per condition (A, B, C-face merged: axes are unlabelled)
    best_cond = np.full(ortho_frac.shape[0], -1e9)
    rank = np.argsort(-kS)
    for qq in range(min(n_keep, N_CENTRING_CELLS)):
        q = rank[qq]
        if kS[q] <= -1e8:
            continue
        for cond in range(ortho_frac.shape[0]):
            hits = 0
            for j in range(n):
                if _resid_ortho(x[j], tol[j], kA[q], kB[q], kC[q], cond, True) >= 0:
                    hits += 1
            s = hits - _chance_ortho(x, tol, n, kA[q], kB[q], kC[q], ortho_frac[cond])
            if s > best_cond[cond]:
                best_cond[cond] = s
    face = max(best_cond[1], max(best_cond[2], best_cond[3]))
    out[13] = (face - best_cond[0]) / n
    out[14] = (best_cond[4] - best_cond[0]) / n
    out[15] = (best_cond[5] - best_cond[0]) / n
    # ---- 3. monoclinic: D by votes of the lines a kept orthorhombic cell leaves unindexed
    # the monoclinic reading of the best orthorhombic cell (D = 0, twice the chance) is the first candidate
    hits, chance, res = _mono_eval(x, tol, n, a, b, c, 0.0, 0, 1.0)
    m_best = hits - chance
    m_cell = np.array((a, b, c, 0.0))
    m_hits = hits
    m_res = res
    cand = np.empty(n * 24)
    width = np.empty(n * 24)
    match = np.empty(n, dtype=np.int64)
    for q in range(n_keep):
        if kS[q] <= -1e8:
            continue
        axes = np.array((kA[q], kB[q], kC[q]))
        # lines the cell indexes, decided once for the three unique-axis choices (exactly per choice if undecided)
        ps, qs, ss = _sorted3(kA[q], kB[q], kC[q])
        for j in range(n):
            match[j] = _ortho_match(x[j], tol[j], ps, qs, ss)
        for ua in range(3):
            u = axes[ua]
            p = axes[(ua + 1) % 3]
            r = axes[(ua + 2) % 3]
            nv = 0
            for j in range(n):
                if match[j] == 1 or (match[j] < 0 and _resid_ortho(x[j], tol[j], p, u, r, 0, True) >= 0):
                    continue
                for i in range(1, 3):
                    for jj in range(3):
                        for l in range(-2, 3):
                            if l == 0:
                                continue
                            dval = (x[j] - i * i * p - jj * jj * u - l * l * r) / (2.0 * i * l)
                            if abs(dval) >= 0.95 * math.sqrt(p * r):
                                continue
                            cand[nv] = dval
                            width[nv] = tol[j] / (2.0 * abs(i * l))
                            nv += 1
            if nv < 2:
                continue
            order = np.argsort(cand[:nv])
            dv = cand[:nv][order]
            wv = width[:nv][order]
            wmax = wv.max()
            # the 3 densest D values
            top_d = np.zeros(3)
            top_c = np.zeros(3)
            for s_ in range(nv):
                cnt = 0
                # no value farther than wv[s_] + wmax can be within wv[s_] + wv[t] (rounding is monotone too)
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
                for e in range(3):
                    if top_c[e] < top_c[wmin]:
                        wmin = e
                if cnt >= 2 and cnt > top_c[wmin]:
                    near = False
                    for e in range(3):
                        if top_c[e] > 0 and abs(top_d[e] - dv[s_]) <= 2 * wv[s_]:
                            near = True
                            if cnt > top_c[e]:
                                top_c[e] = cnt
                                top_d[e] = dv[s_]
                            break
                    if not near:
                        top_c[wmin] = cnt
                        top_d[wmin] = dv[s_]
            for e in range(3):
                if top_c[e] < 2:
                    continue
                d = top_d[e]
                det2 = p * r - d * d
                if u * det2 <= 0:
                    continue
                c_vol = math.pi / 2.0 / math.sqrt(u * det2)
                c_face = math.pi / 4.0 / math.sqrt(det2)
                c_edge = 0.25 / math.sqrt(u)
                # prune on a lower bound of the chance, then exactly for the cells that survive
                chance = _chance_floor(x, tol, n, c_vol, c_face, c_edge)
                if n - chance <= m_best:
                    continue  # cannot beat the best even when every line is indexed
                # _mono_eval(..., 0, 1.0), stopping once the misses rule the cell out (same result)
                hits = 0
                for j in range(n):
                    if _resid_mono(x[j], tol[j], p, u, r, d, 0, True) >= 0:
                        hits += 1
                    elif n - (j + 1 - hits) - chance <= m_best:
                        hits = -1
                        break
                if hits < 0:
                    continue
                chance = _chance(x, tol, n, c_vol, c_face, c_edge)
                s = hits - chance
                if s > m_best:
                    # a new best cell: its mean smallest residual, as _mono_eval's
                    res = 0.0
                    for j in range(n):
                        ej = _resid_mono(x[j], tol[j], p, u, r, d, 0)
                        if ej >= 0:
                            res += ej
                    res = res / max(hits, 1)
                    m_best = s
                    m_cell[0] = p
                    m_cell[1] = u
                    m_cell[2] = r
                    m_cell[3] = d
                    m_hits = hits
                    m_res = res
    p = m_cell[0]
    u = m_cell[1]
    r = m_cell[2]
    d = m_cell[3]
    for f in range(4):
        cell[3 + f] = m_cell[f]
    out[1] = m_best / n
    out[2] = (m_best - kS[best]) / n
    out[4] = m_hits / n
    n_calc_m = _n_calc_mono(x_max, p, u, r, d)
    out[6] = math.log(max(x_max / (2.0 * max(m_res, 1e-7) * max(n_calc_m, 1.0)) * m_hits / n, 1e-3))
    out[8] = math.log(max(n_calc_m, 0.5) / n)
    out[12] = abs(d) / math.sqrt(p * r)
    mc = np.zeros(mono_frac.shape[0])
    for cond in range(mono_frac.shape[0]):
        mc[cond] = _mono_excess(x, tol, n, p, u, r, d, cond, mono_frac[cond])
    out[16] = (max(mc[1], mc[2]) - mc[0]) / n
    out[17] = (mc[3] - mc[0]) / n
    out[18] = (max(mc[4], mc[5]) - mc[0]) / n


@njit(cache=True, nogil=True)
def _low_sym_kernel(xs, tols, strong, counts, zone_sq, ortho_frac, mono_frac, n_seed, n_zones, n_keep, a_min,
                    max_lines_per_peak, out, cells):
    for p in range(xs.shape[0]):
        k = counts[p]
        if k < 5:
            for f in range(out.shape[1]):
                out[p, f] = 0.0
            for f in range(cells.shape[1]):
                cells[p, f] = 0.0
            continue
        _low_sym_pattern(xs[p, :k], tols[p, :k], k, strong[p, :k], zone_sq, ortho_frac, mono_frac, n_seed,
                         n_zones, n_keep, a_min, max_lines_per_peak, out[p], cells[p])


def _low_symmetry(peaks):
    xs, tols, counts, ranks = _tested_peaks(peaks, N_TEST_PEAKS_LOW, with_rank=True, tol_deg=TOL_LOW_TWO_THETA_DEG)
    out = np.zeros((peaks.n_patterns, len(LOW_SYMMETRY_NAMES)))
    cells = np.zeros((peaks.n_patterns, 7))
    _low_sym_kernel(np.nan_to_num(xs, nan=0.0), np.nan_to_num(tols, nan=0.0), (ranks >= 0) & (ranks < 5), counts,
                    _ZONE_SQ, _ORTHO_FRAC, _MONO_FRAC, N_SEED_PEAKS_LOW, N_ZONES, N_ORTHO_KEEP,
                    1.0 / MAX_EDGE_ANGSTROM ** 2, MAX_LINES_PER_PEAK, out, cells)
    return out, cells


def best_cells(peaks) -> dict:
    """The best orthorhombic and monoclinic trial cells of each pattern (what the features were scored on).

    Returns
    -------
    dict
        ``"orthorhombic"``: (n, 3) edges a, b, c in angstrom (order of the search, not sorted);
        ``"monoclinic"``: (n, 4) a, b (unique), c in angstrom and beta in degrees (from the reciprocal metric
        ``x = h^2 P + k^2 U + l^2 R + 2 h l D``: ``cos beta* = D / sqrt(P R)``, ``beta = 180 - beta*``).
        NaN where a pattern has fewer than 5 peaks.
    """
    _, cells = _low_symmetry(peaks)
    with np.errstate(divide="ignore", invalid="ignore"):
        ortho = 1.0 / np.sqrt(cells[:, :3])
        p, u, r, d = cells[:, 3:].T
        cos_bs = d / np.sqrt(p * r)
        sin_bs = np.sqrt(1 - cos_bs ** 2)
        mono = np.stack([1 / (np.sqrt(p) * sin_bs), 1 / np.sqrt(u), 1 / (np.sqrt(r) * sin_bs),
                         180.0 - np.degrees(np.arccos(cos_bs))], axis=1)
    bad = cells[:, 0] <= 0
    ortho[bad] = np.nan
    mono[bad] = np.nan
    return {"orthorhombic": ortho, "monoclinic": mono}


def low_symmetry_features(peaks) -> np.ndarray:
    """``(n, 19)`` orthorhombic / monoclinic trial-indexing features (:data:`LOW_SYMMETRY_NAMES`).

    Excess fractions (matched minus chance, over the tested peaks), raw matched fractions, a de Wolff-like
    figure of merit ``log(x_max / (2 eps N_calc) * matched)``, the log ratio of calculated lines to tested
    peaks (the fitted volume against the peak density), the fraction of the 5 strongest peaks indexed, axis
    ratios of the best orthorhombic cell (pseudo-tetragonal / cubic cells have a log ratio near 0), the
    monoclinic ``|cos beta*|``, and centring / glide excesses relative to the primitive reading of the same
    cells (positive when a reflection condition explains the same lines with fewer calculated lines).
    Patterns with fewer than 5 peaks are all 0.
    """
    return _low_symmetry(peaks)[0]


def block_low_symmetry(peaks, k):
    return low_symmetry_features(peaks), list(LOW_SYMMETRY_NAMES)


# ============================================================ orthorhombic search from line triples ====
# The zone search above builds a cell from two lines given (h k 0) indices and a third axis from one more line;
# it rarely finds the cell of an orthorhombic pattern (34 % of ideal patterns, 8.5 % with the augmentation's
# zero shifts and widths: bench/results/session4/diagnostics.md). TREOR's start is more exhaustive: any three of
# the lowest lines, each given a small index (h, k, l in 0..2, h^2 + k^2 + l^2 <= 6), fix A, B, C by one 3 x 3
# solve; every positive cell is scored as matched minus chance (early exit as in the zone search), and the best
# cells are refined with a zero-shift term (:func:`_refine_ortho`). Without the refinement the triples find no
# more cells than the zones on measurement-like patterns: the shift, not the search, is what loses them.
# Found (indexes >= 95 % of the tested peaks), 100 patterns each, ideal / augmented (bench/results/session5):
# orthorhombic 68 / 41 % (zone search refined: 45 / 28); monoclinic 19 / 12 %; triclinic 10 / 18 %.

#: Lowest tested lines from which the triples are drawn (5: 10 triples; 4 finds 38 % instead of 41 %).
N_SEED_TRIPLES = 5
#: Largest h^2 + k^2 + l^2 of the indices given to the three lines.
MAX_TRIPLE_INDEX_SQ = 6
#: Cells kept for the zero-shift refinement.
N_TRIPLE_KEEP = 10
#: Calculated lines per tested peak allowed (the chance term, not this bound, judges large cells).
MAX_LINES_PER_PEAK_TRIPLES = 30.0


def _triple_solutions(max_sq: int) -> np.ndarray:
    """``(m, 9)`` inverse matrices of every ordered triple of squared index vectors ``(h^2, k^2, l^2)`` with
    ``h^2 + k^2 + l^2 <= max_sq`` (the first in descending order: the axes are unlabelled), row-major:
    ``(A, B, C) = inv @ (x_1, x_2, x_3)``."""
    vecs = [(h * h, k * k, l * l) for h in range(3) for k in range(3) for l in range(3)
            if 0 < h * h + k * k + l * l <= max_sq]
    out = []
    for v1 in vecs:
        if not v1[0] >= v1[1] >= v1[2]:
            continue
        for v2 in vecs:
            for v3 in vecs:
                if len({v1, v2, v3}) < 3:
                    continue
                m = np.array([v1, v2, v3], dtype=np.float64)
                if abs(np.linalg.det(m)) < 0.5:
                    continue
                out.append(np.linalg.inv(m).ravel())
    return np.array(out)


_TRIPLE_INV = _triple_solutions(MAX_TRIPLE_INDEX_SQ)


@njit(cache=True, nogil=True)
def _triples_pattern(x, tol, g, n, inv, n_seed, n_keep, a_min, max_lines_per_peak, max_z, out):
    """One pattern (x ascending): fills ``out`` with the best cell's (excess / n, matched / n, A, B, C, zero
    shift in radians of 2-theta)."""
    kA = np.zeros(n_keep)
    kB = np.zeros(n_keep)
    kC = np.zeros(n_keep)
    kS = np.full(n_keep, -1e9)
    kH = np.zeros(n_keep)
    kZ = np.zeros(n_keep)
    ns = min(n_seed, n)
    for i in range(ns):
        for j in range(i + 1, ns):
            for t3 in range(j + 1, ns):
                x1 = x[i]
                x2 = x[j]
                x3 = x[t3]
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
                    if _n_calc_ortho(x[n - 1], a, b, c) > max_lines_per_peak * n:
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
                    # the three seed lines are indexed by construction (residual ~1e-16); the rest until the
                    # misses rule the cell out
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
                        kA[worst] = a
                        kB[worst] = b
                        kC[worst] = c
                        kS[worst] = s
                        kH[worst] = hits
    best = 0
    for q in range(n_keep):
        if kS[q] <= -1e8:
            continue
        a, b, c, z, ok = _refine_ortho(x, tol, g, n, kA[q], kB[q], kC[q], max_z)
        if ok:
            hits, chance, _ = _ortho_eval(x - z * g, tol, n, a, b, c, 0, 1.0)
            if hits - chance > kS[q]:
                kA[q] = a
                kB[q] = b
                kC[q] = c
                kS[q] = hits - chance
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
    out[2] = kA[best]
    out[3] = kB[best]
    out[4] = kC[best]
    out[5] = kZ[best]


@njit(cache=True, nogil=True)
def _triples_kernel(xs, tols, gs, counts, inv, n_seed, n_keep, a_min, max_lines_per_peak, max_z, out):
    for p in range(xs.shape[0]):
        k = counts[p]
        if k < 5:
            for f in range(out.shape[1]):
                out[p, f] = 0.0
            continue
        _triples_pattern(xs[p, :k], tols[p, :k], gs[p, :k], k, inv, n_seed, n_keep, a_min, max_lines_per_peak,
                         max_z, out[p])


#: Columns of :func:`triples_features`.
TRIPLES_NAMES = ("triples_excess_orthorhombic", "triples_matched_orthorhombic", "triples_axis_log_ratio_min",
                 "triples_axis_log_ratio_max", "triples_zero_shift_deg")


def triples_features(peaks) -> np.ndarray:
    """``(n, 5)`` the best orthorhombic cell of the line-triples search (see the section comment): excess over
    chance and matched fraction of the tested peaks, the smallest and largest ``|log|`` ratio of its edges
    (near 0: pseudo-tetragonal / cubic) and its refined zero shift (degrees 2-theta). Same tested peaks and
    tolerances as :func:`low_symmetry_features`; patterns with fewer than 5 peaks are all 0.

    >>> from xrdbatch.features import Peaks
    >>> a, b, c = 4.0, 5.0, 7.0
    >>> d = sorted({1 / math.sqrt(h * h / a**2 + k * k / b**2 + l * l / c**2)
    ...             for h in range(4) for k in range(4) for l in range(4) if h + k + l})[::-1][:20]
    >>> tt = np.degrees(2 * np.arcsin(1.5406 / (2 * np.array(d))))
    >>> p = Peaks(np.zeros(20, np.int64), tt, 2 * np.pi / np.array(d), np.ones(20, np.float32), np.array([0, 20]))
    >>> f = triples_features(p)[0]
    >>> bool(f[1] == 1.0), round(float(f[3]), 3) == round(math.log(7 / 4), 3)
    (True, True)
    """
    xs, tols, gs, counts = _tested_peaks_g(peaks, N_TEST_PEAKS_LOW, tol_deg=TOL_LOW_TWO_THETA_DEG)
    raw = np.zeros((peaks.n_patterns, 6))
    _triples_kernel(np.nan_to_num(xs, nan=0.0), np.nan_to_num(tols, nan=0.0), np.nan_to_num(gs, nan=0.0), counts,
                    _TRIPLE_INV, N_SEED_TRIPLES, N_TRIPLE_KEEP, 1.0 / MAX_EDGE_ANGSTROM ** 2,
                    MAX_LINES_PER_PEAK_TRIPLES, math.radians(MAX_ZERO_SHIFT_DEG), raw)
    found = raw[:, 2] > 0
    half_logs = 0.5 * np.log(np.where(found[:, None], raw[:, 2:5], 1.0))
    gaps = np.abs(half_logs[:, [0, 1, 0]] - half_logs[:, [1, 2, 2]])
    return np.column_stack([raw[:, 0], raw[:, 1], gaps.min(axis=1), gaps.max(axis=1), np.degrees(raw[:, 5])])


# ================================================================== centring of the high-symmetry cells ====
# Reflection conditions on the best trial cells of :func:`indexing_scores`' families, each scored like the
# primitive cell (matched minus chance at shifted positions): a condition that explains the same lines with
# fewer calculated lines has a larger excess. Cubic with N = h^2 + k^2 + l^2: I (h+k+l even) <=> N even;
# F (h, k, l all odd or all even) <=> N = 3 mod 8 or N = 0 mod 4; d (Fd-3m: F and h+k+l = 4n for all even)
# <=> N = 3 mod 8 or N = 0 mod 8. Tetragonal with m = h^2 + k^2: I <=> m + l even (h^2 = h mod 2).
# Hexagonal with m = h^2 + hk + k^2 = (h - k)^2 mod 3: R (obverse or reverse, -h+k+l = 3n or h-k+l = 3n)
# <=> (m = 0 and l = 0 mod 3) or (m != 0 and l != 0 mod 3); 00l: l = 2n (6_3 screw or c glide).
# Limit (cubic): a P pattern is also indexed by an I cell of sqrt(2) a (N' = 2N) and an F / Fd cell of 2a
# (N' = 4N), and such supercells are among the best trial cells, so cubic I - P and F - P are ~0 for P and I
# patterns alike; what survives is a condition no supercell meets (fcc lines are not diamond: Fd - P < 0).

#: Columns of :func:`centring_features`.
CENTRING_NAMES = ("cubic_I_minus_P", "cubic_F_minus_P", "cubic_Fd_minus_P", "tetragonal_I_minus_P",
                  "hexagonal_R_minus_P", "hexagonal_00l_even_minus_P")
#: Best primitive trial cells per family on which the conditions are tested.
N_CENTRING_TRIALS = 3


def _cubic_condition_tables():
    n = np.arange(N_MAX + 1)
    return (_CUBIC.copy(), _CUBIC & (n % 2 == 0), _CUBIC & ((n % 8 == 3) | (n % 4 == 0)),
            _CUBIC & ((n % 8 == 3) | (n % 8 == 0)))


_CUBIC_P, _CUBIC_I, _CUBIC_F, _CUBIC_FD = _cubic_condition_tables()
_CUBIC_TABLES = np.stack([_CUBIC_P, _CUBIC_I, _CUBIC_F, _CUBIC_FD])


@njit(cache=True, nogil=True, inline="always")
def _two_ok(m, l, cond):
    if cond == 0:
        return True
    if cond == 1:  # tetragonal I
        return (m + l) % 2 == 0
    if cond == 2:  # rhombohedral
        return (m % 3 == 0) == (l % 3 == 0)
    return m != 0 or l % 2 == 0  # 00l: l = 2n


@njit(cache=True, nogil=True)
def _count_two_cond(x, tol, a, c, allowed, scale, l_max, cond):
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
            if (m > 0 or l > 0) and allowed[m] and abs(r - m * a) <= tol[j] and _two_ok(m, l, cond):
                n += 1
                break
    return n


def centring_features(peaks) -> np.ndarray:
    """``(n, 6)`` centring / screw-axis excesses of the cubic, tetragonal and hexagonal cells (see above).

    Each column is (best excess under the condition - best primitive excess) / tested peaks: near 0 when the
    condition is consistent with every indexed line (and fewer calculated lines give it a small bonus),
    negative when lines the condition forbids are observed. The best primitive cells come from the trial-cell
    scan of :func:`refined_indexing_scores` (:func:`block_consensus_centring` runs it once for both).
    """
    return _high_symmetry(peaks, refine=False)[1]


def block_centring(peaks, k):
    return centring_features(peaks), list(CENTRING_NAMES)


# ================================================================== scale-free ratios ====
# Ratios x_j / x_i of 1/d^2 do not depend on the cell's size; in a lattice many of them sit at small-integer
# fractions (h00 / 2h 00 = 1/4, cubic N ratios, hexagonal 4/3 ...). Robust to a missing or an extra peak: a
# count over all pairs changes by a few pairs, not by a shift of every column like "the i-th peak".

#: Lowest-angle peaks whose pairwise ratios are counted.
N_RATIO_PEAKS = 15
#: Named fractions whose pair counts are features.
RATIO_TARGETS = (2.0, 3.0, 4.0, 4.0 / 3.0, 1.5, 8.0 / 3.0, 5.0 / 3.0, 1.25)
#: All fractions p / q (q <= 4, 1 < p / q <= 9) for the "near any small fraction" excess.
_SMALL_FRACTIONS = np.array(sorted({p / q for q in range(1, 5) for p in range(q + 1, 9 * q + 1)}))
#: Relative shift of the fractions at which chance coincidences are counted.
RATIO_CHANCE_SHIFT = 1.0137
#: Strongest peaks whose x / x_first are features.
N_STRONG_RATIOS = 5

RATIO_NAMES = tuple([f"pair_ratio_{t:.3g}" for t in RATIO_TARGETS] + ["pair_ratio_small_fraction_excess"]
                    + [f"strong{i + 1}_x_over_first" for i in range(N_STRONG_RATIOS)])


@njit(cache=True, nogil=True)
def _near(values, r, rtol):
    """Whether r is within relative rtol of a value of the sorted array ``values``."""
    lo = np.searchsorted(values, r * (1 - rtol))
    return lo < values.shape[0] and values[lo] <= r * (1 + rtol)


@njit(cache=True, nogil=True)
def _ratio_kernel(x, rel_tol, offsets, targets, fractions, shift, n_peaks, out):
    n_t = targets.shape[0]
    for p in range(offsets.shape[0] - 1):
        a = offsets[p]
        b = min(offsets[p + 1], a + n_peaks)
        m = b - a
        n_pairs = m * (m - 1) // 2
        if n_pairs == 0:
            for f in range(n_t + 1):
                out[p, f] = MISSING_RATIO
            continue
        hits_any = 0
        hits_chance = 0
        counts = np.zeros(n_t)
        for i in range(a, b):
            for j in range(i + 1, b):
                r = x[j] / x[i]
                rt = rel_tol[i] + rel_tol[j]
                for t in range(n_t):
                    if abs(r - targets[t]) <= rt * targets[t]:
                        counts[t] += 1
                if _near(fractions, r, rt):
                    hits_any += 1
                if _near(fractions, r / shift, rt):
                    hits_chance += 1
        for t in range(n_t):
            out[p, t] = counts[t] / n_pairs
        out[p, n_t] = (hits_any - hits_chance) / n_pairs


MISSING_RATIO = -1.0


def ratio_features(peaks) -> np.ndarray:
    """``(n, 14)`` scale-free ratio features (:data:`RATIO_NAMES`).

    Fractions of the pairs among the first :data:`N_RATIO_PEAKS` peaks whose ``x_j / x_i`` (``x = 1/d^2``)
    lies at each of :data:`RATIO_TARGETS`; the excess of pairs at any small fraction over pairs at fractions
    shifted by 1.4 % (chance); and ``x / x_first`` of the 5 strongest peaks (strongest first). Missing
    values are -1.
    """
    n = peaks.n_patterns
    x, rel_tol = _x_rel_tol(peaks)
    out = np.full((n, len(RATIO_NAMES)), MISSING_RATIO)
    if x.size:
        _ratio_kernel(x, rel_tol, peaks.offsets, np.asarray(RATIO_TARGETS), _SMALL_FRACTIONS, RATIO_CHANCE_SHIFT,
                      N_RATIO_PEAKS, out)
        sel, rank = _strongest(peaks, N_STRONG_RATIOS)
        pat = peaks.pattern[sel]
        out[pat, len(RATIO_TARGETS) + 1 + rank] = x[sel] / x[peaks.offsets[pat]]
    return out


def block_ratios(peaks, k):
    return ratio_features(peaks), list(RATIO_NAMES)


# ------------------------------------------------------------------ fractions by denominator ----
#: Denominators whose fractions p / q (in lowest terms, 1 < p / q <= 12) are counted separately: integers are
#: cubic-like, halves and quarters tetragonal-like (m = h^2 + k^2 = 1, 2, 4, 5, 8 ...), thirds hexagonal-like
#: (m = h^2 + hk + k^2 = 1, 3, 4, 7 ...), eighths the F-cubic ratios (11/8, 19/8 ...).
FRACTION_DENOMINATORS = (1, 2, 3, 4, 8)
#: Strongest peaks of the second selection (measured weak lines are the least reliable).
N_FRACTION_STRONG = 12

FRACTION_NAMES = tuple([f"fraction_excess_q{q}_first{N_RATIO_PEAKS}" for q in FRACTION_DENOMINATORS]
                       + [f"fraction_excess_q{q}_strong{N_FRACTION_STRONG}" for q in FRACTION_DENOMINATORS])


def _fractions_of(q: int) -> np.ndarray:
    return np.array(sorted({p / q for p in range(q + 1, 12 * q + 1) if math.gcd(p, q) == 1}))


_FRACTION_TABLE = np.full((len(FRACTION_DENOMINATORS), 12 * max(FRACTION_DENOMINATORS)), np.inf)
for _i, _q in enumerate(FRACTION_DENOMINATORS):
    _f = _fractions_of(_q)
    _FRACTION_TABLE[_i, :_f.size] = _f


@njit(cache=True, nogil=True)
def _fraction_kernel(x, rel_tol, offsets, table, shift, n_peaks, out, col0):
    n_q = table.shape[0]
    for p in range(offsets.shape[0] - 1):
        a = offsets[p]
        b = min(offsets[p + 1], a + n_peaks)
        m = b - a
        n_pairs = m * (m - 1) // 2
        if n_pairs == 0:
            for t in range(n_q):
                out[p, col0 + t] = MISSING_RATIO
            continue
        for t in range(n_q):
            hit = 0
            chance = 0
            for i in range(a, b):
                for j in range(i + 1, b):
                    r = x[j] / x[i]
                    rt = rel_tol[i] + rel_tol[j]
                    if _near(table[t], r, rt):
                        hit += 1
                    if _near(table[t], r / shift, rt):
                        chance += 1
            out[p, col0 + t] = (hit - chance) / n_pairs


def fraction_features(peaks) -> np.ndarray:
    """``(n, 10)`` excess of peak pairs at fractions with each denominator (:data:`FRACTION_NAMES`).

    ``x_j / x_i`` (``x = 1/d^2``) over the pairs of the first :data:`N_RATIO_PEAKS` peaks and, separately, of
    the :data:`N_FRACTION_STRONG` strongest peaks; each column is (pairs near a fraction p/q of that
    denominator - pairs near the same fractions shifted by 1.4 %) / pairs. Scale-free; -1 below 2 peaks.
    """
    n = peaks.n_patterns
    out = np.full((n, len(FRACTION_NAMES)), MISSING_RATIO)
    if peaks.pattern.size == 0:
        return out
    x, rel_tol = _x_rel_tol(peaks)
    nq = len(FRACTION_DENOMINATORS)
    _fraction_kernel(x, rel_tol, peaks.offsets, _FRACTION_TABLE, RATIO_CHANCE_SHIFT, N_RATIO_PEAKS, out, 0)
    # the strongest peaks of each pattern, back in angle order
    sel = np.sort(_strongest(peaks, N_FRACTION_STRONG)[0])  # peaks are stored by (pattern, angle): sorting restores it
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(peaks.pattern[sel], minlength=n), out=offsets[1:])
    _fraction_kernel(x[sel], rel_tol[sel], offsets, _FRACTION_TABLE, RATIO_CHANCE_SHIFT, N_FRACTION_STRONG, out, nq)
    return out


def block_fractions(peaks, k):
    return fraction_features(peaks), list(FRACTION_NAMES)


# ================================================================== zero-shift-refined trial indexing ====
# A zero error z (and sample displacement, nearly constant in 2-theta below 90 deg) moves every line by the same
# angle, so the trial cell fixed by two low lines is off by ~z cot(theta) and predicts the high lines ~0.1-0.2 deg
# away: on simulated patterns with the augmentation's shifts (|z| <= 0.06 deg, s/R <= 6e-4) the best cubic cell of
# a cubic pattern indexes 60 % of the lines instead of 98 %. TREOR's answer is a least-squares refinement with a
# zero-point term: x = 1/d^2 is linear in the cell's metric coefficients and, to first order, in z,
#     x_obs = A m + C l^2 + z g,   g = x cot(theta)   (z in radians of 2-theta, dx/x = cot(theta) d(2 theta)),
# so every promising trial cell is refined by a weighted linear fit over the lines it indexes within a wider
# window, twice, and rescored at the tight tolerance on the corrected positions x - z g.

#: Wider window (multiple of the tolerance) in which a trial cell's lines are assigned before refinement.
REFINE_LOOSE = 4.0
#: Trial cells per family refined (the best by loose matches). Loose matches favour large cells, so too few
#: lets them crowd out the true one (6 -> 10 with 4 seed peaks: +0.7 points held-out simulated, 3 seeds of the split).
N_REFINE = 10
#: Largest zero shift accepted from a refinement (degrees 2-theta).
MAX_ZERO_SHIFT_DEG = 0.3
#: Lowest-angle tested peaks that seed the refined trial cells (4, not 3: a long-c cell's three lowest strong lines
#: can all be 00l, which fixes no A; +0.6 points held-out simulated for +0.3 ms).
N_SEED_PEAKS_REFINED = 4


@njit(cache=True, nogil=True)
def _assign_two(x, tol, g, a, c, z, allowed, l_max, loose, cubic, mm, ll):
    """Assign each line to the nearest allowed (m, l) within ``loose * tol`` after removing the shift ``z g``;
    mm[j] = -1 when unassigned. Returns the number assigned."""
    n = 0
    for j in range(x.shape[0]):
        v = x[j] - z * g[j]
        t = tol[j] * loose
        best = t + 1.0
        bm = -1
        bl = 0
        lm = 0 if cubic else l_max
        for l in range(lm + 1):
            r = v - l * l * c
            if r < -t:
                break
            m0 = int(r / a + 0.5)
            for m in range(m0 - 1, m0 + 2):
                if m < 0 or m >= allowed.shape[0] or (m == 0 and l == 0) or not allowed[m]:
                    continue
                e = abs(r - m * a)
                if e <= t and e < best:
                    best = e
                    bm = m
                    bl = l
        mm[j] = bm
        ll[j] = bl
        if bm >= 0:
            n += 1
    return n


@njit(cache=True, nogil=True)
def _refine_two(x, tol, g, a, c, allowed, l_max, cubic, max_z):
    """Refine (A, C, z) of a trial cell by two rounds of weighted least squares; returns (a, c, z, ok)."""
    k = x.shape[0]
    mm = np.empty(k, dtype=np.int64)
    ll = np.empty(k, dtype=np.int64)
    z = 0.0
    for it in range(2):
        loose = REFINE_LOOSE if it == 0 else 2.0
        n = _assign_two(x, tol, g, a, c, z, allowed, l_max, loose, cubic, mm, ll)
        npar = 2 if cubic else 3
        if n < npar + 2:
            return a, c, z, False
        M = np.zeros((npar, npar))
        rhs = np.zeros(npar)
        row = np.zeros(npar)
        for j in range(k):
            if mm[j] < 0:
                continue
            w = 1.0 / tol[j]
            row[0] = mm[j] * w
            if cubic:
                row[1] = g[j] * w
            else:
                row[1] = ll[j] * ll[j] * w
                row[2] = g[j] * w
            for p in range(npar):
                rhs[p] += row[p] * x[j] * w
                for q in range(npar):
                    M[p, q] += row[p] * row[q]
        # a cell with no l != 0 line (or only them) leaves C (or A) undetermined: keep the trial value
        if not cubic and (M[1, 1] == 0.0 or M[0, 0] == 0.0):
            return a, c, z, False
        det = np.linalg.det(M)
        if abs(det) < 1e-12 * abs(M[0, 0] * M[npar - 1, npar - 1]) * M[1, 1]:
            return a, c, z, False
        sol = np.linalg.solve(M, rhs)
        if sol[0] <= 0:
            return a, c, z, False
        a = sol[0]
        if cubic:
            z = sol[1]
        else:
            if sol[1] <= 0:
                return a, c, z, False
            c = sol[1]
            z = sol[2]
        if abs(z) > max_z:
            return a, c, z, False
    return a, c, z, True


@njit(cache=True, nogil=True)
def _count_shifted(x, tol, g, a, c, z, allowed, l_max, scale, cubic):
    """Lines of ``x`` (scaled, minus the shift ``z g``) whose nearest allowed index (m, l) of the cell (a, c) is
    within ``tol``."""
    n = 0
    lm = 0 if cubic else l_max
    for j in range(x.shape[0]):
        v = x[j] * scale - z * g[j]
        for l in range(lm + 1):
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
def _chance_below(x, tol, g, a, c, z, allowed, l_max, shifts, cubic, limit):
    """The chance matches of a cell, ``sum_s _count_shifted(..., 1 + shifts[s], ...)``, when below ``limit``;
    otherwise some partial sum >= ``limit`` (counting stops there).

    A caller updates its best only when ``hit - chance / n_shift > best``, i.e. ``chance < n_shift (hit - best)``
    (exact: small integers and quarters), so past that limit the rest of the count cannot matter.
    """
    total = 0
    for s in range(shifts.shape[0]):
        scale = 1.0 + shifts[s]
        for j in range(x.shape[0]):
            v = x[j] * scale - z * g[j]
            for l in range((0 if cubic else l_max) + 1):
                r = v - l * l * c
                if r < -tol[j]:
                    break
                m = int(r / a + 0.5)
                if m < 0 or m >= allowed.shape[0]:
                    continue
                if (m > 0 or l > 0) and allowed[m] and abs(r - m * a) <= tol[j]:
                    total += 1
                    break
            if total >= limit:
                return float(total)
    return float(total)


@njit(cache=True, nogil=True)
def _count_tight_loose(x, tol, a, c, allowed, l_max, cubic, loose, bound_t, bound_l, with_loose):
    """Matched lines of a trial cell at two tolerances in one pass: ``(tight, loose)``.

    ``tight`` is :func:`_count_two_max` (:func:`_count_cubic_max` when ``cubic``): lines whose nearest allowed
    index is within ``tol``; ``loose`` is the count :func:`_assign_two` assigns within ``loose * tol`` (any
    allowed ``m`` next to the nearest). Each is -1 as soon as its misses leave at most its bound (the caller
    discards such cells); ``loose`` is -1 when not ``with_loose``. A tight match is a loose match (same nearest
    ``m``, the loose ``l`` range contains the tight one), so each line's indices are visited once for both.
    """
    k = x.shape[0]
    size = allowed.shape[0]
    lm = 0 if cubic else l_max
    nt = 0
    nl = 0
    alive_t = True
    alive_l = with_loose
    for j in range(k):
        v = x[j]
        t = tol[j]
        tl = t * loose if alive_l else t  # the l range of the counts still needed
        got_t = False
        got_l = False
        for l in range(lm + 1):
            r = v - l * l * c
            if r < -tl:
                break
            m0 = int(r / a + 0.5)
            if alive_t and not got_t and r >= -t:
                if 0 <= m0 < size and (m0 > 0 or l > 0) and allowed[m0] and abs(r - m0 * a) <= t:
                    got_t = True
                    got_l = True
            if alive_l and not got_l:
                for m in range(m0 - 1, m0 + 2):
                    if m < 0 or m >= size or (m == 0 and l == 0) or not allowed[m]:
                        continue
                    if abs(r - m * a) <= tl:
                        got_l = True
                        break
            if (got_t or not alive_t) and (got_l or not alive_l):
                break
        if alive_t:
            if got_t:
                nt += 1
            elif k - (j + 1 - nt) <= bound_t:
                alive_t = False
        if alive_l:
            if got_l:
                nl += 1
            elif k - (j + 1 - nl) <= bound_l:
                alive_l = False
        if not alive_t and not alive_l:
            break
    return (nt if alive_t else -1), (nl if alive_l else -1)


@njit(cache=True, nogil=True)
def _search_family(x, tol, g, ca, cc, cl, seed_hi, n_seed_centring, allowed, cubic, shifts, n_refine, max_z,
                   refine, out3, ta, tc, tl, ts):
    """One family's trial cells ``(ca, cc, cl)`` scanned once for both consumers of the search.

    * refined indexing (when ``refine``): the best unrefined excess, the ``n_refine`` cells with the most loose
      matches, each refined (:func:`_refine_two`) and rescored; out3 = (best excess, unrefined excess, its z);
    * centring: the ``len(ts)`` best distinct primitive cells among the trials seeded by the first
      ``n_seed_centring`` lines (``seed_hi``: the highest seed line of each trial) -> ta, tc, tl, ts.

    Counts stop early once a cell cannot beat the bounds of the consumers that still need it (the smaller of
    the running best excess and the worst kept centring cell); chance matches are counted once for both.
    """
    nt = ca.shape[0]
    n_shift = shifts.shape[0]
    n_trials = ts.shape[0]
    for q in range(n_trials):
        ta[q] = 0.0
        tc[q] = 0.0
        tl[q] = 0
        ts[q] = -1e9
    raw_best = -1e9
    top_i = np.full(n_refine, -1)
    top_h = np.full(n_refine, -1.0)
    for t in range(nt):
        a = ca[t]
        c = cc[t]
        centring = seed_hi[t] < n_seed_centring
        worst = 0
        if centring:
            for q in range(n_trials):
                if ts[q] < ts[worst]:
                    worst = q
        w = 0
        if refine:
            for q in range(n_refine):
                if top_h[q] < top_h[w]:
                    w = q
        bound = raw_best if refine else 1e9
        if centring and ts[worst] < bound:
            bound = ts[worst]
        hit, loose_hit = _count_tight_loose(x, tol, a, c, allowed, cl[t], cubic, REFINE_LOOSE, bound, top_h[w],
                                            refine)
        need_refined = refine and hit > raw_best
        need_centring = centring and hit > ts[worst]
        if need_centring:
            # a duplicate of a kept centring cell is never kept: no need to score it for centring
            for q in range(n_trials):
                if abs(ta[q] - a) < 1e-3 * a and (cubic or abs(tc[q] - c) < 1e-3 * c):
                    need_centring = False
                    break
        if need_refined or need_centring:
            low = raw_best if need_refined else ts[worst]
            if need_centring and ts[worst] < low:
                low = ts[worst]
            chance = _chance_below(x, tol, g, a, c, 0.0, allowed, cl[t], shifts, cubic, n_shift * (hit - low))
            sc = hit - chance / n_shift
            if need_refined and sc > raw_best:
                raw_best = sc
            if need_centring and sc > ts[worst]:
                ta[worst] = a
                tc[worst] = c
                tl[worst] = cl[t]
                ts[worst] = sc
        if refine and loose_hit > top_h[w]:
            top_h[w] = loose_hit
            top_i[w] = t
    if not refine:
        return
    best = raw_best
    best_z = 0.0
    for q in range(n_refine):
        t = top_i[q]
        if t < 0:
            continue
        a, c, z, ok = _refine_two(x, tol, g, ca[t], cc[t], allowed, cl[t], cubic, max_z)
        if not ok:
            continue
        hit = _count_shifted(x, tol, g, a, c, z, allowed, cl[t] + 1, 1.0, cubic)
        if hit <= best:
            continue
        chance = _chance_below(x, tol, g, a, c, z, allowed, cl[t] + 1, shifts, cubic, n_shift * (hit - best))
        sc = hit - chance / n_shift
        if sc > best:
            best = sc
            best_z = z
    out3[0] = best
    out3[1] = raw_best
    out3[2] = best_z


@njit(cache=True, nogil=True)
def _high_symmetry_kernel(xs, tols, gs, counts, shifts, cubic_tables, tet, hexa, seed_n, seed_m_tet, seed_m_hex,
                          seed_l, n_seed_refined, n_seed_centring, n_refine, n_trials, max_z, refine, out_refined,
                          out_centring):
    """Cubic / tetragonal / hexagonal trial indexing of every pattern: the refined scores (:data:`REFINED_NAMES`,
    z in radians; when ``refine``) and the centring excesses (:data:`CENTRING_NAMES`) from one scan of the
    trial cells. Trials are seeded by ``n_seed_refined`` lines when ``refine``, else by ``n_seed_centring``."""
    n_shift = shifts.shape[0]
    out3 = np.zeros(3)
    ta = np.zeros(n_trials)
    tc = np.zeros(n_trials)
    tl = np.zeros(n_trials, dtype=np.int64)
    ts = np.zeros(n_trials)
    for p in range(xs.shape[0]):
        k = counts[p]
        for f in range(out_refined.shape[1]):
            out_refined[p, f] = 0.0
        for f in range(out_centring.shape[1]):
            out_centring[p, f] = 0.0
        if k < 3:
            continue
        x = xs[p, :k]
        tol = tols[p, :k]
        g = gs[p, :k]
        ns = min(n_seed_refined if refine else n_seed_centring, k)
        # ---- cubic: A = x_i / N for the seed lines
        nt = ns * seed_n.shape[0]
        ca = np.empty(nt)
        cc = np.zeros(nt)
        cl = np.zeros(nt, dtype=np.int64)
        seed_hi = np.empty(nt, dtype=np.int64)
        t = 0
        for i in range(ns):
            for s in range(seed_n.shape[0]):
                ca[t] = x[i] / seed_n[s]
                seed_hi[t] = i
                t += 1
        _search_family(x, tol, g, ca, cc, cl, seed_hi, n_seed_centring, cubic_tables[0], True, shifts, n_refine,
                       max_z, refine, out3, ta, tc, tl, ts)
        out_refined[p, 0] = out3[0] / k
        out_refined[p, 3] = out3[2]
        # P, I, F, Fd on the best primitive cells only (a P pattern is also indexed by an F cell of twice the
        # edge, N' = 4N, which is not the cell an indexer reports)
        p_best = ts.max()
        if p_best > -1e8:
            for cnd in range(1, cubic_tables.shape[0]):
                cb = -1e9
                for q in range(n_trials):
                    if ts[q] <= -1e8:
                        continue
                    hit = _count_cubic(x, tol, ta[q], cubic_tables[cnd], 1.0)
                    chance = 0.0
                    for s in range(n_shift):
                        chance += _count_cubic(x, tol, ta[q], cubic_tables[cnd], 1.0 + shifts[s])
                    cb = max(cb, hit - chance / n_shift)
                out_centring[p, cnd - 1] = (cb - p_best) / k
        # ---- tetragonal / hexagonal: two seed lines with (m, l) each -> A, C
        for fam in range(2):
            allowed = tet if fam == 0 else hexa
            seed_m = seed_m_tet if fam == 0 else seed_m_hex
            ca, cc, cl, seed_hi = _two_axis_trials(x, k, ns, seed_m, seed_l)
            if ca.shape[0] == 0:
                continue
            _search_family(x, tol, g, ca, cc, cl, seed_hi, n_seed_centring, allowed, False, shifts, n_refine,
                           max_z, refine, out3, ta, tc, tl, ts)
            if refine:
                out_refined[p, 1 + fam] = out3[0] / k
                out_refined[p, 4 + fam] = out3[2]
            p_best = ts.max()
            if p_best <= -1e8:
                continue
            col = 3 if fam == 0 else 4
            for cnd in range(1 if fam == 0 else 2, 2 if fam == 0 else 4):
                cb = -1e9
                for q in range(n_trials):
                    if ts[q] <= -1e8:
                        continue
                    hit = _count_two_cond(x, tol, ta[q], tc[q], allowed, 1.0, tl[q], cnd)
                    chance = 0.0
                    for s in range(n_shift):
                        chance += _count_two_cond(x, tol, ta[q], tc[q], allowed, 1.0 + shifts[s], tl[q], cnd)
                    sc = hit - chance / n_shift
                    if sc > cb:
                        cb = sc
                out_centring[p, col] = (cb - p_best) / k
                col += 1


#: Columns of :func:`refined_indexing_scores`.
REFINED_NAMES = tuple([f"index_excess_refined_{f}" for f in FAMILIES] + [f"zero_shift_deg_{f}" for f in FAMILIES])


def _tested_peaks_g(peaks, K: int = N_TEST_PEAKS, tol_deg: float | None = None):
    """:func:`_tested_peaks` plus ``g = x cot(theta)`` (n, K): dx per radian of 2-theta zero shift."""
    xs, tols, counts = _tested_peaks(peaks, K, tol_deg=tol_deg)
    # _tested_peaks' tolerance is tol = 4 sin(theta) cos(theta) dtheta / lambda^2 + 2e-4 x = x cot(theta) dtheta
    # + 2e-4 x (dtheta = half the 2-theta tolerance), so g = x cot(theta) = (tol - 2e-4 x) / dtheta
    dtheta = math.radians((TOL_TWO_THETA_DEG if tol_deg is None else tol_deg) / 2)
    gs = (tols - 2e-4 * xs) / dtheta
    return xs, tols, gs, counts


def _high_symmetry(peaks, refine: bool = True):
    """``(refined (n, 6), centring (n, 6))`` from one scan of the cubic / tetragonal / hexagonal trial cells.

    With ``refine`` False only the centring columns are computed (the refined ones are 0) from the trials of
    the first :data:`N_SEED_PEAKS` lines; with ``refine`` the centring columns come from the same scan (the
    centring trials are an in-order subset of the refined ones), which :func:`block_consensus_centring` uses.
    """
    n = peaks.n_patterns
    xs, tols, gs, counts = _tested_peaks_g(peaks)
    refined = np.zeros((n, len(REFINED_NAMES)))
    centring = np.zeros((n, len(CENTRING_NAMES)))
    _high_symmetry_kernel(np.nan_to_num(xs, nan=0.0), np.nan_to_num(tols, nan=0.0), np.nan_to_num(gs, nan=0.0),
                          counts, np.asarray(CHANCE_SHIFTS, dtype=np.float64), _CUBIC_TABLES, _TET, _HEX,
                          _SEED_N_CUBIC, _SEED_M_TET, _SEED_M_HEX, _SEED_L, N_SEED_PEAKS_REFINED, N_SEED_PEAKS,
                          N_REFINE, N_CENTRING_TRIALS, math.radians(MAX_ZERO_SHIFT_DEG), refine, refined, centring)
    refined[:, 3:] = np.degrees(refined[:, 3:])
    return refined, centring


def refined_indexing_scores(peaks) -> np.ndarray:
    """``(n, 6)``: cubic / tetragonal / hexagonal excess match fractions after refining the best trial cells
    with a zero-shift term (see the section comment), and the fitted zero shifts (degrees 2-theta)."""
    return _high_symmetry(peaks)[0]


def block_refined(peaks, k):
    return refined_indexing_scores(peaks), list(REFINED_NAMES)


# ================================================================== evidence across crystal systems ====
# A tetragonal or hexagonal lattice is also an orthorhombic (orthohexagonal) and a monoclinic cell, so every
# lower-symmetry search "succeeds" on it as well; indexing programs settle this by preferring the highest symmetry
# with an equal figure of merit. Trees split one column at a time and rarely build that comparison from two
# columns, so the differences are given explicitly (on held-out simulated structure types they moved macro recall
# +0.4 and hexagonal recall on RRUFF dev from ~27 to 41 %).

#: Columns of :func:`cross_system_features` (after the refined and low-symmetry columns it repeats).
CROSS_NAMES = ("tetragonal_minus_orthorhombic", "hexagonal_minus_orthorhombic", "cubic_minus_tetragonal",
               "cubic_minus_hexagonal", "tetragonal_minus_hexagonal", "monoclinic_minus_best_orthogonal",
               "best_uniaxial_or_cubic_minus_monoclinic")


def cross_system_features(refined: np.ndarray, low: np.ndarray) -> np.ndarray:
    """``(n, 7)`` differences of excess match fractions between crystal systems (:data:`CROSS_NAMES`).

    ``refined`` is :func:`refined_indexing_scores` (cubic, tetragonal, hexagonal first), ``low``
    :func:`low_symmetry_features` (orthorhombic, monoclinic excess first). Positive ``a_minus_b``: the
    higher-symmetry cell explains the lines at least as well as the lower one.
    """
    cub, tet, hexa = refined[:, 0], refined[:, 1], refined[:, 2]
    ort, mono = low[:, 0], low[:, 1]
    return np.stack([tet - ort, hexa - ort, cub - tet, cub - hexa, tet - hexa,
                     mono - np.maximum(ort, np.maximum(tet, hexa)), np.maximum(cub, np.maximum(tet, hexa)) - mono],
                    axis=1)


def block_consensus(peaks, k):
    """Refined cubic/tetragonal/hexagonal indexing, orthorhombic/monoclinic indexing and their differences in one
    block (the differences need both; computing them here keeps each search to one run)."""
    refined = refined_indexing_scores(peaks)
    low = low_symmetry_features(peaks)
    return (np.concatenate([refined, low, cross_system_features(refined, low)], axis=1),
            list(REFINED_NAMES) + list(LOW_SYMMETRY_NAMES) + list(CROSS_NAMES))


def block_consensus_centring(peaks, k):
    """:func:`block_consensus` then :func:`block_centring`, from one scan of the cubic / tetragonal / hexagonal
    trial cells (the same columns and values as the two blocks one after the other)."""
    refined, centring = _high_symmetry(peaks)
    low = low_symmetry_features(peaks)
    return (np.concatenate([refined, low, cross_system_features(refined, low), centring], axis=1),
            list(REFINED_NAMES) + list(LOW_SYMMETRY_NAMES) + list(CROSS_NAMES) + list(CENTRING_NAMES))


#: Columns :func:`block_consensus_triples` adds after :func:`block_consensus_centring`'s.
TRIPLES_CROSS_NAMES = ("monoclinic_minus_triples_orthorhombic", "best_uniaxial_minus_triples_orthorhombic")


def block_consensus_triples(peaks, k):
    """:func:`block_consensus_centring`, then :func:`triples_features` and two differences (monoclinic excess and
    the better of the refined tetragonal / hexagonal excesses, each minus the triples' orthorhombic excess)."""
    values, names = block_consensus_centring(peaks, k)
    triples = triples_features(peaks)
    mono = values[:, names.index("index_excess_monoclinic")]
    uniaxial = np.maximum(values[:, names.index("index_excess_refined_tetragonal")],
                          values[:, names.index("index_excess_refined_hexagonal")])
    cross = np.stack([mono - triples[:, 0], uniaxial - triples[:, 0]], axis=1)
    return (np.concatenate([values, triples, cross], axis=1),
            names + list(TRIPLES_NAMES) + list(TRIPLES_CROSS_NAMES))

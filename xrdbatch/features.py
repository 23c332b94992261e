"""Peak features: one peak finder for simulated and measured patterns, and named feature sets.

How the parts fit:

1. :func:`find_peaks` turns patterns ``intensity (n, n_points)`` on any 2-theta grid into a ragged
   :class:`Peaks` table (every detected peak of every pattern, sorted by pattern then angle), with
   :class:`PeakParams` as the one documented set of tolerances (detection threshold, background window, ...).
2. Feature *blocks* (:data:`BLOCKS`, a registry dict) turn a :class:`Peaks` table into dense columns:
   the first N positions in 2-theta or in Q, squared Q ratios, heights, counts at several thresholds, ...
3. A feature *set* (:data:`FEATURE_SETS`, name -> :class:`FeatureSpec`) is an ordered list of blocks.
   ``"seed11"`` is the seed's recipe: the first 10 peak positions in 2-theta and the peak count.
4. :func:`extract` = :func:`find_peaks` + the blocks of one set; training (through the store) and scoring (on
   measured files) call the same function, so both see the same features.
5. :func:`features_to_store` runs the same thing over the chunks of a Zarr store with Dask and writes the
   results back by region (one task per store chunk, idempotent).

Missing peaks (a pattern with fewer than N peaks) are encoded as :data:`MISSING` (-1.0) in every
position-like column -- a value no real 2-theta, Q, ratio or height can take -- and the peak count
column says how many are real. Trees split the sentinel away from real values in one step.

Numbers only (numpy/scipy) except :func:`features_to_store` (xarray, dask; imported inside).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from xrdbatch.conditions import XRAY_LINES_ANGSTROM

#: Sentinel written where a pattern has fewer peaks than a feature asks for (never a real value).
MISSING = -1.0

#: Relative deviation of the 2-theta steps from their median above which a grid counts as non-uniform
#: (and is resampled onto a uniform grid with the median step before peak finding).
GRID_UNIFORMITY_RTOL = 0.02

#: Width (deg) of the blocks over which the local noise is estimated.
NOISE_BLOCK_DEG = 0.5

#: Depth of a rolling-minimum background below the mean of the noise, in noise sigmas (the minimum of
#: ~100 correlated Gaussian samples in one background window).
ENVELOPE_SIGMAS = 2.5


@dataclass(frozen=True)
class PeakParams:
    """Tolerances of the peak finder (all angles in degrees of 2-theta).

    Parameters
    ----------
    height_rel : float
        Detection threshold: a peak counts when its background-subtracted, smoothed height is at least
        ``height_rel`` times the strongest peak of its pattern (0.01 = 1 %). This is the main knob: lower
        finds weak reflections that measurements often lose in noise, higher makes features robust to noise.
    noise_sigmas : float
        A peak's local prominence must also be ``noise_sigmas`` standard deviations of the local noise (from
        medians of the absolute first difference of the raw row; no effect on noise-free simulations).
    background_window_deg : float or None
        Width of the rolling-minimum (morphological opening) background; wider than any peak, narrower than
        the background's curvature. ``None`` = no background subtraction.
    smooth_sigma_deg : float
        Gaussian smoothing sigma before peak detection (``0`` = none). Kept below a typical FWHM / 4 so that
        neighbouring peaks are not merged.
    min_distance_deg : float
        A peak must be the maximum within +- this distance (like ``scipy.signal.find_peaks(distance=...)``).
    prominence_window_deg : float
        The noise test is on the local prominence: the peak minus the higher of the minima within
        +- this window on either side (``scipy.signal.peak_prominences(wlen=...)``), not on the raw height.
    ka2 : {"auto", "none"} or float
        K-alpha2 doublet suppression. A peak at the K-alpha2 position of a stronger peak (same d-spacing at
        wavelength ``lambda2``) with 0.15-0.85 of its height is dropped. ``"auto"`` takes ``lambda2`` from the
        known X-ray lines when the given wavelength is a K-alpha1 or K-alpha mean line
        (:data:`xrdbatch.conditions.XRAY_LINES_ANGSTROM`); a float is ``lambda2`` in angstrom.
    ka2_tolerance_deg : float
        Position tolerance of the doublet match.
    top_fit_rel : float
        Peak positions come from a least-squares parabola through the peak's top: the symmetric run of
        points above ``top_fit_rel`` x its height (at most :data:`TOP_FIT_MAX_POINTS` per side). On noisy,
        broad measured peaks the three-point parabola (``0``) scatters by ~0.05 deg (90th percentile),
        as much as the trial-indexing tolerance; fitting the whole top averages the noise out.

    Examples
    --------
    >>> PeakParams(height_rel=0.05).to_dict()["height_rel"]
    0.05
    """

    height_rel: float = 0.01
    noise_sigmas: float = 7.0
    background_window_deg: float | None = 3.0
    smooth_sigma_deg: float = 0.015
    min_distance_deg: float = 0.05
    prominence_window_deg: float = 0.2
    ka2: str | float = "auto"
    ka2_tolerance_deg: float = 0.05
    top_fit_rel: float = 0.6

    def __post_init__(self):
        if not 0 < self.height_rel < 1:
            raise ValueError(f"height_rel must be within (0, 1), got {self.height_rel!r}")
        if self.ka2 not in ("auto", "none") and not (isinstance(self.ka2, (int, float)) and self.ka2 > 0):
            raise ValueError(f"ka2 must be 'auto', 'none' or a wavelength in angstrom, got {self.ka2!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> PeakParams:
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown peak parameter(s) {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**data)


class Peaks(NamedTuple):
    """Every detected peak of ``n_patterns`` patterns, ragged, sorted by (pattern, 2-theta).

    Attributes
    ----------
    pattern : ndarray (m,) int64
        Row of the pattern each peak belongs to.
    two_theta_deg : ndarray (m,) float64
        Sub-grid peak position (quadratic interpolation of the three top points), degrees.
    q_per_angstrom : ndarray (m,) float64
        Q = 4 pi sin(theta) / lambda at the peak, 1/angstrom.
    height : ndarray (m,) float32
        Background-subtracted smoothed height relative to the strongest peak of the pattern (max 1).
    offsets : ndarray (n_patterns + 1,) int64
        Peaks of pattern i are ``offsets[i]:offsets[i+1]``.
    """

    pattern: np.ndarray
    two_theta_deg: np.ndarray
    q_per_angstrom: np.ndarray
    height: np.ndarray
    offsets: np.ndarray

    @property
    def n_patterns(self) -> int:
        return len(self.offsets) - 1

    @property
    def count(self) -> np.ndarray:
        """Number of peaks per pattern, (n_patterns,) int64."""
        return np.diff(self.offsets)


# ------------------------------------------------------------------------------ peak finder ----
def _uniform_grid(two_theta_deg: np.ndarray, intensity: np.ndarray):
    """The grid and rows unchanged when uniform, else resampled with the median step (linear)."""
    n_points = two_theta_deg.size
    if n_points < 3:
        raise ValueError(f"a pattern needs at least 3 points; received {n_points}")
    step = (two_theta_deg[-1] - two_theta_deg[0]) / (n_points - 1)
    steps = np.diff(two_theta_deg)
    if step > 0 and np.abs(steps - step).max() <= GRID_UNIFORMITY_RTOL * step:
        return two_theta_deg, intensity, float(step)
    if np.any(steps <= 0):
        raise ValueError("two_theta_deg must be strictly increasing; received a grid that is not "
                         "(sort the pattern by angle and drop repeated angles first)")
    step = float(np.median(steps))
    grid = two_theta_deg[0] + step * np.arange(int((two_theta_deg[-1] - two_theta_deg[0]) / step) + 1)
    idx = np.searchsorted(two_theta_deg, grid, side="right").clip(1, n_points - 1)
    w = ((grid - two_theta_deg[idx - 1]) / (two_theta_deg[idx] - two_theta_deg[idx - 1])).astype(np.float32)
    resampled = intensity[:, idx - 1] * (1 - w) + intensity[:, idx] * w
    return grid, resampled, step


@functools.lru_cache(maxsize=64)
def _ka2_wavelength(wavelength_angstrom: float, ka2) -> float | None:
    if ka2 == "none":
        return None
    if ka2 != "auto":
        return float(ka2)
    for name, (w1, w2) in XRAY_LINES_ANGSTROM.items():
        if w2 is not None:
            mean = (2 * w1 + w2) / 3
            if abs(wavelength_angstrom - w1) < 2e-4 or abs(wavelength_angstrom - mean) < 4e-4:
                return w2
    single = {name[:-1]: w for name, (w, _) in XRAY_LINES_ANGSTROM.items() if name.endswith("Ka")}
    for name, w in single.items():  # "CuKa" weighted mean as given by pymatgen (1.54184)
        if abs(wavelength_angstrom - w) < 2e-4:
            return XRAY_LINES_ANGSTROM[name + "Ka12"][1]
    return None


#: Most points per side in the least-squares fit of a peak's top (:attr:`PeakParams.top_fit_rel`).
TOP_FIT_MAX_POINTS = 12


def _top_fit_shift(y, rows, cols, y0, rel, max_points, fallback):
    """Vertex offset (grid steps) of a least-squares parabola through the symmetric run of points above
    ``rel * y0`` around each peak (``fallback`` where that run is a single point or the fit is not concave).

    With a symmetric window of offsets ``o = -w..w`` the odd moments vanish, so ``y = c0 + c1 o + c2 o^2``
    solves in closed form: ``c1 = sum(o y) / sum(o^2)``, ``c2 = (S0 T2 - S2 T0) / (S0 S4 - S2^2)`` with
    ``Sk = sum(o^k)``, ``Tk = sum(o^k y)``; the vertex is ``-c1 / (2 c2)``.
    """
    last = y.shape[1] - 1
    o = np.arange(1, max_points + 1)
    left = y[rows[:, None], np.clip(cols[:, None] - o, 0, last)]
    right = y[rows[:, None], np.clip(cols[:, None] + o, 0, last)]
    thr = (rel * y0)[:, None]
    # points above the threshold, contiguous from the peak, the same number on both sides
    w = np.minimum(np.cumprod(left > thr, axis=1).sum(axis=1), np.cumprod(right > thr, axis=1).sum(axis=1))
    w = np.minimum(w, cols.clip(0, None)).clip(0, max_points)  # no wider than the points left of the peak
    inside = o[None, :] <= w[:, None]
    of = o.astype(np.float64)
    s0 = 1 + 2 * w
    s2 = 2 * (inside * of ** 2).sum(axis=1)
    s4 = 2 * (inside * of ** 4).sum(axis=1)
    t0 = y0 + (inside * (left + right)).sum(axis=1)
    t1 = (inside * of * (right - left)).sum(axis=1)
    t2 = (inside * of ** 2 * (left + right)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c2 = (s0 * t2 - s2 * t0) / (s0 * s4 - s2 ** 2)
        c1 = t1 / s2
        vertex = -c1 / (2 * c2)
    ok = (w >= 2) & (c2 < 0) & (np.abs(vertex) <= w)
    return np.where(ok, vertex, fallback)


def find_peaks(two_theta_deg, intensity, wavelength_angstrom: float, params: PeakParams | None = None,
               **peak_params) -> Peaks:
    """Detect the peaks of many patterns at once.

    Steps, all vectorised over rows: resample a non-uniform grid; NaN -> 0; subtract a rolling-minimum
    background (grey opening, ``background_window_deg``); Gaussian smoothing (``smooth_sigma_deg``); keep
    points that are the maximum within ``+-min_distance_deg``, rise strictly on the left, and exceed both
    ``height_rel`` x the row maximum and ``noise_sigmas`` x the noise; drop K-alpha2 partners; refine each
    position by a parabola through the three top points, ``x = x_i + h (y_{i-1} - y_{i+1}) /
    (2 (y_{i-1} - 2 y_i + y_{i+1}))``; Q = 4 pi sin(theta) / lambda (Bragg: Q = 2 pi / d).

    Parameters
    ----------
    two_theta_deg : array (n_points,)
        Strictly increasing 2-theta grid in degrees (any step; a non-uniform grid is resampled).
    intensity : array (n, n_points) or (n_points,)
        Intensities (any scale, per row).
    wavelength_angstrom : float
        Primary wavelength, for Q and the K-alpha2 positions.
    params : PeakParams, optional
        Tolerances; keyword arguments override single fields (``height_rel=0.02``).

    Returns
    -------
    Peaks
    """
    params = dataclasses.replace(params or PeakParams(), **peak_params)
    tt = np.asarray(two_theta_deg, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float32)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2 or y.shape[1] != tt.size:
        raise ValueError(f"intensity must have shape (n, {tt.size}) to match two_theta_deg; got {y.shape}")
    tt, y, step = _uniform_grid(tt, y)
    if not np.isfinite(y).all():
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    n, n_points = y.shape

    # Everything slow-varying (background, noise) lives on a coarse grid of ~0.1 deg blocks, and the
    # rows are padded (edge values) to a whole number of noise blocks, so each step is a reshape: a few
    # full-array passes per pattern in total.
    window = params.background_window_deg or 3.0
    bb = max(1, int(round(window / step / 30)))
    k = max(1, int(round(NOISE_BLOCK_DEG / (bb * step))))
    n_blocks = -(-n_points // (bb * k)) * k
    if n_blocks * bb > n_points:
        y = np.concatenate([y, np.repeat(y[:, -1:], n_blocks * bb - n_points, axis=1)], axis=1)

    # Local noise sigma of the raw rows (counting noise is larger where the background is high): medians
    # of |first difference| over ~0.5 deg blocks (0.954 sigma for white noise; a median ignores the steep
    # flanks of the few peaks inside a block), then a rolling median over 5 blocks so that peak-dense
    # regions borrow the noise of their neighbours.
    abs_diff = np.diff(y, axis=1, append=y[:, -1:])
    np.abs(abs_diff, out=abs_diff)
    noise = _median_last(abs_diff.reshape(n, n_blocks // k, bb * k), axis=2) / 0.954
    del abs_diff
    if noise.shape[1] >= 5:
        m = noise.shape[1]
        padded = np.concatenate([noise[:, :1], noise[:, :1], noise, noise[:, -1:], noise[:, -1:]], axis=1)
        noise = np.partition(np.stack([padded[:, i:i + m] for i in range(5)]), 2, axis=0)[2]
    if params.smooth_sigma_deg > 0 and params.smooth_sigma_deg / step >= 0.3:
        sigma_pts = params.smooth_sigma_deg / step
        y = ndimage.gaussian_filter1d(y, sigma_pts, axis=1, truncate=3.0)
        # white noise shrinks by sqrt(2 sqrt(pi) sigma) under a Gaussian kernel of sigma points
        noise = noise / math.sqrt(max(1.0, 2 * math.sqrt(math.pi) * sigma_pts))
    noise = np.repeat(noise, k, axis=1)

    if params.background_window_deg:
        size = max(3, int(round(params.background_window_deg / (step * bb))) | 1)
        blocks = y.reshape(n, n_blocks, bb)
        # The opening follows the lower envelope of the noise, about ENVELOPE_SIGMAS below its mean.
        # Constant within a 0.1 deg block: the error (slope x 0.05 deg) is far below the noise.
        base = _coarse_opening(blocks.min(axis=2), size) + ENVELOPE_SIGMAS * noise
        y = (blocks - base[:, :, None].astype(np.float32)).reshape(n, n_blocks * bb)
    y = y[:, :n_points]

    row_max = y.max(axis=1)
    inner = y[:, 1:-1]
    is_peak = inner > y[:, :-2]
    is_peak &= inner >= y[:, 2:]
    is_peak &= inner >= np.where(row_max > 0, params.height_rel * row_max, np.inf)[:, None]
    rows, cols = np.nonzero(is_peak)
    cols = cols + 1
    # Local prominence (scipy's prominence within a window): the peak must stand noise_sigmas above the
    # higher of the lowest points on its left and on its right within +-prominence_window_deg. Noise
    # wiggles on a broad hump fail it; resolved peaks pass.
    w = max(1, int(round(params.prominence_window_deg / step)))
    offsets = np.arange(1, w + 1)
    last = y.shape[1] - 1
    left = y[rows[:, None], np.clip(cols[:, None] - offsets, 0, last)].min(axis=1)
    right = y[rows[:, None], np.clip(cols[:, None] + offsets, 0, last)].min(axis=1)
    prominence = y[rows, cols] - np.maximum(left, right)
    strong = prominence >= params.noise_sigmas * noise[rows, cols // bb]
    rows, cols = rows[strong], cols[strong]
    rows, cols = _min_distance(rows, cols, y[rows, cols], max(1, int(round(params.min_distance_deg / step))))

    # Sub-grid position by quadratic interpolation through (i-1, i, i+1).
    ym, y0, yp = y[rows, cols - 1], y[rows, cols], y[rows, cols + 1]
    denom = ym - 2 * y0 + yp
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(denom < 0, 0.5 * (ym - yp) / denom, 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    if params.top_fit_rel > 0 and rows.size:
        shift = _top_fit_shift(y, rows, cols, y0, params.top_fit_rel, TOP_FIT_MAX_POINTS, shift)
    pos = tt[cols] + shift * step
    height = (y0 / row_max[rows]).astype(np.float32)

    wavelength2 = _ka2_wavelength(float(wavelength_angstrom), params.ka2)
    if wavelength2 is not None and rows.size:
        keep = _ka2_keep(rows, pos, height, wavelength_angstrom, wavelength2, params.ka2_tolerance_deg)
        rows, pos, height = rows[keep], pos[keep], height[keep]

    q = 4 * np.pi * np.sin(np.radians(pos) / 2) / float(wavelength_angstrom)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    return Peaks(rows.astype(np.int64), pos, q, height, offsets)


def _median_last(a, axis):
    """Lower median along ``axis`` (np.partition is 4x faster than np.median)."""
    k = (a.shape[axis] - 1) // 2
    return np.take(np.partition(a, k, axis=axis), k, axis=axis)


def _coarse_opening(coarse, size):
    """Grey opening (rolling minimum, then rolling maximum) along axis 1."""
    return ndimage.maximum_filter1d(ndimage.minimum_filter1d(coarse, size, axis=1), size, axis=1)


def _min_distance(rows, cols, heights, distance_pts):
    """Drop the lower of two peaks of the same row closer than ``distance_pts`` (repeat until stable)."""
    keep = np.ones(rows.size, dtype=bool)
    while True:
        r, c, h = rows[keep], cols[keep], heights[keep]
        close = (r[1:] == r[:-1]) & (c[1:] - c[:-1] < distance_pts)
        if not close.any():
            return r, c
        idx = np.flatnonzero(keep)
        left_lower = h[:-1] < h[1:]
        drop = np.concatenate([close & left_lower, [False]]) | np.concatenate([[False], close & ~left_lower])
        keep[idx[drop]] = False


def _ka2_keep(rows, pos, height, wavelength1, wavelength2, tolerance_deg):
    """Mask of peaks that are not the K-alpha2 partner of a stronger peak of the same pattern."""
    # Same d at lambda2: sin(theta2) = (lambda2 / lambda1) sin(theta1).
    s = np.sin(np.radians(pos) / 2) * (wavelength2 / wavelength1)
    partner = np.degrees(2 * np.arcsin(np.clip(s, -1, 1)))
    # Peaks are sorted by (row, position): find, for every peak, the peaks of its row near `partner`.
    key = rows * 360.0 + pos
    target = rows * 360.0 + partner
    lo = np.searchsorted(key, target - tolerance_deg, side="left")
    hi = np.searchsorted(key, target + tolerance_deg, side="right")
    keep = np.ones(rows.size, dtype=bool)
    for j in range(int((hi - lo).max(initial=0))):  # usually 0 or 1 candidate per peak
        cand = lo + j
        valid = cand < hi
        c = np.where(valid, cand, 0)
        ratio = height[c] / np.maximum(height, 1e-12)
        is_partner = valid & (c != np.arange(rows.size)) & (ratio >= 0.15) & (ratio <= 0.85)
        keep[c[is_partner]] = False
    return keep


# ------------------------------------------------------------------------------ feature blocks ----
def _first(values: np.ndarray, peaks: Peaks, k: int, order: np.ndarray | None = None) -> np.ndarray:
    """Dense (n_patterns, k) of the first k values per pattern (in ``order`` if given), MISSING-padded."""
    out = np.full((peaks.n_patterns, k), MISSING, dtype=np.float64)
    if order is not None:
        values = values[order]
    rank = np.arange(peaks.pattern.size) - peaks.offsets[peaks.pattern]
    sel = rank < k
    out[peaks.pattern[sel], rank[sel]] = values[sel]
    return out


def _block_two_theta(peaks, k):
    return _first(peaks.two_theta_deg, peaks, k), [f"two_theta_{i + 1}" for i in range(k)]


def _block_q(peaks, k):
    return _first(peaks.q_per_angstrom, peaks, k), [f"q_{i + 1}" for i in range(k)]


def _block_q2_ratio(peaks, k):
    """(Q_i / Q_1)^2 for i = 2..k: scale-free; integer ratios for cubic lattices (indexing's invariant)."""
    q = _first(peaks.q_per_angstrom, peaks, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (q[:, 1:] / q[:, :1]) ** 2
    r[(q[:, 1:] == MISSING) | (q[:, :1] == MISSING)] = MISSING
    return r, [f"q2_ratio_{i + 2}" for i in range(k - 1)]


def _block_height(peaks, k):
    return _first(peaks.height.astype(np.float64), peaks, k), [f"height_{i + 1}" for i in range(k)]


def _block_strongest_q(peaks, k):
    """Q of the k strongest peaks, strongest first (survives weak peaks lost at low angle)."""
    order = np.lexsort((-peaks.height, peaks.pattern))
    return _first(peaks.q_per_angstrom, peaks, k, order), [f"strongest_q_{i + 1}" for i in range(k)]


def _block_count(peaks, k):
    return peaks.count[:, None].astype(np.float64), ["n_peaks"]


#: Relative heights at which :func:`_block_counts` counts peaks.
COUNT_THRESHOLDS = (0.05, 0.2, 0.5)


def _block_counts(peaks, k):
    cols = [np.bincount(peaks.pattern, weights=(peaks.height >= t), minlength=peaks.n_patterns)
            for t in COUNT_THRESHOLDS]
    return np.stack(cols, axis=1), [f"n_peaks_above_{t:g}" for t in COUNT_THRESHOLDS]


#: Feature blocks: name -> function(peaks, k) -> (values (n, m) float64, column names).
BLOCKS = {
    "two_theta": _block_two_theta,
    "q": _block_q,
    "q2_ratio": _block_q2_ratio,
    "height": _block_height,
    "strongest_q": _block_strongest_q,
    "count": _block_count,
    "counts": _block_counts,
}


def _lattice_hints_block(function: str, doc: str):
    """A block computed by ``xrdbatch.lattice_hints.<function>(peaks, k)`` (imported on first use)."""
    def block(peaks, k):
        from xrdbatch import lattice_hints

        return getattr(lattice_hints, function)(peaks, k)

    block.__name__ = block.__qualname__ = f"_block_{function.removeprefix('block_')}"
    block.__doc__ = doc + " (:mod:`xrdbatch.lattice_hints`)."
    return block


for _name, _doc in (
        ("lattice_hints", "Trial-indexing excess matches for cubic, tetragonal, hexagonal cells"),
        ("density", "Log peak density per estimated cell volume"),
        ("low_symmetry", "Orthorhombic / monoclinic trial indexing, fit quality, centrings"),
        ("centring", "Centring / screw conditions of the cubic, tetragonal, hexagonal cells"),
        ("ratios", "Scale-free 1/d^2 ratios: pairs at small fractions, strongest lines over the first line"),
        ("fractions", "Excess of 1/d^2 pair ratios at fractions by denominator"),
        ("refined", "Cubic / tetragonal / hexagonal trial indexing refined with a zero-shift term"),
        ("consensus", "Refined cubic/tetragonal/hexagonal + orthorhombic/monoclinic indexing and their differences"),
        ("consensus_centring", "consensus + centring from one cubic/tetragonal/hexagonal trial-cell scan"),
        ("consensus_triples", "consensus_centring + the orthorhombic cell of a search over line triples")):
    BLOCKS[_name] = _lattice_hints_block(f"block_{_name}", _doc)
del _name, _doc


@dataclass(frozen=True)
class FeatureSpec:
    """An ordered list of ``(block, k)`` pairs; see :data:`BLOCKS`."""

    blocks: tuple
    description: str = ""

    @property
    def names(self) -> list[str]:
        empty = Peaks(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.float32),
                      np.zeros(1, np.int64))
        return [name for block, k in self.blocks for name in BLOCKS[block](empty, k)[1]]

    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def uses_wavelength(self) -> bool:
        """True when the set is in Q (a model can then serve other wavelengths), False for 2-theta."""
        return not any(block == "two_theta" for block, _ in self.blocks)


#: Named feature sets. ``seed11`` is the seed's recipe and stays as the baseline.
FEATURE_SETS: dict[str, FeatureSpec] = {
    "seed11": FeatureSpec((("two_theta", 10), ("count", 1)),
                          "the seed's 11: first 10 peak positions in 2-theta (deg) + peak count"),
    "q11": FeatureSpec((("q", 10), ("count", 1)),
                       "first 10 peak positions in Q (1/angstrom) + peak count; wavelength-independent"),
    "rich": FeatureSpec((("q", 20), ("q2_ratio", 10), ("height", 10), ("strongest_q", 5), ("count", 1),
                         ("counts", 1)),
                        "first 20 Q, squared Q ratios, heights, Q of the 5 strongest, counts at thresholds"),
    "measured": FeatureSpec((("q", 20), ("q2_ratio", 10), ("height", 10), ("strongest_q", 10), ("count", 1),
                             ("counts", 1), ("lattice_hints", 1), ("density", 1)),
                            "rich + Q of the 10 strongest, trial-indexing scores (cubic/tetragonal/hexagonal) and "
                            "peak density per estimated cell volume: for measured patterns"),
    "indexed": FeatureSpec((("q", 20), ("q2_ratio", 10), ("height", 10), ("strongest_q", 10), ("count", 1),
                            ("counts", 1), ("lattice_hints", 1), ("density", 1), ("low_symmetry", 1),
                            ("centring", 1), ("ratios", 1)),
                           "measured + orthorhombic/monoclinic trial indexing (excess over chance, M20-like fit, "
                           "fitted volume against peak density, centring/glide excesses), centring of the cubic/"
                           "tetragonal/hexagonal cells, scale-free 1/d^2 ratio features"),
    "indexed2": FeatureSpec((("q", 20), ("q2_ratio", 10), ("height", 10), ("strongest_q", 10), ("count", 1),
                             ("counts", 1), ("lattice_hints", 1), ("density", 1), ("low_symmetry", 1),
                             ("centring", 1), ("ratios", 1), ("fractions", 1)),
                            "indexed + excess of 1/d^2 pair ratios at fractions by denominator (integers, halves, "
                            "thirds, quarters, eighths), over the first 15 and over the 12 strongest peaks"),
    "indexed3": FeatureSpec((("q", 20), ("q2_ratio", 10), ("height", 10), ("strongest_q", 10), ("count", 1),
                             ("counts", 1), ("density", 1), ("consensus_centring", 1), ("ratios", 1)),
                            "indexed with the cubic/tetragonal/hexagonal trial cells refined with a zero-shift term "
                            "(replacing the unrefined scores), and differences of the excess matches between crystal "
                            "systems (the simplest cell that explains the lines)"),
    "indexed4": FeatureSpec((("q", 20), ("q2_ratio", 10), ("height", 10), ("strongest_q", 10), ("count", 1),
                             ("counts", 1), ("density", 1), ("consensus_triples", 1), ("ratios", 1)),
                            "indexed3 + the best orthorhombic cell of a TREOR-like search (three low lines given "
                            "small indices, refined with a zero shift): excess, matched fraction, axis ratios, "
                            "zero shift, and its excess against the monoclinic and tetragonal/hexagonal ones"),
}


def get_feature_spec(feature_set: str) -> FeatureSpec:
    try:
        return FEATURE_SETS[feature_set]
    except KeyError:
        raise ValueError(f"unknown feature set {feature_set!r}; valid: {sorted(FEATURE_SETS)}") from None


def feature_names(feature_set: str) -> list[str]:
    """Column names of a feature set, in order."""
    return get_feature_spec(feature_set).names


def from_peaks(peaks: Peaks, feature_set: str = "seed11") -> np.ndarray:
    """Dense features ``(n_patterns, n_features)`` float32 of a named set from a :class:`Peaks` table."""
    return from_peaks_many(peaks, [feature_set])[feature_set]


def shift_peaks(peaks: Peaks, offset_deg: float, wavelength_angstrom: float) -> Peaks:
    """The same peaks moved by ``offset_deg`` of 2-theta (Q recomputed): what a zero error of ``offset_deg``
    would have measured. Used to average predictions over zero shifts (:func:`shifted_views`).

    Examples
    --------
    >>> p = Peaks(np.array([0]), np.array([30.0]), np.array([2.1]), np.array([1.0], np.float32), np.array([0, 1]))
    >>> round(float(shift_peaks(p, -0.5, 1.5406).two_theta_deg[0]), 3)
    29.5
    """
    pos = peaks.two_theta_deg + float(offset_deg)
    q = 4 * np.pi * np.sin(np.radians(pos) / 2) / float(wavelength_angstrom)
    return peaks._replace(two_theta_deg=pos, q_per_angstrom=q)


def shift_offsets(max_deg: float, n_views: int = 7) -> np.ndarray:
    """``n_views`` (odd) zero-shift offsets evenly spread over ``[-max_deg, +max_deg]``, 0 in the middle.
    ``max_deg`` 0 or ``n_views`` 1 gives ``[0]`` (no averaging).

    >>> shift_offsets(0.06, 7).round(3).tolist()
    [-0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06]
    """
    if max_deg < 0 or n_views < 1 or n_views % 2 == 0:
        raise ValueError(f"shift averaging needs max_deg >= 0 and an odd number of views (the unshifted peak list "
                         f"in the middle); got max_deg {max_deg!r}, views {n_views!r}")
    if max_deg == 0 or n_views == 1:
        return np.zeros(1)
    return np.linspace(-max_deg, max_deg, int(n_views))


def shifted_views(peaks: Peaks, feature_set: str, wavelength_angstrom: float, offsets_deg) -> list[np.ndarray]:
    """Features of ``peaks`` moved by each non-zero offset of ``offsets_deg`` (test-time averaging over the zero
    error, issue 8); the unshifted features are the caller's own ``from_peaks(peaks, feature_set)``.

    Measured patterns carry a zero shift of a few hundredths of a degree that trial indexing cannot always
    absorb; the model's probabilities averaged over a few shifted copies of the peak list are steadier than
    those of one copy. Session 4 (``bench/results/session4``): 7 offsets over +-0.06 deg took held-out simulated
    accuracy 52.6 -> 55.2 % and RRUFF 56.2 -> 58.7 %; 3 offsets over +-0.04 deg 54.8 and 57.9 %.
    """
    return [from_peaks(shift_peaks(peaks, o, wavelength_angstrom), feature_set)
            for o in np.asarray(offsets_deg, dtype=np.float64) if o != 0]


def from_peaks_many(peaks: Peaks, feature_sets) -> dict:
    """``{set: features (n_patterns, n_features) float32}`` of several sets, each ``(block, k)`` computed once.

    The sets share blocks (``indexed`` contains all of ``measured``; the trial-indexing blocks cost ~1-2 ms
    per pattern), so computing several sets of the same peaks through here costs the union of their blocks.
    """
    specs = {name: get_feature_spec(name) for name in feature_sets}
    done: dict = {}
    out = {}
    for name, spec in specs.items():
        cols = []
        for block, k in spec.blocks:
            if (block, k) not in done:
                done[(block, k)] = BLOCKS[block](peaks, k)[0]
            cols.append(done[(block, k)])
        out[name] = np.concatenate(cols, axis=1).astype(np.float32)
    return out


def extract(two_theta_deg, intensity, wavelength_angstrom: float, feature_set: str = "seed11",
            **peak_params) -> np.ndarray:
    """Features of patterns: :func:`find_peaks` then the blocks of ``feature_set``.

    Parameters
    ----------
    two_theta_deg : array (n_points,)
        2-theta grid in degrees (simulated or measured; any range and step).
    intensity : array (n, n_points) or (n_points,)
        Patterns (any scale).
    wavelength_angstrom : float
        Primary wavelength in angstrom (for Q and K-alpha2 suppression).
    feature_set : str
        A key of :data:`FEATURE_SETS`.
    **peak_params
        Fields of :class:`PeakParams` (``height_rel``, ``background_window_deg``, ...).

    Returns
    -------
    ndarray (n, n_features) float32
        Missing peaks are :data:`MISSING`.

    Examples
    --------
    >>> tt = np.arange(5, 90, 0.02)
    >>> y = np.exp(-0.5 * ((tt - 30.0) / 0.04) ** 2) + 0.5 * np.exp(-0.5 * ((tt - 45.0) / 0.04) ** 2)
    >>> x = extract(tt, y, 1.54184)
    >>> x.shape, np.round(x[0, :3], 2).tolist(), float(x[0, -1])
    ((1, 11), [30.0, 45.0, -1.0], 2.0)
    """
    spec = get_feature_spec(feature_set)  # fail before any work on an unknown name
    del spec
    return from_peaks(find_peaks(two_theta_deg, intensity, wavelength_angstrom, **peak_params), feature_set)


# ------------------------------------------------------------------------------ store (Dask) ----
#: Peaks kept per structure in the store's (structure, peak) variables.
STORE_N_PEAKS = 30


def _chunk_features(intensity, two_theta_deg, wavelength_angstrom, peak_params, feature_sets, n_peaks):
    """Everything written for one chunk of structures (a pure function of its inputs)."""
    peaks = find_peaks(two_theta_deg, np.asarray(intensity), wavelength_angstrom, **peak_params)
    out = {
        "peak_two_theta": _first(peaks.two_theta_deg, peaks, n_peaks).astype(np.float32),
        "peak_q": _first(peaks.q_per_angstrom, peaks, n_peaks).astype(np.float32),
        "peak_height": _first(peaks.height.astype(np.float64), peaks, n_peaks).astype(np.float32),
        "peak_count": peaks.count.astype(np.int32),
    }
    for name, X in from_peaks_many(peaks, feature_sets).items():
        out[f"features_{name}"] = X
    return out


def features_to_store(store_path, feature_sets=None, peak_params: dict | None = None, client=None,
                      n_peaks: int = STORE_N_PEAKS) -> dict:
    """Compute peaks and feature sets of every pattern of a store and write them into it, chunk by chunk.

    Writes ``peak_two_theta``, ``peak_q``, ``peak_height`` over (structure, peak), ``peak_count`` over
    (structure,), and ``features_<set>`` over (structure, feature_<set>) with the column names as the
    ``feature_names`` attribute (JSON); the peak parameters are stored in each variable's attrs (JSON). The
    template is written once (metadata only), then every Dask task computes one ``intensity`` chunk and
    writes its own region, so a rerun simply overwrites the same regions.

    Parameters
    ----------
    store_path : str or Path
        A Zarr store written by ``xrdbatch simulate`` (``intensity`` over (structure, two_theta)).
    feature_sets : list of str, optional
        Keys of :data:`FEATURE_SETS` (default: all).
    peak_params : dict, optional
        :class:`PeakParams` fields.
    client : distributed.Client, optional
        Runs the chunks on this cluster; default the local threaded scheduler.

    Returns
    -------
    dict
        Summary: n_structures, n_chunks, feature_sets, peak_params, median peak count.
    """
    import dask
    import dask.array as da
    import xarray as xr

    feature_sets = list(feature_sets or FEATURE_SETS)
    for name in feature_sets:
        get_feature_spec(name)
    params = PeakParams.from_dict(peak_params)
    from xrdbatch import store as xstore

    ds = xstore.open_dataset(store_path)
    if "intensity" not in ds:
        raise ValueError(f"{store_path}: no 'intensity' variable; expected a store written by xrdbatch simulate")
    wavelength = xstore.read_conditions(store_path).wavelength_angstrom
    tt = ds["two_theta"].values.astype(np.float64)
    intensity = ds["intensity"].data
    if intensity.chunks[1] != (intensity.shape[1],):
        intensity = intensity.rechunk({1: -1})
    n_struct = intensity.shape[0]
    chunks = intensity.chunks[0]
    attrs = {"peak_params": json.dumps(params.to_dict(), sort_keys=True), "missing_sentinel": MISSING,
             "wavelength_angstrom": wavelength}

    # Template (metadata only), then region writes per chunk.
    template = {}
    def _empty(shape, dtype, chunk_shape):
        return da.zeros(shape, dtype=dtype, chunks=chunk_shape)
    for var in ("peak_two_theta", "peak_q", "peak_height"):
        template[var] = (("structure", "peak"), _empty((n_struct, n_peaks), np.float32, (chunks, n_peaks)),
                         {**attrs, "units": {"peak_two_theta": "degree", "peak_q": "1/angstrom",
                                             "peak_height": "relative"}[var]})
    template["peak_count"] = (("structure",), _empty((n_struct,), np.int32, (chunks,)), attrs)
    coords = {}
    for name in feature_sets:
        names = feature_names(name)
        dim = f"feature_{name}"
        template[f"features_{name}"] = ((("structure", dim)),
                                        _empty((n_struct, len(names)), np.float32, (chunks, len(names))),
                                        {**attrs, "feature_set": name, "feature_names": json.dumps(names),
                                         "description": FEATURE_SETS[name].description})
    tmpl = xr.Dataset({k: xr.Variable(dims, data, attrs=a) for k, (dims, data, a) in template.items()},
                      coords=coords, attrs=dict(ds.attrs))  # to_zarr(mode="a") rewrites the root attrs
    tmpl.to_zarr(store_path, mode="a", compute=False, consolidated=False)

    starts = np.concatenate([[0], np.cumsum(chunks)])
    blocks = intensity.to_delayed().ravel()

    @dask.delayed
    def _write(block, start, stop):
        result = _chunk_features(block, tt, wavelength, params.to_dict(), feature_sets, n_peaks)
        region_ds = xr.Dataset({k: (template[k][0], v) for k, v in result.items()})
        region_ds.to_zarr(store_path, mode="r+", region={"structure": slice(int(start), int(stop))},
                          consolidated=False)
        return int(np.median(result["peak_count"])) if stop > start else 0

    tasks = [_write(b, starts[i], starts[i + 1]) for i, b in enumerate(blocks)]
    if client is not None:
        medians = client.gather(client.compute(tasks))
    else:
        medians = dask.compute(*tasks)
    return {"store": str(store_path), "n_structures": int(n_struct), "n_chunks": len(chunks),
            "feature_sets": feature_sets, "peak_params": params.to_dict(),
            "median_peak_count": float(np.median(medians)) if medians else 0.0}


def read_features(store_path, feature_set: str):
    """``(X float32 (n, n_features), feature names, peak params dict, dataset)`` from a store.

    Raises a ValueError that names the command to run when the features were not written yet.
    """
    from xrdbatch import store as xstore

    ds = xstore.open_dataset(store_path)
    var = f"features_{feature_set}"
    if var not in ds:
        raise ValueError(f"{store_path}: no {var!r} variable; run `xrdbatch features --store {store_path} "
                         f"--feature-set {feature_set}` first (found: "
                         f"{sorted(v for v in ds.data_vars if v.startswith('features_'))})")
    X = ds[var].values.astype(np.float32)
    return X, json.loads(ds[var].attrs["feature_names"]), json.loads(ds[var].attrs["peak_params"]), ds

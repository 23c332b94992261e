"""Simulation that looks like a measurement: condition-free reflections -> noisy, imperfect patterns.

A model trained on ideal simulations meets measured patterns whose peaks are broadened, shifted,
re-weighted, partly lost in counting noise and mixed with a background and with impurity lines. This
module draws those effects per pattern, seeded and recorded, and renders them from the stored
:class:`~xrdbatch.simulate.Reflections` (``d``, ``|F|^2 m``, representative ``hkl``), so one store of
reflections gives any number of measurement-like copies without re-simulating structure factors.

How the parts fit:

1. :class:`AugmentParams` (frozen, JSON round-trip) holds the *ranges* of every effect; it is what a
   store's attrs and a model manifest record, together with the seed.
2. :func:`draw` turns ``(params, seed, pattern index, copy)`` into one row of concrete values (a
   pure function of its arguments: pattern ``i`` of copy ``c`` of seed ``s`` uses
   ``numpy.random.default_rng((s, c, i))``, whatever the chunking), returned as a DataFrame row.
3. :func:`line_list` applies the geometry and the sample effects to the reflections of one pattern:

   * **lattice strain** (element substitution, temperature, solid solutions): the reciprocal metric
     ``G*`` is recovered from ``(hkl, 1/d^2)`` by least squares (:func:`reciprocal_metric`) and scaled
     per axis, ``G*' = S^-1 G* S^-1`` with ``S = diag(s_a, s_b, s_c)``; axes of equal length share one
     factor, so the symmetry (and the multiplicities) are kept;
   * **thermal motion** (an overall Debye-Waller factor, for structures stored without displacement
     parameters or with too small ones): ``I' = I exp(-B / (2 d^2))`` (``exp(-2 B s^2)``, ``s = 1 / (2 d)``);
   * **intensity jitter** (a stand-in for substituted elements, occupancies, absorption):
     ``I' = I exp(N(0, sigma))`` per reflection;
   * **preferred orientation** (March-Dollase): ``P(alpha) = (r^2 cos^2 alpha + sin^2 alpha / r)^(-3/2)``
     with ``alpha`` the angle between the diffraction vector of the representative ``hkl`` and a
     low-index preferred direction (Dollase, J. Appl. Cryst. 19, 267 (1986));
   * **Bragg's law** for K-alpha1 and K-alpha2 (ratio drawn), Lorentz-polarisation
     ``(1 + cos^2 2theta) / (sin^2 theta cos theta)``;
   * **peak width**: instrument (Caglioti, ``H^2 = U tan^2 theta + V tan theta + W``) combined in quadrature
     with crystallite size (Scherrer, ``beta = K lambda / (L cos theta)``, ``K = 0.9``) and microstrain
     (``beta = 4 epsilon tan theta``);
   * **zero shift** and **sample displacement** ``delta 2theta = -2 (s / R) cos theta`` (radians);
   * **detection limit**: lines weaker than a drawn fraction of the strongest are dropped;
   * **impurity lines**: a Poisson number of extra lines at random angles and small relative intensity.

4. :func:`render` spreads the lines with a pseudo-Voigt (a numba kernel, one pass over all patterns),
   then :func:`measure` adds a **background** (constant + low-angle decay + amorphous hump), applies
   **counting noise** (Poisson at a drawn peak count), optionally subtracts a smooth background estimate
   and clips at zero (as data reduction does), and rescales each row to a maximum of 1.
5. :func:`measured_patterns` = all of it for a list of reflections: ``(patterns, record)``.

Numbers only (numpy + a numba kernel); no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from numba import njit

from xrdbatch.conditions import Conditions

#: Scherrer shape constant (spherical crystallites, FWHM definition).
SCHERRER_K = 0.9

#: Low-index directions a platy or needle-like habit prefers (March-Dollase axis candidates).
PREFERRED_DIRECTIONS = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1], [0, 1, 1]],
                                dtype=np.float64)

#: Half-width of the rendered window of a line, in FWHM (a Lorentzian is at 0.4 % of its height there).
WINDOW_FWHM = 8.0


@dataclass(frozen=True)
class AugmentParams:
    """Ranges of the measurement effects (each drawn per pattern; ``(low, high)`` pairs, uniform unless
    the name says ``log``). Set a probability to 0 or a range to ``(0, 0)`` to switch an effect off.

    Parameters
    ----------
    strain_rel : float
        Per-axis lattice scale factors ``1 + U(-strain_rel, strain_rel)`` (tied for equal axes).
    intensity_log_sigma : float
        Log-normal jitter of every reflection's intensity.
    thermal_b_angstrom2 : (float, float)
        Overall isotropic displacement ``B`` (angstrom^2) applied to every line as ``exp(-B / (2 d^2))``.
    caglioti_u_deg2, caglioti_w_deg2 : (float, float)
        Instrument width ranges (V is 0), degrees^2.
    crystallite_nm_log : (float, float)
        Crystallite size, log-uniform, nanometres (Scherrer).
    microstrain : (float, float)
        Microstrain epsilon (``beta = 4 epsilon tan theta``).
    eta : (float, float)
        Lorentzian fraction of the pseudo-Voigt.
    ka2_ratio : (float, float)
        K-alpha2 / K-alpha1 intensity when the conditions have a K-alpha2 line.
    zero_shift_deg : float
        Zero error ``U(-z, z)``, degrees 2-theta.
    displacement_rel : float
        Sample displacement over goniometer radius ``s/R ~ U(-x, x)``.
    preferred_orientation_p : float
        Probability that a pattern has preferred orientation.
    march_dollase_r : (float, float)
        March-Dollase ``r`` (drawn log-uniformly; < 1 plates, > 1 needles).
    detection_rel_log : (float, float)
        Lines below this fraction of the strongest are lost (log-uniform).
    impurity_mean : float
        Mean number of impurity lines (Poisson).
    impurity_rel : (float, float)
        Relative area of an impurity line (to the strongest line).
    background_rel_log : (float, float)
        Background level relative to the strongest peak height (log-uniform).
    counts_log : (float, float)
        Counts at the strongest peak (log-uniform; Poisson noise); ``(0, 0)`` = noise-free.
    background_subtracted_p : float
        Probability that the background is subtracted (and the row clipped at zero) after counting.
    quantize_levels : int
        Round the final row (max 1) to ``1 / quantize_levels`` (measured files are often integers of a
        0-1000 scale); 0 = no rounding.
    """

    strain_rel: float = 0.03
    intensity_log_sigma: float = 0.35
    thermal_b_angstrom2: tuple = (0.0, 0.0)
    caglioti_u_deg2: tuple = (0.0, 0.02)
    caglioti_w_deg2: tuple = (0.001, 0.012)
    crystallite_nm_log: tuple = (30.0, 500.0)
    microstrain: tuple = (0.0, 0.002)
    eta: tuple = (0.1, 0.9)
    ka2_ratio: tuple = (0.45, 0.55)
    zero_shift_deg: float = 0.06
    displacement_rel: float = 0.0006
    preferred_orientation_p: float = 0.5
    march_dollase_r: tuple = (0.5, 1.6)
    detection_rel_log: tuple = (0.001, 0.02)
    impurity_mean: float = 1.0
    impurity_rel: tuple = (0.01, 0.12)
    background_rel_log: tuple = (0.003, 0.08)
    counts_log: tuple = (40.0, 20000.0)
    background_subtracted_p: float = 0.5
    quantize_levels: int = 1000

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict | None) -> AugmentParams:
        data = dict(data or {})
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise ValueError(f"unknown augmentation parameter(s) {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})

    @classmethod
    def from_json(cls, text: str) -> AugmentParams:
        return cls.from_dict(json.loads(text))

    def without(self, *effects: str) -> AugmentParams:
        """A copy with the named effects (keys of :data:`EFFECTS`) switched off (for ablations)."""
        changes = {}
        for effect in effects:
            if effect not in EFFECTS:
                raise ValueError(f"unknown effect {effect!r}; valid: {sorted(EFFECTS)}")
            changes.update(EFFECTS[effect])
        return dataclasses.replace(self, **changes)


#: Effects by name -> the parameter values that switch them off (used by ablations and the CLI).
EFFECTS: dict[str, dict] = {
    "strain": {"strain_rel": 0.0},
    "intensity": {"intensity_log_sigma": 0.0},
    "thermal": {"thermal_b_angstrom2": (0.0, 0.0)},
    "width": {"caglioti_u_deg2": (0.0, 0.0), "caglioti_w_deg2": (0.01, 0.01), "crystallite_nm_log": (1e9, 1e9),
              "microstrain": (0.0, 0.0), "eta": (0.5, 0.5)},
    "shift": {"zero_shift_deg": 0.0, "displacement_rel": 0.0},
    "preferred_orientation": {"preferred_orientation_p": 0.0},
    "detection": {"detection_rel_log": (1e-9, 1e-9)},
    "impurity": {"impurity_mean": 0.0},
    "background": {"background_rel_log": (1e-9, 1e-9), "background_subtracted_p": 0.0},
    "noise": {"counts_log": (0.0, 0.0), "quantize_levels": 0},
}

#: Parameters that switch every effect off: the ideal simulation (clean reference for tests and ablations).
IDEAL = AugmentParams().without(*EFFECTS)


def _uniform(rng, pair):
    lo, hi = pair
    return float(lo) if hi <= lo else float(rng.uniform(lo, hi))


def _log_uniform(rng, pair):
    lo, hi = pair
    if lo <= 0 or hi <= 0:
        return 0.0
    return float(lo) if hi <= lo else float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw(params: AugmentParams, seed: int, index: int, copy: int = 0) -> dict:
    """Concrete effect values of pattern ``index`` of ``copy`` (a pure function of its arguments).

    Returns a dict of scalars (plus ``strain`` (3,) and ``direction`` (3,)); :func:`measured_patterns`
    records them as the columns of its record table.
    """
    rng = np.random.default_rng((int(seed), int(copy), int(index)))
    p = params
    po = rng.random() < p.preferred_orientation_p
    return {
        "noise_seed": int(rng.integers(0, 2**63 - 1)),
        "strain": 1.0 + rng.uniform(-p.strain_rel, p.strain_rel, size=3) if p.strain_rel > 0 else np.ones(3),
        "intensity_log_sigma": float(p.intensity_log_sigma),
        "caglioti_u_deg2": _uniform(rng, p.caglioti_u_deg2),
        "caglioti_w_deg2": _uniform(rng, p.caglioti_w_deg2),
        "crystallite_nm": _log_uniform(rng, p.crystallite_nm_log),
        "microstrain": _uniform(rng, p.microstrain),
        "eta": _uniform(rng, p.eta),
        "ka2_ratio": _uniform(rng, p.ka2_ratio),
        "zero_shift_deg": float(rng.uniform(-p.zero_shift_deg, p.zero_shift_deg)) if p.zero_shift_deg > 0 else 0.0,
        "displacement_rel": (float(rng.uniform(-p.displacement_rel, p.displacement_rel))
                             if p.displacement_rel > 0 else 0.0),
        "march_dollase_r": _log_uniform(rng, p.march_dollase_r) if po else 1.0,
        "direction": PREFERRED_DIRECTIONS[rng.integers(len(PREFERRED_DIRECTIONS))],
        "detection_rel": _log_uniform(rng, p.detection_rel_log),
        "n_impurity": int(rng.poisson(p.impurity_mean)) if p.impurity_mean > 0 else 0,
        "background_rel": _log_uniform(rng, p.background_rel_log),
        "background_decay_deg": float(rng.uniform(3.0, 20.0)),
        "background_hump_deg": float(rng.uniform(15.0, 35.0)),
        "background_mix": rng.dirichlet([1.0, 1.0, 1.0]),
        "counts": _log_uniform(rng, p.counts_log),
        "background_subtracted": bool(rng.random() < p.background_subtracted_p),
        "quantize_levels": int(p.quantize_levels),
        # drawn last: adding it left every other value of a (seed, copy, index) as it was
        "thermal_b": _uniform(rng, p.thermal_b_angstrom2),
    }


# ------------------------------------------------------------------------------ geometry ----
def reciprocal_metric(d_angstrom, hkl) -> np.ndarray:
    """The reciprocal metric tensor ``G*`` (3, 3) with ``1/d^2 = h^T G* h``, fitted to the reflections.

    Six unknowns (``G*`` is symmetric), solved by least squares from every ``(hkl, 1/d^2)`` pair; exact for
    reflections computed from one lattice. Returns NaNs when the hkl do not span the six terms
    (fewer than six independent reflections).

    >>> import numpy as np
    >>> hkl = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]])
    >>> d = 1 / np.sqrt((hkl ** 2 / np.array([4.0, 5.0, 6.0]) ** 2).sum(1))
    >>> np.round(1 / np.sqrt(np.diag(reciprocal_metric(d, hkl))), 6).tolist()
    [4.0, 5.0, 6.0]
    """
    h = np.asarray(hkl, dtype=np.float64)
    y = 1.0 / np.asarray(d_angstrom, dtype=np.float64) ** 2
    A = np.stack([h[:, 0] ** 2, h[:, 1] ** 2, h[:, 2] ** 2, 2 * h[:, 0] * h[:, 1], 2 * h[:, 0] * h[:, 2],
                  2 * h[:, 1] * h[:, 2]], axis=1)
    if len(y) < 6 or np.linalg.matrix_rank(A) < 6:
        return np.full((3, 3), np.nan)
    g = np.linalg.lstsq(A, y, rcond=None)[0]
    return np.array([[g[0], g[3], g[4]], [g[3], g[1], g[5]], [g[4], g[5], g[2]]])


def _tied_strain(gs: np.ndarray, strain: np.ndarray, rel_tol: float = 1e-4) -> np.ndarray:
    """Per-axis scale factors where axes of equal reciprocal length share the first one's factor."""
    s = np.array(strain, dtype=np.float64)
    diag = np.diag(gs)
    for i in range(3):
        for j in range(i):
            if abs(diag[i] - diag[j]) <= rel_tol * max(diag[i], diag[j]):
                s[i] = s[j]
                break
    return s


def line_list(refl, conditions: Conditions, draws: dict, rng: np.random.Generator):
    """Observed lines of one pattern: ``(two_theta_deg (k,), fwhm_deg (k,), area (k,))``.

    Applies strain, intensity jitter, March-Dollase, Bragg's law for every wavelength line with its
    ratio, Lorentz-polarisation, zero shift and displacement, widths, the detection limit and impurity
    lines (see the module docstring for the formulas).
    """
    d = np.asarray(refl.d_angstrom, dtype=np.float64)
    inten = np.asarray(refl.intensity, dtype=np.float64)
    hkl = np.asarray(refl.hkl, dtype=np.float64)
    empty = (np.zeros(0), np.zeros(0), np.zeros(0))
    if d.size == 0:
        return empty
    gs = None
    need_metric = np.any(draws["strain"] != 1.0) or draws["march_dollase_r"] != 1.0
    if need_metric:
        gs = reciprocal_metric(d, hkl)
        if not np.all(np.isfinite(gs)):
            gs = None
    if gs is not None and np.any(draws["strain"] != 1.0):
        s = 1.0 / _tied_strain(gs, draws["strain"])
        gs = gs * np.outer(s, s)
        inv_d2 = np.einsum("ni,ij,nj->n", hkl, gs, hkl)
        ok = inv_d2 > 0
        d = np.where(ok, 1.0 / np.sqrt(np.abs(inv_d2) + 1e-300), d)
    if draws["thermal_b"] > 0:
        inten = inten * np.exp(-draws["thermal_b"] / (2.0 * d * d))
    if draws["intensity_log_sigma"] > 0:
        inten = inten * np.exp(rng.normal(0.0, draws["intensity_log_sigma"], size=inten.size))
    if gs is not None and draws["march_dollase_r"] != 1.0:
        h0 = draws["direction"]
        # angle between the diffraction vectors g(hkl) and g(h0) through the reciprocal metric
        num = hkl @ gs @ h0
        norm = np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", hkl, gs, hkl), 1e-300)) * math.sqrt(max(h0 @ gs @ h0, 1e-300))
        cos2 = np.clip((num / norm) ** 2, 0.0, 1.0)
        r = draws["march_dollase_r"]
        inten = inten * (r * r * cos2 + (1.0 - cos2) / r) ** -1.5

    c = conditions
    lines = [(c.wavelength_angstrom, 1.0)]
    if c.wavelength2_angstrom:
        lines.append((c.wavelength2_angstrom, draws["ka2_ratio"]))
    tt_all, area_all = [], []
    for lam, weight in lines:
        s = lam / (2.0 * d)
        ok = s < 1.0
        theta = np.arcsin(s[ok])
        cos2t = np.cos(2 * theta) ** 2
        lp = (1.0 + cos2t) / (np.sin(theta) ** 2 * np.cos(theta))
        tt_all.append(np.degrees(2 * theta))
        area_all.append(weight * inten[ok] * lp)
    tt = np.concatenate(tt_all)
    area = np.concatenate(area_all)
    if tt.size == 0:
        return empty
    theta = np.radians(tt / 2)
    tt = tt + draws["zero_shift_deg"] - np.degrees(2 * draws["displacement_rel"] * np.cos(theta))
    lo, hi = c.two_theta_min_deg, c.two_theta_max_deg
    inside = (tt > lo - 1.0) & (tt < hi + 1.0)
    tt, area, theta = tt[inside], area[inside], theta[inside]
    if tt.size == 0:
        return empty
    strongest = area.max()
    keep = area >= draws["detection_rel"] * strongest
    tt, area, theta = tt[keep], area[keep], theta[keep]
    n_imp = draws["n_impurity"]
    if n_imp:
        tt = np.concatenate([tt, rng.uniform(lo, hi, size=n_imp)])
        theta = np.radians(tt / 2)
        area = np.concatenate([area, strongest * rng.uniform(*draws.get("impurity_rel", (0.01, 0.12)), size=n_imp)])
    fwhm = _fwhm_deg(theta, c.wavelength_angstrom, draws)
    return tt, fwhm, area


def _fwhm_deg(theta, wavelength_angstrom, draws):
    """Instrument (Caglioti) and sample (Scherrer size, microstrain) widths combined in quadrature."""
    tan = np.tan(theta)
    h2 = draws["caglioti_u_deg2"] * tan ** 2 + draws["caglioti_w_deg2"]
    size_nm = draws["crystallite_nm"]
    beta = 4.0 * draws["microstrain"] * tan
    if size_nm > 0 and np.isfinite(size_nm):
        beta = beta + SCHERRER_K * wavelength_angstrom / (size_nm * 10.0 * np.cos(theta))
    return np.sqrt(np.maximum(h2, 1e-8) + np.degrees(beta) ** 2)


# ------------------------------------------------------------------------------ rendering ----
@njit(cache=True, nogil=True)
def _render_kernel(center, fwhm, area, offsets, eta, tt0, step, window, out):
    n_points = out.shape[1]
    ln2 = math.log(2.0)
    g_norm0 = 2.0 * math.sqrt(ln2 / math.pi)
    for p in range(out.shape[0]):
        e = eta[p]
        for j in range(offsets[p], offsets[p + 1]):
            c = center[j]
            h = fwhm[j]
            a = area[j]
            lo = int(math.ceil((c - window * h - tt0) / step))
            hi = int(math.floor((c + window * h - tt0) / step))
            if lo < 0:
                lo = 0
            if hi > n_points - 1:
                hi = n_points - 1
            g = a * (1.0 - e) * g_norm0 / h
            lz = a * e * 2.0 / (math.pi * h)
            inv = 4.0 / (h * h)
            for i in range(lo, hi + 1):
                x = tt0 + i * step - c
                x2 = x * x * inv
                out[p, i] += g * math.exp(-ln2 * x2) + lz / (1.0 + x2)


def render(lines: Sequence[tuple], conditions: Conditions, eta) -> np.ndarray:
    """Pseudo-Voigt patterns ``(n, n_points)`` float64 (unscaled) from per-pattern line lists.

    ``lines[i] = (two_theta_deg, fwhm_deg, area)`` of pattern ``i``; ``eta[i]`` its Lorentzian fraction.
    Each line is ``area x (eta L(x) + (1 - eta) G(x))`` with area-normalised L and G of FWHM ``fwhm``.
    """
    counts = np.array([len(t[0]) for t in lines], dtype=np.int64)
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    cat = (lambda k: np.ascontiguousarray(np.concatenate([t[k] for t in lines]) if len(lines) else np.zeros(0),
                                          dtype=np.float64))
    out = np.zeros((len(lines), conditions.n_points))
    _render_kernel(cat(0), cat(1), cat(2), offsets, np.asarray(eta, dtype=np.float64),
                   float(conditions.two_theta_min_deg), float(conditions.two_theta_step_deg), WINDOW_FWHM, out)
    return out


def _background(tt, draws):
    """Smooth background shape (max ~1): constant, decay from the low-angle end, amorphous hump."""
    w = draws["background_mix"]
    decay = np.exp(-(tt - tt[0]) / draws["background_decay_deg"])
    hump = np.exp(-0.5 * ((tt - draws["background_hump_deg"]) / 6.0) ** 2)
    return w[0] + w[1] * decay + w[2] * hump


def measure(row: np.ndarray, tt: np.ndarray, draws: dict) -> np.ndarray:
    """Background, counting noise, optional background subtraction and quantisation of one rendered row.

    Returns float32, scaled to a maximum of 1 (all zeros stay zeros).
    """
    peak = row.max()
    if not peak > 0:
        return np.zeros(row.size, dtype=np.float32)
    y = row / peak
    bg = draws["background_rel"] * _background(tt, draws)
    y = y + bg
    counts = draws["counts"]
    if counts > 0:
        rng = np.random.default_rng(draws["noise_seed"])
        y = rng.poisson(y * counts) / counts
    if draws["background_subtracted"]:
        y = np.clip(y - bg, 0.0, None)
    top = y.max()
    if top > 0:
        y = y / top
    q = draws["quantize_levels"]
    if q:
        y = np.round(y * q) / q
    return y.astype(np.float32)


def measured_patterns(refls: Sequence, conditions: Conditions, *, params: AugmentParams | None = None,
                      seed: int = 0, copy: int = 0, index_offset: int = 0):
    """Measurement-like patterns of reflection sets (the whole augmentation).

    Parameters
    ----------
    refls : sequence of Reflections or None
        Condition-free reflections (``None`` rows give all-zero patterns).
    conditions : Conditions
        The target instrument (grid, wavelengths; its profile and width are replaced by the drawn ones).
    params : AugmentParams
        Effect ranges (default :class:`AugmentParams()`; :data:`IDEAL` switches every effect off).
    seed, copy : int
        Pattern ``index_offset + i`` of ``copy`` draws from ``default_rng((seed, copy, index_offset + i))``.
    index_offset : int
        Global index of the first pattern (so chunks of a store draw the same values as one call).

    Returns
    -------
    patterns : ndarray (n, conditions.n_points) float32
        Rows scaled to a maximum of 1.
    record : DataFrame
        One row per pattern: every drawn value (strain as strain_a/b/c, direction as a string), so a
        store or a benchmark can say exactly what each pattern went through.
    """
    params = params or AugmentParams()
    tt_grid = conditions.two_theta_deg()
    lines, eta, draws_all = [], [], []
    for i, refl in enumerate(refls):
        dr = draw(params, seed, index_offset + i, copy)
        dr["impurity_rel"] = params.impurity_rel
        rng = np.random.default_rng(dr["noise_seed"] + 1)
        if refl is None:
            lines.append((np.zeros(0), np.zeros(0), np.zeros(0)))
        else:
            lines.append(line_list(refl, conditions, dr, rng))
        eta.append(dr["eta"])
        draws_all.append(dr)
    raw = render(lines, conditions, eta)
    out = np.empty((len(lines), conditions.n_points), dtype=np.float32)
    for i, dr in enumerate(draws_all):
        out[i] = measure(raw[i], tt_grid, dr)
    return out, _record(draws_all, seed, copy, index_offset)


def _record(draws_all, seed, copy, index_offset) -> pd.DataFrame:
    rows = []
    for i, dr in enumerate(draws_all):
        row = {k: v for k, v in dr.items() if k not in ("strain", "direction", "background_mix", "impurity_rel")}
        row.update(index=index_offset + i, copy=copy, seed=seed, strain_a=dr["strain"][0], strain_b=dr["strain"][1],
                   strain_c=dr["strain"][2], direction="".join(str(int(x)) for x in dr["direction"]))
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ chemistry ----
#: Families of elements that replace one another in real structures (similar charge and radius);
#: :func:`substitute_elements` swaps within a family. Mineral-forming elements first.
SUBSTITUTION_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("Li", "Na", "K", "Rb", "Cs", "Ag", "Tl"),
    ("Mg", "Fe", "Mn", "Co", "Ni", "Zn", "Cu", "Cd", "Ca"),
    ("Ca", "Sr", "Ba", "Pb", "Eu"),
    ("Al", "Ga", "Fe", "Cr", "Sc", "In", "V", "Mn"),
    ("Y", "La", "Ce", "Nd", "Sm", "Gd", "Dy", "Er", "Yb", "Bi"),
    ("Si", "Ge", "Ti", "Sn", "Zr", "Hf", "Mn"),
    ("P", "As", "V", "Sb"),
    ("Nb", "Ta", "Sb"),
    ("S", "Se", "Cr", "Mo", "W"),
    ("O", "S", "Se", "Te"),
    ("F", "Cl", "Br", "I"),
    ("B", "Al"),
    ("C", "Si"),
)


def substitute_elements(crystal, rng: np.random.Generator, p: float = 0.5):
    """A copy of ``crystal`` where each element is, with probability ``p``, replaced by another member of
    its :data:`SUBSTITUTION_FAMILIES` family (all its sites together, so the symmetry is kept).

    Positions and the lattice are unchanged (combine with lattice strain); the new chemistry changes the
    structure factors, i.e. the relative intensities, as it does in solid solutions and isotypic phases.
    """
    from xrdbatch.crystal import Crystal

    mapping = {}
    for el in sorted(set(crystal.symbols)):
        families = [f for f in SUBSTITUTION_FAMILIES if el in f]
        if families and rng.random() < p:
            family = families[rng.integers(len(families))]
            mapping[el] = str(family[rng.integers(len(family))])
    symbols = tuple(mapping.get(s, s) for s in crystal.symbols)
    return Crystal(crystal.lattice, symbols, crystal.frac_coords, crystal.occupancies, crystal.b_iso)


def substituted_catalog(table: pd.DataFrame, n_variants: int, *, seed: int = 0, p: float = 0.5,
                        skip_sources: tuple[str, ...] = ("synthetic",)) -> pd.DataFrame:
    """The catalog plus ``n_variants`` element-substituted copies of every ok row (issue 8).

    Variant ``v`` of row ``i`` draws from ``default_rng((seed, i, v))`` (:func:`substitute_elements`), so
    a row's variants do not depend on the rest of the table. Rows whose ``source`` starts with one of
    ``skip_sources`` are not copied (synthetic crystals already have random chemistry). A variant keeps
    its parent's symmetry labels, lattice and ``structure_type`` (so grouped splits keep parent and
    variants on the same side); its ``id`` is ``"<parent id>~sub<v>"``, its ``formula`` is recomputed and
    its ``sha256`` is that of the new crystal columns. Lattice variation comes later, per pattern, from
    the augmentation's strain.

    Parameters
    ----------
    table : DataFrame
        A catalog (:func:`xrdbatch.sources.read_catalog`).
    n_variants : int
        Copies per eligible row (0 returns the table unchanged).

    Returns
    -------
    DataFrame
        ``table`` followed by the variants (same columns).
    """
    import hashlib

    from pymatgen.core import Composition

    from xrdbatch.crystal import Crystal

    if n_variants <= 0:
        return table
    ok = (table["status"] == "ok") & ~table["source"].astype(str).str.startswith(tuple(skip_sources))
    rows = []
    for i, rec in zip(np.flatnonzero(ok.to_numpy()), table[ok].to_dict("records")):
        crystal = Crystal.from_columns(rec)
        for v in range(1, n_variants + 1):
            new = substitute_elements(crystal, np.random.default_rng((seed, int(i), v)), p=p)
            cols = new.to_columns()
            amounts: dict[str, float] = {}
            for el, occ in zip(new.symbols, new.occupancies):
                amounts[el] = amounts.get(el, 0.0) + float(occ)
            digest = hashlib.sha256(json.dumps({k: np.asarray(val).tolist() for k, val in cols.items()},
                                               sort_keys=True).encode()).hexdigest()
            rows.append({**rec, **cols, "id": f"{rec['id']}~sub{v}", "sha256": digest,
                         "formula": Composition(amounts).reduced_formula})
    if not rows:
        return table
    return pd.concat([table, pd.DataFrame(rows, columns=table.columns)], ignore_index=True)


# ------------------------------------------------------------------------------ store hook ----
def store_spec(augment: dict) -> str:
    """Canonical JSON of a store's augmentation ``{"params": ..., "seed": int, "copy": int}`` (validated).

    ``params`` may be an :class:`AugmentParams`, its dict, or omitted (defaults). This string is what
    :func:`xrdbatch.store.retarget` records in the store attrs (``augmentation``) and hands to its tasks.
    """
    params = augment.get("params")
    if isinstance(params, str):
        params = AugmentParams.from_json(params)
    elif not isinstance(params, AugmentParams):
        params = AugmentParams.from_dict(params)
    unknown = set(augment) - {"params", "seed", "copy"}
    if unknown:
        raise ValueError(f"unknown augmentation key(s) {sorted(unknown)}; valid: params, seed, copy")
    return json.dumps({"params": params.to_dict(), "seed": int(augment.get("seed", 0)),
                       "copy": int(augment.get("copy", 0))}, sort_keys=True)


def patterns_for_store(refls: Sequence, conditions: Conditions, spec_json: str, start: int) -> np.ndarray:
    """Rows of one store chunk (structures ``start..``) under the augmentation ``spec_json`` (see
    :func:`store_spec`); ``None`` reflections give zero rows."""
    spec = json.loads(spec_json)
    out, _ = measured_patterns(refls, conditions, params=AugmentParams.from_dict(spec["params"]), seed=spec["seed"],
                               copy=spec["copy"], index_offset=start)
    return out

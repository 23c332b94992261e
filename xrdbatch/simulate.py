"""Powder X-ray diffraction of a :class:`~xrdbatch.crystal.Crystal`: reflections, then patterns.

Two steps, split where the physics splits:

1. :func:`reflections` (crystal, resolution limit) -> :class:`Reflections`. Condition-free: every reciprocal
   lattice point ``g = h a* + k b* + l c*`` with ``|g| = 1/d <= 1/d_min`` is enumerated, its structure factor

       F(hkl) = sum_j occ_j f_j(s) exp(-B_j s^2) exp(2 pi i (h x_j + k y_j + l z_j)),      s = 1 / (2 d)

   is computed with the atomic scattering factors of :mod:`xrdbatch._scattering` (pymatgen's
   parametrisation, ``f(s) = Z - 41.78214 s^2 sum_i a_i exp(-b_i s^2)``), and reflections at the same d
   (the symmetry-equivalent ones, and accidental coincidences) are merged by summing ``|F|^2``. The result
   is ``|F|^2 x multiplicity`` per distinct d: nothing depends on the wavelength or the instrument.
   Friedel's law ``|F(hkl)| = |F(-h-k-l)|`` holds without anomalous scattering, so only the half-space
   ``(h, k, l) > 0`` (lexicographically) is computed and counted twice.
2. :func:`patterns` (reflections, :class:`~xrdbatch.conditions.Conditions`) -> float32 rows on the 2-theta
   grid: Bragg's law ``lambda = 2 d sin(theta)`` for each line (K-alpha1 and, optionally, K-alpha2 with its
   ratio), the Lorentz-polarisation factor, and an area-normalised peak profile (pseudo-Voigt, Gaussian or
   Lorentzian; constant FWHM or Caglioti) evaluated only within ``window_fwhm`` FWHM of each peak.
   This is much cheaper than step 1, so a store of reflections can be re-targeted to other instruments.

:func:`stick_pattern` reproduces ``pymatgen XRDCalculator(wavelength).get_pattern(structure, scaled=True,
two_theta_range=...)`` peak by peak (positions, scaled intensities, hkl families, d), from the same physics.

The heavy loops are numba kernels (``cache=True``, ``nogil=True``): compiled on the first run on a machine
(~40 s of CPU; bake it into container images by running ``xrdbatch selfcheck`` once at build time), then
loaded from the on-disk cache (~1 s of CPU per process). In the structure-factor kernel, phases are products
of per-atom 1-D tables (no sin/cos per reflection and atom), the Gaussian terms of the scattering factors
follow a two-multiplication recurrence along each row of l (no exp per reflection), and the atom sums are
vectorised (``fastmath``). Memory is O(reflections + atoms x max index): the kernel streams over hkl, so
cells of thousands of atoms stay bounded (:data:`MAX_REFLECTIONS` guards against absurd cells).

References
----------
M. De Graef and M. E. McHenry, *Structure of Materials*, chapters 11-12 (kinematic powder intensities).
International Tables for Crystallography vol. C, 6.2 (Lorentz-polarisation), 4.3 (scattering factors).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

import numpy as np
from numba import njit

from xrdbatch._scattering import SCATTERING_PARAMS
from xrdbatch.conditions import Conditions
from xrdbatch.crystal import Crystal

#: Mott-Bethe constant of the scattering-factor formula (pymatgen's value), angstrom^-2 units folded in.
MOTT_BETHE = 41.78214

#: Reflections whose 1/d^2 differ by less than this relative amount are one reflection (same d).
#: Far below any physical resolution, far above floating-point noise of the metric (~1e-15).
D_MERGE_REL_TOL = 1e-9

#: Merged reflections with |F|^2 x m below this fraction of the strongest are systematic absences
#: (cancellation leaves ~1e-30 relative); pymatgen's own cut-off is 1e-5 of the strongest peak.
ABSENT_REL_TOL = 1e-12

#: pymatgen's peak-merging bin in 2-theta (degrees) and its cut-off for "zero" scaled peaks (of 100).
PYMATGEN_TWO_THETA_TOL_DEG = 1e-5
PYMATGEN_SCALED_INTENSITY_TOL = 1e-3

#: Default half-width of the window, in FWHM, over which a profile is evaluated. A Lorentzian is at
#: 1/(1 + 4 * 10^2) = 0.25 % of its height 10 FWHM from the centre; a Gaussian at 3 FWHM is 1.4e-11.
WINDOW_FWHM = 10.0

#: Refuse cells that would give more half-space reflections than this (memory: ~30 bytes each).
MAX_REFLECTIONS = 5e7

_PROFILE_CODES = {"gaussian": 0, "lorentzian": 1, "pseudo_voigt": 2}


class Reflections(NamedTuple):
    """Condition-free reflections of one crystal, one row per distinct d-spacing.

    Attributes
    ----------
    d_angstrom : ndarray, shape (m,), float64
        d-spacings in angstrom, sorted descending.
    intensity : ndarray, shape (m,), float64
        ``|F|^2 x multiplicity`` (electrons^2; occupancies and Debye-Waller included), summed over all
        hkl at this d. No Lorentz-polarisation (it depends on the wavelength).
    hkl : ndarray, shape (m, 3), int32
        A representative Miller index: the lexicographically largest of the hkl at this d.
    """

    d_angstrom: np.ndarray
    intensity: np.ndarray
    hkl: np.ndarray


class StickPattern(NamedTuple):
    """Peaks of one pattern, laid out like pymatgen's ``DiffractionPattern``.

    Attributes
    ----------
    two_theta_deg : ndarray, shape (p,)
        Peak positions in degrees (ascending).
    intensity : ndarray, shape (p,)
        Integrated intensities with Lorentz-polarisation, scaled so the strongest is 100.
    hkls : list of list of dict
        Per peak, the families ``{"hkl": tuple, "multiplicity": int}`` (4-index for hexagonal lattices),
        as pymatgen reports them.
    d_angstrom : ndarray, shape (p,)
        d-spacing of each peak in angstrom.
    """

    two_theta_deg: np.ndarray
    intensity: np.ndarray
    hkls: list
    d_angstrom: np.ndarray


# ============================================================================ kernels (numba) ====
@njit(cache=True, nogil=True)
def _phase_table(frac, axis, n_max, negative):
    """exp(2 pi i n x_j) for n = 0..n_max (or -n_max..n_max): arrays (rows, M) re, im, by recurrence."""
    m = frac.shape[0]
    n0 = n_max if negative else 0
    rows = n0 + n_max + 1
    re = np.empty((rows, m))
    im = np.empty((rows, m))
    for j in range(m):
        phi = 2.0 * math.pi * frac[j, axis]
        c1 = math.cos(phi)
        s1 = math.sin(phi)
        re[n0, j] = 1.0
        im[n0, j] = 0.0
        cr = 1.0
        ci = 0.0
        for n in range(1, n_max + 1):
            # re-anchor every 16 steps so the recurrence error stays at ~1e-15
            if n % 16 == 0:
                cr = math.cos(phi * n)
                ci = math.sin(phi * n)
            else:
                cr, ci = cr * c1 - ci * s1, cr * s1 + ci * c1
            re[n0 + n, j] = cr
            im[n0 + n, j] = ci
            if negative:
                re[n0 - n, j] = cr
                im[n0 - n, j] = -ci
    return re, im


@njit(cache=True, nogil=True)
def _l_range(gs, h, k, lmax, gmax2):
    """Integer l interval (inclusive, with a margin of one) where (h, k, l) can lie in |g|^2 <= gmax2."""
    a = gs[2, 2]
    b = gs[0, 2] * h + gs[1, 2] * k
    c = gs[0, 0] * h * h + 2.0 * gs[0, 1] * h * k + gs[1, 1] * k * k - gmax2
    disc = b * b - a * c
    if disc < 0.0:
        return 1, 0
    r = math.sqrt(disc)
    lo = int(math.floor((-b - r) / a)) - 1
    hi = int(math.ceil((-b + r) / a)) + 1
    if lo < -lmax:
        lo = -lmax
    if hi > lmax:
        hi = lmax
    if h == 0 and k == 0 and lo < 1:
        lo = 1
    return lo, hi


# fastmath: lets LLVM vectorise the atom sums (reassociation); inputs are validated finite first.
@njit(cache=True, nogil=True, fastmath=True)
def _half_space_kernel(lattice, frac_in, occ_in, elem, biso, tab_z, tab_ab, gmax, max_reflections):
    """|F|^2 of every hkl of the Friedel half-space with 0 < |g| <= gmax.

    lattice (3, 3) rows in angstrom; frac_in (M, 3); occ_in, biso (M,); elem (M,) rows of the
    scattering table tab_z (E,), tab_ab (E, 4, 2). Returns status (0 ok, 1 singular lattice,
    2 non-finite input, 3 too many reflections), hkl (N, 3) int32, g2 = 1/d^2 (N,), |F|^2 (N,).

    Why it is fast: phases exp(2 pi i (hx + ky + lz)) are products of per-atom 1-D tables (no sin/cos
    in the loops); along a row of l at fixed (h, k), s^2 = |g|^2 / 4 is quadratic in l, so every
    Gaussian term exp(-b s^2) of the scattering factor and of Debye-Waller follows the recurrence
    E(l+1) = E(l) R(l), R(l+1) = R(l) exp(-b a*^2 / 2) (two multiplications, no exp).
    """
    m = frac_in.shape[0]
    empty_hkl = np.empty((0, 3), dtype=np.int32)
    empty = np.empty(0)
    # --- validate and build the reciprocal metric gs = (L L^T)^-1 -------------------------------
    for i in range(3):
        for j in range(3):
            if not math.isfinite(lattice[i, j]):
                return 1, empty_hkl, empty, empty
    for j in range(m):
        if not (math.isfinite(frac_in[j, 0]) and math.isfinite(frac_in[j, 1]) and math.isfinite(frac_in[j, 2])
                and math.isfinite(occ_in[j]) and math.isfinite(biso[j])):
            return 2, empty_hkl, empty, empty
    g = lattice @ lattice.T
    det = (g[0, 0] * (g[1, 1] * g[2, 2] - g[1, 2] * g[2, 1]) - g[0, 1] * (g[1, 0] * g[2, 2] - g[1, 2] * g[2, 0])
           + g[0, 2] * (g[1, 0] * g[2, 1] - g[1, 1] * g[2, 0]))
    if not det > 1e-6:  # volume^2
        return 1, empty_hkl, empty, empty
    gs = np.empty((3, 3))
    gs[0, 0] = (g[1, 1] * g[2, 2] - g[1, 2] * g[2, 1]) / det
    gs[0, 1] = (g[0, 2] * g[2, 1] - g[0, 1] * g[2, 2]) / det
    gs[0, 2] = (g[0, 1] * g[1, 2] - g[0, 2] * g[1, 1]) / det
    gs[1, 1] = (g[0, 0] * g[2, 2] - g[0, 2] * g[2, 0]) / det
    gs[1, 2] = (g[0, 2] * g[1, 0] - g[0, 0] * g[1, 2]) / det
    gs[2, 2] = (g[0, 0] * g[1, 1] - g[0, 1] * g[1, 0]) / det
    gs[1, 0] = gs[0, 1]
    gs[2, 0] = gs[0, 2]
    gs[2, 1] = gs[1, 2]
    volume = math.sqrt(det)
    if 2.0 / 3.0 * math.pi * gmax ** 3 * volume > max_reflections:
        return 3, empty_hkl, empty, empty
    gmax2 = gmax * gmax
    # |h| = |a . g| <= |a| gmax
    hmax = int(math.floor(math.sqrt(g[0, 0]) * gmax + 1e-9))
    kmax = int(math.floor(math.sqrt(g[1, 1]) * gmax + 1e-9))
    lmax = int(math.floor(math.sqrt(g[2, 2]) * gmax + 1e-9))
    # --- scattering types: (element, B) pairs; atoms reordered so each type is contiguous ----------
    type_of = np.empty(m, dtype=np.int64)
    t_elem = np.empty(m, dtype=np.int64)
    t_b = np.empty(m)
    n_types = 0
    for j in range(m):
        found = -1
        for t in range(n_types):
            if t_elem[t] == elem[j] and t_b[t] == biso[j]:
                found = t
                break
        if found < 0:
            found = n_types
            t_elem[n_types] = elem[j]
            t_b[n_types] = biso[j]
            n_types += 1
        type_of[j] = found
    type_start = np.zeros(n_types + 1, dtype=np.int64)
    for j in range(m):
        type_start[type_of[j] + 1] += 1
    for t in range(n_types):
        type_start[t + 1] += type_start[t]
    fill = type_start[:n_types].copy()
    frac = np.empty((m, 3))
    occ = np.empty(m)
    for j in range(m):
        p = fill[type_of[j]]
        fill[type_of[j]] += 1
        frac[p, 0] = frac_in[j, 0]
        frac[p, 1] = frac_in[j, 1]
        frac[p, 2] = frac_in[j, 2]
        occ[p] = occ_in[j]
    # Gaussian terms per type: 4 of the scattering factor (weights a_q) and Debye-Waller (index 4)
    tb = np.zeros((n_types, 5))  # b of exp(-b s^2)
    ta = np.zeros((n_types, 4))
    tz = np.empty(n_types)
    for t in range(n_types):
        tz[t] = tab_z[t_elem[t]]
        for q in range(4):
            ta[t, q] = tab_ab[t_elem[t], q, 0]
            tb[t, q] = tab_ab[t_elem[t], q, 1]
        tb[t, 4] = t_b[t]
    aa = gs[2, 2]
    qstep = np.empty((n_types, 5))  # R(l+1) / R(l) = exp(-b aa / 2)
    for t in range(n_types):
        for q in range(5):
            qstep[t, q] = math.exp(-0.5 * tb[t, q] * aa)
    # --- an upper bound of the count (the l ranges carry a margin of one), then fill and trim ----------
    n = 0
    for h in range(0, hmax + 1):
        for k in range(-kmax, kmax + 1):
            if h == 0 and k < 0:
                continue
            lo, hi = _l_range(gs, h, k, lmax, gmax2)
            if hi >= lo:
                n += hi - lo + 1
    hkl = np.empty((n, 3), dtype=np.int32)
    g2s = np.empty(n)
    f2s = np.empty(n)
    if n == 0:
        return 0, hkl, g2s, f2s
    xr, xi = _phase_table(frac, 0, hmax, False)
    yr, yi = _phase_table(frac, 1, kmax, True)
    zr, zi = _phase_table(frac, 2, lmax, True)
    pr = np.empty(m)
    pi_ = np.empty(m)
    e = np.empty((n_types, 5))
    r = np.empty((n_types, 5))
    i = 0
    for h in range(0, hmax + 1):
        for k in range(-kmax, kmax + 1):
            if h == 0 and k < 0:
                continue
            lo, hi = _l_range(gs, h, k, lmax, gmax2)
            if lo > hi:
                continue
            ky = k + kmax
            for j in range(m):
                ar = xr[h, j] * yr[ky, j] - xi[h, j] * yi[ky, j]
                ai = xr[h, j] * yi[ky, j] + xi[h, j] * yr[ky, j]
                pr[j] = occ[j] * ar
                pi_[j] = occ[j] * ai
            bb = gs[0, 2] * h + gs[1, 2] * k
            g2_lo = (gs[0, 0] * h * h + gs[1, 1] * k * k + gs[2, 2] * lo * lo
                     + 2.0 * (gs[0, 1] * h * k + bb * lo))
            dg_lo = aa * (2 * lo + 1) + 2.0 * bb  # g2(lo + 1) - g2(lo)
            for t in range(n_types):
                for q in range(5):
                    if tb[t, q] == 0.0:  # unused coefficient, or no Debye-Waller: no exp needed
                        e[t, q] = 1.0
                        r[t, q] = 1.0
                    else:
                        e[t, q] = math.exp(-0.25 * tb[t, q] * g2_lo)
                        r[t, q] = math.exp(-0.25 * tb[t, q] * dg_lo)
            for l in range(lo, hi + 1):
                g2 = (gs[0, 0] * h * h + gs[1, 1] * k * k + gs[2, 2] * l * l
                      + 2.0 * (gs[0, 1] * h * k + bb * l))
                if g2 <= gmax2:
                    s2 = 0.25 * g2
                    lz = l + lmax
                    fr = 0.0
                    fi = 0.0
                    for t in range(n_types):
                        f = tz[t] - MOTT_BETHE * s2 * (ta[t, 0] * e[t, 0] + ta[t, 1] * e[t, 1]
                                                       + ta[t, 2] * e[t, 2] + ta[t, 3] * e[t, 3])
                        f *= e[t, 4]
                        sr = 0.0
                        si = 0.0
                        for j in range(type_start[t], type_start[t + 1]):
                            sr += pr[j] * zr[lz, j] - pi_[j] * zi[lz, j]
                            si += pr[j] * zi[lz, j] + pi_[j] * zr[lz, j]
                        fr += f * sr
                        fi += f * si
                    hkl[i, 0] = h
                    hkl[i, 1] = k
                    hkl[i, 2] = l
                    g2s[i] = g2
                    f2s[i] = fr * fr + fi * fi
                    i += 1
                for t in range(n_types):
                    for q in range(5):
                        e[t, q] *= r[t, q]
                        r[t, q] *= qstep[t, q]
    return 0, hkl[:i], g2s[:i], f2s[:i]


@njit(cache=True, nogil=True)
def _merge_by_d(hkl, g2, f2, rel_tol, absent_rel_tol):
    """Merge half-space reflections of equal 1/d^2; returns d (descending), 2 * sum |F|^2, max hkl."""
    n = g2.shape[0]
    order = np.argsort(g2)
    start = np.empty(n + 1, dtype=np.int64)
    n_groups = 0
    for r in range(n):
        if r == 0 or g2[order[r]] - g2[order[start[n_groups - 1]]] > rel_tol * g2[order[start[n_groups - 1]]]:
            start[n_groups] = r
            n_groups += 1
    start[n_groups] = n
    d = np.empty(n_groups)
    inten = np.empty(n_groups)
    rep = np.empty((n_groups, 3), dtype=np.int32)
    top = 0.0
    for gi in range(n_groups):
        s = 0.0
        best = order[start[gi]]
        for r in range(start[gi], start[gi + 1]):
            o = order[r]
            s += f2[o]
            if (hkl[o, 0] > hkl[best, 0] or (hkl[o, 0] == hkl[best, 0] and (hkl[o, 1] > hkl[best, 1] or (
                    hkl[o, 1] == hkl[best, 1] and hkl[o, 2] > hkl[best, 2])))):
                best = o
        d[gi] = 1.0 / math.sqrt(g2[order[start[gi]]])
        inten[gi] = 2.0 * s  # Friedel mate -h-k-l
        rep[gi, 0] = hkl[best, 0]
        rep[gi, 1] = hkl[best, 1]
        rep[gi, 2] = hkl[best, 2]
        if inten[gi] > top:
            top = inten[gi]
    keep = inten > absent_rel_tol * top
    return d[keep], inten[keep], rep[keep]


# error_model="numpy": no zero-divisor check in the loops, so LLVM vectorises the Lorentzian (4 divisions per
# instruction with AVX2; the check alone kept it scalar); no divisor here can be zero (hw, d > 0; top tested).
@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _patterns_kernel(d, inten, offsets, out, tt0, step, lambdas, weights, profile, fwhm, u, v, w, eta,
                     mono_cos2, window_fwhm):
    """Accumulate windowed, area-normalised profiles of all reflections into rows of ``out`` (float32).

    The Gaussian part (within 3.5 FWHM, where it is above 1e-14 of its height) uses the recurrence
    G(x + step) = G(x) R(x), R(x + step) = R(x) exp(-2 c step^2) on the uniform grid: no exp per point.
    Lorentz-polarisation needs no trigonometry: sin(theta) = lambda / 2d, cos(2 theta) = 1 - 2 sin^2(theta).
    """
    n_struct = offsets.shape[0] - 1
    npts = out.shape[1]
    buf = np.zeros(npts)
    deg = 180.0 / math.pi
    gauss_c = 4.0 * math.log(2.0)
    gauss_norm = 2.0 * math.sqrt(math.log(2.0) / math.pi)
    w_gauss = 1.0 if profile == 0 else (0.0 if profile == 1 else 1.0 - eta)
    w_lorentz = 1.0 if profile == 1 else (0.0 if profile == 0 else eta)
    caglioti = u != 0.0 or v != 0.0 or w != 0.0
    tt_end = tt0 + step * (npts - 1)
    cc_last = -1.0  # exp(-2 c step^2) depends on the width only: computed again when the width changes
    qq_last = 0.0
    for s in range(n_struct):
        lo_touched = npts
        hi_touched = -1
        for r in range(offsets[s], offsets[s + 1]):
            for li in range(lambdas.shape[0]):
                x = lambdas[li] / (2.0 * d[r])
                if x >= 1.0:
                    continue
                th = math.asin(x)
                tt = 2.0 * th * deg
                if caglioti:
                    tn = math.tan(th)
                    h2 = u * tn * tn + v * tn + w
                    hw = math.sqrt(h2) if h2 > 0.0 else step
                else:
                    hw = fwhm
                half = window_fwhm * hw
                if tt + half < tt0 or tt - half > tt_end:
                    continue
                c2 = 1.0 - 2.0 * x * x
                ct = math.sqrt(1.0 - x * x)
                if mono_cos2 < 0.0:
                    lp = (1.0 + c2 * c2) / (x * x * ct)
                else:
                    lp = (1.0 + mono_cos2 * c2 * c2) / ((1.0 + mono_cos2) * x * x * ct)
                amp = weights[li] * inten[r] * lp / hw
                inv = 1.0 / hw
                if w_lorentz > 0.0:
                    al = amp * w_lorentz * 2.0 / math.pi
                    i0 = max(0, int(math.ceil((tt - half - tt0) / step)))
                    i1 = min(npts - 1, int(math.floor((tt + half - tt0) / step)))
                    x0 = (tt0 + i0 * step - tt) * inv
                    dxs = step * inv
                    seg = buf[i0:i1 + 1]  # a slice: no index arithmetic in the loop, which LLVM vectorises
                    for k in range(seg.shape[0]):
                        dx = x0 + k * dxs
                        seg[k] += al / (1.0 + 4.0 * dx * dx)
                    lo_touched = min(lo_touched, i0)
                    hi_touched = max(hi_touched, i1)
                if w_gauss > 0.0:
                    ag = amp * w_gauss * gauss_norm
                    gh = min(half, 3.5 * hw)
                    i0 = max(0, int(math.ceil((tt - gh - tt0) / step)))
                    i1 = min(npts - 1, int(math.floor((tt + gh - tt0) / step)))
                    if i1 >= i0:
                        cc = gauss_c * inv * inv
                        x0 = tt0 + i0 * step - tt
                        g = ag * math.exp(-cc * x0 * x0)
                        rr = math.exp(-cc * (2.0 * x0 * step + step * step))
                        if cc != cc_last:
                            qq_last = math.exp(-2.0 * cc * step * step)
                            cc_last = cc
                        qq = qq_last
                        seg = buf[i0:i1 + 1]
                        for k in range(seg.shape[0]):
                            seg[k] += g
                            g *= rr
                            rr *= qq
                        lo_touched = min(lo_touched, i0)
                        hi_touched = max(hi_touched, i1)
        top = 0.0
        for i in range(lo_touched, hi_touched + 1):
            if buf[i] > top:
                top = buf[i]
        scale = 1.0 / top if top > 0.0 else 0.0
        for i in range(npts):
            out[s, i] = buf[i] * scale
        for i in range(lo_touched, hi_touched + 1):
            buf[i] = 0.0


@njit(cache=True, nogil=True)
def _stick_kernel(hkl, g2, f2, lam, g_min, mono_cos2, hexagonal, tt_tol, scaled_tol):
    """pymatgen's peak list from half-space reflections: order, Lorentz-polarisation, 2-theta bins, families.

    Returns two_theta (P,), d (P,), intensity (P,) (unscaled), and the families: peak index (F,),
    largest member (F, 4) (3 or 4 indices used), member count (F,), in pymatgen's order.
    """
    n = g2.shape[0]
    # pymatgen's order: |g| ascending, then -h, -k, -l ascending (two stable sorts on integer/float keys)
    sel = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        if math.sqrt(g2[i]) >= g_min:
            sel[m] = i
            m += 1
    sel = sel[:m]
    span = 1
    for i in range(m):
        for c in range(3):
            span = max(span, 2 * abs(int(hkl[sel[i], c])) + 1)
    key = np.empty(m, dtype=np.int64)
    for i in range(m):
        j = sel[i]
        key[i] = ((span - hkl[j, 0]) * (2 * span + 1) + (span - hkl[j, 1])) * (2 * span + 1) + (span - hkl[j, 2])
    o1 = np.argsort(key, kind="mergesort")
    gs = np.empty(m)
    for i in range(m):
        gs[i] = g2[sel[o1[i]]]
    o2 = np.argsort(gs, kind="mergesort")
    order = np.empty(m, dtype=np.int64)
    for i in range(m):
        order[i] = sel[o1[o2[i]]]
    # per reflection: 2-theta, LP x 2|F|^2 (Friedel), bin key; bins are runs of equal keys
    tt = np.empty(m)
    inten = np.empty(m)
    bins = np.empty(m, dtype=np.int64)
    deg = 180.0 / math.pi
    for i in range(m):
        j = order[i]
        g = math.sqrt(g2[j])
        x = lam * g / 2.0
        if x > 1.0:
            x = 1.0
        th = math.asin(x)
        c2 = math.cos(2.0 * th)
        sn = math.sin(th)
        if mono_cos2 < 0.0:
            lp = (1.0 + c2 * c2) / (sn * sn * math.cos(th))
        else:
            lp = (1.0 + mono_cos2 * c2 * c2) / ((1.0 + mono_cos2) * sn * sn * math.cos(th))
        inten[i] = 2.0 * f2[j] * lp
        tt[i] = 2.0 * th * deg
        v = tt[i] / tt_tol  # np.round: half to even
        fl = math.floor(v)
        if v - fl > 0.5 or (v - fl == 0.5 and fl % 2 == 1):
            fl += 1
        bins[i] = np.int64(fl)
    start = np.empty(m + 1, dtype=np.int64)
    nb = 0
    for i in range(m):
        if i == 0 or bins[i] != bins[i - 1]:
            start[nb] = i
            nb += 1
    start[nb] = m
    summed = np.zeros(nb)
    top = 0.0
    for b in range(nb):
        for i in range(start[b], start[b + 1]):
            summed[b] += inten[i]
        top = max(top, summed[b])
    kept = np.empty(nb, dtype=np.int64)
    p = 0
    for b in range(nb):
        if top > 0.0 and summed[b] / top * 100.0 > scaled_tol:
            kept[p] = b
            p += 1
    kept = kept[:p]
    out_tt = np.empty(p)
    out_d = np.empty(p)
    out_i = np.empty(p)
    width = 4 if hexagonal else 3
    fam_peak = np.empty(2 * m, dtype=np.int64)
    fam_rep = np.zeros((2 * m, 4), dtype=np.int64)
    fam_key = np.zeros((2 * m, 4), dtype=np.int64)
    fam_count = np.zeros(2 * m, dtype=np.int64)
    nf = 0
    mem = np.zeros(4, dtype=np.int64)
    srt = np.zeros(4, dtype=np.int64)
    for q in range(p):
        b = kept[q]
        first = start[b]
        out_tt[q] = tt[first]
        out_d[q] = 1.0 / math.sqrt(g2[order[first]])
        out_i[q] = summed[b]
        f0 = nf
        for i in range(start[b], start[b + 1]):
            j = order[i]
            for sign in (1, -1):
                h = sign * hkl[j, 0]
                k = sign * hkl[j, 1]
                l = sign * hkl[j, 2]
                if hexagonal:
                    mem[0] = h
                    mem[1] = k
                    mem[2] = -h - k
                    mem[3] = l
                else:
                    mem[0] = h
                    mem[1] = k
                    mem[2] = l
                for c in range(width):  # insertion sort of |indices| (3 or 4 values)
                    v = abs(mem[c])
                    cc = c
                    while cc > 0 and srt[cc - 1] > v:
                        srt[cc] = srt[cc - 1]
                        cc -= 1
                    srt[cc] = v
                found = -1
                for f in range(f0, nf):
                    same = True
                    for c in range(width):
                        if fam_key[f, c] != srt[c]:
                            same = False
                            break
                    if same:
                        found = f
                        break
                if found < 0:
                    found = nf
                    nf += 1
                    fam_peak[found] = q
                    fam_count[found] = 0
                    for c in range(width):
                        fam_key[found, c] = srt[c]
                        fam_rep[found, c] = mem[c]
                fam_count[found] += 1
                # the family is reported by its largest member (tuple order)
                for c in range(width):
                    if mem[c] != fam_rep[found, c]:
                        if mem[c] > fam_rep[found, c]:
                            for cc in range(width):
                                fam_rep[found, cc] = mem[cc]
                        break
    return out_tt, out_d, out_i, fam_peak[:nf], fam_rep[:nf, :width], fam_count[:nf]


# ============================================================================== public API ====
def _as_crystal(structure_or_crystal) -> Crystal:
    if isinstance(structure_or_crystal, Crystal):
        return structure_or_crystal
    if hasattr(structure_or_crystal, "lattice") and hasattr(structure_or_crystal, "sites"):
        return Crystal.from_structure(structure_or_crystal)
    raise TypeError(
        f"expected an xrdbatch Crystal or a pymatgen Structure, got {type(structure_or_crystal).__name__}; "
        "build one with Crystal.from_structure(structure) or xrdbatch.sources"
    )


@functools.lru_cache(maxsize=1)
def _table():
    """The scattering table as arrays for the kernels: symbol -> row, Z (E,), (a, b) pairs (E, 4, 2)."""
    symbols = list(SCATTERING_PARAMS)
    z = np.array([SCATTERING_PARAMS[s][0] for s in symbols], dtype=np.float64)
    ab = np.zeros((len(symbols), 4, 2))
    for i, s in enumerate(symbols):
        coeffs = SCATTERING_PARAMS[s][1]
        ab[i, : len(coeffs)] = coeffs
    return {s: i for i, s in enumerate(symbols)}, z, ab


def _kernel_args(crystal: Crystal):
    index, z, ab = _table()
    try:
        elem = np.array([index[s] for s in crystal.symbols], dtype=np.int64)
    except KeyError:
        unknown = sorted(set(crystal.symbols) - set(index))
        raise ValueError(
            f"no X-ray scattering factors for {unknown}: expected element symbols of the table in "
            f"xrdbatch._scattering ({len(index)} elements, H..Cf); remove or replace these species"
        ) from None
    return (crystal.lattice, crystal.frac_coords, crystal.occupancies, elem, crystal.b_iso, z, ab)


def _raise_status(status: int, crystal: Crystal, g_max: float) -> None:
    if status == 1:
        raise ValueError(
            f"cannot simulate a crystal with a singular or non-finite lattice (lattice rows "
            f"{crystal.lattice.tolist()}); expected three independent lattice vectors in angstrom"
        )
    if status == 2:
        raise ValueError("cannot simulate a crystal with non-finite coordinates, occupancies or b_iso; "
                         "check the source record")
    if status == 3:
        raise ValueError(
            f"more than MAX_REFLECTIONS = {MAX_REFLECTIONS:.3g} reflections within |g| <= {g_max:.4g} 1/angstrom "
            f"for a cell of {crystal.volume_angstrom3:.4g} angstrom^3; raise d_min or use a smaller (primitive) cell"
        )


def _half_space(crystal: Crystal, g_max_per_angstrom: float):
    """All hkl of the Friedel half-space with 0 < |g| <= g_max: (hkl int32 (N,3), g2 (N,), |F|^2 (N,))."""
    g_max = float(g_max_per_angstrom)
    status, hkl, g2, f2 = _half_space_kernel(*_kernel_args(crystal), g_max, MAX_REFLECTIONS)
    _raise_status(status, crystal, g_max)
    return hkl, g2, f2


def reflections(crystal: Crystal, d_min_angstrom: float) -> Reflections:
    """Condition-free reflections of ``crystal`` down to ``d_min_angstrom``.

    Parameters
    ----------
    crystal : Crystal
        The structure (lattice in angstrom, fractional coordinates, occupancies, B in angstrom^2).
    d_min_angstrom : float
        Resolution limit: reflections with ``d >= d_min_angstrom`` (use ``conditions.d_min_angstrom``).

    Returns
    -------
    Reflections
        One row per distinct d (descending), ``|F|^2 x multiplicity`` and a representative hkl. Systematic
        absences (|F|^2 below 1e-12 of the strongest) are dropped.

    Examples
    --------
    >>> import numpy as np
    >>> from xrdbatch.crystal import Crystal
    >>> po = Crystal(np.eye(3) * 3.0, ["Po"], [[0, 0, 0]], [1.0], [0.0])   # simple cubic
    >>> r = reflections(po, 1.2)
    >>> r.hkl[:3].tolist(), np.round(r.d_angstrom[:3], 4).tolist()
    ([[1, 0, 0], [1, 1, 0], [1, 1, 1]], [3.0, 2.1213, 1.7321])
    >>> round(float(r.intensity[0] / r.intensity[1]), 3)   # 6 f(s_100)^2 / (12 f(s_110)^2)
    0.592
    """
    if not d_min_angstrom > 0:
        raise ValueError(f"d_min_angstrom must be positive, got {d_min_angstrom!r}")
    # two dispatches (not one kernel calling the other) so the big kernel is compiled once, shared with
    # stick_pattern: the first-run compile costs ~10 s less, the extra dispatch ~1 us
    hkl, g2, f2 = _half_space(crystal, 1.0 / float(d_min_angstrom))
    if len(g2) == 0:
        return Reflections(np.empty(0), np.empty(0), np.empty((0, 3), dtype=np.int32))
    d, inten, rep = _merge_by_d(hkl, g2, f2, D_MERGE_REL_TOL, ABSENT_REL_TOL)
    return Reflections(d, inten, rep)


def _flatten(refls: Sequence[Reflections]):
    sizes = np.fromiter((len(r.d_angstrom) for r in refls), dtype=np.int64, count=len(refls))
    offsets = np.zeros(len(refls) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    if offsets[-1]:
        d = np.ascontiguousarray(np.concatenate([r.d_angstrom for r in refls]), dtype=np.float64)
        inten = np.ascontiguousarray(np.concatenate([r.intensity for r in refls]), dtype=np.float64)
    else:
        d = np.empty(0)
        inten = np.empty(0)
    return d, inten, offsets


def patterns_from_flat(d_angstrom, intensity, offsets, conditions: Conditions, *,
                       window_fwhm: float = WINDOW_FWHM) -> np.ndarray:
    """:func:`patterns` on ragged arrays (as stored: flat ``d``, ``intensity`` and ``offsets`` (n+1,))."""
    d = np.ascontiguousarray(d_angstrom, dtype=np.float64)
    inten = np.ascontiguousarray(intensity, dtype=np.float64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    n_points, args = _conditions_args(conditions, float(window_fwhm))
    out = np.empty((len(offsets) - 1, n_points), dtype=np.float32)
    _patterns_kernel(d, inten, offsets, out, *args)
    return out


@functools.lru_cache(maxsize=64)
def _conditions_args(c: Conditions, window_fwhm: float):
    """The numbers of ``c`` that the pattern kernel takes (cached: Conditions is frozen and hashable)."""
    lambdas = np.array(c.wavelengths_angstrom, dtype=np.float64)
    weights = np.array([1.0, c.ka2_ratio][: len(lambdas)], dtype=np.float64)
    mono = -1.0 if c.monochromator_two_theta_deg is None else math.cos(math.radians(c.monochromator_two_theta_deg)) ** 2
    return c.n_points, (float(c.two_theta_min_deg), float(c.two_theta_step_deg), lambdas, weights,
                        _PROFILE_CODES[c.profile], float(c.fwhm_deg), float(c.caglioti_u_deg2),
                        float(c.caglioti_v_deg2), float(c.caglioti_w_deg2), float(c.eta), mono, window_fwhm)


def patterns(refls: Sequence[Reflections], conditions: Conditions, *, window_fwhm: float = WINDOW_FWHM) -> np.ndarray:
    """Powder patterns on the 2-theta grid of ``conditions``, one row per reflection set.

    For each reflection and each line (K-alpha1, and K-alpha2 with weight ``ka2_ratio`` when given),
    ``theta = arcsin(lambda / 2d)``; the integrated intensity ``|F|^2 m x LP(theta)`` with the
    Lorentz-polarisation factor

        LP = (1 + cos^2(2 theta_m) cos^2(2 theta)) / ((1 + cos^2(2 theta_m)) sin^2(theta) cos(theta))

    (``theta_m`` the monochromator angle; without a monochromator ``LP = (1 + cos^2 2theta) / (sin^2 theta
    cos theta)``, pymatgen's form) is spread with an area-normalised profile of FWHM ``H`` (constant
    ``fwhm_deg``, or Caglioti ``H^2 = U tan^2 theta + V tan theta + W``): Gaussian
    ``(2/H) sqrt(ln2/pi) exp(-4 ln2 x^2/H^2)``, Lorentzian ``(2/(pi H)) / (1 + 4 x^2/H^2)``, or the
    pseudo-Voigt ``eta L + (1 - eta) G``, evaluated within ``window_fwhm * H`` of the peak only.

    Parameters
    ----------
    refls : sequence of Reflections
        From :func:`reflections`, computed down to at least ``conditions.d_min_angstrom`` (reflections for a
        wider range can be reused: those beyond the grid contribute only their tails, within
        ``window_fwhm`` FWHM of the edge).
    conditions : Conditions
    window_fwhm : float
        Half-width of the evaluated window, in FWHM.

    Returns
    -------
    ndarray, shape (len(refls), conditions.n_points), float32
        Each row scaled to a maximum of 1; all zeros when no peak reaches the grid.
    """
    d, inten, offsets = _flatten(refls)
    return patterns_from_flat(d, inten, offsets, conditions, window_fwhm=window_fwhm)


def pattern(refl: Reflections, conditions: Conditions, *, window_fwhm: float = WINDOW_FWHM) -> np.ndarray:
    """One row of :func:`patterns`: float32 array of shape ``(conditions.n_points,)``, max 1."""
    d = refl.d_angstrom
    return patterns_from_flat(d, refl.intensity, np.array([0, len(d)], dtype=np.int64), conditions,
                              window_fwhm=window_fwhm)[0]


def _is_hexagonal(lattice: np.ndarray, angle_tol_deg: float = 5.0, length_tol: float = 0.01) -> bool:
    """pymatgen ``Lattice.is_hexagonal``: two right angles, one of 60/120 degrees, equal lengths there."""
    g = (lattice @ lattice.T).tolist()
    lengths = [math.sqrt(g[i][i]) for i in range(3)]
    angles = []
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        cosang = g[j][k] / (lengths[j] * lengths[k])
        angles.append(math.degrees(math.acos(max(-1.0, min(1.0, cosang)))))
    right = [i for i in range(3) if abs(angles[i] - 90) <= angle_tol_deg]
    hexa = [i for i in range(3) if abs(angles[i] - 60) <= angle_tol_deg or abs(angles[i] - 120) <= angle_tol_deg]
    return len(right) == 2 and len(hexa) == 1 and abs(lengths[right[0]] - lengths[right[1]]) <= length_tol


def stick_pattern(structure_or_crystal, conditions: Conditions) -> StickPattern:
    """Stick pattern comparable peak by peak with pymatgen's ``XRDCalculator``.

    ``stick_pattern(s, c)`` matches ``XRDCalculator(c.wavelength_angstrom).get_pattern(s, scaled=True,
    two_theta_range=(c.two_theta_min_deg, c.two_theta_max_deg))``: the primary wavelength only (no
    K-alpha2, no profile), Lorentz-polarisation ``(1 + cos^2 2theta) / (sin^2 theta cos theta)`` (the
    monochromator option is honoured if set), reflections merged when their 2-theta round to the same
    multiple of 1e-5 degrees, peaks below 1e-3 of 100 dropped, the strongest scaled to 100, and hkl families
    (permutations of |h|, |k|, |l|; 4-index on hexagonal lattices) with multiplicities.

    Parameters
    ----------
    structure_or_crystal : Crystal or pymatgen Structure
    conditions : Conditions

    Returns
    -------
    StickPattern
    """
    crystal = _as_crystal(structure_or_crystal)
    lam = float(conditions.wavelength_angstrom)
    tt_min, tt_max = float(conditions.two_theta_min_deg), float(conditions.two_theta_max_deg)
    g_min = 2 * math.sin(math.radians(tt_min / 2)) / lam
    g_max = 2 * math.sin(math.radians(tt_max / 2)) / lam
    hkl, g2, f2 = _half_space(crystal, g_max)
    mono = (-1.0 if conditions.monochromator_two_theta_deg is None
            else math.cos(math.radians(conditions.monochromator_two_theta_deg)) ** 2)
    tt, d, inten, fam_peak, fam_rep, fam_count = _stick_kernel(
        hkl, g2, f2, lam, g_min, mono, _is_hexagonal(crystal.lattice), PYMATGEN_TWO_THETA_TOL_DEG,
        PYMATGEN_SCALED_INTENSITY_TOL)
    if len(tt) == 0:
        return StickPattern(np.empty(0), np.empty(0), [], np.empty(0))
    hkls: list[list[dict]] = [[] for _ in range(len(tt))]
    for p, rep, cnt in zip(fam_peak.tolist(), fam_rep.tolist(), fam_count.tolist()):
        hkls[p].append({"hkl": tuple(rep), "multiplicity": cnt})
    return StickPattern(tt, inten / inten.max() * 100, hkls, d)

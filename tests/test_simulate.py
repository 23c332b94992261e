"""Tests of xrdbatch.simulate: peak-by-peak agreement with pymatgen's XRDCalculator on the shared structure
sets, physics properties (Bragg's law, systematic absences, rock-salt intensity ratios, wavelength scaling,
Debye-Waller, occupancies), hypothesis properties of the pure functions, and bounded memory on big cells.

Structures are read with the project's own ingest readers (:mod:`xrdbatch.sources`), converted to pymatgen
with :meth:`Crystal.to_structure` for the reference, so both sides see exactly the same atoms.
"""

from __future__ import annotations

import functools
import math
import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from xrdbatch import simulate as S
from xrdbatch._scattering import SCATTERING_PARAMS
from xrdbatch.conditions import Conditions
from xrdbatch.crystal import CRYSTAL_SYSTEMS, Crystal, crystal_system_of

TWO_THETA_TOL_DEG = 1e-3  # the agreement criteria
INTENSITY_TOL = 0.5  # of 100
INTENSITY_FLOOR = 1.0  # peaks above this must agree

CU = Conditions()  # CuKa 1.54184, 5-90 deg


# ------------------------------------------------------------------------------------ helpers ----
def crystal(lattice, species, coords, occ=None, b=None):
    n = len(species)
    return Crystal(lattice, species, coords, occ if occ is not None else [1.0] * n, b if b is not None else [0.0] * n)


def cubic(a, species, coords, **kw):
    return crystal(np.eye(3) * a, species, coords, **kw)


FCC = [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]


def rock_salt(a, cation, anion):
    anions = [((p[0] + 0.5) % 1, p[1], p[2]) for p in FCC]
    return cubic(a, [cation] * 4 + [anion] * 4, FCC + anions)


def form_factor(symbol, d):
    """Scattering factor of the table, written out independently of the kernel."""
    z, coeffs = SCATTERING_PARAMS[symbol]
    s2 = (1 / (2 * d)) ** 2
    return z - 41.78214 * s2 * sum(a * math.exp(-b * s2) for a, b in coeffs)


def reference_reflections(c: Crystal, d_min: float):
    """Brute-force |F|^2 x multiplicity per distinct d (full sphere, no Friedel, complex exp): the definition."""
    inv = np.linalg.inv(c.lattice).T  # rows a*, b*, c*
    n = [int(np.linalg.norm(v) / d_min) + 1 for v in c.lattice]
    grid = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in n], indexing="ij"), -1).reshape(-1, 3)
    g = np.linalg.norm(grid @ inv, axis=1)
    keep = (g > 0) & (g <= 1 / d_min)
    hkl, g = grid[keep], g[keep]
    f = np.array([[form_factor(sym, 1 / gi) * math.exp(-b * (gi / 2) ** 2) for gi in g]
                  for sym, b in zip(c.symbols, c.b_iso)])  # (atoms, hkl)
    phase = np.exp(2j * np.pi * c.frac_coords @ hkl.T)
    F = np.sum(c.occupancies[:, None] * f * phase, axis=0)
    I = np.abs(F) ** 2
    key = np.round(g, 9)
    uniq, inverse = np.unique(key, return_inverse=True)
    return 1 / uniq, np.bincount(inverse, weights=I)


@functools.lru_cache(maxsize=None)
def _read(kind: str):
    """(name, crystal, crystal_system) of every structure of a shared set that the ingest readers read."""
    from xrdbatch import sources

    out = []
    if kind == "aflow":
        root = shared_path("structures", "aflow_prototypes")
        for path in sorted(root.glob("*.cif")):
            m = re.search(r"_[a-zA-Z]{2}\d+_(\d+)_", path.name)
            system = crystal_system_of(int(m.group(1))) if m else ""
            for rec in sources.read_cif(path, path.read_bytes()):
                if rec.crystal is not None:
                    out.append((path.name, rec.crystal, system))
    else:
        root = shared_path("structures", "spglib_poscars")
        for path in sorted(root.rglob("POSCAR*")):
            for rec in sources.read_poscar(path, path.read_bytes()):
                if rec.crystal is not None:
                    out.append((f"{path.parent.name}/{path.name}", rec.crystal, path.parent.name))
    return tuple(out)


def _compare_with_pymatgen(name: str, c: Crystal, conditions: Conditions = CU):
    """Assert the issue's criteria; returns (n_peaks, max |d2theta|, max |dI|) for peaks above the floor."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    c = Crystal(c.lattice, c.symbols, c.frac_coords, c.occupancies, np.zeros(c.n_entries))  # pymatgen: no B
    unknown = set(c.symbols) - set(SCATTERING_PARAMS)
    if unknown:
        with pytest.raises(ValueError, match="no X-ray scattering factors"):
            S.stick_pattern(c, conditions)
        return None
    ref = XRDCalculator(conditions.wavelength_angstrom).get_pattern(
        c.to_structure(), scaled=True, two_theta_range=(conditions.two_theta_min_deg, conditions.two_theta_max_deg))
    ours = S.stick_pattern(c, conditions)
    rx, ry = np.asarray(ref.x), np.asarray(ref.y)
    ox, oy = ours.two_theta_deg, ours.intensity
    worst_x = worst_y = 0.0
    for (ax, ay, bx, by, side) in ((rx, ry, ox, oy, "pymatgen"), (ox, oy, rx, ry, "xrdbatch")):
        for x, y in zip(ax[ay > INTENSITY_FLOOR], ay[ay > INTENSITY_FLOOR]):
            j = np.argmin(np.abs(bx - x)) if len(bx) else None
            assert j is not None and abs(bx[j] - x) <= TWO_THETA_TOL_DEG, (
                f"{name}: {side} peak at {x:.5f} deg (I={y:.2f}) has no partner within {TWO_THETA_TOL_DEG} deg")
            assert abs(by[j] - y) <= INTENSITY_TOL, (
                f"{name}: peak at {x:.5f} deg: I={y:.3f} ({side}) vs {by[j]:.3f}")
            worst_x, worst_y = max(worst_x, abs(bx[j] - x)), max(worst_y, abs(by[j] - y))
    return len(rx), worst_x, worst_y


def _sample(items, per_system: int, seed: int, max_atoms: int):
    rng = random.Random(seed)
    by_system: dict[str, list] = {}
    for item in items:
        if item[1].n_entries <= max_atoms:
            by_system.setdefault(item[2], []).append(item)
    picked = []
    for system in sorted(by_system):
        group = by_system[system]
        picked += rng.sample(group, min(per_system, len(group)))
    return picked


# ------------------------------------------------------------------------ agreement with pymatgen ----
def test_same_peaks_as_pymatgen_on_a_sample_of_every_crystal_system():
    aflow = _sample(_read("aflow"), per_system=8, seed=3, max_atoms=120)
    spglib = _sample(_read("spglib"), per_system=3, seed=3, max_atoms=120)
    systems = {s for _, _, s in aflow} | {s for _, _, s in spglib}
    assert systems == set(CRYSTAL_SYSTEMS)
    compared = [r for name, c, _ in aflow + spglib if (r := _compare_with_pymatgen(name, c)) is not None]
    assert len(compared) >= 60


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["aflow", "spglib"])
def test_same_peaks_as_pymatgen_on_every_shared_structure(kind):
    items = _read(kind)
    assert len(items) > (1000 if kind == "aflow" else 350)
    n = sum(_compare_with_pymatgen(name, c) is not None for name, c, _ in items)
    assert n > (1000 if kind == "aflow" else 350)


def test_same_peaks_as_pymatgen_for_other_wavelengths_and_ranges():
    items = _sample(_read("aflow"), per_system=2, seed=7, max_atoms=60)
    for conditions in (Conditions.from_radiation("MoKa", two_theta_min_deg=2, two_theta_max_deg=60),
                       Conditions.from_radiation("CrKa", two_theta_min_deg=20, two_theta_max_deg=150)):
        for name, c, _ in items:
            _compare_with_pymatgen(name, c, conditions)


def test_debye_waller_and_occupancy_match_pymatgen():
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Lattice, Structure

    # a disordered perovskite-like cell with per-element B
    s = Structure(Lattice.tetragonal(3.9, 4.1), [{"Sr": 0.7, "Ca": 0.3}, {"Ti": 1.0}, {"O": 1}, {"O": 1}, {"O": 0.9}],
                  [(0, 0, 0), (0.5, 0.5, 0.52), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)])
    b = {"Sr": 0.6, "Ca": 0.6, "Ti": 0.4, "O": 1.1}
    c = Crystal.from_structure(s)
    c = Crystal(c.lattice, c.symbols, c.frac_coords, c.occupancies, [b[x] for x in c.symbols])
    ref = XRDCalculator(CU.wavelength_angstrom, debye_waller_factors=b).get_pattern(s, two_theta_range=(5, 90))
    ours = S.stick_pattern(c, CU)
    np.testing.assert_allclose(ours.two_theta_deg, ref.x, atol=1e-6)
    np.testing.assert_allclose(ours.intensity, ref.y, atol=1e-6)
    assert [sorted(map(str, x)) for x in ours.hkls] == [sorted(map(str, x)) for x in ref.hkls]
    # one B for all atoms: intensities scale by exp(-2 B s^2), s = 1 / 2d
    r0 = S.reflections(Crystal(c.lattice, c.symbols, c.frac_coords, c.occupancies, np.zeros(c.n_entries)), 1.0)
    r1 = S.reflections(Crystal(c.lattice, c.symbols, c.frac_coords, c.occupancies, np.full(c.n_entries, 0.8)), 1.0)
    np.testing.assert_allclose(r1.d_angstrom, r0.d_angstrom, rtol=1e-12)
    np.testing.assert_allclose(r1.intensity / r0.intensity, np.exp(-2 * 0.8 / (2 * r0.d_angstrom) ** 2), rtol=1e-9)


def test_stick_pattern_accepts_a_pymatgen_structure_and_reports_hexagonal_4_index_families():
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.hexagonal(3.21, 5.21), ["Mg", "Mg"], [(1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.75)])
    ours = S.stick_pattern(s, CU)
    ref = XRDCalculator("CuKa").get_pattern(s, two_theta_range=(5, 90))
    assert ours.hkls == ref.hkls
    assert all(len(f["hkl"]) == 4 for fams in ours.hkls for f in fams)
    np.testing.assert_allclose(ours.d_angstrom, ref.d_hkls, rtol=1e-9)


# ------------------------------------------------------------------------------------- physics ----
def test_braggs_law_for_every_peak():
    for name, c, _ in _sample(_read("aflow"), per_system=3, seed=11, max_atoms=80):
        for conditions in (CU, Conditions.from_radiation("MoKa", two_theta_max_deg=70)):
            sp = S.stick_pattern(c, conditions)
            lam = conditions.wavelength_angstrom
            np.testing.assert_allclose(2 * sp.d_angstrom * np.sin(np.radians(sp.two_theta_deg / 2)), lam, rtol=1e-9,
                                       err_msg=name)
            assert np.all((sp.two_theta_deg >= conditions.two_theta_min_deg)
                          & (sp.two_theta_deg <= conditions.two_theta_max_deg))


def _allowed_d(a, d_min, rule):
    n = int(a / d_min) + 1
    ds = set()
    for h in range(-n, n + 1):
        for k in range(-n, n + 1):
            for l in range(-n, n + 1):
                q = h * h + k * k + l * l
                if q and a / math.sqrt(q) >= d_min and rule(h, k, l):
                    ds.add(round(a / math.sqrt(q), 9))
    return sorted(ds, reverse=True)


@pytest.mark.parametrize("name, c, rule", [
    ("fcc Cu", cubic(3.615, ["Cu"] * 4, FCC), lambda h, k, l: len({h % 2, k % 2, l % 2}) == 1),
    ("bcc W", cubic(3.165, ["W"] * 2, [(0, 0, 0), (0.5, 0.5, 0.5)]), lambda h, k, l: (h + k + l) % 2 == 0),
    ("diamond Si", cubic(5.431, ["Si"] * 8, FCC + [(x + 0.25, y + 0.25, z + 0.25) for x, y, z in FCC]),
     lambda h, k, l: len({h % 2, k % 2, l % 2}) == 1 and (h % 2 == 1 or (h + k + l) % 4 == 0)),
])
def test_systematic_absences(name, c, rule):
    d_min = 0.6
    r = S.reflections(c, d_min)
    np.testing.assert_allclose(r.d_angstrom, _allowed_d(c.lattice[0, 0], d_min, rule), rtol=1e-9, err_msg=name)
    for h, k, l in r.hkl:
        assert rule(h, k, l), (name, (h, k, l))


def test_rock_salt_intensity_ratios_nacl_vs_kcl():
    ratio = {}
    for name, a, cat in (("NaCl", 5.640, "Na"), ("KCl", 6.293, "K")):
        r = S.reflections(rock_salt(a, cat, "Cl"), 1.0)
        by_hkl = {tuple(h): (d, i) for h, d, i in zip(r.hkl.tolist(), r.d_angstrom, r.intensity)}
        (d111, i111), (d200, i200) = by_hkl[(1, 1, 1)], by_hkl[(2, 0, 0)]
        # F(odd) = 4 (f_M - f_Cl), F(even) = 4 (f_M + f_Cl); multiplicities 8 and 6
        expect = (8 * (form_factor(cat, d111) - form_factor("Cl", d111)) ** 2
                  / (6 * (form_factor(cat, d200) + form_factor("Cl", d200)) ** 2))
        ratio[name] = i111 / i200
        assert ratio[name] == pytest.approx(expect, rel=1e-9)
    assert ratio["KCl"] < 0.01 < ratio["NaCl"] < 0.2  # KCl (111) nearly extinct: K and Cl differ by 2 electrons


def test_wavelength_change_moves_peaks_as_arcsin():
    c = rock_salt(5.64, "Na", "Cl")
    r = S.reflections(c, 0.4)
    for radiation in ("CuKa", "MoKa", "CoKa", "CrKa"):
        cond = Conditions.from_radiation(radiation, two_theta_min_deg=10, two_theta_max_deg=120)
        sp = S.stick_pattern(c, cond)
        seen = r.d_angstrom[r.d_angstrom >= cond.d_min_angstrom]
        expect = np.degrees(2 * np.arcsin(cond.wavelength_angstrom / (2 * seen)))
        expect = expect[expect >= 10]
        np.testing.assert_allclose(np.sort(sp.two_theta_deg), np.sort(expect), atol=1e-9)
        # and the profile maxima of the pattern sit on them (to one grid step)
        fine = cond.replace(fwhm_deg=0.05, two_theta_step_deg=0.01)
        y, tt = S.pattern(r, fine), fine.two_theta_deg()
        top = tt[np.argmax(y)]
        assert np.min(np.abs(expect - top)) <= 0.01


# --------------------------------------------------------------------------- reflections: properties ----
elements = st.sampled_from(["H", "C", "O", "Na", "Si", "Cl", "Fe", "Ba", "Pb", "U"])


@st.composite
def crystals(draw, max_atoms=4):
    a, b, c = (draw(st.floats(2.5, 7.0)) for _ in range(3))
    alpha, beta, gamma = (math.radians(draw(st.floats(70, 110))) for _ in range(3))
    cx = math.cos(beta)
    cy = (math.cos(alpha) - math.cos(beta) * math.cos(gamma)) / math.sin(gamma)
    cz2 = 1 - cx * cx - cy * cy
    if cz2 < 0.1:
        cz2 = 0.1
    lattice = [[a, 0, 0], [b * math.cos(gamma), b * math.sin(gamma), 0], [c * cx, c * cy, c * math.sqrt(cz2)]]
    n = draw(st.integers(1, max_atoms))
    species = [draw(elements) for _ in range(n)]
    coords = [[draw(st.floats(0, 1)) for _ in range(3)] for _ in range(n)]
    occ = [draw(st.sampled_from([1.0, 1.0, 0.5, 0.25])) for _ in range(n)]
    bis = [draw(st.sampled_from([0.0, 0.0, 0.5, 2.0])) for _ in range(n)]
    return crystal(lattice, species, coords, occ, bis)


@settings(max_examples=40, deadline=None)
@given(c=crystals(), d_min=st.floats(1.0, 2.0))
def test_reflections_equal_the_brute_force_definition(c, d_min):
    r = S.reflections(c, d_min)
    d_ref, i_ref = reference_reflections(c, d_min)
    present = i_ref > S.ABSENT_REL_TOL * i_ref.max() * 10
    # every present reference reflection is found with the same |F|^2 x m; nothing else is reported
    for d, i in zip(d_ref[present], i_ref[present]):
        j = np.argmin(np.abs(r.d_angstrom - d))
        assert r.d_angstrom[j] == pytest.approx(d, rel=1e-8)
        assert r.intensity[j] == pytest.approx(i, rel=1e-7, abs=1e-9 * i_ref.max())
    assert len(r.d_angstrom) <= len(d_ref)
    assert np.all(np.diff(r.d_angstrom) < 0) and np.all(r.d_angstrom >= d_min) and np.all(r.intensity > 0)
    assert r.hkl.dtype == np.int32 and r.hkl.shape == (len(r.d_angstrom), 3)
    # the representative hkl has the reported d
    g = np.linalg.norm(r.hkl @ np.linalg.inv(c.lattice).T, axis=1)
    np.testing.assert_allclose(1 / g, r.d_angstrom, rtol=1e-8)


@settings(max_examples=30, deadline=None)
@given(c=crystals(), shift=st.tuples(*[st.floats(-1, 1)] * 3), seed=st.integers(0, 99))
def test_reflections_invariant_under_origin_shift_and_atom_order(c, shift, seed):
    perm = np.random.default_rng(seed).permutation(c.n_entries)
    moved = Crystal(c.lattice, [c.symbols[i] for i in perm], c.frac_coords[perm] + np.asarray(shift),
                    c.occupancies[perm], c.b_iso[perm])
    r0, r1 = S.reflections(c, 1.2), S.reflections(moved, 1.2)
    np.testing.assert_allclose(r1.d_angstrom, r0.d_angstrom, rtol=1e-12)
    np.testing.assert_allclose(r1.intensity, r0.intensity, rtol=1e-8, atol=1e-9 * r0.intensity.max())


def test_reflections_of_an_empty_crystal_and_bad_input():
    empty = crystal(np.eye(3) * 4, [], np.zeros((0, 3)))
    r = S.reflections(empty, 1.0)
    assert r.d_angstrom.shape == (0,) and r.hkl.shape == (0, 3)
    assert S.pattern(r, CU).max() == 0
    with pytest.raises(ValueError, match="singular"):
        S.reflections(crystal(np.zeros((3, 3)), ["Si"], [[0, 0, 0]]), 1.0)
    with pytest.raises(ValueError, match="no X-ray scattering factors for \\['Xx'\\]"):
        S.reflections(crystal(np.eye(3) * 4, ["Xx"], [[0, 0, 0]]), 1.0)
    with pytest.raises(ValueError, match="d_min_angstrom"):
        S.reflections(crystal(np.eye(3) * 4, ["Si"], [[0, 0, 0]]), 0.0)
    with pytest.raises(ValueError, match="MAX_REFLECTIONS"):
        S.reflections(crystal(np.eye(3) * 4000, ["Si"], [[0, 0, 0]]), 0.5)
    with pytest.raises(TypeError, match="Crystal or a pymatgen Structure"):
        S.stick_pattern("Si", CU)


# ---------------------------------------------------------------------------------------- patterns ----
NACL = rock_salt(5.64, "Na", "Cl")


def test_patterns_shape_dtype_scaling_and_zero_rows():
    r = S.reflections(NACL, CU.d_min_angstrom)
    far = S.reflections(cubic(3.0, ["Si"], [[0, 0, 0]]), 50.0)  # nothing down to 50 angstrom: no peak
    y = S.patterns([r, far, r], CU)
    assert y.shape == (3, CU.n_points) and y.dtype == np.float32
    assert y[0].max() == pytest.approx(1.0) and y[1].max() == 0 and np.array_equal(y[0], y[2])
    assert np.array_equal(S.pattern(r, CU), y[0])
    assert S.patterns([], CU).shape == (0, CU.n_points)


@pytest.mark.parametrize("profile", ["gaussian", "lorentzian", "pseudo_voigt"])
def test_profile_fwhm_and_position(profile):
    one = S.Reflections(np.array([2.0]), np.array([1.0]), np.array([[1, 0, 0]], np.int32))
    cond = Conditions(two_theta_min_deg=40, two_theta_max_deg=50, two_theta_step_deg=0.001, fwhm_deg=0.2,
                      profile=profile)
    y = S.pattern(one, cond)
    tt = cond.two_theta_deg()
    centre = math.degrees(2 * math.asin(cond.wavelength_angstrom / 4))
    assert tt[np.argmax(y)] == pytest.approx(centre, abs=0.001)
    above = tt[y >= 0.5]
    assert above[-1] - above[0] == pytest.approx(0.2, abs=0.003)


def test_ka2_doublet_and_caglioti_widths():
    one = S.Reflections(np.array([1.2]), np.array([1.0]), np.array([[1, 0, 0]], np.int32))
    cond = Conditions.from_radiation("CuKa12", two_theta_min_deg=75, two_theta_max_deg=82, two_theta_step_deg=0.002,
                                     fwhm_deg=0.05, profile="gaussian")
    y = S.pattern(one, cond)
    tt = cond.two_theta_deg()
    p1, p2 = (math.degrees(2 * math.asin(lam / 2.4)) for lam in cond.wavelengths_angstrom)
    i1, i2 = (np.argmin(np.abs(tt - p)) for p in (p1, p2))
    assert y[i1] == pytest.approx(1.0, abs=0.01) and y[i2] == pytest.approx(0.5, abs=0.02)
    # Caglioti: FWHM^2 = U tan^2 + V tan + W grows with angle
    cag = Conditions(two_theta_min_deg=10, two_theta_max_deg=140, two_theta_step_deg=0.002, profile="gaussian",
                     caglioti_u_deg2=0.02, caglioti_v_deg2=-0.01, caglioti_w_deg2=0.01)
    tt = cag.two_theta_deg()
    for d in (3.0, 0.9):
        y = S.pattern(S.Reflections(np.array([d]), np.array([1.0]), np.array([[1, 0, 0]], np.int32)), cag)
        th = math.asin(cag.wavelength_angstrom / (2 * d))
        expect = math.sqrt(0.02 * math.tan(th) ** 2 - 0.01 * math.tan(th) + 0.01)
        above = tt[y >= 0.5]
        assert above[-1] - above[0] == pytest.approx(expect, abs=0.005)


def test_lorentz_polarisation_and_monochromator():
    two = S.Reflections(np.array([3.0, 1.2]), np.array([1.0, 1.0]), np.zeros((2, 3), np.int32))
    cond = Conditions(two_theta_min_deg=10, two_theta_max_deg=100, profile="gaussian")
    mono = cond.replace(monochromator_two_theta_deg=26.6)
    tt = cond.two_theta_deg()

    def lp(t, m2=None):
        th = math.radians(t / 2)
        pol = (1 + math.cos(2 * th) ** 2) if m2 is None else (1 + m2 * math.cos(2 * th) ** 2) / (1 + m2)
        return pol / (math.sin(th) ** 2 * math.cos(th))

    peaks = [math.degrees(2 * math.asin(cond.wavelength_angstrom / (2 * d))) for d in (3.0, 1.2)]
    m2 = math.cos(math.radians(26.6)) ** 2
    for c, m in ((cond, None), (mono, m2)):
        y = S.pattern(two, c)
        h = [y[np.argmin(np.abs(tt - p))] for p in peaks]
        # same FWHM and step: height ratio = LP ratio (grid points sit within 0.01 deg of the centres)
        assert h[1] / h[0] == pytest.approx(lp(peaks[1], m) / lp(peaks[0], m), rel=0.03)


@pytest.mark.parametrize("profile", ["gaussian", "lorentzian", "pseudo_voigt"])
@pytest.mark.parametrize("mono", [None, 26.6])
def test_pattern_equals_the_documented_formula_point_by_point(profile, mono):
    """The renderer (vectorised loops, Gaussian recurrence, LP without trigonometry) against the formula of
    :func:`patterns` evaluated directly with numpy, at every grid point, for two K-alpha lines."""
    refl = S.Reflections(np.array([3.1, 2.0, 1.43, 1.2]), np.array([2.0, 5.0, 1.0, 3.0]), np.zeros((4, 3), np.int32))
    cond = Conditions.from_radiation("CuKa12", two_theta_min_deg=20, two_theta_max_deg=85, two_theta_step_deg=0.01,
                                     fwhm_deg=0.12, profile=profile, eta=0.4, monochromator_two_theta_deg=mono)
    tt = cond.two_theta_deg()
    expect = np.zeros_like(tt)
    m2 = None if mono is None else math.cos(math.radians(mono)) ** 2
    for lam, weight in zip(cond.wavelengths_angstrom, [1.0, cond.ka2_ratio]):
        for d, inten in zip(refl.d_angstrom, refl.intensity):
            th = math.asin(lam / (2 * d))
            pol = 1 + math.cos(2 * th) ** 2 if m2 is None else (1 + m2 * math.cos(2 * th) ** 2) / (1 + m2)
            lp = pol / (math.sin(th) ** 2 * math.cos(th))
            h, x = cond.fwhm_deg, tt - math.degrees(2 * th)
            gauss = 2 / h * math.sqrt(math.log(2) / math.pi) * np.exp(-4 * math.log(2) * x**2 / h**2)
            lorentz = 2 / (math.pi * h) / (1 + 4 * x**2 / h**2)
            gauss[np.abs(x) > 3.5 * h] = 0.0  # the windows of the renderer (the Gaussian is < 1e-14 there)
            lorentz[np.abs(x) > S.WINDOW_FWHM * h] = 0.0
            shape = {"gaussian": gauss, "lorentzian": lorentz, "pseudo_voigt": 0.4 * lorentz + 0.6 * gauss}[profile]
            expect += weight * inten * lp * shape
    np.testing.assert_allclose(S.pattern(refl, cond), expect / expect.max(), rtol=0, atol=2e-6)


def test_patterns_reuse_reflections_computed_for_a_wider_range():
    # reflections up to window_fwhm x FWHM beyond the grid contribute tails; beyond that, nothing
    r = S.reflections(NACL, 0.5)
    edge = CU.two_theta_max_deg + S.WINDOW_FWHM * CU.fwhm_deg
    r_exact = S.reflections(NACL, CU.wavelength_angstrom / (2 * math.sin(math.radians(edge / 2))))
    assert len(r_exact.d_angstrom) < len(r.d_angstrom)
    np.testing.assert_array_equal(S.pattern(r, CU), S.pattern(r_exact, CU))


# ------------------------------------------------------------------------------------- big cells ----
def test_large_cells_run_with_bounded_memory():
    import resource

    from xrdbatch import sources

    root = shared_path("structures", "core_mof_sample")
    paths = sorted(root.glob("*.cif"), key=lambda p: p.stat().st_size)[-3:]  # the biggest files
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = 0
    for path in paths:
        for rec in sources.read_cif(path, path.read_bytes()):
            if rec.crystal is None or set(rec.crystal.symbols) - set(SCATTERING_PARAMS):
                continue
            r = S.reflections(rec.crystal, CU.d_min_angstrom)
            y = S.pattern(r, CU)
            assert len(r.d_angstrom) > 100 and y.max() == pytest.approx(1.0)
            n += 1
    assert n >= 1
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"peak RSS grew by {grown_mb:.0f} MB on MOF cells"

"""Tests of xrdbatch.lattice_hints: trial-indexing scores and peak density."""

from __future__ import annotations

import numpy as np

from xrdbatch import features, lattice_hints as lh

LAMBDA = 1.5406


def _peaks_from_d(rows_of_d, heights=None):
    """A Peaks table from lists of d-spacings (one list per pattern)."""
    pat, tt, hh = [], [], []
    for i, ds in enumerate(rows_of_d):
        t = np.degrees(2 * np.arcsin(LAMBDA / (2 * np.asarray(ds))))
        order = np.argsort(t)
        pat += [i] * len(ds)
        tt += list(t[order])
        hh += list((heights[i] if heights else np.linspace(1.0, 0.3, len(ds)))[order])
    pat, tt = np.array(pat, np.int64), np.array(tt)
    q = 4 * np.pi * np.sin(np.radians(tt) / 2) / LAMBDA
    offsets = np.zeros(len(rows_of_d) + 1, np.int64)
    np.cumsum(np.bincount(pat, minlength=len(rows_of_d)), out=offsets[1:])
    return features.Peaks(pat, tt, q, np.array(hh, np.float32), offsets)


def _cubic_d(a, n=12):
    ns = [N for N in range(1, 60) if lh._CUBIC[N]][:n]
    return [a / np.sqrt(N) for N in ns]


def _tetragonal_d(a, c, n=12):
    lines = sorted({(h * h + k * k) / a ** 2 + l * l / c ** 2 for h in range(4) for k in range(4) for l in range(4)
                    if (h, k, l) != (0, 0, 0)})[:n]
    return [1 / np.sqrt(x) for x in lines]


def test_cubic_pattern_scores_high_and_random_low():
    rng = np.random.default_rng(0)
    random_d = [sorted(rng.uniform(1.2, 8.0, 12), reverse=True) for _ in range(5)]
    peaks = _peaks_from_d([_cubic_d(5.43), _cubic_d(11.9)] + random_d)
    s = lh.indexing_scores(peaks)
    assert s.shape == (7, 3)
    assert s[0, 0] > 0.6 and s[1, 0] > 0.6
    assert s[2:, 0].max() < s[:2, 0].min()


def test_tetragonal_pattern_prefers_the_tetragonal_family():
    peaks = _peaks_from_d([_tetragonal_d(4.6, 3.0), _tetragonal_d(6.1, 9.3)])
    s = lh.indexing_scores(peaks)
    assert np.all(s[:, 1] > 0.6)
    assert np.all(s[:, 1] > s[:, 0])


def test_few_peaks_and_empty_tables_are_handled():
    peaks = _peaks_from_d([[3.0, 2.0], _cubic_d(4.0)])
    s = lh.indexing_scores(peaks)
    assert np.all(s[0] == 0.0)
    d = lh.density_features(peaks)
    assert np.all(d[0] == -99.0) and np.all(np.isfinite(d[1]))
    names = features.feature_names("measured")
    assert names[-6:-3] == ["index_excess_cubic", "index_excess_tetragonal", "index_excess_hexagonal"]


def _lines(inv_d2, d_min=1.3):
    x = np.unique(np.round(inv_d2, 10))
    x = x[(x > 0) & (x <= 1 / d_min ** 2)]
    return list(1 / np.sqrt(x))


def test_density_is_higher_for_lower_symmetry_at_the_same_volume():
    h, k, l = np.meshgrid(*[np.arange(0, 12)] * 3, indexing="ij")
    a, b, c = 5.1, 6.3, 7.9
    ortho = _lines(h ** 2 / a ** 2 + k ** 2 / b ** 2 + l ** 2 / c ** 2)
    cubic = _lines((h ** 2 + k ** 2 + l ** 2) / (a * b * c) ** (2 / 3))
    d = lh.density_features(_peaks_from_d([cubic, ortho], [np.ones(len(cubic)), np.ones(len(ortho))]))
    # log(48 / 8) = 1.8 apart in principle; the volume estimate d1 d2 d3 is a/2.45 for cubic, so ~0.9
    assert d[1, 0] > d[0, 0] + 0.3


# ---------------------------------------------------------------- orthorhombic / monoclinic / centring ----
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from xrdbatch import simulate  # noqa: E402
from xrdbatch.conditions import Conditions  # noqa: E402
from xrdbatch.crystal import Crystal  # noqa: E402

COL = {name: i for i, name in enumerate(lh.LOW_SYMMETRY_NAMES)}
CEN = {name: i for i, name in enumerate(lh.CENTRING_NAMES)}


def _crystal(lattice, symbols, frac):
    n = len(symbols)
    return Crystal(np.asarray(lattice, float), symbols, frac, [1.0] * n, [0.5] * n)


def _simulated_peaks(crystals):
    cond = Conditions.from_radiation("CuKa")
    ys = np.stack([simulate.pattern(simulate.reflections(c, cond.d_min_angstrom), cond) for c in crystals])
    return features.find_peaks(cond.two_theta_deg(), ys, cond.wavelength_angstrom)


def _ortho_d(a, b, c, n=20, cond=None):
    h, k, l = np.meshgrid(*[np.arange(0, 12)] * 3, indexing="ij")
    keep = np.ones(h.shape, bool) if cond is None else cond(h, k, l)
    return _lines((h ** 2 / a ** 2 + k ** 2 / b ** 2 + l ** 2 / c ** 2)[keep])[:n]


def _mono_d(a, b, c, beta_deg, n=20):
    h, k, l = np.meshgrid(np.arange(-11, 12), np.arange(0, 12), np.arange(-11, 12), indexing="ij")
    beta = np.radians(beta_deg)
    s2 = np.sin(beta) ** 2
    x = h ** 2 / (a * a * s2) + k ** 2 / b ** 2 + l ** 2 / (c * c * s2) - 2 * h * l * np.cos(beta) / (a * c * s2)
    return _lines(x)[:n]


def test_simulated_orthorhombic_pattern_indexes_to_its_cell():
    rng = np.random.default_rng(3)
    ortho = _crystal(np.diag([5.1, 6.3, 7.9]), ["Ca", "O", "O", "Si"], rng.uniform(0, 1, (4, 3)))
    beta = np.radians(104.0)
    mono = _crystal([[5.2, 0, 0], [0, 6.8, 0], [7.7 * np.cos(beta), 0, 7.7 * np.sin(beta)]], ["Ca", "O", "O", "Si"],
                    rng.uniform(0, 1, (4, 3)))
    peaks = _simulated_peaks([ortho, mono])
    cells = lh.best_cells(peaks)
    np.testing.assert_allclose(np.sort(cells["orthorhombic"][0]), [5.1, 6.3, 7.9], rtol=2e-3)
    f = lh.low_symmetry_features(peaks)
    assert f[0, COL["index_excess_orthorhombic"]] > 0.85
    assert f[0, COL["index_mono_minus_ortho"]] < 0.0  # the orthorhombic cell needs no oblique angle
    # monoclinic: the same lattice (any setting): unique axis and volume
    a, b, c, beta_fit = cells["monoclinic"][1]
    assert b == pytest.approx(6.8, rel=2e-3)
    assert a * b * c * np.sin(np.radians(beta_fit)) == pytest.approx(5.2 * 6.8 * 7.7 * np.sin(beta), rel=5e-3)
    assert f[1, COL["index_excess_monoclinic"]] > 0.85
    assert f[1, COL["index_mono_minus_ortho"]] > 0.1


def test_monoclinic_patterns_prefer_the_oblique_cell_and_orthorhombic_do_not():
    rng = np.random.default_rng(1)
    mono = [_mono_d(*rng.uniform(4, 11, 3), rng.uniform(95, 118)) for _ in range(20)]
    ortho = [_ortho_d(*rng.uniform(4, 11, 3)) for _ in range(20)]
    f = lh.low_symmetry_features(_peaks_from_d(mono + ortho))
    gain = f[:, COL["index_mono_minus_ortho"]]
    assert np.mean(gain[:20] > 0.05) >= 0.8
    assert np.all(gain[20:] <= 0.05)
    assert np.all(f[20:, COL["index_excess_orthorhombic"]] > 0.8)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2 ** 32 - 1))
def test_random_positions_score_far_below_a_lattice(seed):
    rng = np.random.default_rng(seed)
    random_d = [sorted(rng.uniform(1.3, 8.0, 20), reverse=True) for _ in range(3)]
    f = lh.low_symmetry_features(_peaks_from_d(random_d + [_ortho_d(*rng.uniform(4, 11, 3))]))
    excess = f[:, COL["index_excess_orthorhombic"]]
    # the best of ~1000 trial cells fits some random lines beyond the chance estimate (selection), never most; a
    # large true cell can miss a line (and pays the most chance). Over seeds 0-2599: random <= 0.61, true >= 0.78,
    # true - best random >= 0.31 (hypothesis found seeds 79 and 779 below the bounds 0.6 / 0.8 used before)
    assert excess[:3].max() < 0.7
    assert excess[3] > 0.7 and excess[3] - excess[:3].max() > 0.2


def test_orthorhombic_centring_is_recognised():
    c_centred = _ortho_d(5.5, 7.0, 9.0, cond=lambda h, k, l: (h + k) % 2 == 0)
    primitive = _ortho_d(5.5, 7.0, 9.0)
    f = lh.low_symmetry_features(_peaks_from_d([c_centred, primitive]))
    face = f[:, COL["ortho_excess_C_minus_P"]]
    assert face[0] > 0 > face[1] + 0.1


def test_centring_of_cubic_tetragonal_hexagonal_cells():
    def cubic(a, allowed, n=12):
        return [a / np.sqrt(N) for N in range(1, 100) if lh._CUBIC[N] and allowed(N)][:n]

    def tet(a, c, body_centred):
        x = {(h * h + k * k) / a ** 2 + l * l / c ** 2 for h in range(6) for k in range(6) for l in range(8)
             if (h, k, l) != (0, 0, 0) and (not body_centred or (h + k + l) % 2 == 0)}
        return [1 / np.sqrt(v) for v in sorted(x)[:12]]

    def hexa(a, c, rhombohedral):
        h, k, l = np.meshgrid(*[np.arange(-8, 9)] * 3, indexing="ij")
        keep = ((-h + k + l) % 3 == 0) if rhombohedral else np.ones(h.shape, bool)
        return _lines((4 / 3 * (h ** 2 + h * k + k ** 2) / a ** 2 + l ** 2 / c ** 2)[keep], 1.2)[:12]

    rows = [cubic(4.3, lambda N: N % 2 == 0), cubic(5.0, lambda N: N % 8 == 3 or N % 4 == 0),
            tet(4.6, 3.0, False), tet(4.0, 9.0, True), hexa(3.2, 5.1, False), hexa(4.99, 17.06, True)]
    f = lh.centring_features(_peaks_from_d(rows))
    # cubic: a P or I pattern is also indexed by I / F / Fd cells of sqrt(2) or 2 times the edge (N' = 2N, 4N),
    # so only conditions no supercell can satisfy show up: fcc is not diamond
    assert f[0, CEN["cubic_I_minus_P"]] >= 0  # bcc
    assert f[1, CEN["cubic_F_minus_P"]] >= 0 > f[1, CEN["cubic_Fd_minus_P"]] + 0.1  # fcc, not diamond
    assert f[2, CEN["tetragonal_I_minus_P"]] < -0.2 < 0 <= f[3, CEN["tetragonal_I_minus_P"]]
    assert f[4, CEN["hexagonal_R_minus_P"]] < -0.2 < 0 <= f[5, CEN["hexagonal_R_minus_P"]]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(1.3, 9.0), min_size=6, max_size=25, unique=True), st.floats(0.8, 1.25))
def test_strong_line_ratios_do_not_depend_on_the_cell_scale(ds, scale):
    ds = sorted(ds, reverse=True)
    scaled = [d * scale for d in ds if d * scale > 0.8]
    if len(scaled) < len(ds):
        return
    heights = [np.linspace(1.0, 0.2, len(ds))] * 2
    r = lh.ratio_features(_peaks_from_d([ds, scaled], heights))
    strong = [i for i, name in enumerate(lh.RATIO_NAMES) if name.startswith("strong")]
    np.testing.assert_allclose(r[0, strong], r[1, strong], rtol=1e-9)
    assert np.all(r[:, :-len(strong)] >= -1)


def test_indexed_feature_set_extends_measured(shared):
    folder = shared("measured", "rruff_minerals_dev")
    names = features.feature_names("indexed")
    assert names[:len(features.feature_names("measured"))] == features.feature_names("measured")
    assert len(set(names)) == len(names)
    files = sorted(folder.glob("rruff_*.xy"))[:8]
    for path in files:
        data = np.loadtxt(path)
        x = features.extract(data[:, 0], data[:, 1], LAMBDA, "indexed", height_rel=0.04)
        assert x.shape == (1, len(names)) and np.all(np.isfinite(x)), path
        excess = x[0, names.index("index_excess_orthorhombic")]
        assert -0.5 <= excess <= 1.0, path


def test_fraction_excess_follows_the_lattice_family():
    rng = np.random.default_rng(5)
    # a square net (h k 0 lines of a tetragonal cell): m = h^2 + k^2 = 1, 2, 4, 5, 8 ... -> halves and quarters
    square = [5.0 / np.sqrt(m) for m in range(1, 40) if lh._TET[m]][:15]
    rows = [_cubic_d(5.43, 15), square] + [sorted(rng.uniform(1.3, 8, 15), reverse=True) for _ in range(20)]
    f = lh.fraction_features(_peaks_from_d(rows))
    q = {name: i for i, name in enumerate(lh.FRACTION_NAMES)}
    integers = f[:, q["fraction_excess_q1_first15"]]
    assert integers[0] > 0.15  # simple cubic: N ratios are integers
    assert integers[0] > integers[2:].max() and abs(integers[2:].mean()) < 0.05
    assert f[1, q["fraction_excess_q2_first15"]] > f[2:, q["fraction_excess_q2_first15"]].max()
    assert np.all(lh.fraction_features(_peaks_from_d([[3.0]]))[0] == lh.MISSING_RATIO)


# ---------------------------------------------------------------- zero-shift-refined trial indexing ----
def _shifted(peaks, zero_deg):
    """The same peaks seen with a zero error: every 2-theta moved by ``zero_deg`` (Q recomputed)."""
    tt = peaks.two_theta_deg + zero_deg
    return peaks._replace(two_theta_deg=tt, q_per_angstrom=4 * np.pi * np.sin(np.radians(tt) / 2) / LAMBDA)


def _hexagonal_d(a, c, n=12):
    lines = sorted({4 / 3 * (h * h + h * k + k * k) / a ** 2 + l * l / c ** 2 for h in range(4) for k in range(4)
                    for l in range(5) if (h, k, l) != (0, 0, 0)})[:n]
    return [1 / np.sqrt(x) for x in lines]


@pytest.mark.parametrize("zero_deg", [-0.09, 0.07])
def test_refinement_recovers_shifted_cells_and_their_zero_shift(zero_deg):
    cells = [_cubic_d(5.43), _tetragonal_d(4.6, 3.0), _hexagonal_d(3.2, 5.1)]
    peaks = _shifted(_peaks_from_d(cells), zero_deg)
    plain = lh.indexing_scores(peaks)
    refined = lh.refined_indexing_scores(peaks)
    for fam, row in enumerate(range(3)):  # cubic row -> cubic family, tetragonal -> tetragonal, ...
        assert refined[row, fam] > 0.8, (row, refined[row])
        assert refined[row, fam] >= plain[row, fam]
        assert refined[row, 3 + fam] == pytest.approx(zero_deg, abs=0.02)
    # a shift this size breaks the unrefined search (the trial cell from two low lines is off by z cot(theta))
    assert min(plain[r, r] for r in range(3)) < 0.8


def test_refinement_keeps_random_positions_low():
    rng = np.random.default_rng(3)
    random_d = [sorted(rng.uniform(1.2, 8.0, 12), reverse=True) for _ in range(20)]
    true = [_cubic_d(4.1), _tetragonal_d(6.1, 9.3), _hexagonal_d(4.1, 6.6)]
    r = lh.refined_indexing_scores(_shifted(_peaks_from_d(true + random_d), 0.05))
    for fam in range(3):
        assert r[3:, fam].max() < r[fam, fam], (fam, r[3:, fam].max(), r[fam, fam])
    assert np.median(r[3:, :3]) < 0.6
    assert np.all(np.abs(r[:, 3:]) <= lh.MAX_ZERO_SHIFT_DEG + 1e-9)


def test_refined_block_is_registered_with_its_names():
    peaks = _peaks_from_d([[3.0, 2.0], _cubic_d(4.0)])
    values, names = features.BLOCKS["refined"](peaks, 1)
    assert names == list(lh.REFINED_NAMES) and values.shape == (2, 6)
    assert np.all(values[0] == 0.0)


def test_consensus_prefers_the_simplest_cell_that_explains_the_lines():
    rng = np.random.default_rng(11)
    rows = [_tetragonal_d(4.6, 3.0, 20), _hexagonal_d(3.2, 5.1, 20), _ortho_d(5.1, 6.3, 7.9), _ortho_d(4.4, 8.7, 10.2),
            sorted(rng.uniform(1.3, 9.0, 20), reverse=True)]
    values, names = features.BLOCKS["consensus"](_shifted(_peaks_from_d(rows), 0.05), 1)
    col = {n: i for i, n in enumerate(names)}
    assert len(names) == len(set(names)) == values.shape[1]
    assert names == features.feature_names("indexed3")[56:56 + len(names)]
    # a tetragonal lattice is also orthorhombic: its tetragonal cell explains as much as the orthorhombic one, while
    # on orthorhombic lattices the uniaxial cells fall short of the orthorhombic cell
    tet_ort, hex_ort = values[:4, col["tetragonal_minus_orthorhombic"]], values[:4, col["hexagonal_minus_orthorhombic"]]
    assert tet_ort[0] > -0.05 and tet_ort[0] > tet_ort[2:].max() + 0.1
    assert hex_ort[1] > -0.05 and hex_ort[1] > hex_ort[2:].max() + 0.15
    np.testing.assert_allclose(values[:, col["tetragonal_minus_orthorhombic"]],
                               values[:, col["index_excess_refined_tetragonal"]]
                               - values[:, col["index_excess_orthorhombic"]])


# ---- the fast paths of the searches decide exactly what the plain searches decide

_coef = st.floats(0.002, 0.4)
_line = st.floats(0.01, 0.9)
_tol = st.floats(1e-5, 5e-3)


@settings(max_examples=300, deadline=None)
@given(_line, _tol, _coef, _coef, _coef)
def test_orthorhombic_line_match_agrees_with_the_residual_search(xj, tj, a, b, c):
    exact = lh._resid_ortho(xj, tj, a, b, c, 0) >= 0
    assert (lh._resid_ortho(xj, tj, a, b, c, 0, True) >= 0) == exact
    assert lh._ortho_hit(xj, tj, a, b, c, *lh._sorted3(a, b, c)) == exact
    m = lh._ortho_match(xj, tj, *lh._sorted3(a, b, c))
    assert m < 0 or bool(m) == exact


@settings(max_examples=300, deadline=None)
@given(_line, _tol, _coef, _coef)
def test_zone_line_match_agrees_with_the_plain_search(xj, tj, a, b):
    a, b = max(a, b), min(a, b)
    exact = lh._zone_any(xj, tj, a, b)
    m = lh._zone_match(xj, tj, a, b)
    assert m < 0 or bool(m) == exact
    # a line the zone indexes is indexed by any cell built on it
    if m == 1:
        assert lh._resid_ortho(xj, tj, a, b, 0.05, 0) >= 0


@settings(max_examples=200, deadline=None)
@given(_line, _tol, _coef, _coef, _coef, st.floats(-0.9, 0.9), st.integers(0, 5))
def test_monoclinic_first_match_agrees_with_the_residual_search(xj, tj, p, u, r, cos_beta, cond):
    d = cos_beta * np.sqrt(p * r)
    assert (lh._resid_mono(xj, tj, p, u, r, d, cond, True) >= 0) == (lh._resid_mono(xj, tj, p, u, r, d, cond) >= 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_line, _tol), min_size=1, max_size=20), st.floats(0.0, 50.0), st.floats(0.0, 20.0),
       st.floats(0.0, 5.0))
def test_chance_floor_is_below_the_chance(lines, c_vol, c_face, c_edge):
    x, tol = np.array(lines).T.copy()
    n = x.size
    assert lh._chance_floor(x, tol, n, c_vol, c_face, c_edge) <= lh._chance(x, tol, n, c_vol, c_face, c_edge)


def test_consensus_centring_is_consensus_then_centring():
    """The combined block (one trial-cell scan) gives the columns and values of the two blocks run apart."""
    rng = np.random.default_rng(2)
    rows = [_cubic_d(5.43), _tetragonal_d(4.6, 3.0), _hexagonal_d(3.2, 5.1)] + \
        [sorted(rng.uniform(1.2, 8.0, 12), reverse=True) for _ in range(5)]
    peaks = _peaks_from_d(rows)
    both, names = features.BLOCKS["consensus_centring"](peaks, 1)
    consensus, c_names = features.BLOCKS["consensus"](peaks, 1)
    centring, z_names = features.BLOCKS["centring"](peaks, 1)
    assert names == c_names + z_names
    np.testing.assert_array_equal(both, np.concatenate([consensus, centring], axis=1))
    assert np.abs(centring).sum() > 0  # the example exercises the centring columns


# ---------------------------------------------------------------- orthorhombic search from line triples ----
TRIPLES = {n: i for i, n in enumerate(lh.TRIPLES_NAMES)}


def test_triples_find_shifted_orthorhombic_cells():
    """Orthorhombic cells seen with a zero error: the triples (refined) index every tested line and recover the
    shift and the axis ratios; random positions stay well below."""
    rng = np.random.default_rng(7)
    edges = [(5.1, 6.3, 7.9), (4.4, 8.7, 10.2), (3.9, 6.6, 12.4)]
    random_d = [sorted(rng.uniform(1.3, 9.0, 20), reverse=True) for _ in range(8)]
    peaks = _shifted(_peaks_from_d([_ortho_d(*e) for e in edges] + random_d), 0.08)
    t = lh.triples_features(peaks)
    assert t.shape == (len(edges) + 8, len(lh.TRIPLES_NAMES))
    n = len(edges)
    assert np.all(t[:n, TRIPLES["triples_matched_orthorhombic"]] == 1.0)
    np.testing.assert_allclose(t[:n, TRIPLES["triples_zero_shift_deg"]], 0.08, atol=0.02)
    # the first cell comes out with its own edges; the long-axis ones may come out as a supercell that indexes the
    # same 20 lines (their five lowest lines leave one axis undetermined)
    logs = np.log(edges[0])
    assert t[0, TRIPLES["triples_axis_log_ratio_max"]] == pytest.approx(logs.max() - logs.min(), abs=0.01)
    assert t[0, TRIPLES["triples_axis_log_ratio_min"]] == pytest.approx(np.log(6.3 / 5.1), abs=0.01)
    excess = t[:, TRIPLES["triples_excess_orthorhombic"]]
    assert excess[:n].min() > 0.8 and excess[n:].max() < excess[:n].min() - 0.2
    # the zone search (no refinement) loses the first one at this shift (it keeps the second: neither search
    # contains the other, which is why indexed4 keeps both)
    zones = lh.low_symmetry_features(peaks)[:n, COL["index_excess_orthorhombic"]]
    assert excess[0] > zones[0] + 0.2


def test_triples_of_a_monoclinic_pattern_leave_lines_unindexed():
    rng = np.random.default_rng(4)
    mono = [_mono_d(*rng.uniform(4, 11, 3), rng.uniform(100, 118)) for _ in range(10)]
    ortho = [_ortho_d(*rng.uniform(4, 11, 3)) for _ in range(10)]
    t = lh.triples_features(_peaks_from_d(mono + ortho))
    matched = t[:, TRIPLES["triples_matched_orthorhombic"]]
    assert np.median(matched[:10]) < 0.9 and np.mean(matched[10:] == 1.0) >= 0.9
    few = lh.triples_features(_peaks_from_d([[3.0, 2.0, 1.5]]))
    assert np.all(few == 0.0)


def test_consensus_triples_extends_consensus_centring():
    rng = np.random.default_rng(2)
    rows = [_ortho_d(5.1, 6.3, 7.9), _tetragonal_d(4.6, 3.0, 20)] + \
        [sorted(rng.uniform(1.2, 8.0, 15), reverse=True) for _ in range(3)]
    peaks = _peaks_from_d(rows)
    values, names = features.BLOCKS["consensus_triples"](peaks, 1)
    base, base_names = features.BLOCKS["consensus_centring"](peaks, 1)
    assert names == base_names + list(lh.TRIPLES_NAMES) + list(lh.TRIPLES_CROSS_NAMES)
    np.testing.assert_array_equal(values[:, :len(base_names)], base)
    t = values[:, names.index("triples_excess_orthorhombic")]
    np.testing.assert_allclose(values[:, names.index("monoclinic_minus_triples_orthorhombic")],
                               base[:, base_names.index("index_excess_monoclinic")] - t)
    # indexed4 = indexed3 with the triples columns after the consensus/centring ones
    i3 = features.feature_names("indexed3")
    cut = i3.index(base_names[-1]) + 1
    assert features.feature_names("indexed4") == i3[:cut] + names[len(base_names):] + i3[cut:]

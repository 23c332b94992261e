"""Tests of xrdbatch.augment: measurement-like patterns from condition-free reflections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import nacl
from xrdbatch import augment, features, simulate as sim
from xrdbatch.conditions import Conditions
from xrdbatch.crystal import Crystal

COND = Conditions.from_radiation("CuKa12", two_theta_min_deg=10.0, two_theta_max_deg=80.0, two_theta_step_deg=0.02)


def _ortho() -> Crystal:
    lat = np.diag([4.1, 5.3, 7.7])
    frac = np.array([[0.1, 0.2, 0.3], [0.6, 0.1, 0.8], [0.3, 0.7, 0.15]])
    return Crystal(lat, ("Ca", "O", "Si"), frac, np.ones(3), np.full(3, 0.5))


@pytest.fixture(scope="module")
def refls():
    return [sim.reflections(nacl(), 1.0), sim.reflections(_ortho(), 1.0)]


def test_params_json_round_trip_and_without():
    p = augment.AugmentParams(counts_log=(100.0, 1000.0))
    assert augment.AugmentParams.from_json(p.to_json()) == p
    off = p.without("noise", "impurity")
    assert off.counts_log == (0.0, 0.0) and off.impurity_mean == 0.0 and off.strain_rel == p.strain_rel
    with pytest.raises(ValueError, match="valid"):
        p.without("sunlight")
    with pytest.raises(ValueError, match="unknown augmentation parameter"):
        augment.AugmentParams.from_dict({"colour": 1})


def test_draw_is_a_pure_function_of_seed_index_copy():
    p = augment.AugmentParams()
    a, b = augment.draw(p, 3, 17, 1), augment.draw(p, 3, 17, 1)
    assert a["noise_seed"] == b["noise_seed"] and np.array_equal(a["strain"], b["strain"])
    assert augment.draw(p, 3, 17, 2)["noise_seed"] != a["noise_seed"]


def test_chunking_does_not_change_patterns(refls):
    whole, rec = augment.measured_patterns(refls, COND, seed=5)
    first, _ = augment.measured_patterns(refls[:1], COND, seed=5)
    second, _ = augment.measured_patterns(refls[1:], COND, seed=5, index_offset=1)
    np.testing.assert_array_equal(whole, np.concatenate([first, second]))
    assert list(rec["index"]) == [0, 1] and {"counts", "march_dollase_r", "strain_a"} <= set(rec.columns)


def test_ideal_patterns_find_the_simulated_peaks(refls):
    ideal, _ = augment.measured_patterns(refls[:1], COND, params=augment.IDEAL)
    assert ideal.max() == pytest.approx(1.0)
    ref = sim.patterns(refls[:1], COND)
    tt = COND.two_theta_deg()
    # same strongest peak position as the reference simulator
    assert abs(tt[ideal[0].argmax()] - tt[ref[0].argmax()]) <= 0.05


def test_noise_and_background_degrade_but_keep_the_strong_peaks(refls):
    tt = COND.two_theta_deg()
    ideal, _ = augment.measured_patterns(refls[:1], COND, params=augment.IDEAL)
    noisy, rec = augment.measured_patterns(refls[:1], COND, params=augment.AugmentParams(counts_log=(200.0, 200.0)),
                                           seed=1)
    assert noisy.min() >= 0 and noisy.max() == pytest.approx(1.0)
    assert not np.allclose(noisy, ideal)
    p_ideal = features.find_peaks(tt, ideal, COND.wavelength_angstrom, height_rel=0.2)
    p_noisy = features.find_peaks(tt, noisy, COND.wavelength_angstrom, height_rel=0.2)
    for pos in p_ideal.two_theta_deg:  # every strong NaCl line is still found (within strain + shift)
        assert np.min(np.abs(p_noisy.two_theta_deg - pos)) < 1.5


def test_zero_shift_moves_every_peak():
    refl = sim.Reflections(np.array([3.0]), np.array([1.0]), np.array([[1, 0, 0]], dtype=np.int32))
    base = augment.IDEAL
    dr = augment.draw(base, 0, 0)
    dr["impurity_rel"] = (0.0, 0.0)
    tt0, _, _ = augment.line_list(refl, COND, dr, np.random.default_rng(0))
    dr["zero_shift_deg"] = 0.1
    tt1, _, _ = augment.line_list(refl, COND, dr, np.random.default_rng(0))
    np.testing.assert_allclose(tt1 - tt0, 0.1)


def test_scherrer_broadening_grows_as_size_shrinks():
    theta = np.radians(np.array([10.0, 30.0]))
    dr = {"caglioti_u_deg2": 0.0, "caglioti_w_deg2": 1e-6, "microstrain": 0.0}
    big = augment._fwhm_deg(theta, 1.5406, {**dr, "crystallite_nm": 1000.0})
    small = augment._fwhm_deg(theta, 1.5406, {**dr, "crystallite_nm": 10.0})
    assert np.all(small > big)
    # Scherrer: beta = K lambda / (L cos theta) -> 10 nm at theta = 10 deg is 0.81 deg
    assert small[0] == pytest.approx(np.degrees(0.9 * 1.5406 / (100.0 * np.cos(theta[0]))), rel=1e-3)


def test_strain_keeps_cubic_symmetry(refls):
    d, hkl = refls[0].d_angstrom, refls[0].hkl
    gs = augment.reciprocal_metric(d, hkl)
    s = augment._tied_strain(gs, np.array([1.01, 0.98, 1.03]))
    assert s[0] == s[1] == s[2] == 1.01


def test_march_dollase_reweights_by_orientation(refls):
    dr = augment.draw(augment.IDEAL, 0, 0)
    dr["impurity_rel"] = (0.0, 0.0)
    _, _, area0 = augment.line_list(refls[1], COND, dr, np.random.default_rng(0))
    dr.update(march_dollase_r=0.5, direction=np.array([0.0, 0.0, 1.0]))
    _, _, area1 = augment.line_list(refls[1], COND, dr, np.random.default_rng(0))
    ratio = area1 / area0
    assert ratio.max() > 1.5 and ratio.min() < 1.0  # (00l) enhanced, (hk0) weakened for plates


def test_thermal_factor_weakens_lines_by_debye_waller_and_leaves_other_draws(refls):
    base = augment.AugmentParams()
    hot = augment.AugmentParams(thermal_b_angstrom2=(1.0, 3.0))
    a, b = augment.draw(base, 4, 9, 1), augment.draw(hot, 4, 9, 1)
    assert a["thermal_b"] == 0.0 and 1.0 <= b["thermal_b"] <= 3.0
    # drawn last: every other effect of the pattern is the one it had without the thermal factor
    assert all(np.array_equal(a[k], b[k]) for k in a if k != "thermal_b")
    dr = augment.draw(augment.IDEAL, 0, 0)
    dr["impurity_rel"] = (0.0, 0.0)
    tt0, _, area0 = augment.line_list(refls[1], COND, dr, np.random.default_rng(0))
    dr["thermal_b"] = 2.0
    tt1, _, area1 = augment.line_list(refls[1], COND, dr, np.random.default_rng(0))
    np.testing.assert_array_equal(tt0, tt1)
    # every line (K-alpha1 and K-alpha2 alike) keeps exp(-B / (2 d^2)) of its area, d of its reflection
    expected = np.exp(-2.0 / (2 * refls[1].d_angstrom ** 2))
    ratio = area1 / area0
    assert ratio.max() < 1 and np.abs(ratio[:, None] - expected[None, :]).min(axis=1).max() < 1e-9
    assert augment.AugmentParams(thermal_b_angstrom2=(1.0, 2.0)).without("thermal").thermal_b_angstrom2 == (0.0, 0.0)


@settings(max_examples=25, deadline=None)
@given(a=st.floats(3.0, 12.0), b=st.floats(3.0, 12.0), c=st.floats(3.0, 12.0), beta=st.floats(90.0, 120.0))
def test_reciprocal_metric_recovers_any_lattice(a, b, c, beta):
    br = np.radians(beta)
    lat = np.array([[a, 0, 0], [0, b, 0], [c * np.cos(br), 0, c * np.sin(br)]])
    gs_true = np.linalg.inv(lat @ lat.T)
    hkl = np.array([[h, k, l] for h in range(-2, 3) for k in range(0, 3) for l in range(0, 3) if (h, k, l) != (0, 0, 0)])
    d = 1 / np.sqrt(np.einsum("ni,ij,nj->n", hkl, gs_true, hkl))
    np.testing.assert_allclose(augment.reciprocal_metric(d, hkl), gs_true, rtol=1e-8, atol=1e-12)


def test_substitution_keeps_sites_and_families():
    rng = np.random.default_rng(0)
    c = _ortho()
    for _ in range(10):
        s = augment.substitute_elements(c, rng, p=1.0)
        assert len(s.symbols) == 3 and np.array_equal(s.frac_coords, c.frac_coords)
        for old, new in zip(c.symbols, s.symbols):
            assert any(old in f and new in f for f in augment.SUBSTITUTION_FAMILIES)


def test_substituted_catalog_copies_real_rows_only_and_keeps_their_labels():
    from xrdbatch import sources

    table = sources.ingest(["builtin:prototypes"], executor="serial").head(12)
    table = table[table["status"] == "ok"].reset_index(drop=True)
    table.loc[0, "source"] = "synthetic:1"  # synthetic rows are not copied
    out = augment.substituted_catalog(table, 2, seed=5)
    assert list(out.columns) == list(table.columns) and len(out) == len(table) + 2 * (len(table) - 1)
    variants = out.iloc[len(table):]
    assert variants["id"].is_unique and variants["id"].str.contains("~sub").all()
    parents = table.set_index("id")
    for rec in variants.to_dict("records"):
        parent = parents.loc[rec["id"].split("~")[0]]
        assert rec["spacegroup_number"] == parent["spacegroup_number"]
        assert rec["structure_type"] == parent["structure_type"]
        np.testing.assert_array_equal(np.asarray(rec["frac_coords"]), np.asarray(parent["frac_coords"]))
    again = augment.substituted_catalog(table, 2, seed=5)
    assert list(again["formula"]) == list(out["formula"])  # seeded
    assert augment.substituted_catalog(table, 0) is table

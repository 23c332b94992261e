"""Tests of xrdbatch.features: the peak finder on synthetic peaks with known positions, feature sets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xrdbatch import features as F
from xrdbatch.conditions import XRAY_LINES_ANGSTROM

CU1, CU2 = XRAY_LINES_ANGSTROM["CuKa12"]


def gaussian_pattern(tt, positions, heights, fwhm_deg=0.1, wavelength2=None, ka2_ratio=0.5):
    """Sum of Gaussian peaks (optionally with K-alpha2 partners) on the grid ``tt``."""
    sigma = fwhm_deg / 2.3548
    y = np.zeros_like(tt)
    for p, h in zip(positions, heights):
        y += h * np.exp(-0.5 * ((tt - p) / sigma) ** 2)
        if wavelength2 is not None:
            p2 = np.degrees(2 * np.arcsin(np.sin(np.radians(p) / 2) * wavelength2 / CU1))
            y += ka2_ratio * h * np.exp(-0.5 * ((tt - p2) / sigma) ** 2)
    return y


@settings(max_examples=30, deadline=None)
@given(
    positions=st.lists(st.floats(10, 85), min_size=1, max_size=12, unique=True),
    step=st.sampled_from([0.005, 0.01, 0.02, 0.03]),
    start=st.floats(3, 8),
)
def test_recovers_separated_peak_positions_on_any_grid(positions, step, start):
    positions = sorted(positions)
    # keep peaks resolvable: at least 0.5 deg apart
    kept = [positions[0]]
    for p in positions[1:]:
        if p - kept[-1] > 0.5:
            kept.append(p)
    tt = np.arange(start, 90, step)
    heights = np.linspace(1.0, 0.2, len(kept))
    y = gaussian_pattern(tt, kept, heights, fwhm_deg=max(0.1, 3 * step))
    peaks = F.find_peaks(tt, y, CU1, ka2="none")
    assert peaks.count[0] == len(kept)
    np.testing.assert_allclose(peaks.two_theta_deg, kept, atol=0.15 * step + 1e-3)


def test_missing_peaks_are_the_sentinel_and_counted():
    tt = np.arange(5, 90, 0.02)
    y = gaussian_pattern(tt, [20.0, 40.0, 60.0], [1, 0.5, 0.3])
    x = F.extract(tt, y, CU1, "seed11")
    assert x.shape == (1, 11)
    np.testing.assert_allclose(x[0, :3], [20, 40, 60], atol=0.01)
    assert np.all(x[0, 3:10] == F.MISSING)
    assert x[0, 10] == 3
    # an empty pattern: all missing, zero peaks
    x0 = F.extract(tt, np.zeros_like(tt), CU1, "seed11")
    assert np.all(x0[0, :10] == F.MISSING) and x0[0, 10] == 0


def test_q_follows_bragg():
    tt = np.arange(5, 90, 0.01)
    d = np.array([4.0, 2.5, 1.3])
    positions = np.degrees(2 * np.arcsin(CU1 / (2 * d)))
    peaks = F.find_peaks(tt, gaussian_pattern(tt, positions, [1, 1, 1]), CU1, ka2="none")
    np.testing.assert_allclose(peaks.q_per_angstrom, 2 * np.pi / d, rtol=2e-4)


def test_ka2_partners_are_suppressed():
    tt = np.arange(5, 90, 0.01)
    positions = [30.0, 55.0, 75.0, 85.0]  # doublets resolved at high angle
    y = gaussian_pattern(tt, positions, [1, 0.8, 0.6, 0.5], fwhm_deg=0.08, wavelength2=CU2)
    without = F.find_peaks(tt, y, CU1, ka2="none")
    with_ = F.find_peaks(tt, y, CU1)  # "auto": CuKa1 wavelength -> CuKa2 partner
    assert without.count[0] > len(positions)
    np.testing.assert_allclose(with_.two_theta_deg, positions, atol=0.02)


def test_noise_and_background_do_not_make_peaks():
    rng = np.random.default_rng(0)
    tt = np.arange(5, 90, 0.01)
    positions = [12.0, 25.0, 33.3, 47.0, 61.5, 78.0]
    clean = 1000 * gaussian_pattern(tt, positions, [1, 0.6, 0.4, 0.3, 0.2, 0.15])
    background = 150 * np.exp(-tt / 15) + 40 + 30 * np.exp(-0.5 * ((tt - 25) / 6) ** 2)  # amorphous hump
    y = rng.poisson(clean + background).astype(float)
    peaks = F.find_peaks(tt, y, CU1, ka2="none")
    assert peaks.count[0] == len(positions)
    np.testing.assert_allclose(peaks.two_theta_deg, positions, atol=0.02)


def test_batch_equals_rows():
    tt = np.arange(5, 90, 0.02)
    ys = np.stack([gaussian_pattern(tt, [10 + i, 30 + 2 * i], [1, 0.3]) for i in range(5)])
    batch = F.extract(tt, ys, CU1, "rich")
    rows = np.concatenate([F.extract(tt, y, CU1, "rich") for y in ys])
    np.testing.assert_array_equal(batch, rows)


def test_non_uniform_grid_is_resampled():
    rng = np.random.default_rng(1)
    tt = np.sort(rng.uniform(5, 90, 9000))
    y = gaussian_pattern(tt, [22.0, 44.0], [1, 0.5], fwhm_deg=0.15)
    peaks = F.find_peaks(tt, y, CU1, ka2="none")
    np.testing.assert_allclose(peaks.two_theta_deg, [22, 44], atol=0.02)


@pytest.mark.parametrize("name", sorted(F.FEATURE_SETS))
def test_feature_sets_have_their_named_width(name):
    tt = np.arange(5, 90, 0.02)
    x = F.extract(tt, gaussian_pattern(tt, [20, 30], [1, 0.5]), CU1, name)
    assert x.shape == (1, F.get_feature_spec(name).n_features) == (1, len(F.feature_names(name)))
    assert x.dtype == np.float32


def test_seed11_is_the_seeds_recipe():
    assert F.feature_names("seed11") == [f"two_theta_{i}" for i in range(1, 11)] + ["n_peaks"]


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid"):
        F.extract(np.arange(5, 90, 0.1), np.zeros(850), CU1, "nope")
    with pytest.raises(ValueError, match="valid"):
        F.PeakParams.from_dict({"threshold": 0.1})


def test_threshold_parameter_controls_weak_peaks():
    tt = np.arange(5, 90, 0.02)
    y = gaussian_pattern(tt, [20, 40], [1, 0.03])
    assert F.find_peaks(tt, y, CU1, height_rel=0.01).count[0] == 2
    assert F.find_peaks(tt, y, CU1, height_rel=0.05).count[0] == 1


def test_measured_rruff_patterns(shared):
    folder = shared("measured", "rruff_minerals_dev")
    files = sorted(folder.glob("rruff_*.xy"))[:20]
    for path in files:
        data = np.loadtxt(path)
        x = F.extract(data[:, 0], data[:, 1], CU1, "seed11")
        n = int(x[0, -1])
        assert 1 <= n < 300, path
        first = x[0, :min(n, 10)]
        assert np.all(np.diff(first) > 0) and np.all(first > 4.9), path


def test_many_sets_at_once_equal_one_at_a_time():
    tt = np.arange(5, 90, 0.02)
    rng = np.random.default_rng(2)
    ys = np.stack([gaussian_pattern(tt, sorted(rng.uniform(10, 85, 14)), rng.uniform(0.1, 1, 14)) for _ in range(3)])
    peaks = F.find_peaks(tt, ys, CU1)
    names = ["measured", "indexed", "seed11"]
    many = F.from_peaks_many(peaks, names)
    for name in names:
        np.testing.assert_array_equal(many[name], F.from_peaks(peaks, name))
    # indexed extends measured column for column
    np.testing.assert_array_equal(many["indexed"][:, :many["measured"].shape[1]], many["measured"])


def test_top_fit_positions_of_noisy_broad_peaks_beat_three_points():
    """Counting noise on broad peaks scatters a three-point vertex; the least-squares top fit averages it out."""
    rng = np.random.default_rng(7)
    tt = np.arange(5, 90, 0.01)
    true = np.sort(rng.uniform(10, 85, 40))
    true = true[np.r_[True, np.diff(true) > 1.0]]
    clean = gaussian_pattern(tt, true, rng.uniform(0.3, 1.0, true.size), fwhm_deg=0.25) * 2000 + 50
    rows = rng.poisson(np.tile(clean, (20, 1))).astype(np.float32)
    err = {}
    for rel in (0.0, F.PeakParams().top_fit_rel):
        peaks = F.find_peaks(tt, rows, CU1, ka2="none", top_fit_rel=rel, height_rel=0.1)
        nearest = true[np.abs(peaks.two_theta_deg[:, None] - true[None, :]).argmin(axis=1)]
        e = np.abs(peaks.two_theta_deg - nearest)
        err[rel] = np.quantile(e[e < 0.1], 0.9)
    assert F.PeakParams().top_fit_rel > 0
    assert err[F.PeakParams().top_fit_rel] < 0.75 * err[0.0], err


def test_top_fit_keeps_noise_free_positions():
    tt = np.arange(5, 90, 0.02)
    y = gaussian_pattern(tt, [20.013, 47.5, 71.234], [1.0, 0.5, 0.3], fwhm_deg=0.3)
    peaks = F.find_peaks(tt, y, CU1, ka2="none")
    np.testing.assert_allclose(peaks.two_theta_deg, [20.013, 47.5, 71.234], atol=2e-3)

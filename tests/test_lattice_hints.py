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

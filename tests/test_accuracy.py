"""Smoke test of bench/accuracy.py's machinery on a few structures and a few measured files.

The benchmark itself (thousands of structures) is run by hand; this checks that every stage it chains
works end to end: catalog -> reflections (cached) -> ideal and augmented features (cached) -> measured
features -> forests -> metrics -> the printed table, and that the cache returns what was computed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
accuracy = pytest.importorskip("accuracy")

from xrdbatch import augment, sources  # noqa: E402


@pytest.mark.slow
def test_bench_machinery_end_to_end(tmp_path):
    shared_path("measured", "rruff_minerals_dev")
    catalog = tmp_path / "cat.parquet"
    sources.ingest_to_parquet(["synthetic:16"], catalog, executor="serial", seed=7)
    conditions = accuracy.target_conditions()
    refls, labels = accuracy.reflections_of_catalog(str(catalog), conditions.d_min_angstrom, tmp_path,
                                                    substitutions=1, seed=0, log=lambda s: None)
    assert len(refls) == len(labels) >= 16 and set(labels["variant"]) == {0, 1}
    again, labels2 = accuracy.reflections_of_catalog(str(catalog), conditions.d_min_angstrom, tmp_path,
                                                     substitutions=1, seed=0, log=lambda s: None)
    np.testing.assert_array_equal(again[3].d_angstrom, refls[3].d_angstrom)

    sets = ["seed11", "measured"]
    ideal = accuracy.simulated_features("t", refls, conditions, None, 3, sets, {}, tmp_path, n_jobs=1, chunk=8,
                                        log=lambda s: None)
    assert ideal["seed11"].shape == (len(refls), 11)  # ideal: one copy whatever is asked
    aug = accuracy.simulated_features("t", refls, conditions, augment.AugmentParams(), 2, sets, {}, tmp_path,
                                      n_jobs=1, chunk=8, log=lambda s: None)
    assert aug["measured"].shape[0] == 2 * len(refls)
    cached = accuracy.simulated_features("t", refls, conditions, augment.AugmentParams(), 2, sets, {}, tmp_path,
                                         n_jobs=1, chunk=8, log=lambda s: None)
    np.testing.assert_array_equal(cached["measured"], aug["measured"])

    X_m, lab_m = accuracy.measured_features("rruff_minerals_dev", conditions, sets, {}, tmp_path, limit=6)
    assert X_m["measured"].shape == (6, aug["measured"].shape[1]) and len(lab_m) == 6

    import pandas as pd

    lab2 = pd.concat([labels] * 2, ignore_index=True)
    model = accuracy.fit_model(aug["measured"], lab2, n_jobs=1)
    r = accuracy.scores(model, X_m["measured"], lab_m)
    assert 0 <= r["accuracy"] <= 1 and 0 <= r["sg_top1"] <= r["sg_top5"] <= 1
    r.update(model="smoke", fit_seconds=model.bench_fit_seconds_)
    table = accuracy.format_table([r], "smoke")
    assert "smoke" in table and "sg@5" in table


def synthetic_catalogs(tmp_path, sizes: dict) -> list:
    """Catalog Parquet files of ``{seed: n}`` synthetic crystals (xrdbatch ingest), in that order."""
    cats = []
    for seed, n in sizes.items():
        cats.append(tmp_path / f"cat{seed}.parquet")
        sources.ingest_to_parquet([f"synthetic:{n}"], cats[-1], executor="serial", seed=seed)
    return cats


@pytest.mark.slow
def test_bench_main_learning_curve_class_mix_and_space_group_rows(tmp_path):
    shared_path("measured", "tacr2o6")
    cats = synthetic_catalogs(tmp_path, {7: 12, 8: 16})
    out = tmp_path / "out"
    argv = ["--catalog", str(cats[0]), "--catalog", f"{cats[1]}:1", "--copies", "1", "--feature-set", "measured",
            "--sets", "tacr2o6", "--learning-curve", "--sg-variants", "--class-mix", "mineral", "--no-ideal",
            "--boosting", "--boosting-only", "--cache", str(tmp_path / "cache"), "--n-jobs", "1", "--out", str(out)]
    assert accuracy.main(argv) == 0
    text = (out / "tables.txt").read_text()
    for row in ("seed11, ideal simulation (seed baseline)", "measured, augmented x1, class mix mineral",
                "system exponent 0.25", "space groups balanced per system", "first 1 catalogs (12 patt.)",
                "measured, augmented x1, boosted crystal system"):
        assert row in text, row
    # --boosting-only: no forest row of the best feature set (the other rows keep theirs)
    assert not any(line[:56].strip() == "measured, augmented x1" for line in text.splitlines())
    # per-catalog cache: a second run with one catalog reuses the first catalog's features
    blocks = accuracy.training_blocks([(str(cats[0]), 0)], accuracy.target_conditions(), augment.AugmentParams(), 1,
                                      ["measured"], {}, tmp_path / "cache", 0, 1, log=lambda s: None)
    X, lab = accuracy.stack(blocks, "aug", "measured")
    assert len(X) == len(lab) == 12


@pytest.mark.slow
def test_bench_shift_averaged_rows_measured_and_held_out(tmp_path):
    """--shift-average adds a shift-averaged row per measured set and per held-out table; the held-out rows are
    rendered again for it and must match their cached features (the mapping check inside raises otherwise)."""
    shared_path("measured", "tacr2o6")
    cats = synthetic_catalogs(tmp_path, {7: 24, 8: 24})
    out = tmp_path / "out"
    argv = ["--catalog", str(cats[0]), "--catalog", f"{cats[1]}:1", "--copies", "2", "--feature-set", "measured",
            "--sets", "tacr2o6", "--no-ideal", "--no-baseline", "--heldout", "--shift-average", "0.04",
            "--shift-views", "3", "--cache", str(tmp_path / "cache"), "--n-jobs", "1", "--out", str(out)]
    assert accuracy.main(argv) == 0
    text = (out / "tables.txt").read_text()
    row = "measured, augmented x2, shift-averaged (3 x +-0.04)"
    assert text.count(row) == 2  # tacr2o6 and held-out (all)
    assert "held-out simulated structure types (all)" in text


def test_realism_widths_of_known_peaks():
    """bench/realism.py: the FWHM of Gaussian peaks of known sigma (2.355 sigma) at their positions, strongest
    first, and the band summary counts them."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import realism

    tt = np.arange(5.0, 90.0, 0.01)
    centres, sigmas = (20.0, 45.0, 70.0), (0.04, 0.06, 0.1)
    y = sum(h * np.exp(-0.5 * ((tt - c) / s) ** 2) for c, s, h in zip(centres, sigmas, (1.0, 0.7, 0.4))) + 0.01
    widths = realism.strongest_widths(tt, y[None, :], n_peaks=3)
    np.testing.assert_allclose(widths[:, 0], centres, atol=0.011)
    np.testing.assert_allclose(widths[:, 1], 2.3548 * np.array(sigmas), atol=0.021)
    lines = realism.summary(widths, np.array([3]))
    assert "median 3" in lines[0] and sum(" 1 peaks" in line for line in lines) == 3


@pytest.mark.slow
def test_bench_ablation_of_chosen_effects_with_the_boosted_model(tmp_path):
    """--ablation --ablation-effects A,B --boosting: one boosted row (and its shift-averaged row) per named effect;
    an unknown effect is refused with the valid names."""
    shared_path("measured", "tacr2o6")
    cats = synthetic_catalogs(tmp_path, {7: 16})
    out = tmp_path / "out"
    base = ["--catalog", str(cats[0]), "--copies", "1", "--feature-set", "measured", "--sets", "tacr2o6",
            "--no-ideal", "--no-baseline", "--boosting", "--boosting-only", "--shift-average", "0.04",
            "--shift-views", "3", "--cache", str(tmp_path / "cache"), "--n-jobs", "1", "--out", str(out)]
    assert accuracy.main(base + ["--ablation", "--ablation-effects", "impurity,shift"]) == 0
    text = (out / "tables.txt").read_text()
    for effect in ("impurity", "shift"):
        assert f"measured, augmented x1, boosted without {effect}  " in text, effect
        assert f"measured, augmented x1, boosted without {effect}, shift-averaged (3 x +-0.04)" in text, effect
    assert "without noise" not in text
    with pytest.raises(SystemExit, match="unknown effect.*'nosuch'.*valid"):
        accuracy.main(base + ["--ablation", "--ablation-effects", "nosuch"])


@pytest.mark.slow
def test_bench_search_match_rows_measured_and_held_out(tmp_path):
    """--search-match: the real structures of the catalogs (ideal simulation) are the reference library; a
    search-match row follows every shift-averaged row, on the measured sets and on the held-out real types (against
    the training-side library only)."""
    shared_path("measured", "tacr2o6")
    real = tmp_path / "real.parquet"
    sources.ingest_to_parquet([str(shared_path("structures", "spglib_poscars")), "builtin:prototypes"], real,
                              executor="serial")
    cats = synthetic_catalogs(tmp_path, {7: 16})
    out = tmp_path / "out"
    argv = ["--catalog", f"{real}:1", "--catalog", str(cats[0]), "--copies", "1", "--feature-set", "measured",
            "--sets", "tacr2o6", "--no-ideal", "--no-baseline", "--heldout", "--shift-average", "0.04",
            "--shift-views", "3", "--search-match", "--cache", str(tmp_path / "cache"), "--n-jobs", "1",
            "--out", str(out)]
    assert accuracy.main(argv + ["--save-bundle", str(tmp_path / "bundle")]) == 0
    text = (out / "tables.txt").read_text()
    assert text.count("measured, augmented x1, shift-averaged, search-match") == 2  # tacr2o6 + held-out (real)
    # the saved bundle carries the library, and xrdbatch.score gives what the bench computes for it
    from xrdbatch import bundle

    assert bundle.load_bundle(tmp_path / "bundle").library is not None
    for name in ("measured bundle, shift-averaged, search-match", "measured bundle through xrdbatch.score, "
                 "shift-averaged, search-match", "measured bundle through xrdbatch.score, shift-averaged"):
        assert name in text
    def numbers(name):  # n, acc, family, macro, sg@1, sg@5 of the row
        line = next(line for line in text.splitlines() if line.startswith(name + " "))
        return line[len(name):].split()[:6]

    assert numbers("measured bundle, shift-averaged, search-match") == \
        numbers("measured bundle through xrdbatch.score, shift-averaged, search-match")
    assert numbers("measured bundle, shift-averaged") == numbers("measured bundle through xrdbatch.score, shift-averaged")
    held = text[text.index("== held-out simulated structure types (real)"):]
    assert "measured, augmented x1, shift-averaged, search-match (3 x +-0.04)" in held
    with pytest.raises(SystemExit, match="--shift-average"):
        accuracy.main([a for a in argv if a not in ("--shift-average", "0.04")])

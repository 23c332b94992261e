"""Tests of xrdbatch.report: the report is written from the bundle alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xrdbatch import features, report, train
from xrdbatch.conditions import Conditions

SMALL = train.ForestParams(n_estimators=6, min_samples_leaf=2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    X, labels = train.synthetic_lattice_features(1000, "rich", seed=9)
    out = tmp_path_factory.mktemp("r") / "model"
    train.train_arrays(X, labels, out, feature_set="rich", feature_names=features.feature_names("rich"),
                       peak_params={}, conditions=Conditions(), split="grouped",
                       model_params={"crystal_system": SMALL, "space_group": SMALL, "lattice": SMALL},
                       calibrate="isotonic", log=lambda *_: None)
    return out


def test_report_files_and_metrics(model_dir, tmp_path):
    html = report.write_report(model_dir, tmp_path / "report")
    out = html.parent
    for name in ("metrics.json", "index.html", "confusion.png", "topk.png", "importances.png",
                 "surrogate_tree.png", "surrogate_scatter.png"):
        assert (out / name).stat().st_size > 0, name
    assert list(out.glob("lattice_*.png"))
    m = json.loads((out / "metrics.json").read_text())
    assert 0 <= m["crystal_system"]["accuracy"] <= 1
    assert set(m["space_group"]) == {"top1", "top5", "top10"}
    assert m["space_group"]["top1"] <= m["space_group"]["top5"] <= m["space_group"]["top10"]
    sur = m["surrogate_cubic_tree"]
    assert 0 <= sur["fidelity"] <= 1 and len(sur["features_2d"]) == 2
    assert np.isclose(sum(m["feature_importances"].values()), 1, atol=1e-3)
    assert "surrogate_tree.png" in html.read_text()
    # calibration: reliability diagram + accuracy against coverage of the held-out rows
    assert (out / "calibration.png").stat().st_size > 0 and "calibration.png" in html.read_text()
    cal = m["calibration"]
    assert cal["n"] == m["n_test"] and 0 <= cal["ece"] <= 1 and 0 <= cal["ece_raw"] <= 1
    at = cal["accuracy_at_coverage"]
    # answering everything = the accuracy of the calibrated answers (an argmax the calibration may move a little)
    assert abs(at["1"] - m["crystal_system"]["accuracy"]) < 0.03
    assert at["0.25"] >= at["1"] - 0.05  # the most confident quarter is not worse than all


def test_calibration_summary_of_a_perfectly_ranked_model():
    conf = np.linspace(0.01, 1, 100)
    correct = conf > 0.5
    s = report.calibration_summary(conf, correct, raw_confidence=conf)
    assert s["accuracy_at_coverage"]["0.25"] == 1.0 and s["accuracy_at_coverage"]["1"] == 0.5


def test_surrogate_is_faithful_on_a_simple_rule():
    rng = np.random.default_rng(0)
    X = rng.random((400, 4)).astype(np.float32)
    ensemble = X[:, 2] > 0.6
    s = report.surrogate_tree(X, ensemble, ensemble, ["a", "b", "c", "d"])
    assert s["fidelity"] > 0.95 and s["features_2d"][0] == "c"


def test_measured_patterns_are_scored_per_file(model_dir, shared, tmp_path):
    import pandas as pd

    from xrdbatch.bundle import load_bundle

    root = shared("measured")
    labels = pd.read_csv(shared("measured", "rruff_minerals_dev", "labels.csv")).head(5)
    csv = tmp_path / "labels.csv"
    rows = [{"file": f"rruff_minerals_dev/{f}", "dataset": "rruff", "crystal_system": c, "space_group": s,
             "wavelength_angstrom": 1.5406} for f, c, s in labels.itertuples(index=False)]
    rows.append({"file": "missing/nothing.xy", "dataset": "rruff", "crystal_system": "cubic", "space_group": 225,
                 "wavelength_angstrom": None})
    pd.DataFrame(rows).to_csv(csv, index=False)
    per_file, summary = report.evaluate_measured(load_bundle(model_dir), csv, root)
    assert len(per_file) == 6 and (per_file.error != "").sum() == 1
    assert "missing/nothing.xy" in per_file.loc[per_file.error != "", "file"].iloc[0]
    assert set(summary.dataset) == {"rruff", "all"}
    assert summary.set_index("dataset").loc["all", "errors"] == 1

"""Tests of xrdbatch.calibration: calibrated probabilities, abstention, reliability and coverage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from xrdbatch import calibration as cal

CLASSES = ["cubic", "monoclinic", "triclinic"]


def _overconfident(n=3000, seed=0):
    """Scores that claim more than they know: the truth is the argmax only 60 % of the time."""
    rng = np.random.default_rng(seed)
    top = rng.integers(0, 3, n)
    proba = np.full((n, 3), 0.05)
    proba[np.arange(n), top] = 0.9
    right = rng.random(n) < 0.6
    truth = np.where(right, top, (top + rng.integers(1, 3, n)) % 3)
    return proba, np.array(CLASSES)[truth]


@pytest.mark.parametrize("method", cal.METHODS)
def test_calibration_fixes_overconfidence(method):
    proba, y = _overconfident()
    c = cal.ProbabilityCalibrator(method).fit(proba, y, CLASSES)
    q = c.transform(proba)
    np.testing.assert_allclose(q.sum(1), 1.0)
    assert abs(q.max(1).mean() - 0.6) < 0.05  # calibrated confidence = accuracy
    correct = np.array(CLASSES)[proba.argmax(1)] == y
    assert cal.expected_calibration_error(q.max(1), correct) < cal.expected_calibration_error(proba.max(1), correct)


@pytest.mark.parametrize("method", cal.METHODS)
def test_round_trip_through_json(method):
    proba, y = _overconfident(500)
    c = cal.ProbabilityCalibrator(method).fit(proba, y, CLASSES)
    back = cal.ProbabilityCalibrator.from_dict(json.loads(json.dumps(c.to_dict())))
    np.testing.assert_allclose(back.transform(proba), c.transform(proba))


def test_shape_errors_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        cal.ProbabilityCalibrator().fit(np.ones((4, 2)), ["cubic"] * 4, CLASSES)
    with pytest.raises(ValueError, match="valid"):
        cal.ProbabilityCalibrator("magic").fit(np.ones((4, 3)) / 3, ["cubic"] * 4, CLASSES)


def test_coverage_curve_and_threshold():
    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, True, False, True, False])
    curve = cal.coverage_curve(conf, correct)
    assert curve["coverage"].iloc[-1] == 1.0 and curve["accuracy"].iloc[0] == 1.0
    assert cal.threshold_for_accuracy(conf, correct, 1.0) == 0.8
    assert cal.threshold_for_accuracy(conf, correct, 0.99) == 0.8
    frame = pd.DataFrame({"crystal_system": ["cubic"] * 6, "crystal_system_prob": conf})
    out = cal.abstain(frame, 0.8)
    assert out["abstained"].tolist() == [False, False, False, True, True, True]
    assert (out.loc[out["abstained"], "crystal_system"] == "").all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.booleans()), min_size=1, max_size=60))
def test_reliability_table_counts_everything(rows):
    conf = np.array([r[0] for r in rows])
    correct = np.array([r[1] for r in rows])
    t = cal.reliability_table(conf, correct)
    assert t["n"].sum() == len(rows)
    ece = cal.expected_calibration_error(conf, correct)
    assert 0.0 <= ece <= 1.0
    curve = cal.coverage_curve(conf, correct)
    assert np.all(np.diff(curve["coverage"]) > 0) and curve["n_answered"].iloc[-1] == len(rows)


def test_plot_reliability_writes_png(tmp_path):
    proba, y = _overconfident(400)
    c = cal.ProbabilityCalibrator().fit(proba, y, CLASSES)
    correct = np.array(CLASSES)[proba.argmax(1)] == y
    out = tmp_path / "rel.png"
    cal.plot_reliability(c.transform(proba).max(1), correct, out, "test", raw_confidence=proba.max(1))
    assert out.read_bytes()[:4] == b"\x89PNG"

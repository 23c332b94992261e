"""Calibrated probabilities, abstention, reliability diagrams and accuracy-versus-coverage curves.

A forest's ``predict_proba`` is the fraction of trees voting for a class: ranked sensibly, but not a
probability (ExtraTrees with many trees are typically under-confident on their training distribution and
over-confident off it). :class:`ProbabilityCalibrator` fits, on *held-out simulated* patterns (never on the
measured patterns a model is judged on), a monotone map per class from the raw score to the observed
frequency (isotonic regression, one-vs-rest, then rows renormalised; Zadrozny & Elkan, KDD 2002), or a
single temperature ``p_k ∝ p_k^(1/T)`` (fewer parameters, safer on small calibration sets).

With calibrated confidences, abstention is a threshold: answer only when the top probability reaches it.
:func:`reliability_table` (the data of a reliability diagram), :func:`coverage_curve` (accuracy of the
answered rows against the fraction answered) and :func:`threshold_for_accuracy` (the threshold that reaches
a target accuracy on held-out data) make that choice visible; :func:`plot_reliability` draws both.

The fitted state is plain numbers (:meth:`ProbabilityCalibrator.to_dict`), stored as JSON in a model
manifest: nothing is pickled.

Numbers only (numpy, scikit-learn's isotonic regression); matplotlib is imported inside the plot function.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METHODS = ("isotonic", "temperature")

#: Bins of the reliability diagram.
N_BINS = 10


class ProbabilityCalibrator:
    """Per-class isotonic (or a temperature) map from raw forest probabilities to calibrated ones.

    Parameters
    ----------
    method : {"isotonic", "temperature"}

    Attributes
    ----------
    classes_ : ndarray of str
        Column order of the probabilities (the model's ``classes_``).
    thresholds_ : list of (x (m,), y (m,)) per class
        Isotonic step functions (interpolated linearly), for ``method="isotonic"``.
    temperature_ : float
        For ``method="temperature"``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet([1, 1, 1], size=2000)
    >>> y = np.array(["a", "b", "c"])[[rng.choice(3, p=pi) for pi in p]]
    >>> cal = ProbabilityCalibrator().fit(p, y, classes=["a", "b", "c"])
    >>> q = cal.transform(p); bool(np.allclose(q.sum(1), 1))
    True
    """

    def __init__(self, method: str = "isotonic"):
        self.method = method

    def fit(self, proba, y, classes) -> ProbabilityCalibrator:
        """Fit on raw probabilities ``proba (n, k)`` and true labels ``y (n,)`` (values of ``classes``)."""
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method {self.method!r}; valid: {METHODS}")
        proba = np.asarray(proba, dtype=np.float64)
        self.classes_ = np.asarray(classes).astype(str)
        y = np.asarray(y).astype(str)
        if proba.ndim != 2 or proba.shape[1] != len(self.classes_) or proba.shape[0] != len(y):
            raise ValueError(f"proba must be (n, {len(self.classes_)}) with n = len(y) = {len(y)}; got {proba.shape}")
        onehot = (y[:, None] == self.classes_[None, :]).astype(np.float64)
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self.thresholds_ = []
            for k in range(len(self.classes_)):
                iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba[:, k], onehot[:, k])
                self.thresholds_.append((np.asarray(iso.X_thresholds_, dtype=np.float64),
                                         np.asarray(iso.y_thresholds_, dtype=np.float64)))
        else:
            self.temperature_ = _fit_temperature(proba, onehot)
        return self

    def transform(self, proba) -> np.ndarray:
        """Calibrated probabilities ``(n, k)``; rows sum to 1."""
        proba = np.asarray(proba, dtype=np.float64)
        if self.method == "isotonic":
            out = np.empty_like(proba)
            for k, (x, y) in enumerate(self.thresholds_):
                out[:, k] = np.interp(proba[:, k], x, y) if len(x) else proba[:, k]
        else:
            out = _tempered(proba, self.temperature_)
        total = out.sum(axis=1, keepdims=True)
        # a row whose every class maps to 0 keeps its raw ranking
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), proba)

    def to_dict(self) -> dict:
        """JSON-ready fitted state (for a model manifest)."""
        d = {"method": self.method, "classes": [str(c) for c in self.classes_]}
        if self.method == "isotonic":
            d["thresholds"] = [[x.tolist(), y.tolist()] for x, y in self.thresholds_]
        else:
            d["temperature"] = float(self.temperature_)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ProbabilityCalibrator:
        self = cls(d["method"])
        self.classes_ = np.asarray(d["classes"]).astype(str)
        if self.method == "isotonic":
            self.thresholds_ = [(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
                                for x, y in d["thresholds"]]
        else:
            self.temperature_ = float(d["temperature"])
        return self


def _tempered(proba, t):
    p = np.clip(proba, 1e-6, 1.0) ** (1.0 / t)
    return p / p.sum(axis=1, keepdims=True)


def _fit_temperature(proba, onehot) -> float:
    """Temperature minimising the log loss (golden-section search over log T in [-3, 3])."""
    def loss(log_t):
        p = _tempered(proba, float(np.exp(log_t)))
        return -np.mean(np.log(np.clip((p * onehot).sum(axis=1), 1e-12, 1.0)))

    lo, hi = -3.0, 3.0
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = loss(b)
    return float(np.exp((lo + hi) / 2))


# ------------------------------------------------------------------------------ diagnostics ----
def reliability_table(confidence, correct, n_bins: int = N_BINS) -> pd.DataFrame:
    """Data of a reliability diagram: per confidence bin, count, mean confidence and accuracy.

    Parameters
    ----------
    confidence : array (n,)
        Probability of the predicted class.
    correct : array (n,) bool
        Whether the prediction was right.

    Returns
    -------
    DataFrame with columns bin_low, bin_high, n, mean_confidence, accuracy (NaN for empty bins).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        sel = which == b
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "n": int(sel.sum()),
                     "mean_confidence": float(confidence[sel].mean()) if sel.any() else np.nan,
                     "accuracy": float(correct[sel].mean()) if sel.any() else np.nan})
    return pd.DataFrame(rows)


def expected_calibration_error(confidence, correct, n_bins: int = N_BINS) -> float:
    """ECE: the count-weighted mean of |accuracy - confidence| over the reliability bins.

    >>> expected_calibration_error([0.9, 0.9, 0.9, 0.9], [True, True, True, False])
    0.15
    """
    t = reliability_table(confidence, correct, n_bins)
    t = t[t["n"] > 0]
    return float(round((t["n"] * (t["accuracy"] - t["mean_confidence"]).abs()).sum() / t["n"].sum(), 12))


def coverage_curve(confidence, correct) -> pd.DataFrame:
    """Accuracy of the answered rows against coverage, answering the most confident first.

    Returns a DataFrame (threshold, coverage, accuracy, n_answered), one row per distinct confidence,
    from the highest threshold (few answers) to the lowest (everything answered).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    order = np.argsort(-confidence, kind="stable")
    c, ok = confidence[order], correct[order]
    n_ans = np.arange(1, len(c) + 1)
    acc = np.cumsum(ok) / n_ans
    last = np.r_[c[1:] != c[:-1], True]  # a threshold answers every row at or above it
    return pd.DataFrame({"threshold": c[last], "coverage": n_ans[last] / max(len(c), 1), "accuracy": acc[last],
                         "n_answered": n_ans[last]})


def threshold_for_accuracy(confidence, correct, target: float) -> float:
    """The lowest confidence threshold whose answered rows reach ``target`` accuracy (1.0 if none does).

    Fit it on held-out simulated data, then apply it to measured patterns with :func:`abstain`.
    """
    curve = coverage_curve(confidence, correct)
    ok = curve[curve["accuracy"] >= target]
    return float(ok["threshold"].min()) if len(ok) else 1.0


def abstain(frame: pd.DataFrame, threshold: float, column: str = "crystal_system") -> pd.DataFrame:
    """A copy of a prediction table with ``abstained`` (bool) and the answer blanked (``""``) below threshold."""
    out = frame.copy()
    low = out[f"{column}_prob"].to_numpy() < threshold
    out["abstained"] = low
    out.loc[low, column] = ""
    return out


def plot_reliability(confidence, correct, path, title: str = "", raw_confidence=None) -> None:
    """Reliability diagram and accuracy-versus-coverage curve, side by side, saved to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    series = [("calibrated", confidence)] + ([("raw", raw_confidence)] if raw_confidence is not None else [])
    for label, conf in series:
        t = reliability_table(conf, correct)
        t = t[t["n"] > 0]
        ece = expected_calibration_error(conf, correct)
        ax1.plot(t["mean_confidence"], t["accuracy"], "o-", label=f"{label} (ECE {ece:.3f})")
        cur = coverage_curve(conf, correct)
        ax2.plot(cur["coverage"], cur["accuracy"], label=label)
    ax1.plot([0, 1], [0, 1], "k:", lw=1)
    ax1.set_xlabel("confidence (probability of the answer)")
    ax1.set_ylabel("accuracy")
    ax1.set_title("reliability")
    ax1.legend()
    ax2.set_xlabel("coverage (fraction answered)")
    ax2.set_ylabel("accuracy of the answered")
    ax2.set_title("accuracy vs coverage")
    ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------ training hook ----
#: Fraction of the training structure types kept out of the fit for calibration.
CALIBRATION_FRACTION = 0.15

#: Target accuracies for which the manifest records an abstention threshold.
ABSTAIN_TARGETS = (0.8, 0.9, 0.95)


def calibrate_split(train_rows, groups=None, random_state: int = 0):
    """``(fit_rows, calibration_rows)``: a grouped (by structure type when ``groups`` is given) split of
    the training rows, so the calibration rows hold structures the forests never saw."""
    from xrdbatch.train import split_indices

    train_rows = np.asarray(train_rows)
    sub_groups = None if groups is None else np.asarray(groups)[train_rows]
    fit, cal = split_indices(len(train_rows), "grouped" if sub_groups is not None else "random", sub_groups,
                             CALIBRATION_FRACTION, random_state)
    return train_rows[fit], train_rows[cal]


def fit_for_model(model, X, labels, method: str = "isotonic") -> dict:
    """Fit a :class:`ProbabilityCalibrator` of ``model``'s crystal-system probabilities on held-out rows.

    Returns the manifest entry: the calibrator's state plus ECE before/after and abstention thresholds
    (:data:`ABSTAIN_TARGETS`) measured on these rows.
    """
    y = np.asarray(labels["crystal_system"]).astype(str)
    raw = model.predict_proba(X)
    cal = ProbabilityCalibrator(method).fit(raw, y, model.classes_)
    q = cal.transform(raw)
    classes = np.asarray(model.classes_).astype(str)
    correct_raw = classes[raw.argmax(1)] == y
    correct = classes[q.argmax(1)] == y
    return {**cal.to_dict(), "n_rows": int(len(y)),
            "ece_raw": expected_calibration_error(raw.max(1), correct_raw),
            "ece_calibrated": expected_calibration_error(q.max(1), correct),
            "abstain_thresholds": {f"{t:g}": threshold_for_accuracy(q.max(1), correct, t) for t in ABSTAIN_TARGETS}}

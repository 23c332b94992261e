"""Evaluation report of a model bundle: metrics.json plus an HTML page with PNG figures.

Everything is computed from the bundle alone (its ``evaluation.parquet`` holds the held-out rows: features,
true labels, predictions), so a report needs no store. :func:`compute_report` is numbers only;
:func:`write_report` adds the figures (matplotlib, Agg backend, imported inside) and the HTML.

Figures (the seed's figures 2-4 are the last three):

- ``confusion.png``: crystal-system confusion matrix (rows = true, normalised) and per-class recall;
- ``topk.png``: space-group top-k accuracy, k = 1..10;
- ``lattice_<system>.png``: predicted vs true free lattice parameters (regressor of the true system);
- ``importances.png``: impurity importances of the crystal-system forest;
- ``surrogate_tree.png``: a depth-2 decision tree fitted to the ensemble's cubic-vs-rest answers, drawn
  with ``sklearn.tree.plot_tree``, with its fidelity (agreement with the ensemble) and accuracy;
- ``surrogate_scatter.png``: the held-out rows over the surrogate's two features, coloured by the
  ensemble's answer, with the decision boundary of a depth-2 tree on those two features.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from xrdbatch.crystal import CRYSTAL_SYSTEMS
from xrdbatch.train import LATTICE_FREE, evaluate

SURROGATE_MAX_DEPTH = 2


def _feature_columns(table) -> list[str]:
    return [c for c in table.columns if c.startswith("x_")]


def surrogate_tree(X, ensemble_is_cubic, true_is_cubic, feature_names, random_state: int = 0) -> dict:
    """Depth-2 tree approximating the ensemble's cubic-vs-rest decision.

    Fitted on one half of the held-out rows, scored on the other half: ``fidelity`` = agreement with the
    ensemble, ``accuracy`` = agreement with the truth. Also a depth-2 tree on the surrogate's two most
    important features only (for the scatter plot), with its own fidelity.
    """
    from sklearn.tree import DecisionTreeClassifier, export_text

    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(ensemble_is_cubic, dtype=bool)
    truth = np.asarray(true_is_cubic, dtype=bool)
    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(X))
    fit_rows, test_rows = order[: len(X) // 2], order[len(X) // 2:]
    if len(test_rows) == 0:
        fit_rows = test_rows = order
    tree = DecisionTreeClassifier(max_depth=SURROGATE_MAX_DEPTH, random_state=random_state)
    tree.fit(X[fit_rows], y[fit_rows])
    pred = tree.predict(X[test_rows])
    importances = tree.feature_importances_
    top2 = [int(i) for i in np.argsort(-importances)[:2]]
    if importances[top2[1]] == 0:  # a stump: pair the root feature with the most important other one
        top2[1] = next(i for i in range(X.shape[1]) if i != top2[0])
    tree2 = DecisionTreeClassifier(max_depth=SURROGATE_MAX_DEPTH, random_state=random_state)
    tree2.fit(X[fit_rows][:, top2], y[fit_rows])
    pred2 = tree2.predict(X[test_rows][:, top2])
    return {
        "tree": tree, "tree_2d": tree2, "features_2d": [feature_names[i] for i in top2], "columns_2d": top2,
        "fidelity": float(np.mean(pred == y[test_rows])),
        "accuracy": float(np.mean(pred == truth[test_rows])),
        "fidelity_2d": float(np.mean(pred2 == y[test_rows])),
        "ensemble_cubic_fraction": float(y.mean()),
        "rules": export_text(tree, feature_names=list(feature_names)),
    }


def compute_report(bundle) -> tuple[dict, dict]:
    """``(metrics, extras)`` of a loaded bundle; metrics is JSON-ready, extras holds arrays for figures."""
    table = bundle.evaluation()
    metrics = evaluate(table)
    cols = _feature_columns(table)
    names = [c[2:] for c in cols]
    X = table[cols].to_numpy(dtype=np.float32)
    importances = bundle.model.feature_importances()
    sur = surrogate_tree(X, table["crystal_system"].to_numpy() == "cubic",
                         table["true_crystal_system"].to_numpy() == "cubic", names)
    true = table["true_crystal_system"].astype(str).to_numpy()
    pred = table["crystal_system"].astype(str).to_numpy()
    labels = [s for s in CRYSTAL_SYSTEMS if np.any(true == s) or np.any(pred == s)]
    confusion = np.array([[int(np.sum((true == t) & (pred == p))) for p in labels] for t in labels])
    sg_true = table["true_space_group"].to_numpy()
    ks = [k for k in range(1, 11) if f"space_group_{k}" in table]
    hits = np.stack([table[f"space_group_{k}"].to_numpy() == sg_true for k in ks], axis=1)
    topk = [float(hits[:, :k].any(axis=1).mean()) for k in range(1, len(ks) + 1)]
    m = bundle.manifest
    metrics.update({
        "bundle": str(bundle.path),
        "feature_set": bundle.feature_set,
        "peak_params": bundle.peak_params,
        "training": {k: m["training"].get(k) for k in ("split", "n_train", "n_test", "n_rows", "fit_seconds",
                                                         "data_sha256", "source")},
        "bundle_bytes": m.get("total_bytes"),
        "library": m.get("library"),
        "confusion": {"labels": labels, "matrix": confusion.tolist()},
        "space_group_topk_curve": topk,
        "feature_importances": dict(sorted(zip(names, map(float, importances)), key=lambda kv: -kv[1])),
        "surrogate_cubic_tree": {k: sur[k] for k in ("fidelity", "accuracy", "fidelity_2d", "features_2d",
                                                      "ensemble_cubic_fraction", "rules")},
    })
    confidence = calibration_inputs(bundle, table)
    metrics["calibration"] = calibration_summary(*confidence)
    extras = {"table": table, "X": X, "names": names, "importances": importances, "surrogate": sur,
              "labels": labels, "confusion": confusion, "topk": topk, "calibration": confidence}
    return metrics, extras


def calibration_inputs(bundle, table):
    """``(confidence, correct, raw_confidence)`` of the crystal-system answers on the held-out rows.

    ``raw_confidence`` is the forest's probability of its answer; ``confidence`` is the bundle's calibrated
    one (:mod:`xrdbatch.calibration`, fitted on other held-out structure types at training time), or the raw
    one when the bundle has no calibrator. ``correct`` is judged for the answer the product gives.
    """
    classes = np.asarray(bundle.model.classes_).astype(str)
    raw = table[[f"proba_{c}" for c in classes]].to_numpy(dtype=np.float64)
    true = table["true_crystal_system"].astype(str).to_numpy()
    q = raw if bundle.calibrator is None else bundle.calibrator.transform(raw)
    return q.max(axis=1), classes[q.argmax(axis=1)] == true, raw.max(axis=1)


def calibration_summary(confidence, correct, raw_confidence=None) -> dict:
    """ECE before/after calibration and accuracy at the coverages a user would choose (JSON-ready)."""
    from xrdbatch import calibration as cal

    curve = cal.coverage_curve(confidence, correct)
    at = {}
    for coverage in (0.25, 0.5, 0.75, 1.0):
        rows = curve[curve["coverage"] >= coverage - 1e-9]
        if len(rows):
            at[f"{coverage:g}"] = float(rows["accuracy"].iloc[0])
    out = {"n": int(len(confidence)), "ece": cal.expected_calibration_error(confidence, correct),
           "accuracy_at_coverage": at}
    if raw_confidence is not None:
        out["ece_raw"] = cal.expected_calibration_error(raw_confidence, correct)
    return out


# ------------------------------------------------------------------------------ measured patterns ----
#: Wavelength assumed for a measured file that states none and has none in the labels (Cu K-alpha1).
DEFAULT_MEASURED_WAVELENGTH_ANGSTROM = 1.5406


def evaluate_measured(bundle, labels_csv, data_root=None, *, shift_average_deg: float = 0.0, shift_views: int = 7,
                      search_match: bool | None = None, decision: str = "argmax"):
    """Per-file predictions on measured patterns of known phase, and a per-dataset summary.

    The files are scored exactly as ``xrdbatch score`` scores them (:func:`xrdbatch.score.score_files`: reading,
    conversion to the model's wavelength and range, features, shift averaging, search-match), so the report
    measures the product.

    Parameters
    ----------
    bundle : ModelBundle
    labels_csv : path
        Columns ``file`` (relative to ``data_root``, else to the CSV's folder), ``dataset``, ``crystal_system``,
        ``space_group``, optional ``wavelength_angstrom`` (used when the file states none; else the file's;
        default :data:`DEFAULT_MEASURED_WAVELENGTH_ANGSTROM`).
    data_root : path, optional
    shift_average_deg, shift_views : float, int
        Zero-shift averaging as ``xrdbatch score --shift-average`` (0 = off).
    search_match : bool, optional
        As ``xrdbatch score --search-match`` (None = on when the bundle has a library).
    decision : {"argmax", "balanced"}
        As ``xrdbatch score --decision``.

    Returns
    -------
    per_file : DataFrame
        One row per file: truth, prediction, top-5 groups, hits, peak count, ``matched``, or the error that
        stopped it.
    summary : DataFrame
        Per dataset (and ``all``): files, crystal-system accuracy, macro recall, space-group top-1/top-5.
    """
    import pandas as pd

    from xrdbatch import score
    from xrdbatch.features import shift_offsets

    labels = pd.read_csv(labels_csv)
    root = Path(data_root) if data_root is not None else Path(labels_csv).parent
    search_match = score.search_match_for(bundle, search_match)
    bundle.decision_weights(decision)  # fails early on an unknown decision
    offsets = tuple(float(o) for o in shift_offsets(shift_average_deg, shift_views))
    given = (labels["wavelength_angstrom"] if "wavelength_angstrom" in labels
             else pd.Series(np.nan, index=labels.index)).fillna(DEFAULT_MEASURED_WAVELENGTH_ANGSTROM)
    paths = [str(root / f) for f in labels["file"]]
    scored = {}
    for lam in sorted(set(given)):
        group = [p for p, g in zip(paths, given) if g == lam]
        options = score.ScoreOptions(str(Path(bundle.path).resolve()), wavelength_angstrom=float(lam),
                                     shift_offsets_deg=offsets, search_match=search_match, decision=decision)
        for row in score.score_files(sorted(set(group)), options):
            scored.setdefault(row["file"], row)  # the first pattern of a file (or its error row)
    keep = [c for c in score.PREDICTION_COLUMNS] + ["n_peaks", "wavelength_angstrom", "matched", "match_score",
                                                    "match_formula"]
    rows = []
    for rec, path in zip(labels.itertuples(index=False), paths):
        row = {"file": rec.file, "dataset": rec.dataset, "true_crystal_system": rec.crystal_system,
               "true_space_group": int(rec.space_group), "error": ""}
        got = scored[path]
        if got["status"] == "ok":
            row.update({c: got.get(c) for c in keep})
        else:
            row["error"] = got["error"] or "not scored"
        rows.append(row)
    per_file = pd.DataFrame(rows)
    ok = per_file["error"] == ""
    per_file["crystal_system_hit"] = ok & (per_file.get("crystal_system") == per_file["true_crystal_system"])
    sg_cols = [f"space_group_{i}" for i in range(1, 6) if f"space_group_{i}" in per_file]
    hits = np.zeros((len(per_file), len(sg_cols)), dtype=bool)
    for j, col in enumerate(sg_cols):
        hits[:, j] = ok.to_numpy() & (per_file[col].to_numpy() == per_file["true_space_group"].to_numpy())
    per_file["space_group_top1_hit"] = hits[:, :1].any(axis=1)
    per_file["space_group_top5_hit"] = hits.any(axis=1)

    def summarise(frame, name):
        good = frame[frame["error"] == ""]
        recall = [float(np.mean(good.loc[good.true_crystal_system == s, "crystal_system_hit"]))
                  for s in sorted(set(good.true_crystal_system))]
        return {"dataset": name, "files": len(frame), "errors": int((frame["error"] != "").sum()),
                "crystal_system_accuracy": float(good.crystal_system_hit.mean()) if len(good) else float("nan"),
                "macro_recall": float(np.mean(recall)) if recall else float("nan"),
                "space_group_top1": float(good.space_group_top1_hit.mean()) if len(good) else float("nan"),
                "space_group_top5": float(good.space_group_top5_hit.mean()) if len(good) else float("nan"),
                "matched": (float(good["matched"].fillna(False).astype(bool).mean())
                            if len(good) and search_match else float("nan"))}

    summary = [summarise(f, name) for name, f in per_file.groupby("dataset", sort=True)]
    summary.append(summarise(per_file, "all"))
    return per_file, pd.DataFrame(summary)


# ------------------------------------------------------------------------------ figures ----
def _figures(metrics: dict, extras: dict, out: Path) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.tree import plot_tree

    figs = []

    def save(fig, name, caption):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        figs.append((name, caption))

    labels, confusion = extras["labels"], extras["confusion"]
    norm = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1.3, 1]})
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{confusion[i, j]}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("crystal system confusion (row-normalised colour, counts)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    recall = metrics["crystal_system"]["recall"]
    ax2.barh(list(recall), list(recall.values()), color="tab:blue")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("recall")
    ax2.set_title(f"accuracy {metrics['crystal_system']['accuracy']:.3f}, "
                  f"macro {metrics['crystal_system']['macro_accuracy']:.3f}")
    save(fig, "confusion.png", "Crystal-system confusion matrix and per-class recall (held-out rows).")

    topk = extras["topk"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(topk) + 1), topk, "o-")
    ax.set_ylim(0, 1)
    ax.set_xlabel("k")
    ax.set_ylabel("true space group among the top k")
    ax.grid(alpha=0.3)
    ax.set_title("space-group top-k accuracy")
    save(fig, "topk.png", "Space-group top-k accuracy from P(system) x P(group | system).")

    table = extras["table"]
    true_system = table["true_crystal_system"].astype(str).to_numpy()
    for system in CRYSTAL_SYSTEMS:
        rows = true_system == system
        if rows.sum() < 2 or system not in metrics["lattice"]:
            continue
        free = LATTICE_FREE[system]
        fig, axes = plt.subplots(1, len(free), figsize=(3.2 * len(free), 3.2), squeeze=False)
        for ax, name in zip(axes[0], free):
            y = table.loc[rows, f"true_{name}"].to_numpy(float)
            p = table.loc[rows, f"lattice_given_system_{name}"].to_numpy(float)
            ax.scatter(y, p, s=4, alpha=0.4)
            lo, hi = np.nanmin([y.min(), p.min()]), np.nanmax([y.max(), p.max()])
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            s = metrics["lattice"][system].get("given_system", {}).get(name, {})
            ax.set_title(f"{name}: R2 {s.get('r2', float('nan')):.2f}, MAPE {s.get('mape_percent', float('nan')):.1f}%",
                         fontsize=9)
            ax.set_xlabel("true")
            ax.set_ylabel("predicted")
        fig.suptitle(f"{system} (n={int(rows.sum())})")
        save(fig, f"lattice_{system}.png", f"Lattice parameters of {system} rows, regressor of the true system.")

    names, imp = extras["names"], extras["importances"]
    order = np.argsort(-imp)[:25]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(order) + 1))
    ax.barh([names[i] for i in order][::-1], imp[order][::-1])
    ax.set_xlabel("impurity importance (crystal-system forest)")
    save(fig, "importances.png", "Feature importances of the crystal-system ensemble.")

    sur = extras["surrogate"]
    fig, ax = plt.subplots(figsize=(11, 5.5))
    plot_tree(sur["tree"], feature_names=names, class_names=["not cubic", "cubic"], filled=True, ax=ax,
              impurity=False, proportion=True, fontsize=9)
    ax.set_title(f"depth-2 surrogate of the ensemble (cubic vs rest): fidelity {sur['fidelity']:.3f}, "
                 f"accuracy vs truth {sur['accuracy']:.3f}")
    save(fig, "surrogate_tree.png", "Seed figure 3: a depth-2 tree that mimics the ensemble's cubic-vs-rest "
         "answer (fitted on half the held-out rows, scored on the other half).")

    cols = sur["columns_2d"]
    X = extras["X"]
    ens = table["crystal_system"].to_numpy() == "cubic"
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    x0, x1 = X[:, cols[0]], X[:, cols[1]]
    pad0 = 0.05 * (x0.max() - x0.min() + 1e-9)
    pad1 = 0.05 * (x1.max() - x1.min() + 1e-9)
    g0, g1 = np.meshgrid(np.linspace(x0.min() - pad0, x0.max() + pad0, 300),
                         np.linspace(x1.min() - pad1, x1.max() + pad1, 300))
    zz = sur["tree_2d"].predict(np.c_[g0.ravel(), g1.ravel()].astype(np.float32)).reshape(g0.shape)
    ax.contourf(g0, g1, zz.astype(float), levels=[-0.5, 0.5, 1.5], colors=["#dddddd", "#ffd8a8"], alpha=0.8)
    ax.scatter(x0[~ens], x1[~ens], s=4, alpha=0.4, label="ensemble: not cubic", color="tab:blue")
    ax.scatter(x0[ens], x1[ens], s=4, alpha=0.6, label="ensemble: cubic", color="tab:red")
    ax.set_xlabel(names[cols[0]])
    ax.set_ylabel(names[cols[1]])
    ax.legend(loc="best", fontsize=8)
    ax.set_title(f"surrogate boundary on 2 features (fidelity {sur['fidelity_2d']:.3f})")
    save(fig, "surrogate_scatter.png", "Seed figure 4: held-out rows over the surrogate's two features with the "
         "depth-2 decision boundary (missing peaks sit at the sentinel -1).")

    from xrdbatch.calibration import plot_reliability

    for key, name, what in (("calibration", "calibration.png", "held-out simulated structures"),
                            ("measured_calibration", "calibration_measured.png",
                             "measured patterns of known phase the model answered (not the search-match)")):
        if extras.get(key) is None:
            continue
        conf, correct, raw = extras[key]
        plot_reliability(conf, correct, out / name, f"crystal system: {what}", raw_confidence=raw)
        figs.append((name, f"Calibration on {what}: reliability diagram (accuracy against stated probability, "
                           "calibrated and raw) and accuracy of the answered patterns against coverage when the "
                           "least confident are left unanswered (score --abstain)."))
    return figs


def _html(metrics: dict, figs: list[tuple[str, str]]) -> str:
    cs = metrics["crystal_system"]
    rows = [("crystal system accuracy", f"{cs['accuracy']:.3f}"), ("macro accuracy", f"{cs['macro_accuracy']:.3f}")]
    rows += [(f"space group {k}", f"{v:.3f}") for k, v in metrics["space_group"].items()]
    if metrics.get("lattice_mape_percent_mean") is not None:
        rows.append(("lattice MAPE (mean over systems, %)", f"{metrics['lattice_mape_percent_mean']:.2f}"))
    tr = metrics["training"]
    rows += [("feature set", metrics["feature_set"]), ("split", str(tr.get("split"))),
             ("train / test rows", f"{tr.get('n_train')} / {tr.get('n_test')}"),
             ("fit time (s)", f"{tr.get('fit_seconds') or 0:.1f}"),
             ("bundle size (MB)", f"{(metrics.get('bundle_bytes') or 0) / 1e6:.1f}"),
             ("search-match library", f"{metrics['library']['entries']} real structures ({metrics['library']['source']})"
              if metrics.get("library") else "none")]
    lat_rows = []
    for system, entry in metrics["lattice"].items():
        for name, s in entry.get("given_system", {}).items():
            lat_rows.append(f"<tr><td>{system}</td><td>{name}</td><td>{s['r2']:.3f}</td>"
                            f"<td>{s['mape_percent']:.2f}</td></tr>")
    recall_rows = "".join(f"<tr><td>{k}</td><td>{v:.3f}</td><td>{cs['support'][k]}</td></tr>"
                          for k, v in cs["recall"].items())
    sur = metrics["surrogate_cubic_tree"]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    measured = ""
    if metrics.get("measured"):
        cells = "".join(
            f"<tr><td>{html.escape(str(r['dataset']))}</td><td>{r['files']}</td><td>{r['errors']}</td>"
            f"<td>{r['crystal_system_accuracy']:.3f}</td><td>{r['macro_recall']:.3f}</td>"
            f"<td>{r['space_group_top1']:.3f}</td><td>{r['space_group_top5']:.3f}</td>"
            f"<td>{'-' if r.get('matched') is None or r['matched'] != r['matched'] else format(r['matched'], '.3f')}"
            "</td></tr>" for r in metrics["measured"])
        measured = ("<h2>Measured patterns of known phase</h2><p>Scored as <code>xrdbatch score</code> scores them. "
                    "Per file: <a href=\"measured.csv\">measured.csv</a>"
                    "</p><table><tr><th>dataset</th><th>files</th><th>errors</th><th>crystal system</th>"
                    "<th>macro recall</th><th>SG top-1</th><th>SG top-5</th><th>answered by search-match</th></tr>"
                    f"{cells}</table>")
    calib = ""
    for key, what in (("calibration", "held-out simulated structures"),
                      ("measured_calibration", "measured patterns of known phase the model answered")):
        c = metrics.get(key)
        if c:
            cover = ", ".join(f"{float(k):.0%}: {v:.3f}" for k, v in c["accuracy_at_coverage"].items())
            raw = f" (raw {c['ece_raw']:.3f})" if "ece_raw" in c else ""
            calib += (f"<tr><td>{html.escape(what)}</td><td>{c['n']}</td><td>{c['ece']:.3f}{raw}</td>"
                      f"<td>{html.escape(cover)}</td></tr>")
    if calib:
        calib = ("<h2>Calibration and abstention (crystal system)</h2><table><tr><th>rows</th><th>n</th>"
                 "<th>expected calibration error</th><th>accuracy at coverage</th></tr>" + calib + "</table>")
        sm = metrics.get("measured_search_match")
        if sm:
            calib += (f"<p>Measured patterns answered by the search-match ({sm['rows']}, never abstained on): crystal "
                      f"system right in {sm['crystal_system_accuracy']:.3f}, space group first in "
                      f"{sm['space_group_top1']:.3f}.</p>")
    images = "".join(f'<figure><img src="{n}" alt="{html.escape(n)}"><figcaption>{html.escape(c)}</figcaption>'
                     "</figure>" for n, c in figs)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>xrdbatch model report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} img{{max-width:100%}} figure{{margin:2em 0}}</style>
</head><body>
<h1>Model report</h1><p>Bundle: <code>{html.escape(metrics['bundle'])}</code>; held-out rows: {metrics['n_test']}.</p>
<table>{table}</table>
{measured}
{calib}
<h2>Per-class recall</h2><table><tr><th>crystal system</th><th>recall</th><th>support</th></tr>{recall_rows}</table>
<h2>Lattice (regressor of the true system)</h2>
<table><tr><th>system</th><th>parameter</th><th>R²</th><th>MAPE %</th></tr>{''.join(lat_rows)}</table>
<h2>Surrogate tree (cubic vs rest)</h2><p>fidelity {sur['fidelity']:.3f}, accuracy vs truth {sur['accuracy']:.3f}</p>
<pre>{html.escape(sur['rules'])}</pre>
{images}
</body></html>
"""


def write_report(model_dir, out, measured_labels=None, measured_root=None, **scoring) -> Path:
    """Write ``metrics.json``, the PNG figures and ``index.html`` into ``out`` (atomically); returns the HTML path.

    With ``measured_labels`` (see :func:`evaluate_measured`, which takes the ``scoring`` options) the report adds
    ``measured.csv`` (one row per file) and a per-dataset table of accuracy on measured patterns.
    """
    from xrdbatch.bundle import load_bundle

    bundle = load_bundle(model_dir)
    metrics, extras = compute_report(bundle)
    measured = None
    if measured_labels is not None:
        per_file, summary = evaluate_measured(bundle, measured_labels, measured_root, **scoring)
        metrics["measured"] = summary.to_dict(orient="records")
        measured = per_file
        good = per_file[per_file["error"] == ""]
        # a row the search-match answered keeps the model's probability of the matched system, which says nothing
        # of how often matches are right, and is never abstained on: calibration and abstention are about the rows
        # the model answered; the matched rows get their own accuracy
        matched = good["matched"].fillna(False).astype(bool)
        model_rows, match_rows = good[~matched], good[matched]
        if len(model_rows):
            conf = model_rows["crystal_system_prob"].to_numpy(dtype=np.float64)
            correct = model_rows["crystal_system_hit"].to_numpy(dtype=bool)
            extras["measured_calibration"] = (conf, correct, None)
            metrics["measured_calibration"] = calibration_summary(conf, correct)
        if len(match_rows):
            metrics["measured_search_match"] = {
                "rows": len(match_rows),
                "crystal_system_accuracy": float(match_rows["crystal_system_hit"].astype(bool).mean()),
                "space_group_top1": float(match_rows["space_group_top1_hit"].astype(bool).mean())}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        figs = _figures(metrics, extras, tmp)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        if measured is not None:
            measured.to_csv(tmp / "measured.csv", index=False)
        (tmp / "index.html").write_text(_html(metrics, figs))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out / "index.html"

"""Training benchmark: xrdbatch's compact forests against the seed's recipe, on the same rows, same run.

Data: ``--n`` training rows (default 160,000) plus a held-out fifth, either from a store with features
(``--store``; rows are drawn with replacement when the store is smaller) or from
:func:`xrdbatch.train.synthetic_lattice_features` (ICSD space-group mix, lattice-only reflections,
Wilson intensities: the feature distribution of simulated patterns without simulating them).

Measured for xrdbatch (default forests, hierarchical space groups, chosen feature set): fit time of every
forest, bundle size on disk, load time (hash check + unpack), prediction throughput (rows/s through
``ModelBundle.predict``), held-out accuracy. For the seed's recipe (11 features; 500 trees depth 30
max_features 9 for crystal system; 200 trees depth 25 for one flat 230-class space-group forest):
fit time and pickled size of a fraction of the trees (``--seed-trees``), extrapolated linearly to the
full recipe (both scale with the number of trees), and the accuracy of that fraction. Ratios are printed
against the seed's numbers; no absolute time is asserted.

    python bench/train.py                       # 160k rows, about 10 minutes on 2 cores
    python bench/train.py --n 20000 --quick     # smoke run
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _load_data(args):
    from xrdbatch import train

    n_total = int(args.n * 1.25)
    if args.store:
        X_all, labels_all, *_ = train.read_training_data(args.store, args.feature_set)
        Xs_all, *_ = train.read_training_data(args.store, "seed11")
        rng = np.random.default_rng(0)
        idx = rng.choice(len(X_all), size=n_total, replace=len(X_all) < n_total)
        return X_all[idx], Xs_all[idx], labels_all.iloc[idx].reset_index(drop=True), f"store {args.store}"
    from xrdbatch import features

    t = time.perf_counter()
    peaks, labels = train.synthetic_lattice_peaks(n_total, seed=1)
    X, Xs = features.from_peaks(peaks, args.feature_set), features.from_peaks(peaks, "seed11")
    print(f"generated {n_total} synthetic rows in {time.perf_counter() - t:.0f} s", flush=True)
    return X, Xs, labels, "synthetic_lattice_features (ICSD space-group prior)"


def _accuracy(pred_systems, pred_groups_top5, labels):
    cs = float(np.mean(pred_systems == labels.crystal_system.to_numpy()))
    top1 = float(np.mean(pred_groups_top5[:, 0] == labels.spacegroup_number.to_numpy()))
    top5 = float(np.mean((pred_groups_top5 == labels.spacegroup_number.to_numpy()[:, None]).any(axis=1)))
    return cs, top1, top5


def run_ours(X, labels, tr, te, args, tmp):
    from xrdbatch import bundle, features, train
    from xrdbatch.conditions import Conditions

    names = features.feature_names(args.feature_set)
    model = train.CrystalForest(train.crystal_system_params(args.crystal_system_model), random_state=0,
                                n_jobs=args.n_jobs, scale_column=names.index("q_1")
                                if "q_1" in names else None, scale_kind="q" if "q_1" in names else None)
    t, c = time.perf_counter(), time.process_time()
    model.fit(X[tr], labels.crystal_system.to_numpy()[tr], labels.spacegroup_number.to_numpy()[tr],
              labels[list(train.LATTICE_NAMES)].to_numpy(float)[tr])
    fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - c
    out = tmp / "bundle"
    table = train.evaluation_table(model, X[te], labels.iloc[te], names)
    metrics = train.evaluate(table)
    bundle.save_bundle(model, out, conditions=Conditions(), feature_set=args.feature_set, feature_names=names,
                       peak_params={}, training={"fit_seconds_by_model": model.fit_seconds_}, metrics=metrics,
                       evaluation=table)
    size = sum(p.stat().st_size for p in out.iterdir() if p.suffix == ".skops")
    t, c = time.perf_counter(), time.process_time()
    b = bundle.load_bundle(out)
    load_s, load_cpu = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    pred = b.predict(X[te])
    pred_s = time.perf_counter() - t
    top5 = pred[[f"space_group_{i}" for i in range(1, 6)]].to_numpy()
    cs, top1, top5a = _accuracy(pred.crystal_system.to_numpy(), top5, labels.iloc[te])
    return {"fit_s": fit_s, "fit_cpu_s": fit_cpu, "fit_by_model": model.fit_seconds_, "bytes": size, "load_s": load_s, "load_cpu_s": load_cpu,
            "rows_per_s": len(te) / pred_s, "cs": cs, "top1": top1, "top5": top5a,
            "macro": metrics["crystal_system"]["macro_accuracy"],
            "lattice_mape": metrics["lattice_mape_percent_mean"],
            "n_trees": sum(len(m.estimators_) if hasattr(m, "estimators_")
                           else m.n_iter_ * m.n_trees_per_iteration_ for m in model.parts().values())}


def run_seed(Xs, labels, tr, te, args):
    """The seed's recipe on its 11 features, a fraction of the trees, extrapolated."""
    from sklearn.ensemble import ExtraTreesClassifier

    from xrdbatch.train import SEED_PARAMS

    res = {}
    y_cs = labels.crystal_system.to_numpy()
    y_sg = labels.spacegroup_number.to_numpy()
    for family, y, n_fit in (("crystal_system", y_cs, args.seed_trees[0]), ("space_group", y_sg, args.seed_trees[1])):
        p = SEED_PARAMS[family]
        kw = p.estimator_kwargs()
        kw["n_estimators"] = n_fit
        model = ExtraTreesClassifier(random_state=0, n_jobs=args.n_jobs, **kw)
        t, c = time.perf_counter(), time.process_time()
        model.fit(Xs[tr], y[tr])
        fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - c
        t = time.perf_counter()
        size = len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        scale = p.n_estimators / n_fit
        t = time.perf_counter()
        proba = model.predict_proba(Xs[te])
        pred_s = time.perf_counter() - t
        order = np.argsort(-proba, axis=1)[:, :5]
        res[family] = {"fit_s": fit_s * scale, "fit_cpu_s": fit_cpu * scale, "bytes": size * scale, "trees_fit": n_fit,
                       "trees_recipe": p.n_estimators, "rows_per_s": len(te) / (pred_s * scale),
                       "pred": model.classes_[order]}
        del model
    cs = float(np.mean(res["crystal_system"]["pred"][:, 0] == y_cs[te]))
    top5 = res["space_group"]["pred"]
    top1 = float(np.mean(top5[:, 0] == y_sg[te]))
    top5a = float(np.mean((top5 == y_sg[te][:, None]).any(axis=1)))
    recall = [np.mean(res["crystal_system"]["pred"][y_cs[te] == s, 0] == s) for s in np.unique(y_cs[te])]
    return {"fit_s": sum(r["fit_s"] for r in res.values()), "fit_cpu_s": sum(r["fit_cpu_s"] for r in res.values()),
            "bytes": sum(r["bytes"] for r in res.values()),
            "cs": cs, "top1": top1, "top5": top5a, "macro": float(np.mean(recall)),
            "rows_per_s": 1 / sum(1 / r["rows_per_s"] for r in res.values()), "parts": res}


def main(argv=None):
    from xrdbatch.train import CRYSTAL_SYSTEM_MODELS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=160_000, help="training rows (a fifth more are held out)")
    p.add_argument("--feature-set", default="rich")
    p.add_argument("--store", default=None, help="use the features of this store instead of synthetic rows")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--seed-trees", type=int, nargs=2, default=(20, 4), metavar=("CS", "SG"),
                   help="trees of the seed recipe actually fitted (crystal system, space group); extrapolated")
    p.add_argument("--skip-seed", action="store_true")
    p.add_argument("--crystal-system-model", choices=CRYSTAL_SYSTEM_MODELS, default="extra_trees",
                   help="crystal-system model of xrdbatch's row (xrdbatch.train.crystal_system_params)")
    p.add_argument("--quick", action="store_true", help="fewer seed trees (smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.seed_trees = (5, 2)

    from xrdbatch.train import DEFAULT_PARAMS, crystal_system_params, split_indices

    X, Xs, labels, source = _load_data(args)
    tr, te = split_indices(len(X), "random", test_size=0.2, random_state=0)
    print(f"data: {source}; {len(tr)} train / {len(te)} test rows; feature set {args.feature_set} "
          f"({X.shape[1]} features) vs seed11; n_jobs={args.n_jobs}; cpus={os.cpu_count()}", flush=True)
    shapes = {**DEFAULT_PARAMS, "crystal_system": crystal_system_params(args.crystal_system_model)
              or DEFAULT_PARAMS["crystal_system"]}
    print("xrdbatch models: " + "; ".join(f"{k}: {v}" for k, v in shapes.items()), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="xrdbatch-bench-"))
    try:
        ours = run_ours(X, labels, tr, te, args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nfit seconds by model: " + ", ".join(f"{k} {v:.1f}" for k, v in ours["fit_by_model"].items()))
    seed = None if args.skip_seed else run_seed(Xs, labels, tr, te, args)

    def row(name, a, b, fmt, better="lower"):
        ratio = "" if b is None else f"{(b / a if better == 'lower' else a / b):8.1f}x"
        bs = "" if b is None else fmt.format(b)
        print(f"{name:34s} {fmt.format(a):>14s} {bs:>14s} {ratio:>9s}")

    print(f"\n{'':34s} {'xrdbatch':>14s} {'seed recipe':>14s} {'xrdbatch better by':>9s}")
    s = seed or {}
    row("fit time, all models (wall s)", ours["fit_s"], s.get("fit_s"), "{:.1f}")
    row("fit CPU seconds / n_jobs", ours["fit_cpu_s"] / args.n_jobs,
        s.get("fit_cpu_s") and s["fit_cpu_s"] / args.n_jobs, "{:.1f}")
    row("model size (MB; seed: pickled)", ours["bytes"] / 1e6, s.get("bytes", None) and s["bytes"] / 1e6, "{:.1f}")
    row("load time (wall s; hashes + unpack)", ours["load_s"], None, "{:.2f}")
    row("load CPU seconds", ours["load_cpu_s"], None, "{:.2f}")
    row("prediction (rows/s)", ours["rows_per_s"], s.get("rows_per_s"), "{:.0f}", better="higher")
    row("crystal system accuracy", ours["cs"], s.get("cs"), "{:.3f}", better="higher")
    row("crystal system macro accuracy", ours["macro"], s.get("macro"), "{:.3f}", better="higher")
    row("space group top-1", ours["top1"], s.get("top1"), "{:.3f}", better="higher")
    row("space group top-5", ours["top5"], s.get("top5"), "{:.3f}", better="higher")
    if ours["lattice_mape"] is not None:
        row("lattice MAPE (%, given system)", ours["lattice_mape"], None, "{:.2f}")
    if seed:
        cs, sg = seed["parts"]["crystal_system"], seed["parts"]["space_group"]
        print(f"\nseed recipe extrapolated from {cs['trees_fit']}/{cs['trees_recipe']} crystal-system and "
              f"{sg['trees_fit']}/{sg['trees_recipe']} space-group trees (time and size are linear in trees); "
              f"seed crystal system {cs['fit_s']:.0f} s {cs['bytes'] / 1e6:.0f} MB, space group {sg['fit_s']:.0f} s "
              f"{sg['bytes'] / 1e6:.0f} MB")
    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.1f} on {os.cpu_count()} cores (other processes inflate wall times; "
          "CPU seconds / n_jobs is the wall time of an otherwise idle machine)")
    goals = [("all models <= 60 s (CPU s / n_jobs)", ours["fit_cpu_s"] / args.n_jobs <= 60), ("bundle <= 300 MB", ours["bytes"] <= 300e6),
             ("load <= 5 s (CPU s)", ours["load_cpu_s"] <= 5)]
    print("goals: " + ", ".join(f"{g}: {'met' if ok else 'NOT met'}" for g, ok in goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())

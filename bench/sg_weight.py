"""Space-group weight of synthetic rows, measured on held-out *real* structure types (issue 8).

The space-group forests of :class:`xrdbatch.train.CrystalForest` can weight training rows by origin
(:func:`xrdbatch.train.row_origins`: real structure / element-substituted variant / synthetic crystal;
:func:`xrdbatch.train.origin_weights`: synthetic rows weigh ``w``, 0 = real structures and variants only).
This bench chooses ``w`` with a tuning signal that is not a measured set:

* **held-out real structure types**: the real structure types are dealt into ``--folds`` folds; for each
  fold every row of those types (real, variants, and synthetic crystals that happen to share the type
  label) leaves the training set, and the fold's *real* structures (variant 0) are predicted from their
  measurement-like augmented patterns. One crystal-system forest per fold (all rows), then one set of
  space-group forests per weight on the same rows: the weights are compared pairwise, row by row.
* **checks** (never tuned on): the labelled measured sets (``--sets``, default RRUFF dev and the pvlab
  thin films), scored by models trained on every row, one per weight, in the same run.

Features come from ``bench/accuracy.py`` (:func:`training_blocks`, same cache layout), so a run whose
``--cache`` holds that bench's files (or symlinks to them) computes no features. Run it from a snapshot of the
repository (``bench/accuracy.py`` hashes the feature code into its cache keys, and others edit the tree).

Results (session 3, commit 39c759c's features, ``indexed``, real:2 + syn1 12k = 36,606 rows, 5 folds over the
2,101 real structures = 4,202 held-out patterns; space-group forests with ``max_features`` sqrt, the default
then, unless named; load 6-9 on 2 cores, 345 s wall / 261 CPU-s). Held-out real top-1 / top-5 with the
paired difference against weight 0 (+- its standard error over structures); RRUFF dev and pvlab are checks:

==============================  ==============  ===============  ================  ===============
space-group forests             held-out top-1  held-out top-5   RRUFF acc/@1/@5   pvlab acc/@1/@5
==============================  ==============  ===============  ================  ===============
synthetic weight 0              15.1            36.0             52.6/21.2/56.9    51.1/26.1/37.5
synthetic weight 0.03           14.3 (-0.8+-.4) 36.1 (+0.1+-.4)  52.6/19.8/55.0    51.1/28.4/38.6
synthetic weight 0.1            14.5 (-0.6+-.4) 36.2 (+0.3+-.4)  52.6/16.7/54.4    51.1/30.7/40.9
synthetic weight 0.3            14.1 (-1.0+-.5) 35.7 (-0.2+-.5)  52.6/17.1/52.0    51.1/31.8/43.2
synthetic weight 1 (before)     13.8 (-1.3+-.5) 35.1 (-0.9+-.5)  52.6/16.7/50.8    51.1/31.8/43.2
w 0, system exponent 0.5        13.9 (-1.2+-.4) 34.4 (-1.6+-.4)  52.6/20.6/54.8    51.1/26.1/35.2
w 0, one flat forest            13.6 (-1.5+-.5) 33.3 (-2.6+-.5)  52.6/15.3/48.6    51.1/25.0/36.4
w 0, max_features 0.3           15.8 (+0.7+-.4) 36.7 (+0.7+-.4)  52.6/24.0/59.1    51.1/26.1/34.1
w 0, max_features 0.5           16.0 (+0.9+-.4) 37.4 (+1.4+-.4)  52.6/23.2/60.7    51.1/29.5/38.6
w 0, min_samples_leaf 1         15.7 (+0.6+-.4) 36.1 (+0.1+-.4)  52.6/21.4/54.8    51.1/22.7/28.4
w 0, mf 0.3, 150 trees, leaf 1  16.4 (+1.3+-.4) 36.9 (+0.9+-.4)  52.6/24.6/61.1    51.1/23.9/37.5
==============================  ==============  ===============  ================  ===============

Weight 0 is best on top-1 and level on top-5 (0.1 is within noise of it); the crystal-system forest, the same
in every row, is 49.4 % on these held-out real structures. ``max_features`` 0.5 became the space-group default
(the best top-5, +1.4 +- 0.4; 150 trees + leaf 1 buys a little more top-1 for ~3x the fit CPU). Space-group
top-1 of unseen real structure types by true system (weight 0): cubic 31, triclinic 41, monoclinic 25,
trigonal 10, hexagonal 8, orthorhombic 5, tetragonal 3: within-system ranking of orthorhombic and tetragonal
groups is where the space-group score is lost (extinction features: the indexing developer's).
At the recipe's scale (+ syn2 38k = 112,606 rows, 100,000 of them synthetic; 3 folds; space-group forests
``max_features`` 0.5 in every row but "sqrt"; load 3-8):

==============================  ==============  ===============  ================  ===============  =========
space-group forests             held-out top-1  held-out top-5   RRUFF acc/@1/@5   pvlab acc/@1/@5  SG CPU-s
==============================  ==============  ===============  ================  ===============  =========
synthetic weight 0              14.8            35.7             54.0/25.2/57.5    47.7/29.5/38.6   14.4
synthetic weight 0.1            14.3 (-0.5+-.5) 36.1 (+0.3+-.5)  54.0/17.3/53.4    47.7/36.4/44.3   18.7
synthetic weight 0.3            14.3 (-0.5+-.5) 35.7 (-0.0+-.6)  54.0/15.5/51.6    47.7/37.5/45.5   34.1
synthetic weight 1              14.1 (-0.7+-.6) 34.8 (-1.0+-.6)  54.0/16.7/50.2    47.7/36.4/50.0   88.7
w 0, max_features sqrt          14.1 (-0.7+-.4) 35.3 (-0.4+-.4)  54.0/22.6/55.8    47.7/26.1/38.6    6.6
w 0, max_features 0.7           15.3 (+0.5+-.3) 36.6 (+0.9+-.4)  54.0/25.2/58.7    47.7/29.5/35.2   18.6
==============================  ==============  ===============  ================  ===============  =========

(SG CPU-s: the space-group fits of the 3 folds.) The held-out real signal agrees with the 18k run in sign
(weight 0 best or level; more synthetic weight never helps) but the differences are within ~1-2 standard
errors here; weight 0 also fits the space-group forests ~6x faster than weight 1 on these rows. The pvlab
films (88 patterns of 7 labelled phases: an anecdote, not a measurement) prefer synthetic rows.
More element-substituted variants (``catalog_real.parquet:4`` instead of ``:2``, + syn12k, weight 0,
``max_features`` 0.5, same folds; paired by structure against the ``:2`` run): held-out real top-1 16.6 vs 16.0
(+0.6 +- 0.6), top-5 38.3 vs 37.4 (+0.9 +- 0.6), crystal system 51.3 vs 49.4 (+1.9 +- 0.8); RRUFF dev check
53.8/27.0/58.3 vs 52.6/23.2/60.7 (noise). Suggestive, not decisive; the recipe's ``substitutions`` is unchanged.

Cost (``--bundle-cost DIR``, the 112,606 rows: product bundles through ``train_arrays``, grouped 80 % =
86,352 fitted rows, all 15 forests incl. lattice, n_jobs 2, load ~7; held-out real = that split's real rows):

================================================  =========  ==========  ===========  =======  ===========
space-group settings                              fit wall   of it SG    CPU-s/core   bundle   real @1/@5
================================================  =========  ==========  ===========  =======  ===========
before: synthetic weight 1, max_features sqrt     61.5 s     14.3 s      33.6         59.1 MB  13.0/35.8
synthetic weight 0, sqrt                          53.9 s      3.3 s      27.2         50.6 MB  14.2/35.5
synthetic weight 1, max_features 0.5              89.9 s     35.3 s      40.6         58.3 MB  14.2/35.4
default now: weight 0, max_features 0.5           53.8 s      8.4 s      26.9         50.4 MB  14.8/35.4
================================================  =========  ==========  ===========  =======  ===========

(CPU-s per core include the held-out evaluation.) A store without origins (every row "unknown", weight 1) pays
the third row's cost: still inside issue 5's budget (60 CPU-s per core, 300 MB).
Commands: this module's usage line with ``--weights 0,0.03,0.1,0.3,1`` and ``--variant``s (see ``--help``);
the second table adds ``--catalog /tmp/xrdbatch-acc/catalog_syn2_38000.parquet --folds 3 --weights
0,0.1,0.3,1 --variant 'sqrt={"space_group": {"max_features": "sqrt"}}' --variant 'mf0.7={"space_group":
{"max_features": 0.7}}'`` (1,423 s wall of which 890 s computing the syn2 features, 1,051 CPU-s user); the
cost table: the same three catalogs with ``--bundle-cost DIR`` (390 s wall, 252 CPU-s user).

Usage::

    python bench/sg_weight.py --catalog /tmp/xrdbatch-acc/catalog_real.parquet:2 \\
        --catalog /tmp/xrdbatch-acc/catalog_syn1_12000.parquet --copies 2 --feature-set indexed \\
        --peak-params '{"height_rel": 0.04}' --weights 0,0.1,0.3,1 --folds 5 --cache /tmp/pd-acc
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import accuracy  # noqa: E402
from xrdbatch import augment, train  # noqa: E402


def origins_of(blocks, lab: pd.DataFrame) -> np.ndarray:
    """Origin of every stacked row: the catalog's ``source`` joined on ``id``; variants (``variant`` > 0)
    carry :data:`xrdbatch.train.VARIANT_ID_MARK` in their id as the product's variants catalog does."""
    source = pd.concat([pd.read_parquet(b["catalog"], columns=["id", "source"]) for b in blocks]).drop_duplicates("id")
    src = lab[["id"]].merge(source, on="id", how="left")["source"].to_numpy(dtype=object)
    ids = np.where(lab["variant"].to_numpy() > 0,
                   lab["id"].astype(str) + train.VARIANT_ID_MARK + lab["variant"].astype(str), lab["id"].astype(str))
    return train.row_origins(ids, src)


def fold_of_types(types: np.ndarray, folds: int, seed: int) -> dict:
    """Structure type -> fold number (types shuffled with ``seed``, dealt round-robin)."""
    uniq = np.array(sorted(set(types)))
    np.random.default_rng(seed).shuffle(uniq)
    return {t: i % folds for i, t in enumerate(uniq)}


def _hits(model, X, sg_true, systems_true) -> dict:
    frame = model.predict_frame(X, top_k=5)
    hits = np.stack([frame[f"space_group_{k}"].to_numpy() == sg_true for k in range(1, 6)], axis=1)
    return {"cs": frame["crystal_system"].to_numpy().astype(str) == systems_true,
            "sg1": hits[:, 0], "sg5": hits.any(axis=1)}


def bundle_cost(X, lab: pd.DataFrame, fset: str, conditions, peak_params: dict, args) -> int:
    """Fit wall/CPU seconds and bundle bytes of product bundles for space-group settings old and new."""
    import dataclasses

    from xrdbatch import features

    sqrt = dataclasses.replace(train.DEFAULT_PARAMS["space_group"], max_features="sqrt")
    cases = [("before: synthetic weight 1, max_features sqrt", 1.0, sqrt),
             ("synthetic weight 0, max_features sqrt", 0.0, sqrt),
             ("synthetic weight 1, max_features 0.5", 1.0, None),
             (f"default: synthetic weight {train.SPACE_GROUP_SYNTHETIC_WEIGHT:g}, "
              f"max_features {train.DEFAULT_PARAMS['space_group'].max_features}", train.SPACE_GROUP_SYNTHETIC_WEIGHT,
              None)]
    lab = lab.rename(columns={"id": "structure_id"})
    for i, (name, w, sg_params) in enumerate(cases):
        out = args.bundle_cost / f"bundle{i}"
        c0, t0 = time.process_time(), time.perf_counter()
        manifest = train.train_arrays(X, lab, out, feature_set=fset, feature_names=features.feature_names(fset),
                                      peak_params=peak_params, conditions=conditions, n_jobs=args.n_jobs,
                                      model_params={"space_group": sg_params} if sg_params else None,
                                      space_group_synthetic_weight=w, overwrite=True, log=lambda *_: None)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        fs = manifest["training"]["fit_seconds_by_model"]
        sg_wall = sum(v for k, v in fs.items() if k.startswith("space_group"))
        by = manifest["metrics"].get("space_group_by_origin", {}).get("real", {})
        print(f"{name:<48} fit {manifest['training']['fit_seconds']:5.1f} s wall (space groups {sg_wall:4.1f} s), "
              f"{cpu:6.1f} CPU-s in all ({cpu / args.n_jobs:5.1f} per core, incl. evaluation), "
              f"{manifest['total_bytes'] / 1e6:6.1f} MB; {manifest['training']['n_train']} fitted rows; held-out "
              f"real sg@1/@5 {100 * by.get('top1', float('nan')):.1f}/{100 * by.get('top5', float('nan')):.1f}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", action="append", required=True, help="catalog Parquet (repeat); PATH:N = N variants")
    p.add_argument("--copies", type=int, default=2, help="augmented copies per pattern")
    p.add_argument("--feature-set", default="indexed")
    p.add_argument("--peak-params", default='{"height_rel": 0.04}')
    p.add_argument("--weights", default="0,0.1,0.3,1", help="comma-separated synthetic-row weights to compare")
    p.add_argument("--folds", type=int, default=5, help="folds over the real structure types")
    p.add_argument("--sets", default="rruff_minerals_dev,pvlab_thin_films", help="measured sets (checks only)")
    p.add_argument("--system-exponent", type=float, default=1.0, help="ranking exponent (CrystalForest)")
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=JSON: an extra row at the first weight with CrystalForest settings changed, e.g. "
                        "'exp0.5={\"system_exponent\": 0.5}', 'flat={\"hierarchical_space_group\": false}', "
                        "'big={\"space_group\": {\"n_estimators\": 150, \"min_samples_leaf\": 1}}'")
    p.add_argument("--bundle-cost", type=Path, default=None,
                   help="instead of the comparison: train product bundles (xrdbatch.train.train_arrays, all "
                        "forests incl. lattice) into this folder for the old and new space-group settings and "
                        "print fit wall/CPU time and bundle size")
    p.add_argument("--cache", type=Path, default=accuracy.DEFAULT_CACHE)
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the table (text) and per-row hits (Parquet) here")
    args = p.parse_args(argv)

    t_start, cpu_start = time.perf_counter(), time.process_time()
    weights = [float(w) for w in args.weights.split(",")]
    variants = {}
    for text in args.variant:
        name, _, spec = text.partition("=")
        variants[f"w={weights[0]:g}, {name}"] = json.loads(spec)
    rows = [(f"{w:g}", w, {}) for w in weights] + [(name, weights[0], v) for name, v in variants.items()]
    fset = args.feature_set
    conditions = accuracy.target_conditions()
    peak_params = json.loads(args.peak_params)
    specs = []
    for cat in args.catalog:
        path, _, n_sub = cat.rpartition(":")
        specs.append((path, int(n_sub)) if n_sub.isdigit() and path else (cat, 0))
    params = augment.AugmentParams()
    args.cache.mkdir(parents=True, exist_ok=True)
    blocks = accuracy.training_blocks(specs, conditions, params, args.copies, [fset], peak_params, args.cache,
                                      args.seed, args.n_jobs)
    X, lab = accuracy.stack(blocks, "aug", fset)
    origin = origins_of(blocks, lab)
    systems = lab["crystal_system"].to_numpy().astype(str)
    sg = lab["spacegroup_number"].to_numpy().astype(np.int64)
    types = lab["structure_type"].astype(str).to_numpy()
    counts = pd.Series(origin).value_counts().to_dict()
    print(f"{len(X)} training rows ({args.copies} augmented copies), origins {counts}; load {os.getloadavg()[0]:.1f}",
          flush=True)
    if args.bundle_cost:
        return bundle_cost(X, lab.assign(origin=origin), fset, conditions, peak_params, args)
    sets = [s for s in args.sets.split(",") if s]
    measured = {s: accuracy.measured_features(s, conditions, [fset], peak_params, args.cache) for s in sets}
    t_feat, cpu_feat = time.perf_counter() - t_start, time.process_time() - cpu_start
    print(f"features ready in {t_feat:.0f} s wall, {cpu_feat:.0f} CPU-s in the main process", flush=True)

    def new_model():
        return train.CrystalForest(fit_lattice=False, system_exponent=args.system_exponent, random_state=args.seed,
                                   n_jobs=args.n_jobs)

    real = origin == "real"
    fold = fold_of_types(types[real], args.folds, args.seed)
    row_fold = np.array([fold.get(t, -1) for t in types])
    def fit_space_groups(model, Xf, sys_f, sg_f, origin_f, w, settings):
        """Refit the space-group forests with ``settings`` applied (restored afterwards)."""
        saved = {k: getattr(model, k) for k in ("system_exponent", "hierarchical_space_group", "space_group")}
        for key, value in settings.items():
            setattr(model, key, train.ForestParams(**{**train.DEFAULT_PARAMS["space_group"].__dict__, **value})
                    if key == "space_group" else value)
        model.fit_space_groups(Xf, sys_f, sg_f, train.origin_weights(origin_f, w))
        return saved

    held = {name: [] for name, _, _ in rows}
    sg_cpu = {name: 0.0 for name, _, _ in rows}
    cs_cpu = 0.0
    for k in range(args.folds):
        test = real & (row_fold == k)
        fit = row_fold != k
        t0, c0 = time.perf_counter(), time.process_time()
        # fit() makes the crystal-system forest (all rows); the space-group forests are then refitted per row
        model = new_model().fit(X[fit], systems[fit], sg[fit], space_group_rows=origin[fit] == "real")
        cs_cpu += time.process_time() - c0
        for name, w, settings in rows:
            c0 = time.process_time()
            saved = fit_space_groups(model, X[fit], systems[fit], sg[fit], origin[fit], w, settings)
            sg_cpu[name] += time.process_time() - c0
            h = _hits(model, X[test], sg[test], systems[test])
            held[name].append(pd.DataFrame({"fold": k, "id": lab["id"].to_numpy()[test], "system": systems[test], **h}))
            for key, value in saved.items():
                setattr(model, key, value)
        print(f"fold {k}: {int(fit.sum())} fitted rows, {int(test.sum())} held-out real rows "
              f"({len(set(types[test]))} types); " + ", ".join(
                  f"{name} sg@1 {held[name][-1]['sg1'].mean():.3f} sg@5 {held[name][-1]['sg5'].mean():.3f}"
                  for name, _, _ in rows) + f"; {time.perf_counter() - t0:.0f} s wall; load {os.getloadavg()[0]:.1f}",
              flush=True)
    held = {name: pd.concat(v, ignore_index=True) for name, v in held.items()}

    checks = {name: {} for name, _, _ in rows}
    t0 = time.perf_counter()
    model = new_model().fit(X, systems, sg, space_group_rows=origin == "real")
    for name, w, settings in rows:
        saved = fit_space_groups(model, X, systems, sg, origin, w, settings)
        for s in sets:
            Xm, labm = measured[s]
            checks[name][s] = accuracy.scores(model, Xm[fset], labm)
        for key, value in saved.items():
            setattr(model, key, value)
    print(f"all-rows models: {time.perf_counter() - t0:.0f} s wall; load {os.getloadavg()[0]:.1f}", flush=True)

    # paired differences against the first row, per held-out structure (copies averaged)
    first = rows[0][0]
    ref = held[first].groupby("id")[["sg1", "sg5"]].mean()
    width = max(6, *(len(name) for name, _, _ in rows))
    head = (f"{'w_syn':>{width}} {'held cs':>8} {'held sg@1':>10} {'d sg@1':>12} {'held sg@5':>10} {'d sg@5':>12} "
            + " ".join(f"{s[:12] + ' acc/sg1/sg5':>26}" for s in sets) + f" {'SG fit CPU-s':>13}")
    lines = [f"== space-group weight of synthetic rows ({fset}, {len(X)} rows, held-out real structures: "
             f"{held[first]['id'].nunique()} in {args.folds} folds, {len(held[first])} patterns)",
             head, "-" * len(head)]
    for name, _, _ in rows:
        h = held[name]
        d = h.groupby("id")[["sg1", "sg5"]].mean() - ref
        se = d.std(ddof=1) / np.sqrt(len(d))
        chk = " ".join(f"{100 * checks[name][s]['accuracy']:8.1f}/{100 * checks[name][s]['sg_top1']:5.1f}/"
                       f"{100 * checks[name][s]['sg_top5']:5.1f}".rjust(26) for s in sets)
        lines.append(f"{name:>{width}} {100 * h['cs'].mean():8.1f} {100 * h['sg1'].mean():10.1f} "
                     f"{100 * d['sg1'].mean():+6.1f}±{100 * se['sg1']:3.1f} {100 * h['sg5'].mean():10.1f} "
                     f"{100 * d['sg5'].mean():+6.1f}±{100 * se['sg5']:3.1f} {chk} {sg_cpu[name]:13.1f}")
    lines.append(f"d = paired difference against w={first} on the same held-out structures (± its standard "
                 f"error over structures); SG fit CPU-s summed over the {args.folds} folds; crystal-system forest "
                 f"(+ a real-only SG fit) {cs_cpu:.0f} CPU-s over the folds")
    by_system = pd.DataFrame({name: held[name].groupby("system")["sg1"].mean() for name, _, _ in rows})
    lines.append("held-out real sg@1 by crystal system (patterns per system in the last column):\n"
                 + (100 * by_system).round(1).assign(patterns=held[first]["system"].value_counts()).to_string())
    text = "\n".join(lines)
    print(text)
    print(f"total {time.perf_counter() - t_start:.0f} s wall, {time.process_time() - cpu_start:.0f} CPU-s in this "
          f"process (features excluded: {cpu_feat:.0f}); load {os.getloadavg()[0]:.1f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sg_weight.txt").write_text(text + "\n")
        pd.concat([h.assign(row=name) for name, h in held.items()]).to_parquet(args.out / "sg_weight_heldout.parquet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

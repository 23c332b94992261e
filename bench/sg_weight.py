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
``--cache`` holds that bench's files (or symlinks to them) computes no features.

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

"""The ``demo`` / ``run --config`` driver: the pipeline as an ordered list of stage functions.

A stage is ``stage(config, ctx) -> None``: it reads its sections of the effective config (see
:mod:`xrdbatch.config`), calls one library function with explicit arguments, and records what it
made in ``ctx.outputs`` (name -> path). :data:`STAGES` lists them in order; adding a stage (features,
train, report, score) is one function and one entry. Every stage is safe to run again: ``ingest`` is
skipped when its catalog was made from the same inputs, ``simulate`` resumes (or skips) a store.

Training data at scale is one command (issue 8): ``[sources]`` lists real databases and
``synthetic:N`` (the generator draws space groups from a real database's mix, ``prior``);
``variants`` adds ``[training] substitutions`` element-substituted copies of every real structure;
``simulate`` renders the ideal store; ``augment`` renders ``augment_copies`` measurement-like copies
(lattice strain, widths, K-alpha2, shifts, preferred orientation, background, noise, impurities,
detection limit; seeded, recorded in each store), which ``features`` and ``train`` then use.

The Dask client is created once, on first use (:meth:`RunContext.client`), and shared by the stages.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Callable

#: The demo config shipped with the package (``xrdbatch demo``).
DEMO_CONFIG = str(files("xrdbatch") / "data" / "demo.toml")


class PipelineError(Exception):
    """A stage cannot run as configured; the message names the stage and what to change."""


@dataclass
class RunContext:
    """What the stages share: the config, a log function, the outputs so far and one Dask client."""

    config: dict
    log: Callable[[str], None] = print
    outputs: dict = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _client: object = None

    def path(self, value: str | None) -> str | None:
        from xrdbatch.config import path_in

        return path_in(self.config, value)

    def client(self):
        """The run's ``distributed.Client`` (started on first call from the ``[cluster]`` section)."""
        if self._client is None:
            from xrdbatch.cluster import get_client

            self._client = self._stack.enter_context(get_client(**self.config["cluster"], log=self.log))
        return self._client

    def close(self) -> None:
        self._stack.close()


def _stamp_path(ctx: RunContext, stage: str) -> str:
    return os.path.join(ctx.config["out_dir"], ".xrdbatch-run", f"{stage}.json")


def _read_stamp(ctx: RunContext, stage: str):
    try:
        with open(_stamp_path(ctx, stage)) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def _write_stamp(ctx: RunContext, stage: str, stamp: dict) -> None:
    path = _stamp_path(ctx, stage)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(stamp, fh, sort_keys=True)
    os.replace(tmp, path)


# ======================================================================================== stages ==
def stage_ingest(config: dict, ctx: RunContext) -> None:
    """``[sources]`` -> catalog Parquet (skipped when the catalog exists and was made from the same inputs)."""
    from xrdbatch import sources

    src = config["sources"]
    catalog = ctx.path(src["catalog"])
    options = {k: src[k] for k in ("seed", "prior", "max_atoms", "symprec") if src.get(k) is not None}
    stamp = {"specs": list(src["specs"]), "dedupe": src["dedupe"], **options}
    previous = _read_stamp(ctx, "ingest")
    if os.path.exists(catalog) and previous is not None and previous.get("inputs") == stamp \
            and previous.get("catalog_sha256") == sources.catalog_hash(catalog):
        ctx.log(f"ingest: catalog {catalog} is up to date (same sources), skipped")
    else:
        summary = sources.ingest_to_parquet(list(src["specs"]), catalog, dedupe=src["dedupe"], client=ctx.client(),
                                            progress=True, **options)
        ctx.log(f"ingest: {summary}")
        _write_stamp(ctx, "ingest", {"inputs": stamp, "catalog_sha256": sources.catalog_hash(catalog)})
    ctx.outputs["catalog"] = catalog


def _training_catalog(config: dict, ctx: RunContext) -> str:
    """The catalog the store is simulated from: the variants catalog when ``[training] substitutions`` > 0."""
    tr = _section(config, "training")
    variants = ctx.path(tr["variants_catalog"])
    if int(tr["substitutions"]) > 0 and os.path.exists(variants):
        return variants
    if int(tr["substitutions"]) > 0:
        ctx.log(f"simulate: no variants catalog {variants} (the variants stage did not run); "
                "simulating the ingest catalog")
    return ctx.path(config["sources"]["catalog"])


def stage_variants(config: dict, ctx: RunContext) -> None:
    """catalog -> catalog + ``[training] substitutions`` element-substituted copies of every real structure
    (:func:`xrdbatch.augment.substituted_catalog`; synthetic rows are not copied). Skipped when 0, or when
    the variants catalog was made from the same catalog with the same settings."""
    from xrdbatch import augment, sources

    tr = _section(config, "training")
    n = int(tr["substitutions"])
    catalog = ctx.outputs.get("catalog") or ctx.path(config["sources"]["catalog"])
    if n <= 0:
        return
    out = ctx.path(tr["variants_catalog"])
    stamp = {"catalog_sha256": sources.catalog_hash(catalog), "substitutions": n, "seed": int(tr["seed"])}
    previous = _read_stamp(ctx, "variants")
    if os.path.exists(out) and previous is not None and previous.get("inputs") == stamp \
            and previous.get("catalog_sha256") == sources.catalog_hash(out):
        ctx.log(f"variants: {out} is up to date, skipped")
    else:
        table = sources.read_catalog(catalog)
        t0 = time.perf_counter()
        variants = augment.substituted_catalog(table, n, seed=int(tr["seed"]))
        tmp = f"{out}.tmp-{os.getpid()}"
        variants.to_parquet(tmp, index=False)
        os.replace(tmp, out)
        ctx.log(f"variants: {len(variants) - len(table)} element-substituted copies of the real structures "
                f"({n} each) added to {len(table)} rows in {time.perf_counter() - t0:.1f} s -> {out}")
        _write_stamp(ctx, "variants", {"inputs": stamp, "catalog_sha256": sources.catalog_hash(out)})
    ctx.outputs["variants"] = out


def stage_simulate(config: dict, ctx: RunContext) -> None:
    """catalog -> Zarr store at the ``[conditions]`` (resumes a store of the same run)."""
    from xrdbatch import store
    from xrdbatch.config import resolve_conditions

    st = config["store"]
    path = ctx.path(st["path"])
    catalog = ctx.outputs.get("variants") or _training_catalog(config, ctx)
    try:
        summary = store.simulate(catalog, path, resolve_conditions(config["conditions"]),
                                 chunk_size=st["chunk_size"], d_min_angstrom=st.get("d_min_angstrom"),
                                 restart=bool(st["restart"]), client=ctx.client(), progress=True, log=ctx.log)
    except store.StoreError as exc:
        raise PipelineError(f"simulate: {exc}") from None
    ctx.log(f"simulate: {summary}")
    ctx.outputs["store"] = path


def _augmented_stores(config: dict, ctx: RunContext) -> list[str]:
    tr = _section(config, "training")
    return [ctx.path(tr["augment_store"].format(copy=c)) for c in range(int(tr["augment_copies"]))]


def stage_augment(config: dict, ctx: RunContext) -> None:
    """store -> ``[training] augment_copies`` measurement-like copies (one store each, ``augment_store``):
    :func:`xrdbatch.store.retarget` with :mod:`xrdbatch.augment` (strain = lattice variation, widths,
    K-alpha2, zero shift, displacement, March-Dollase, background, noise, impurities, detection limit),
    seeded by ``augment_seed`` and the copy number and recorded in each store's attrs. Resumes like
    ``simulate``; skipped when ``augment_copies`` is 0 (the model then trains on the ideal store)."""
    from xrdbatch import augment, store
    from xrdbatch.config import resolve_conditions

    tr = _section(config, "training")
    source = ctx.outputs.get("store") or ctx.path(config["store"]["path"])
    outs = _augmented_stores(config, ctx)
    if not outs:
        return
    params = augment.AugmentParams.from_dict(tr["augment_params"] or {})
    conditions = resolve_conditions(config["conditions"])
    for copy, out in enumerate(outs):
        try:
            summary = store.retarget(source, out, conditions, client=ctx.client(), progress=True, log=ctx.log,
                                     augment={"params": params, "seed": int(tr["augment_seed"]), "copy": copy})
        except store.StoreError as exc:
            raise PipelineError(f"augment: {exc}") from None
        ctx.log(f"augment: copy {copy}: {summary}")
    ctx.outputs["training_stores"] = outs


def _training_stores(config: dict, ctx: RunContext) -> list[str]:
    """The stores the model trains on: the augmented copies, or the ideal store when there are none."""
    return ctx.outputs.get("training_stores") or _augmented_stores(config, ctx) or \
        [ctx.outputs.get("store") or ctx.path(config["store"]["path"])]


def stage_features(config: dict, ctx: RunContext) -> None:
    """training stores -> peak features written into them (``[training] feature_set``, ``peak_params``)."""
    from xrdbatch import features

    tr = _section(config, "training")
    sets = sorted({tr["feature_set"], "seed11"})
    for path in _training_stores(config, ctx):
        summary = features.features_to_store(path, sets, tr.get("peak_params"), client=ctx.client())
        ctx.log(f"features: {summary}")


def stage_train(config: dict, ctx: RunContext) -> None:
    """store features -> model bundle (``[training]``: feature_set, split, test_size, seed, n_jobs, model,
    class_mix, system_exponent, calibrate, space_group_synthetic_weight, crystal_system_model, search_library).

    Every row's origin (real / variant / synthetic) is read from the store's ``source`` coordinate, or from
    the catalog of an older store (:func:`xrdbatch.train.store_origins`); ``space_group_synthetic_weight``
    (0..1, unset = the library default :data:`xrdbatch.train.SPACE_GROUP_SYNTHETIC_WEIGHT`) is the weight of
    synthetic rows in the space-group forests (0 = real structures and their variants only). With
    ``search_library`` the real structures of the ideal store go into the bundle as its search-match library
    (:func:`xrdbatch.train.reference_library`)."""
    from xrdbatch import train

    tr = _section(config, "training")
    paths = _training_stores(config, ctx)
    model = ctx.path(tr["model"])
    sg_weight = ({} if tr["space_group_synthetic_weight"] is None
                 else {"space_group_synthetic_weight": float(tr["space_group_synthetic_weight"])})
    try:
        system_model = train.crystal_system_params(tr["crystal_system_model"])
    except ValueError as exc:
        raise PipelineError(f"train: [training] crystal_system_model: {exc}") from None
    manifest = train.train_from_store(paths if len(paths) > 1 else paths[0], model, feature_set=tr["feature_set"],
                                      split=tr["split"], test_size=tr["test_size"], random_state=tr["seed"],
                                      n_jobs=tr["n_jobs"] or os.cpu_count(), calibrate=tr.get("calibrate"),
                                      class_mix=tr["class_mix"],
                                      model_params={"system_exponent": float(tr["system_exponent"]),
                                                    "crystal_system": system_model},
                                      overwrite=True, log=ctx.log,
                                      library_store=_library_store(config, ctx), **sg_weight)
    ctx.log(f"train: bundle {model} ({manifest['total_bytes'] / 1e6:.1f} MB)")
    ctx.outputs["model"] = model


def _library_store(config: dict, ctx: RunContext) -> str | None:
    """The ideal store (``simulate``'s), whose real structures become the bundle's search-match library, when
    ``[training] search_library`` asks for one and the store is there."""
    if not _section(config, "training")["search_library"]:
        return None
    path = ctx.outputs.get("store") or ctx.path(config["store"]["path"])
    if not os.path.isdir(path):
        ctx.log(f"train: no ideal store {path}, so no search-match library")
        return None
    return path


def stage_report(config: dict, ctx: RunContext) -> None:
    """model bundle -> evaluation report (metrics.json, HTML, PNG figures). With ``[training] report_measured``
    (a labels CSV, see :func:`xrdbatch.report.evaluate_measured`; files relative to ``report_measured_root``) the
    report also scores those measured patterns as the score stage would (``[scoring]`` shift averaging,
    search-match, decision) and shows their accuracy and reliability; a labels file that is not there is logged
    and left out."""
    from xrdbatch import report

    tr = _section(config, "training")
    sc = _section(config, "scoring")
    model = ctx.outputs.get("model") or ctx.path(tr["model"])
    labels = tr["report_measured"]
    if labels and not os.path.isfile(labels):
        ctx.log(f"report: no measured labels file {labels} on this machine; the report leaves measured patterns out")
        labels = None
    html = report.write_report(model, ctx.path(tr["report"]), labels, tr["report_measured_root"],
                               shift_average_deg=float(sc["shift_average_deg"]), shift_views=int(sc["shift_views"]),
                               search_match=sc["search_match"], decision=sc["decision"])
    if labels:
        with open(os.path.join(os.path.dirname(html), "metrics.json")) as fh:
            metrics = json.load(fh)
        for row in metrics.get("measured", []):
            ctx.log(f"report: measured {row}")
    ctx.log(f"report: {html}")
    ctx.outputs["report"] = str(html)


def stage_examples(config: dict, ctx: RunContext) -> None:
    """Write measurement-like example files to score: ``[scoring] examples`` lists builtin prototypes as
    ``FORMULA_SPACEGROUP`` (e.g. ``"NaCl_225"``).

    A fresh machine has no measured data; these are simulated from a few well-known builtin prototypes
    with the measurement effects of :mod:`xrdbatch.augment` (K-alpha2, broadening, zero shift, background,
    counting noise; no lattice strain) and written as two-column ``.xy`` files, the most common instrument
    export. Real files are scored the same way through ``[scoring] inputs``.
    """
    import numpy as np

    from xrdbatch import augment, simulate, sources
    from xrdbatch.config import resolve_conditions
    from xrdbatch.crystal import Crystal

    sc = _section(config, "scoring")
    if not sc["examples"]:
        return
    folder = ctx.path(sc["examples_dir"])
    os.makedirs(folder, exist_ok=True)
    catalog = sources.read_catalog(ctx.outputs.get("catalog") or ctx.path(config["sources"]["catalog"]))
    if not catalog["source"].astype(str).str.startswith("builtin").any():
        catalog = sources.ingest(["builtin:prototypes"], executor="serial")  # a run without them as sources
    ok = catalog[(catalog["status"] == "ok") & catalog["source"].astype(str).str.startswith("builtin")]
    key = ok["formula"].astype(str) + "_" + ok["spacegroup_number"].astype(str)
    picked = ok[key.isin(sc["examples"])].drop_duplicates("formula")
    missing = sorted(set(sc["examples"]) - set(key))
    if missing:
        ctx.log(f"examples: {missing} are not ok rows of the builtin prototypes (FORMULA_SPACEGROUP); left out")
    conditions = resolve_conditions({**config["conditions"], "ka2": True})
    refls = [simulate.reflections(Crystal.from_columns(row), conditions.d_min_angstrom * 0.98)
             for _, row in picked.iterrows()]
    # a measurement of that very crystal: the instrument's effects, no lattice strain (the augmentation's strain
    # stands for other compositions of the structure type)
    rows, _ = augment.measured_patterns(refls, conditions, params=augment.AugmentParams(strain_rel=0.0),
                                        seed=int(sc["examples_seed"]))
    tt = conditions.two_theta_deg()
    for (_, row), counts in zip(picked.iterrows(), rows):
        name = f"{row['formula']}_{row['spacegroup_number']}.xy"
        tmp = os.path.join(folder, f".{name}.tmp")
        np.savetxt(tmp, np.column_stack([tt, 1000 * counts]), fmt="%.3f %.2f",
                   header=f"simulated measurement of {row['formula']} ({row['spacegroup_symbol']}, "
                          f"{row['crystal_system']}); 2theta_deg intensity; CuKa12")
        os.replace(tmp, os.path.join(folder, name))
    ctx.log(f"examples: {len(picked)} measurement-like .xy files in {folder} ({', '.join(picked['formula'])})")
    ctx.outputs["examples"] = folder


def stage_score(config: dict, ctx: RunContext) -> None:
    """model + measured files -> results table (``[scoring] inputs``, plus the examples and the optional inputs
    that exist, e.g. ``../shared/data/measured`` beside a checkout)."""
    import pandas as pd

    from xrdbatch import score

    sc = _section(config, "scoring")
    tr = _section(config, "training")
    inputs = list(sc["inputs"])
    if "examples" in ctx.outputs:
        inputs.append(ctx.outputs["examples"])
    present = [p for p in sc["optional_inputs"] if os.path.exists(p)]
    if present:
        ctx.log(f"score: also scoring {present} (present on this machine)")
    inputs += present
    if not inputs:
        ctx.log("score: nothing to score ([scoring] inputs is empty and no examples); skipped")
        return
    out = ctx.path(sc["out"])
    model = ctx.outputs.get("model") or ctx.path(tr["model"])
    summary = score.score(inputs, model, out, wavelength_angstrom=sc.get("wavelength_angstrom"),
                          executor="dask", client=ctx.client(), progress=True,
                          shift_average_deg=float(sc["shift_average_deg"]), shift_views=int(sc["shift_views"]),
                          search_match=sc["search_match"], decision=sc["decision"])
    ctx.log(f"score: {summary}")
    table = pd.read_parquet(out) if out.endswith(".parquet") else pd.read_csv(out)
    ok = table[table["status"] == "ok"]
    cols = ["file", "crystal_system", "crystal_system_prob", "space_group_1", "space_group_2", "space_group_3",
            "matched", "match_formula"]
    with pd.option_context("display.width", 160, "display.max_colwidth", 48):
        ctx.log(ok[cols].assign(file=ok["file"].map(os.path.basename)).head(12).to_string(index=False))
    ctx.outputs["scores"] = out


#: ``[training]`` keys the pipeline reads (the section is open: other keys are ignored here).
#: Feature set and peak threshold are the best measured on rruff_minerals_dev (bench/results/README.md):
#: ``measured`` features and ``height_rel`` 0.04 (the seed's recipe is ``feature_set = "seed11"`` with
#: ``peak_params = {}``). Training data (issue 8): ``substitutions`` element-substituted copies of every
#: real structure, ``augment_copies`` measurement-like renderings of every structure;
#: ``space_group_synthetic_weight`` (None = :data:`xrdbatch.train.SPACE_GROUP_SYNTHETIC_WEIGHT`) how much the
#: space-group forests learn from synthetic crystals; ``crystal_system_model`` "extra_trees" (the forest) or
#: "boosting" (:class:`xrdbatch.train.BoostingParams`: ~5 points more on held-out structure types, ~1.2-2x the fit);
#: ``search_library``: write the real structures (ideal store) into the bundle as its search-match library;
#: ``report_measured`` / ``report_measured_root``: labelled measured patterns the report scores (``stage_report``).
TRAINING_DEFAULTS = {"feature_set": "measured", "split": "grouped", "test_size": 0.2, "seed": 0, "n_jobs": None,
                     "calibrate": None, "peak_params": {"height_rel": 0.04}, "model": "model", "report": "report",
                     "substitutions": 0, "variants_catalog": "catalog_variants.parquet",
                     "augment_copies": 0, "augment_seed": 0, "augment_params": None,
                     "augment_store": "store_aug{copy}.zarr", "class_mix": "catalog", "system_exponent": 1.0,
                     "space_group_synthetic_weight": None, "crystal_system_model": "extra_trees",
                     "search_library": True, "report_measured": None, "report_measured_root": None}
#: ``[scoring]`` keys the pipeline reads; ``search_match`` None = on when the bundle has a library; ``decision``
#: "argmax" or "balanced" (:meth:`xrdbatch.bundle.ModelBundle.decision_weights`).
SCORING_DEFAULTS = {"inputs": [], "optional_inputs": [], "examples": [], "examples_dir": "examples",
                    "examples_seed": 0, "out": "scores.csv", "wavelength_angstrom": None,
                    "shift_average_deg": 0.0, "shift_views": 7, "search_match": None, "decision": "argmax"}

def _section(config: dict, name: str) -> dict:
    """The open ``[training]`` / ``[scoring]`` section over the keys and defaults the stages read."""
    return {**_OPEN_DEFAULTS[name], **config[name]}


_OPEN_DEFAULTS = {"training": TRAINING_DEFAULTS, "scoring": SCORING_DEFAULTS}

#: The pipeline, in order: (name, stage function).
STAGES: list[tuple[str, Callable[[dict, RunContext], None]]] = [
    ("ingest", stage_ingest),
    ("variants", stage_variants),
    ("simulate", stage_simulate),
    ("augment", stage_augment),
    ("features", stage_features),
    ("train", stage_train),
    ("report", stage_report),
    ("examples", stage_examples),
    ("score", stage_score),
]


def run(config: dict, *, stages: list[str] | None = None, log: Callable[[str], None] = print) -> dict:
    """Run the pipeline ``stages`` (default: all of :data:`STAGES`) for an effective ``config``.

    Returns
    -------
    dict
        Output name -> path (catalog, store, ...), also printed at the end.
    """
    names = [name for name, _ in STAGES]
    chosen = names if stages is None else list(stages)
    unknown = [s for s in chosen if s not in names]
    if unknown:
        raise PipelineError(f"unknown stage(s) {unknown}; valid stages, in order: {names}")
    os.makedirs(config["out_dir"], exist_ok=True)
    ctx = RunContext(config, log=log)
    t_run = time.perf_counter()
    try:
        for name, stage in STAGES:
            if name not in chosen:
                continue
            t0 = time.perf_counter()
            log(f"== {name}")
            stage(config, ctx)
            log(f"== {name} done in {time.perf_counter() - t0:.1f} s")
    finally:
        ctx.close()
    log(f"finished in {time.perf_counter() - t_run:.1f} s; outputs in {os.path.abspath(config['out_dir'])}:")
    for key, value in ctx.outputs.items():
        for i, path in enumerate([value] if isinstance(value, str) else value):
            log(f"  {key if i == 0 else '':<10} {os.path.abspath(path)}")
    return ctx.outputs

"""The ``demo`` / ``run --config`` driver: the pipeline as an ordered list of stage functions.

A stage is ``stage(config, ctx) -> None``: it reads its sections of the effective config (see
:mod:`xrdbatch.config`), calls one library function with explicit arguments, and records what it
made in ``ctx.outputs`` (name -> path). :data:`STAGES` lists them in order; adding a stage (features,
train, report, score) is one function and one entry. Every stage is safe to run again: ``ingest`` is
skipped when its catalog was made from the same inputs, ``simulate`` resumes (or skips) a store.

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


def stage_simulate(config: dict, ctx: RunContext) -> None:
    """catalog -> Zarr store at the ``[conditions]`` (resumes a store of the same run)."""
    from xrdbatch import store
    from xrdbatch.config import resolve_conditions

    st = config["store"]
    path = ctx.path(st["path"])
    if "catalog" not in ctx.outputs:
        ctx.outputs["catalog"] = ctx.path(config["sources"]["catalog"])
    try:
        summary = store.simulate(ctx.outputs["catalog"], path, resolve_conditions(config["conditions"]),
                                 chunk_size=st["chunk_size"], d_min_angstrom=st.get("d_min_angstrom"),
                                 restart=bool(st["restart"]), client=ctx.client(), progress=True, log=ctx.log)
    except store.StoreError as exc:
        raise PipelineError(f"simulate: {exc}") from None
    ctx.log(f"simulate: {summary}")
    ctx.outputs["store"] = path


#: The pipeline, in order: (name, stage function). Later issues append features, train, report, score.
STAGES: list[tuple[str, Callable[[dict, RunContext], None]]] = [
    ("ingest", stage_ingest),
    ("simulate", stage_simulate),
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
        log(f"  {key:<10} {os.path.abspath(value)}")
    return ctx.outputs

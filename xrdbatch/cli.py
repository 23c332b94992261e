"""Thin command line: parse, resolve configuration, call one library function, return an exit code.

Each verb is a ``_cmd_<verb>(args) -> int`` function registered in :data:`COMMANDS`
(a dict, not an if/elif chain). Heavy and optional imports happen inside the command
that needs them, so ``xrdbatch --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys


class CliError(Exception):
    """An error for the user: printed without a traceback, exit code 2."""


# --------------------------------------------------------------------------------- ingest ----
def _add_ingest(sub):
    p = sub.add_parser("ingest", help="read structure sources into a labelled Parquet catalog")
    p.add_argument("sources", nargs="+", help="folders/files of CIF/POSCAR/JSON, builtin:prototypes, synthetic:N")
    p.add_argument("--out", required=True, help="catalog Parquet path")
    p.add_argument("--symprec", type=float, default=None, help="spglib symprec in angstrom")
    p.add_argument("--labeller", default=None, help="symmetry finder: spglib (default) or moyopy (faster; labels "
                                                    "may differ, see README)")
    p.add_argument("--max-atoms", type=int, default=None, help="atoms (sites) in the cell above this: skipped rows")
    p.add_argument("--keep-duplicates", action="store_true", help="keep later copies of the same structure as ok")
    p.add_argument("--seed", type=int, default=0, help="seed of synthetic:N sources")
    p.add_argument("--prior", default=None, help="space-group prior for synthetic:N (icsd, cod, mp, uniform)")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: all cores)")
    _add_cluster_options(p)
    return p


def _cmd_ingest(args) -> int:
    from xrdbatch import sources

    options = {k: v for k, v in dict(symprec=args.symprec, max_atoms=args.max_atoms, seed=args.seed,
                                      prior=args.prior, labeller=args.labeller).items() if v is not None}
    run = lambda **kw: sources.ingest_to_parquet(args.sources, args.out, dedupe=not args.keep_duplicates,  # noqa: E731
                                                 progress=True, **options, **kw)
    try:
        if args.scheduler_address or args.scheduler_file:  # a Dask cluster; otherwise local processes
            from xrdbatch import cluster

            with cluster.get_client(**_cluster_kwargs(args)) as client:
                summary = run(client=client)
        else:
            summary = run(n_workers=args.workers or args.n_workers)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(summary)
    return 0


# ------------------------------------------------------- simulate / retarget / demo / run / config ----
_CONDITION_OPTIONS = {  # CLI option dest -> Conditions field
    "two_theta_min": "two_theta_min_deg", "two_theta_max": "two_theta_max_deg",
    "two_theta_step": "two_theta_step_deg", "fwhm": "fwhm_deg", "profile": "profile", "eta": "eta",
    "monochromator": "monochromator_two_theta_deg",
}


def _add_conditions_options(p, base: str = "defaults: CuKa, 5-90 deg, step 0.02, pseudo-Voigt FWHM 0.1"):
    g = p.add_argument_group("conditions", f"instrument setup ({base})")
    g.add_argument("--radiation", default=None, help="line name (CuKa, CuKa12, MoKa, ...) or wavelength in angstrom")
    g.add_argument("--ka2", type=float, nargs="?", const=0.5, default=None, metavar="RATIO",
                   help="add K-alpha2 of the named line, at this intensity ratio (default 0.5)")
    g.add_argument("--two-theta-min", type=float, default=None, metavar="DEG")
    g.add_argument("--two-theta-max", type=float, default=None, metavar="DEG")
    g.add_argument("--two-theta-step", type=float, default=None, metavar="DEG")
    g.add_argument("--profile", default=None, choices=("pseudo_voigt", "gaussian", "lorentzian"))
    g.add_argument("--fwhm", type=float, default=None, metavar="DEG", help="constant peak FWHM in degrees")
    g.add_argument("--caglioti", type=float, nargs=3, default=None, metavar=("U", "V", "W"),
                   help="Caglioti FWHM^2 = U tan^2 + V tan + W, in degree^2 (replaces --fwhm)")
    g.add_argument("--eta", type=float, default=None, help="pseudo-Voigt Lorentzian fraction")
    g.add_argument("--monochromator", type=float, default=None, metavar="DEG",
                   help="monochromator 2-theta for the polarisation factor")


def _conditions_from_args(args, base=None):
    """Conditions options applied over ``base`` (default: the Conditions defaults)."""
    from xrdbatch.conditions import Conditions
    from xrdbatch.config import ConfigError, resolve_conditions

    section = (base or Conditions()).to_dict()
    section["radiation"] = section.pop("wavelength_angstrom")
    if args.radiation is not None:
        section["radiation"] = args.radiation
        section["wavelength2_angstrom"] = None
    if args.ka2 is not None:
        section.update(ka2=True, ka2_ratio=args.ka2)
    for dest, field in _CONDITION_OPTIONS.items():
        if getattr(args, dest) is not None:
            section[field] = getattr(args, dest)
    if args.caglioti is not None:
        section.update(zip(("caglioti_u_deg2", "caglioti_v_deg2", "caglioti_w_deg2"), args.caglioti))
    try:
        return resolve_conditions(section)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _cluster_kwargs(args) -> dict:
    return dict(scheduler_address=args.scheduler_address, scheduler_file=args.scheduler_file,
                n_workers=args.n_workers, threads_per_worker=args.threads_per_worker)


def _run_store(args, call) -> int:
    """Run ``call(client=..., executor=...)`` on the chosen executor; store errors become user errors."""
    from xrdbatch import cluster, store

    try:
        if args.executor == "serial":
            summary = call(client=None, executor="serial")
        else:
            with cluster.get_client(**_cluster_kwargs(args)) as client:
                summary = call(client=client, executor="dask")
    except (store.StoreError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    print(summary)
    return 0


def _add_simulate(sub):
    p = sub.add_parser("simulate", help="simulate every catalog row into a chunked, resumable Zarr store (Dask)")
    p.add_argument("--catalog", required=True, help="catalog Parquet (from `xrdbatch ingest`)")
    p.add_argument("--store", required=True, help="Zarr store directory (created, or resumed)")
    p.add_argument("--chunk-size", type=int, default=None, help="structures per task and Zarr chunk (default 500)")
    p.add_argument("--d-min-angstrom", type=float, default=None,
                   help="keep reflections down to this d (default: what the conditions need); smaller = wider retarget")
    p.add_argument("--restart", action="store_true", help="discard a store made with other conditions/catalog")
    p.add_argument("--executor", choices=("dask", "serial"), default="dask", help="serial = in this process")
    _add_like_model_option(p)
    _add_conditions_options(p)
    _add_cluster_options(p)
    return p


def _add_like_model_option(p):
    p.add_argument("--like-model", default=None, metavar="MODEL",
                   help="start from the conditions a model bundle was trained at (e.g. a store for `xrdbatch library`)")


def _like_model_conditions(args):
    """The conditions of ``--like-model``'s bundle, or None without it."""
    from xrdbatch import bundle
    from xrdbatch.conditions import Conditions

    if not args.like_model:
        return None
    try:
        return Conditions.from_dict(bundle.read_manifest(args.like_model)["conditions"])
    except (ValueError, FileNotFoundError) as exc:  # BundleError is a ValueError
        raise CliError(str(exc)) from None


def _cmd_simulate(args) -> int:
    from xrdbatch import store

    conditions = _conditions_from_args(args, _like_model_conditions(args))
    return _run_store(args, lambda **kw: store.simulate(
        args.catalog, args.store, conditions, chunk_size=args.chunk_size, d_min_angstrom=args.d_min_angstrom,
        restart=args.restart, progress=True, log=print, **kw))


def _add_retarget(sub):
    p = sub.add_parser("retarget", help="new patterns for other conditions from a store's reflections (no re-simulation)")
    p.add_argument("--store", required=True, help="finished source store")
    p.add_argument("--out", required=True, help="new Zarr store")
    p.add_argument("--augment", action="store_true",
                   help="measurement-like patterns (peak widths, K-alpha2, shifts, preferred orientation, background, "
                        "counting noise, impurity lines, detection limit; xrdbatch.augment), recorded in the store")
    p.add_argument("--augment-seed", type=int, default=0, help="seed of the augmentation draws")
    p.add_argument("--augment-copy", type=int, default=0, help="copy number (a new draw per copy; one store each)")
    p.add_argument("--augment-params", default=None,
                   help="JSON object (or a .json file) overriding xrdbatch.augment.AugmentParams fields")
    p.add_argument("--restart", action="store_true", help="discard an --out store made differently")
    p.add_argument("--executor", choices=("dask", "serial"), default="dask", help="serial = in this process")
    _add_like_model_option(p)
    _add_conditions_options(p, base="defaults: the source store's conditions, or --like-model's")
    _add_cluster_options(p)
    return p


def _cmd_retarget(args) -> int:
    from xrdbatch import store

    base = _like_model_conditions(args)
    if base is None:
        try:
            base = store.read_conditions(args.store)
        except (FileNotFoundError, KeyError) as exc:
            raise CliError(f"cannot read the conditions of store {args.store} ({exc}); is it an xrdbatch store?") \
                from None
    conditions = _conditions_from_args(args, base)
    augment = None
    if args.augment:
        import json
        import os

        from xrdbatch import augment as xaugment

        text = args.augment_params or "{}"
        if os.path.isfile(text):
            with open(text) as fh:
                text = fh.read()
        try:
            augment = {"params": xaugment.AugmentParams.from_dict(json.loads(text)), "seed": args.augment_seed,
                       "copy": args.augment_copy}
        except (ValueError, TypeError) as exc:
            raise CliError(f"--augment-params: {exc}") from None
    return _run_store(args, lambda **kw: store.retarget(
        args.store, args.out, conditions, restart=args.restart, progress=True, log=print, augment=augment, **kw))


def _add_run_options(p):
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set store.chunk_size=200 (repeatable)")
    p.add_argument("--stages", default=None, help="comma-separated subset of stages to run (default: all)")
    _add_cluster_options(p)


def _cluster_overrides(args) -> list[str]:
    return [f"cluster.{k}={v!r}" if isinstance(v, str) else f"cluster.{k}={v}"
            for k, v in _cluster_kwargs(args).items() if v is not None]


def _run_pipeline(config_path, args, extra=()) -> int:
    from xrdbatch import pipeline
    from xrdbatch.config import ConfigError, load_config

    try:
        config = load_config(config_path, [*extra, *args.overrides, *_cluster_overrides(args)])
        stages = args.stages.split(",") if args.stages else None
        pipeline.run(config, stages=stages, log=print)
    except (ConfigError, pipeline.PipelineError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _add_demo(sub):
    p = sub.add_parser("demo", help="the whole pipeline on embedded data (builtin prototypes + synthetic crystals)")
    p.add_argument("--out", default=None, help="output folder (default ./xrdbatch-demo)")
    _add_run_options(p)
    return p


def _cmd_demo(args) -> int:
    from xrdbatch import pipeline

    return _run_pipeline(pipeline.DEMO_CONFIG, args, [f"out_dir={args.out!r}"] if args.out else [])


def _add_run(sub):
    p = sub.add_parser("run", help="run the pipeline stages a TOML config describes")
    p.add_argument("--config", required=True, help="run config (TOML; `xrdbatch config show` prints one)")
    _add_run_options(p)
    return p


def _cmd_run(args) -> int:
    return _run_pipeline(args.config, args)


def _add_config(sub):
    p = sub.add_parser("config", help="config files: `config show` prints the effective config")
    p.add_argument("action", choices=("show",))
    p.add_argument("--config", default=None, help="TOML config file (default: built-in defaults)")
    p.add_argument("--demo", action="store_true", help="start from the demo config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p


def _cmd_config(args) -> int:
    from xrdbatch import pipeline
    from xrdbatch.config import ConfigError, dumps, load_config

    if args.config and args.demo:
        raise CliError("give --config or --demo, not both")
    try:
        print(dumps(load_config(pipeline.DEMO_CONFIG if args.demo else args.config, args.overrides)), end="")
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return 0


# ---------------------------------------------------------------------------------- score ----
def _add_score(sub):
    p = sub.add_parser("score", help="score measured pattern files with a model bundle (Dask over file batches)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders (recursive) or glob patterns")
    p.add_argument("--model", required=True, help="model bundle folder or registry URL (s3://..., path/name/version)")
    p.add_argument("--out", required=True, help="results .parquet or .csv (written atomically)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--wavelength", type=float, default=None,
                   help="wavelength in angstrom for files that do not state theirs (default: the model's)")
    g.add_argument("--radiation", default=None, help="same, as an X-ray line name (CuKa, MoKa1, ...)")
    p.add_argument("--format", default=None, help="force one reader instead of detection (see xrdbatch.readers)")
    p.add_argument("--resume", action="store_true", help="skip files that already have rows in --out")
    p.add_argument("--batch-size", type=int, default=None,
                   help="files per task (default: up to 1000, at least 4 tasks per worker thread)")
    p.add_argument("--executor", choices=("dask", "serial"), default="dask", help="serial = in this process")
    p.add_argument("--endpoint-url", default=None,
                   help="S3-compatible endpoint for an s3:// --model (or $XRDBATCH_S3_ENDPOINT_URL)")
    a = p.add_mutually_exclusive_group()
    a.add_argument("--abstain", type=float, default=None, metavar="P",
                   help="abstain (empty answer, abstained=true) where the crystal-system probability is below P")
    a.add_argument("--abstain-accuracy", type=float, default=None, metavar="ACC",
                   help="abstain below the bundle's threshold for this target accuracy (0.8, 0.9 or 0.95; "
                        "needs a bundle trained with --calibrate)")
    p.add_argument("--shift-average", type=float, default=0.0, metavar="DEG",
                   help="average each pattern's predictions over copies of its peak list moved by zero shifts "
                        "within +-DEG degrees 2-theta (e.g. 0.06; costs --shift-views x the feature time; "
                        "+2-3 points on measured minerals, issue 8)")
    p.add_argument("--shift-views", type=int, default=7, metavar="N",
                   help="number of copies with --shift-average (odd: evenly spread, the unshifted one in the "
                        "middle; default 7)")
    p.add_argument("--search-match", action=argparse.BooleanOptionalAction, default=None,
                   help="compare every pattern with the bundle's library of real training structures first; a "
                        "confident match answers it (columns matched, match_score, match_id, match_formula). "
                        "Default: on when the bundle has a library")
    p.add_argument("--decision", choices=("argmax", "balanced"), default="argmax",
                   help="crystal-system decision: argmax = the most probable system (best accuracy); balanced = "
                        "probabilities over the training shares of the systems (best macro recall: rare systems "
                        "such as triclinic answered more often, monoclinic less)")
    _add_cluster_options(p)
    return p


def _cmd_score(args) -> int:
    from xrdbatch import score
    from xrdbatch.conditions import Conditions
    from xrdbatch.readers import FORMATS
    from xrdbatch.registry import RegistryError

    if args.format is not None and args.format not in FORMATS:
        raise CliError(f"unknown --format {args.format!r}; valid: {', '.join(FORMATS)}")
    wavelength = args.wavelength
    if args.radiation is not None:
        try:
            wavelength = Conditions.from_radiation(args.radiation).wavelength_angstrom
        except ValueError as exc:
            raise CliError(str(exc)) from None
    kw = dict(wavelength_angstrom=wavelength, format=args.format, resume=args.resume,
              batch_size=args.batch_size, progress=True, endpoint_url=args.endpoint_url,
              abstain=args.abstain, abstain_accuracy=args.abstain_accuracy,
              shift_average_deg=args.shift_average, shift_views=args.shift_views, search_match=args.search_match,
              decision=args.decision)
    try:
        if args.executor == "serial":
            summary = score.score(args.inputs, args.model, args.out, executor="serial", **kw)
        else:
            from xrdbatch import cluster

            with cluster.get_client(**_cluster_kwargs(args)) as client:
                summary = score.score(args.inputs, args.model, args.out, executor="dask", client=client, **kw)
    except (FileNotFoundError, ValueError, RegistryError) as exc:
        raise CliError(str(exc)) from None
    print(f"scored {summary['files']} files ({summary['skipped']} skipped as already scored): "
          f"{summary['rows']} rows, {summary['ok']} ok, {summary['errors']} errors, "
          f"{summary['warnings']} with warnings"
          + (f", {summary['abstained']} abstained (crystal-system probability < {summary['abstain_threshold']:.3g})"
             if summary["abstain_threshold"] is not None else "")
          + (f", {summary['matched']} answered by a search-match" if summary["search_match"] else "")
          + f" -> {summary['out']}")
    return 0


# --------------------------------------------------------------------------------- models ----
def _add_models(sub):
    p = sub.add_parser("models", help="push, pull and list model bundles on shared storage (path, s3://, fsspec)")
    p.add_argument("--endpoint-url", default=None,
                   help="S3-compatible endpoint (MinIO, Ceph, ...); default $XRDBATCH_S3_ENDPOINT_URL")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    push = msub.add_parser("push", help="publish MODEL as URL/NAME/VERSION (atomic, verified)")
    push.add_argument("model", help="local model bundle folder")
    push.add_argument("url", help="registry root: folder, s3://bucket/prefix, any fsspec URL")
    push.add_argument("--name", default=None, help="model name (default: manifest name or folder name)")
    push.add_argument("--version", default=None, help="version (default: next integer)")
    pull = msub.add_parser("pull", help="download URL/NAME[/VERSION] into DIR, verifying every sha256")
    pull.add_argument("url")
    pull.add_argument("dir")
    pull.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")
    ls = msub.add_parser("list", help="list published models and versions under URL")
    ls.add_argument("url")
    return p


def _cmd_models(args) -> int:
    from xrdbatch import registry

    try:
        if args.models_command == "push":
            print(registry.push(args.model, args.url, name=args.name, version=args.version,
                                endpoint_url=args.endpoint_url))
        elif args.models_command == "pull":
            print(registry.pull(args.url, args.dir, endpoint_url=args.endpoint_url, overwrite=args.overwrite))
        else:
            rows = registry.list_models(args.url, endpoint_url=args.endpoint_url)
            if not rows:
                print(f"no published models under {args.url}")
            for r in rows:
                print(f"{r['name']}\t{r['version']}\t{r['created_utc']}\t{r['size_bytes']} B\t"
                      f"sha256:{str(r['manifest_sha256'])[:12]}\t{r['url']}")
    except (registry.RegistryError, FileNotFoundError, OSError) as exc:
        raise CliError(str(exc)) from None
    return 0


# ------------------------------------------------------------------------ jobs / selfcheck ----
def _add_jobs(sub):
    p = sub.add_parser("jobs", help="cluster jobs: render SLURM scripts / Kubernetes manifests, shard and merge")
    jsub = p.add_subparsers(dest="jobs_action", metavar="ACTION")
    jsub.required = True
    r = jsub.add_parser("render", help="render job files (see jobs/README.md)")
    r.add_argument("target", choices=("slurm", "k8s"))
    r.add_argument("job", choices=("regenerate", "train", "score", "all"))
    r.add_argument("--out-dir", default=None, help="write the files here (default: print them)")
    g = r.add_argument_group("resources")
    g.add_argument("--partition", default=None)
    g.add_argument("--account", default=None)
    g.add_argument("--time", default="01:00:00", help="wall-clock limit [D-]HH:MM:SS (default 01:00:00)")
    g.add_argument("--nodes", type=int, default=1, help="nodes (= Dask workers) of the regeneration job")
    g.add_argument("--cpus-per-node", type=int, default=None, help="default: the whole node (--exclusive)")
    g.add_argument("--mem", default=None, help="memory per node, e.g. 64G (default: site default)")
    g.add_argument("--shards", type=int, default=4, help="array size of the scoring job")
    g.add_argument("--max-parallel", type=int, default=None, help="array tasks running at once")
    g.add_argument("--cpus-per-shard", type=int, default=1)
    g.add_argument("--sbatch", action="append", default=[], metavar="OPTION", help="extra #SBATCH option")
    e = r.add_argument_group("environment (how nodes find xrdbatch)")
    e.add_argument("--image", default=None, help="Apptainer image (SLURM) / container image (k8s)")
    e.add_argument("--venv", default=None, help="virtualenv to activate (SLURM, without --image)")
    e.add_argument("--setup", action="append", default=[], metavar="LINE", help="shell line, e.g. 'module load x'")
    e.add_argument("--pvc", default="xrdbatch-data", help="k8s PersistentVolumeClaim mounted at /data")
    e.add_argument("--namespace", default="default", help="k8s namespace")
    d = r.add_argument_group("data (paths relative to the submit directory / the volume)")
    d.add_argument("--source", action="append", default=[], help="ingest this source first (repeatable)")
    for name in ("catalog", "store", "model", "report", "archive", "results", "shard-dir", "logs"):
        d.add_argument(f"--{name}", default=None)
    s = jsub.add_parser("shard", help="write the file list of one shard of an archive (round robin, sorted)")
    s.add_argument("inputs", nargs="+", help="files, folders or glob patterns (as for `xrdbatch score`)")
    s.add_argument("--index", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--out", required=True, help="text file, one path a line")
    m = jsub.add_parser("merge", help="concatenate shard-XXXXX.parquet/.csv results into one table")
    m.add_argument("shard_dir")
    m.add_argument("--out", required=True)
    m.add_argument("--expect", type=int, default=None, help="number of shards that must be present")
    return p


def _cmd_jobs(args) -> int:
    from xrdbatch import jobs

    try:
        if args.jobs_action == "shard":
            n = jobs.write_shard_list(args.inputs, args.index, args.count, args.out)
            print(f"shard {args.index}/{args.count}: {n} files -> {args.out}")
        elif args.jobs_action == "merge":
            summary = jobs.merge_shards(args.shard_dir, args.out, expect=args.expect)
            print(f"merged {summary['shards']} shards, {summary['rows']} rows -> {summary['out']}")
        else:
            files = jobs.render_from_options(vars(args))
            if args.out_dir:
                for path in jobs.write_rendered(files, args.out_dir):
                    print(path)
            else:
                for name, text in files.items():
                    print(f"# ==> {name} <==\n{text}")
    except (jobs.JobSpecError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _add_selfcheck(sub):
    p = sub.add_parser("selfcheck", help="check this installation: versions, a tiny simulation, a model round trip, "
                                         "the Dask cluster it would use (exit 0/1)")
    p.add_argument("--quick", action="store_true", help="only the fast checks (container health check)")
    p.add_argument("--check", action="append", default=None, help="run only this check (repeatable)")
    p.add_argument("--connect", action="store_true", help="connect to the cluster and count workers")
    _add_cluster_options(p)
    return p


def _cmd_selfcheck(args) -> int:
    from xrdbatch import selfcheck

    try:
        results = selfcheck.run_checks(args.check, quick=args.quick, connect=args.connect, **_cluster_kwargs(args))
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    print(selfcheck.format_results(results))
    return 0 if all(r.ok for r in results) else 1


# ------------------------------------------------------------------- features / train / report ----
def _add_features(sub):
    p = sub.add_parser("features", help="peak features of every pattern of a store, written into the store (Dask)")
    p.add_argument("--store", required=True, help="Zarr store from `xrdbatch simulate`")
    p.add_argument("--feature-set", action="append", default=None,
                   help="feature set(s) to write (repeatable; default: all of seed11, q11, rich)")
    p.add_argument("--height-rel", type=float, default=None,
                   help="detection threshold: fraction of the strongest peak (default 0.01)")
    p.add_argument("--peak-param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other PeakParams field, e.g. background_window_deg=3 (repeatable)")
    p.add_argument("--executor", choices=("dask", "serial"), default="dask", help="serial = threads in this process")
    _add_cluster_options(p)
    return p


def _peak_params_from_args(args) -> dict:
    import json

    params = {}
    for item in args.peak_param:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--peak-param {item!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    if args.height_rel is not None:
        params["height_rel"] = args.height_rel
    return params


def _cmd_features(args) -> int:
    from xrdbatch import cluster, features, store

    try:
        params = features.PeakParams.from_dict(_peak_params_from_args(args)).to_dict()
        if args.executor == "serial":
            summary = features.features_to_store(args.store, args.feature_set, params)
        else:
            with cluster.get_client(args.scheduler_address, args.scheduler_file, args.n_workers,
                                    args.threads_per_worker) as client:
                summary = features.features_to_store(args.store, args.feature_set, params, client=client)
    except (ValueError, FileNotFoundError, store.StoreError) as exc:
        raise CliError(str(exc)) from None
    print(f"features: {summary['n_structures']} structures in {summary['n_chunks']} chunks -> "
          f"{', '.join('features_' + s for s in summary['feature_sets'])} (median {summary['median_peak_count']:g} peaks)")
    return 0


def _add_train(sub):
    p = sub.add_parser("train", help="train ExtraTrees (crystal system, space group, lattice) into a model bundle")
    p.add_argument("--store", required=True, action="append",
                   help="Zarr store with features (`xrdbatch features`); repeat to train on several (e.g. augmented "
                        "copies from `xrdbatch retarget --augment --augment-copy N`)")
    p.add_argument("--class-weight", choices=("balanced", "balanced_subsample"), default=None,
                   help="weight classes inversely to their frequency (crystal-system and space-group models; "
                        "the boosted crystal-system model takes 'balanced')")
    p.add_argument("--calibrate", choices=("isotonic", "temperature"), default=None,
                   help="calibrate crystal-system probabilities on 15%% held-out training structure types")
    p.add_argument("--out", required=True, help="model bundle directory (written atomically)")
    p.add_argument("--feature-set", default="measured",
                   help="feature set stored by `xrdbatch features` (default measured, the best on measured minerals; "
                        "seed11 = the seed's 11 features)")
    p.add_argument("--class-mix", default="catalog",
                   help="resample the fitted rows to a crystal-system mix: catalog (as stored), balanced, mineral, "
                        "icsd, cod, mp")
    p.add_argument("--crystal-system-model", choices=("extra_trees", "boosting"), default="extra_trees",
                   help="crystal-system classifier: the ExtraTrees forest (default) or gradient-boosted trees "
                        "(~5 points more on held-out structure types, ~1.2-2x that fit time; issue 8)")
    p.add_argument("--system-exponent", type=float, default=None,
                   help="ranked space groups score P(system)^e P(sg|system); e < 1 spreads the top-k over systems")
    p.add_argument("--sg-synthetic-weight", type=float, default=None,
                   help="weight of synthetic crystals in the space-group forests, 0..1 (0 = real structures and "
                        "their element-substituted variants only; default xrdbatch.train.SPACE_GROUP_SYNTHETIC_WEIGHT)"
                        "; the crystal-system and lattice forests learn from every row")
    p.add_argument("--split", choices=("random", "grouped"), default="grouped",
                   help="held-out split: grouped by structure_type (default) or random rows")
    p.add_argument("--test-size", type=float, default=0.2, help="held-out fraction (of groups when grouped)")
    p.add_argument("--seed", type=int, default=0, help="random_state of the split and the forests")
    p.add_argument("--n-jobs", type=int, default=None, help="threads per forest (default: all cores)")
    p.add_argument("--dask", action="store_true", help="fit through joblib's Dask backend on a cluster")
    p.add_argument("--recipe", choices=("default", "seed"), default="default",
                   help="forest shapes: compact defaults, or the seed's (500/200 deep trees; gigabytes)")
    lib = p.add_mutually_exclusive_group()
    lib.add_argument("--library-store", default=None, metavar="STORE",
                     help="store of ideal patterns whose real structures become the bundle's search-match library "
                          "(default: the training store, or the ideal store augmented copies were rendered from)")
    lib.add_argument("--no-library", action="store_true", help="write no search-match library into the bundle")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out bundle")
    _add_cluster_options(p)
    return p


def _cmd_train(args) -> int:
    import os

    from xrdbatch import bundle, store, train

    params = {}
    if args.recipe == "seed":
        params = {"crystal_system": train.SEED_PARAMS["crystal_system"],
                  "space_group": train.SEED_PARAMS["space_group"], "hierarchical_space_group": False}
    if args.crystal_system_model != "extra_trees":
        if args.recipe == "seed":
            raise CliError("--crystal-system-model boosting does not go with --recipe seed (the seed's forests)")
        params["crystal_system"] = train.crystal_system_params(args.crystal_system_model)
    if args.class_weight:
        import dataclasses

        for family in ("crystal_system", "space_group"):
            base = params.get(family) or train.DEFAULT_PARAMS[family]
            try:
                params[family] = dataclasses.replace(base, class_weight=args.class_weight)
            except ValueError as exc:  # BoostingParams takes 'balanced' only
                raise CliError(f"--class-weight: {exc}") from None
    if args.system_exponent is not None:
        params["system_exponent"] = args.system_exponent
    kw = dict(feature_set=args.feature_set, split=args.split, test_size=args.test_size, random_state=args.seed,
              n_jobs=args.n_jobs or os.cpu_count(), model_params=params, overwrite=args.overwrite,
              class_mix=args.class_mix, library_store=None if args.no_library else (args.library_store or "auto"))
    if args.calibrate:
        kw["calibrate"] = args.calibrate
    if args.sg_synthetic_weight is not None:
        kw["space_group_synthetic_weight"] = args.sg_synthetic_weight
    if len(args.store) == 1:
        args.store = args.store[0]
    try:
        if args.dask:
            from xrdbatch import cluster

            with cluster.get_client(args.scheduler_address, args.scheduler_file, args.n_workers,
                                    args.threads_per_worker):
                manifest = train.train_from_store(args.store, args.out, backend="dask", **kw)
        else:
            manifest = train.train_from_store(args.store, args.out, **kw)
    except (ValueError, FileNotFoundError, store.StoreError, bundle.BundleError) as exc:
        raise CliError(str(exc)) from None
    library = manifest.get("library")
    print(f"bundle {args.out}: {manifest['total_bytes'] / 1e6:.1f} MB, {len(manifest['files'])} files"
          + (f", search-match library of {library['entries']} real structures" if library else ", no search-match library"))
    return 0


def _add_library(sub):
    p = sub.add_parser("library", help="give a model bundle another search-match library (e.g. a mineral database) "
                                       "without retraining")
    p.add_argument("model", help="local model bundle folder (rewritten in place, atomically)")
    p.add_argument("--store", required=True, action="append",
                   help="store of ideal patterns simulated at the model's conditions (`xrdbatch simulate`); its real "
                        "structures become library entries; repeat for several")
    p.add_argument("--add", action="store_true",
                   help="keep the bundle's entries and add the stores' (ids already there are not added again); "
                        "default: the stores' structures replace the library")
    return p


def _cmd_library(args) -> int:
    from xrdbatch import bundle, store, train

    try:
        model = bundle.load_bundle(args.model)  # verified; its conditions and peak finder make the library's lines
        base = model.library if args.add else None
        library = train.library_from_stores(args.store, model.conditions, model.peak_params, base=base)
        before = (model.manifest.get("library") or {}).get("source")
        source = "; ".join(([before] if base is not None and before else []) + [str(s) for s in args.store])
        manifest = bundle.replace_library(args.model, library, source)
    except (ValueError, FileNotFoundError, store.StoreError) as exc:  # BundleError is a ValueError
        raise CliError(str(exc)) from None
    added = len(library) - (len(base) if base is not None else 0)
    print(f"bundle {args.model}: search-match library of {len(library)} real structures"
          + (f" ({added} added)" if base is not None else "") + f"; {manifest['total_bytes'] / 1e6:.1f} MB")
    return 0


def _add_report(sub):
    p = sub.add_parser("report", help="evaluation report of a model bundle: metrics.json + HTML with figures")
    p.add_argument("--model", required=True, help="model bundle directory")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--measured", default=None,
                   help="CSV of measured files with known phase (file, dataset, crystal_system, space_group"
                        "[, wavelength_angstrom]) to score per file, e.g. bench/measured_labels.csv")
    p.add_argument("--measured-root", default=None, help="folder the CSV's file column is relative to")
    p.add_argument("--shift-average", type=float, default=0.0, metavar="DEG",
                   help="score the --measured files with zero-shift averaging, as `xrdbatch score --shift-average`")
    p.add_argument("--shift-views", type=int, default=7, metavar="N", help="views with --shift-average (default 7)")
    p.add_argument("--search-match", action=argparse.BooleanOptionalAction, default=None,
                   help="as `xrdbatch score --search-match` (default: on when the bundle has a library)")
    p.add_argument("--decision", choices=("argmax", "balanced"), default="argmax",
                   help="crystal-system decision, as `xrdbatch score --decision`")
    return p


def _cmd_report(args) -> int:
    from xrdbatch import bundle, report

    try:
        path = report.write_report(args.model, args.out, args.measured, args.measured_root,
                                   shift_average_deg=args.shift_average, shift_views=args.shift_views,
                                   search_match=args.search_match, decision=args.decision)
    except (ValueError, FileNotFoundError) as exc:  # BundleError is a ValueError
        raise CliError(str(exc)) from None
    print(f"report: {path}")
    return 0


# ------------------------------------------------------------------------- cluster options ----
def _add_cluster_options(p):
    g = p.add_argument_group("cluster")
    g.add_argument("--scheduler-address", default=None, help="connect to a running Dask scheduler")
    g.add_argument("--scheduler-file", default=None, help="Dask scheduler file (written inside a SLURM job)")
    g.add_argument("--n-workers", type=int, default=None, help="LocalCluster worker processes")
    g.add_argument("--threads-per-worker", type=int, default=None, help="LocalCluster threads per worker")


#: Verbs in pipeline order (the order `xrdbatch --help` lists them).
COMMANDS: dict = {
    "demo": (_add_demo, _cmd_demo),
    "run": (_add_run, _cmd_run),
    "config": (_add_config, _cmd_config),
    "ingest": (_add_ingest, _cmd_ingest),
    "simulate": (_add_simulate, _cmd_simulate),
    "retarget": (_add_retarget, _cmd_retarget),
    "features": (_add_features, _cmd_features),
    "train": (_add_train, _cmd_train),
    "library": (_add_library, _cmd_library),
    "report": (_add_report, _cmd_report),
    "score": (_add_score, _cmd_score),
    "models": (_add_models, _cmd_models),
    "jobs": (_add_jobs, _cmd_jobs),
    "selfcheck": (_add_selfcheck, _cmd_selfcheck),
}


def build_parser() -> argparse.ArgumentParser:
    from xrdbatch import __version__

    parser = argparse.ArgumentParser(
        prog="xrdbatch",
        description="Learn crystal structure from powder X-ray diffraction, in batch: ingest structures, simulate "
                    "patterns (Dask -> Zarr), extract peak features, train ExtraTrees, report, score measured files.",
        epilog="Start with `xrdbatch demo`; `xrdbatch COMMAND --help` for each verb.")
    parser.add_argument("--version", action="version", version=f"xrdbatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (add, run) in COMMANDS.items():
        add(sub).set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except CliError as exc:
        print(f"xrdbatch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xrdbatch {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Cluster job definitions rendered from code: SLURM batch scripts and Kubernetes manifests.

How the parts fit: :class:`Resources` (what to ask the scheduler for), :class:`Environment` (how to find
``xrdbatch`` on the compute node: an Apptainer image, a virtualenv, or ``module load`` lines) and :class:`Paths`
(the data each stage reads and writes) are frozen values. A renderer is a pure function of them returning
``{file name: text}``; renderers are registered in :data:`RENDERERS` by ``(target, job)``. Nothing here submits
anything or touches the file system, except :func:`write_rendered` (atomic writes) and :func:`merge_shards`
(the last step of the scoring array). The rendered scripts call the same CLI verbs a laptop user types; only the
Dask client differs (a scheduler file written inside the allocation, or a scheduler address).

SLURM jobs
----------
``regenerate``
    One multi-node allocation: the batch step starts ``dask scheduler --scheduler-file``, ``srun`` starts one
    ``dask worker`` per node, then ``xrdbatch ingest`` (optional) and ``xrdbatch simulate --scheduler-file``
    run against that cluster. dask-jobqueue's ``SLURMCluster`` from a login node is the alternative (see
    jobs/README.md).
``train``
    One node, all its cores: ``xrdbatch features``, ``xrdbatch train``, ``xrdbatch report``.
``score``
    A job array over shards of the archive (``--array=0-(N-1)``), each task scoring its shard into
    ``shard-XXXXX.parquet``, and a merge job submitted with ``--dependency=afterok:<array id>``
    (``submit-score.sh`` wires the two).

Kubernetes
----------
``regenerate`` is a Dask Kubernetes operator ``DaskJob`` (scheduler, workers and the client pod in one object);
``train`` a plain ``batch/v1`` Job; ``score`` an Indexed Job (``completionMode: Indexed``, the Kubernetes form of
a job array; ``JOB_COMPLETION_INDEX`` is the shard) followed by a merge Job.

Examples
--------
>>> files = render("slurm", "train", Resources(partition="cpu", time="00:30:00"), Environment(venv="/opt/venv"))
>>> sorted(files)
['train.sbatch']
>>> "#SBATCH --partition=cpu" in files["train.sbatch"]
True
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

TIME_PATTERN = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")


class JobSpecError(ValueError):
    """An option that cannot be rendered into a job definition; the message says what was expected."""


# ---------------------------------------------------------------------------------- values ----
@dataclass(frozen=True)
class Resources:
    """What to ask the scheduler for.

    Parameters
    ----------
    partition, account : str or None
        ``#SBATCH --partition`` / ``--account``; omitted when None (the site default).
    time : str
        Wall-clock limit, SLURM syntax ``[D-]HH:MM:SS``.
    nodes : int
        Nodes of the regeneration allocation (one Dask worker process per node). Training always uses one.
    cpus_per_node : int or None
        CPUs per node for the Dask worker / training; None asks for the whole node (``--exclusive``) and uses
        ``$SLURM_CPUS_ON_NODE``.
    memory : str or None
        ``--mem`` per node (``"32G"``); None leaves the site default.
    shards : int
        Array size of the scoring job (number of shards the archive is split into).
    max_parallel : int or None
        At most this many array tasks at once (``--array=0-N%max``).
    cpus_per_shard : int
        CPUs of each array task.
    extra_sbatch : tuple of str
        Further ``#SBATCH`` options verbatim, e.g. ``("--qos=normal",)``.
    """

    partition: str | None = None
    account: str | None = None
    time: str = "01:00:00"
    nodes: int = 1
    cpus_per_node: int | None = None
    memory: str | None = None
    shards: int = 4
    max_parallel: int | None = None
    cpus_per_shard: int = 1
    extra_sbatch: tuple[str, ...] = ()

    def __post_init__(self):
        if not TIME_PATTERN.match(self.time):
            raise JobSpecError(f"time limit {self.time!r}: expected SLURM syntax [D-]HH:MM:SS (e.g. 02:00:00)")
        for name in ("nodes", "shards", "cpus_per_shard"):
            if int(getattr(self, name)) < 1:
                raise JobSpecError(f"{name}={getattr(self, name)!r}: expected an integer >= 1")
        if self.cpus_per_node is not None and self.cpus_per_node < 1:
            raise JobSpecError(f"cpus_per_node={self.cpus_per_node!r}: expected >= 1 or None (whole node)")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise JobSpecError(f"max_parallel={self.max_parallel!r}: expected >= 1 or None (no limit)")


@dataclass(frozen=True)
class Environment:
    """How the compute node finds ``xrdbatch`` and ``dask``.

    Parameters
    ----------
    image : str or None
        Apptainer image (``xrdbatch.sif`` or ``docker://ghcr.io/...``) for SLURM, container image for Kubernetes.
        On SLURM every command runs as ``apptainer exec --bind $PWD IMAGE ...``.
    venv : str or None
        Virtualenv directory whose ``bin/activate`` is sourced (ignored when ``image`` is set).
    setup : tuple of str
        Shell lines run first, e.g. ``("module load apptainer",)``.
    apptainer : str
        The container runtime command on the cluster (``apptainer`` or ``singularity``).
    """

    image: str | None = None
    venv: str | None = None
    setup: tuple[str, ...] = ()
    apptainer: str = "apptainer"


@dataclass(frozen=True)
class Paths:
    """Data the jobs read and write (relative paths are relative to the submit directory).

    Every path becomes a shell variable at the top of the SLURM script (``CATALOG=${CATALOG:-...}``), so a
    rendered script can also be pointed elsewhere with ``sbatch --export=ALL,CATALOG=...``.
    """

    sources: tuple[str, ...] = ()
    catalog: str = "catalog.parquet"
    store: str = "store.zarr"
    model: str = "model"
    report: str = "report"
    archive: str = "archive"
    results: str = "results.parquet"
    shard_dir: str = "results-shards"
    logs: str = "."
    simulate_args: tuple[str, ...] = ()
    train_args: tuple[str, ...] = ()
    score_args: tuple[str, ...] = ()


# ---------------------------------------------------------------------- pipeline commands ----
# The CLI verbs each job runs, in one place. Placeholders are shell variables set at the top of the script;
# a Dask option is appended where the verb takes one.
def _q(words) -> str:
    return " ".join(shlex.quote(w) for w in words)


def regenerate_commands(paths: Paths, dask_option: str) -> list[str]:
    """Shell lines of the regeneration stage (ingest when sources are given, then simulate)."""
    lines = []
    if paths.sources:
        lines.append(f'xrdbatch ingest {_q(paths.sources)} --out "$CATALOG" {dask_option}')
    extra = f" {_q(paths.simulate_args)}" if paths.simulate_args else ""
    lines.append(f'xrdbatch simulate --catalog "$CATALOG" --store "$STORE" {dask_option}{extra}')
    return lines


def train_commands(paths: Paths, n_jobs: str) -> list[str]:
    """Shell lines of the training stage: features into the store, train a bundle, write the report.

    All in one process on one node: the peak finder runs threaded (``--executor serial``), the forests use
    ``n_jobs`` threads.
    """
    extra = f" {_q(paths.train_args)}" if paths.train_args else ""
    return [
        f'xrdbatch features --store "$STORE" --executor serial',
        f'xrdbatch train --store "$STORE" --out "$MODEL" --n-jobs {n_jobs}{extra}',
        f'xrdbatch report --model "$MODEL" --out "$REPORT"',
    ]


def score_commands(paths: Paths, shard: str, n_shards: str) -> list[str]:
    """Shell lines scoring shard ``shard`` of ``n_shards`` of ``$ARCHIVE`` into ``$SHARD_DIR/shard-XXXXX.parquet``.

    ``xrdbatch jobs shard`` writes the shard's file list (round robin over the sorted archive, so shards are
    balanced and stable); ``xrdbatch score`` then scores exactly those files in this process. An empty shard (more
    shards than files) leaves an ``.empty`` marker that the merge counts as done.
    """
    extra = f" {_q(paths.score_args)}" if paths.score_args else ""
    return [
        f'SHARD="$SHARD_DIR/shard-$(printf %05d "{shard}")"',
        'mkdir -p "$SHARD_DIR"',
        f'xrdbatch jobs shard "$ARCHIVE" --index "{shard}" --count "{n_shards}" --out "$SHARD.txt"',
        'if [ -s "$SHARD.txt" ]; then',
        '    mapfile -t FILES < "$SHARD.txt"',
        f'    xrdbatch score "${{FILES[@]}}" --model "$MODEL" --out "$SHARD.parquet" --executor serial{extra}',
        "else",
        '    touch "$SHARD.empty"',
        "fi",
    ]


# ----------------------------------------------------------------------------------- SLURM ----
def _sbatch_header(job_name: str, res: Resources, paths: Paths, lines: list[str]) -> list[str]:
    head = ["#!/bin/bash", f"#SBATCH --job-name={job_name}"]
    if res.partition:
        head.append(f"#SBATCH --partition={res.partition}")
    if res.account:
        head.append(f"#SBATCH --account={res.account}")
    head.append(f"#SBATCH --time={res.time}")
    head += [f"#SBATCH {line}" for line in lines]
    if res.memory:
        head.append(f"#SBATCH --mem={res.memory}")
    head += [f"#SBATCH {opt}" for opt in res.extra_sbatch]
    return head


def _output(paths: Paths, pattern: str) -> str:
    # SLURM fails a job whose output folder is missing: the default "." (submit directory) always exists;
    # submit-score.sh creates any other folder first.
    return f"--output={pattern}" if paths.logs in ("", ".") else f"--output={paths.logs}/{pattern}"


def _environment_lines(env: Environment) -> list[str]:
    # RUN prefixes commands started by srun (which cannot call shell functions); with an image, the functions
    # make `xrdbatch ...` and `dask ...` below read exactly as on a laptop.
    lines = ["set -euo pipefail", *env.setup]
    if env.image:
        lines += [f'RUN=({env.apptainer} exec --bind "$PWD" {shlex.quote(env.image)})',
                  'xrdbatch() { "${RUN[@]}" xrdbatch "$@"; }',
                  'dask() { "${RUN[@]}" dask "$@"; }']
    else:
        if env.venv:
            lines.append(f"source {shlex.quote(str(Path(env.venv) / 'bin' / 'activate'))}")
        lines.append("RUN=()")
    return lines


def _variables(paths: Paths, names: tuple[str, ...]) -> list[str]:
    return [f'{name.upper()}="${{{name.upper()}:-{getattr(paths, name)}}}"' for name in names]


def _cpus(res: Resources) -> tuple[list[str], str]:
    """sbatch lines for the CPUs of one node, and the shell expression of that count at run time."""
    if res.cpus_per_node is None:
        return ["--exclusive"], "${SLURM_CPUS_ON_NODE}"
    return [f"--cpus-per-task={res.cpus_per_node}"], "${SLURM_CPUS_PER_TASK}"


def render_slurm_regenerate(res: Resources, env: Environment, paths: Paths) -> dict[str, str]:
    """``regenerate.sbatch``: a Dask cluster inside one allocation of ``res.nodes`` nodes, then simulate."""
    cpu_lines, ncpu = _cpus(res)
    head = _sbatch_header("xrdbatch-regenerate", res, paths, [
        f"--nodes={res.nodes}", "--ntasks-per-node=1", *cpu_lines, _output(paths, "%x-%j.out")])
    body = [
        *_environment_lines(env),
        *_variables(paths, ("catalog", "store")),
        "",
        "# A Dask cluster inside this allocation: the scheduler runs in the batch step (first node), one worker",
        "# process per node is started with srun; they meet through a scheduler file on the shared file system.",
        'SCHEDULER_FILE="$PWD/dask-scheduler-$SLURM_JOB_ID.json"',
        'rm -f "$SCHEDULER_FILE"',
        'dask scheduler --scheduler-file "$SCHEDULER_FILE" --port 0 --dashboard-address :0 &',
        "SCHEDULER_PID=$!",
        'srun --overlap --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 \\',
        f'    "${{RUN[@]}}" dask worker --scheduler-file "$SCHEDULER_FILE" --nworkers "{ncpu}" --nthreads 1 \\',
        '    --local-directory "${TMPDIR:-/tmp}" --death-timeout 120 &',
        "WORKERS_PID=$!",
        'cleanup() { kill "$WORKERS_PID" "$SCHEDULER_PID" 2>/dev/null || true; rm -f "$SCHEDULER_FILE"; }',
        "trap cleanup EXIT",
        'for _ in $(seq 120); do [ -s "$SCHEDULER_FILE" ] && break; sleep 1; done',
        '[ -s "$SCHEDULER_FILE" ] || { echo "dask scheduler did not write $SCHEDULER_FILE" >&2; exit 1; }',
        "",
        *regenerate_commands(paths, '--scheduler-file "$SCHEDULER_FILE"'),
    ]
    return {"regenerate.sbatch": "\n".join(head + [""] + body) + "\n"}


def render_slurm_train(res: Resources, env: Environment, paths: Paths) -> dict[str, str]:
    """``train.sbatch``: one node, all its cores (or ``cpus_per_node``), threads in one process."""
    cpu_lines, ncpu = _cpus(res)
    head = _sbatch_header("xrdbatch-train", res, paths, [
        "--nodes=1", "--ntasks=1", *cpu_lines, _output(paths, "%x-%j.out")])
    body = [*_environment_lines(env), *_variables(paths, ("store", "model", "report")), "",
            *train_commands(paths, f'"{ncpu}"')]
    return {"train.sbatch": "\n".join(head + [""] + body) + "\n"}


def render_slurm_score(res: Resources, env: Environment, paths: Paths) -> dict[str, str]:
    """``score-array.sbatch`` (one task per shard), ``score-merge.sbatch`` and ``submit-score.sh`` (afterok)."""
    array = f"0-{res.shards - 1}" + (f"%{res.max_parallel}" if res.max_parallel else "")
    head = _sbatch_header("xrdbatch-score", res, paths, [
        f"--array={array}", "--nodes=1", "--ntasks=1", f"--cpus-per-task={res.cpus_per_shard}",
        _output(paths, "%x-%A_%a.out")])
    body = [*_environment_lines(env), *_variables(paths, ("model", "archive", "shard_dir")),
            f"N_SHARDS={res.shards}", "", *score_commands(paths, "$SLURM_ARRAY_TASK_ID", "$N_SHARDS")]
    array_script = "\n".join(head + [""] + body) + "\n"

    merge_res = replace(res, time="00:30:00" if _minutes(res.time) > 30 else res.time)
    head = _sbatch_header("xrdbatch-score-merge", merge_res, paths, [
        "--nodes=1", "--ntasks=1", "--cpus-per-task=1", _output(paths, "%x-%j.out")])
    body = [*_environment_lines(env), *_variables(paths, ("shard_dir", "results")), f"N_SHARDS={res.shards}", "",
            'xrdbatch jobs merge "$SHARD_DIR" --expect "$N_SHARDS" --out "$RESULTS"']
    merge_script = "\n".join(head + [""] + body) + "\n"

    submit = "\n".join([
        "#!/bin/bash",
        "# Submit the scoring array and its merge; the merge starts only when every shard succeeded.",
        "set -euo pipefail",
        "# Run it from the directory the data paths are relative to; extra arguments go to both sbatch calls.",
        'HERE="$(cd "$(dirname "$0")" && pwd)"',
        f"mkdir -p {shlex.quote(paths.logs)}",
        'ARRAY_ID=$(sbatch --parsable "$@" "$HERE/score-array.sbatch")',
        'ARRAY_ID=${ARRAY_ID%%;*}',
        'MERGE_ID=$(sbatch --parsable --dependency=afterok:"$ARRAY_ID" "$@" "$HERE/score-merge.sbatch")',
        'echo "score array: $ARRAY_ID  merge: ${MERGE_ID%%;*}"',
    ]) + "\n"
    return {"score-array.sbatch": array_script, "score-merge.sbatch": merge_script, "submit-score.sh": submit}


def _minutes(limit: str) -> float:
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    # SLURM: "M", "M:S", "H:M:S"
    h, m, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + h * 60 + m + s / 60


# ------------------------------------------------------------------------------ Kubernetes ----
# The image runs as the non-root user xrd (uid 1000); fsGroup makes the mounted volume writable for it.
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}


def _k8s_volume(paths: Paths, pvc: str) -> tuple[list, list]:
    mounts = [{"name": "data", "mountPath": "/data"}]
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": pvc}}]
    return mounts, volumes


def _k8s_container(name: str, image: str, script: list[str], res_cpu: str, mounts: list,
                   env: list | None = None) -> dict:
    container = {
        "name": name,
        "image": image,
        "command": ["/bin/bash", "-c"],
        "args": ["set -euo pipefail\n" + "\n".join(script) + "\n"],
        "workingDir": "/data",
        "resources": {"requests": {"cpu": res_cpu}, "limits": {"cpu": res_cpu}},
        "volumeMounts": mounts,
    }
    if env:
        container["env"] = env
    return container


def _k8s_shell(lines: list[str]) -> list[str]:
    return list(lines)


def render_k8s_regenerate(res: Resources, env: Environment, paths: Paths, *, image: str, pvc: str,
                          namespace: str) -> dict:
    """A Dask Kubernetes operator ``DaskJob``: scheduler + ``res.nodes`` workers + the simulate client pod."""
    mounts, volumes = _k8s_volume(paths, pvc)
    cpus = str(res.cpus_per_node or 2)
    client_lines = _k8s_shell([f'CATALOG="{paths.catalog}"', f'STORE="{paths.store}"',
                               *regenerate_commands(paths, '--scheduler-address "$DASK_SCHEDULER_ADDRESS"')])
    worker = _k8s_container("worker", image, [f'exec dask worker --name "$DASK_WORKER_NAME" '
                                              f'--nthreads {cpus} --dashboard-address 8788 --listen-address '
                                              'tcp://0.0.0.0:8789 "$DASK_SCHEDULER_ADDRESS"'], cpus, mounts)
    worker["ports"] = [{"name": "http-dashboard", "containerPort": 8788}, {"name": "tcp-comm", "containerPort": 8789}]
    scheduler = {
        "name": "scheduler", "image": image, "command": ["dask"], "args": ["scheduler"],
        "ports": [{"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
                  {"name": "http-dashboard", "containerPort": 8787, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"port": "http-dashboard", "path": "/health"},
                           "initialDelaySeconds": 5, "periodSeconds": 10},
    }
    doc = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskJob",
        "metadata": {"name": "xrdbatch-regenerate", "namespace": namespace},
        "spec": {
            "job": {"spec": {"restartPolicy": "Never", "securityContext": POD_SECURITY, "volumes": volumes,
                             "containers": [_k8s_container("job", image, client_lines, "1", mounts)]}},
            "cluster": {"spec": {
                "worker": {"replicas": res.nodes, "spec": {"securityContext": POD_SECURITY, "volumes": volumes,
                                                              "containers": [worker]}},
                "scheduler": {
                    "spec": {"containers": [scheduler]},
                    "service": {"type": "ClusterIP", "selector": {
                        "dask.org/cluster-name": "xrdbatch-regenerate", "dask.org/component": "scheduler"},
                        "ports": [{"name": "tcp-comm", "protocol": "TCP", "port": 8786, "targetPort": "tcp-comm"},
                                  {"name": "http-dashboard", "protocol": "TCP", "port": 8787,
                                   "targetPort": "http-dashboard"}]},
                },
            }},
        },
    }
    return {"regenerate.yaml": [doc]}


def _k8s_job(name: str, namespace: str, container: dict, volumes: list, res: Resources, **spec) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backoffLimit": 2, "activeDeadlineSeconds": int(_minutes(res.time) * 60), **spec,
                 "template": {"spec": {"restartPolicy": "Never", "securityContext": POD_SECURITY,
                                       "containers": [container], "volumes": volumes}}},
    }


def render_k8s_train(res: Resources, env: Environment, paths: Paths, *, image: str, pvc: str,
                     namespace: str) -> dict:
    """A ``batch/v1`` Job training on one pod with ``cpus_per_node`` cores (default 4)."""
    mounts, volumes = _k8s_volume(paths, pvc)
    cpus = str(res.cpus_per_node or 4)
    lines = _k8s_shell([f'STORE="{paths.store}"', f'MODEL="{paths.model}"', f'REPORT="{paths.report}"',
                        *train_commands(paths, cpus)])
    job = _k8s_job("xrdbatch-train", namespace, _k8s_container("train", image, lines, cpus, mounts), volumes, res)
    return {"train.yaml": [job]}


def render_k8s_score(res: Resources, env: Environment, paths: Paths, *, image: str, pvc: str,
                     namespace: str) -> dict:
    """An Indexed Job over ``res.shards`` shards (``JOB_COMPLETION_INDEX``) and a merge Job."""
    mounts, volumes = _k8s_volume(paths, pvc)
    cpus = str(res.cpus_per_shard)
    lines = _k8s_shell([f'MODEL="{paths.model}"', f'ARCHIVE="{paths.archive}"', f'SHARD_DIR="{paths.shard_dir}"',
                        *score_commands(paths, "$JOB_COMPLETION_INDEX", str(res.shards))])
    array = _k8s_job("xrdbatch-score", namespace, _k8s_container("score", image, lines, cpus, mounts), volumes, res,
                     completionMode="Indexed", completions=res.shards,
                     parallelism=res.max_parallel or res.shards)
    merge_lines = _k8s_shell([f'SHARD_DIR="{paths.shard_dir}"', f'RESULTS="{paths.results}"',
                              f'xrdbatch jobs merge "$SHARD_DIR" --expect {res.shards} --out "$RESULTS"'])
    merge = _k8s_job("xrdbatch-score-merge", namespace, _k8s_container("merge", image, merge_lines, "1", mounts),
                     volumes, res)
    return {"score.yaml": [array], "score-merge.yaml": [merge]}


# --------------------------------------------------------------------------------- registry ----
RENDERERS: dict = {
    ("slurm", "regenerate"): render_slurm_regenerate,
    ("slurm", "train"): render_slurm_train,
    ("slurm", "score"): render_slurm_score,
    ("k8s", "regenerate"): render_k8s_regenerate,
    ("k8s", "train"): render_k8s_train,
    ("k8s", "score"): render_k8s_score,
}
TARGETS = ("slurm", "k8s")
JOBS = ("regenerate", "train", "score")
DEFAULT_K8S_IMAGE = "ghcr.io/xrdbatch/xrdbatch:0.1.0"


def render(target: str, job: str, resources: Resources | None = None, environment: Environment | None = None,
           paths: Paths | None = None, *, image: str | None = None, pvc: str = "xrdbatch-data",
           namespace: str = "default") -> dict[str, str]:
    """Render the files of one job (or ``job="all"``) for one target.

    Parameters
    ----------
    target : {"slurm", "k8s"}
    job : {"regenerate", "train", "score", "all"}
    resources, environment, paths : optional
        Defaults: :class:`Resources`, :class:`Environment`, :class:`Paths` with their defaults.
    image : str, optional
        Container image of the Kubernetes pods (default ``environment.image`` or :data:`DEFAULT_K8S_IMAGE`).
    pvc, namespace : str
        Kubernetes PersistentVolumeClaim mounted at ``/data`` (the working directory) and namespace.

    Returns
    -------
    dict
        ``{file name: text}``; Kubernetes files are multi-document YAML.
    """
    if target not in TARGETS:
        raise JobSpecError(f"unknown target {target!r}; valid targets: {', '.join(TARGETS)}")
    jobs = JOBS if job == "all" else (job,)
    for name in jobs:
        if name not in JOBS:
            raise JobSpecError(f"unknown job {name!r}; valid jobs: {', '.join(JOBS)}, all")
    resources = resources or Resources()
    environment = environment or Environment()
    paths = paths or Paths()
    files: dict[str, str] = {}
    for name in jobs:
        fn = RENDERERS[(target, name)]
        if target == "k8s":
            docs = fn(resources, environment, paths, image=image or environment.image or DEFAULT_K8S_IMAGE,
                      pvc=pvc, namespace=namespace)
            files.update({fname: _dump_yaml(d) for fname, d in docs.items()})
        else:
            files.update(fn(resources, environment, paths))
    return files


def _dump_yaml(docs: list[dict]) -> str:
    import yaml  # dask depends on PyYAML

    header = "# Rendered by `xrdbatch jobs render k8s`; edit the options, not this file.\n"
    return header + "---\n".join(yaml.safe_dump(d, sort_keys=False, width=120) for d in docs)


def write_rendered(files: dict[str, str], out_dir: str | os.PathLike) -> list[Path]:
    """Write rendered files into ``out_dir`` atomically (temporary name, then rename); scripts get mode 0755."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(files.items()):
        target = out_dir / name
        tmp = target.with_name(f".{name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755 if name.endswith((".sh", ".sbatch")) else 0o644)
        os.replace(tmp, target)
        written.append(target)
    return written


# ----------------------------------------------------------------------------- shard merge ----
SHARD_PATTERN = re.compile(r"^shard-(\d+)\.(parquet|csv|empty)$")


def merge_shards(shard_dir: str | os.PathLike, out: str | os.PathLike, expect: int | None = None) -> dict:
    """Concatenate the per-shard result tables of a scoring array into one table (atomic write).

    Parameters
    ----------
    shard_dir : path
        Directory holding ``shard-00000.parquet`` ... (or ``.csv``) written by the array tasks.
    out : path
        Output table; ``.csv`` writes CSV, anything else Parquet.
    expect : int, optional
        Number of shards that must be present (``0..expect-1``); a missing one is an error naming it.

    Returns
    -------
    dict
        ``{"shards": n, "rows": n_rows, "out": str(out)}``.
    """
    import pandas as pd

    shard_dir = Path(shard_dir)
    found = {}
    if shard_dir.is_dir():
        for path in shard_dir.iterdir():
            m = SHARD_PATTERN.match(path.name)
            if m:
                found[int(m.group(1))] = path
    if expect is not None:
        missing = sorted(set(range(expect)) - set(found))
        if missing:
            raise FileNotFoundError(f"{shard_dir}: expected shard files shard-00000 .. shard-{expect - 1:05d}, "
                                    f"missing shards {missing[:10]}{' ...' if len(missing) > 10 else ''}; rerun "
                                    f"those array tasks (sbatch --array={','.join(map(str, missing[:10]))} ...)")
    if not found:
        raise FileNotFoundError(f"{shard_dir}: no shard-XXXXX.parquet/.csv files; did the scoring array run?")
    tables = []
    for index in sorted(found):
        path = found[index]
        if path.suffix == ".empty":
            continue
        table = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        tables.append(table.assign(shard=index))
    merged = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if out.suffix == ".csv":
        merged.to_csv(tmp, index=False)
    else:
        merged.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return {"shards": len(found), "rows": len(merged), "out": str(out)}


def shard_of(files, index: int, count: int) -> list[str]:
    """Shard ``index`` of ``count`` of ``files``: every ``count``-th of the sorted list, starting at ``index``.

    Round robin keeps shards within one file of each other in size and the assignment stable for a given archive.

    >>> shard_of(["c", "a", "b", "d", "e"], 1, 2)
    ['b', 'd']
    """
    if count < 1 or not 0 <= index < count:
        raise JobSpecError(f"shard index {index} of count {count}: expected count >= 1 and 0 <= index < count")
    return sorted(files)[index::count]


def write_shard_list(inputs, index: int, count: int, out: str | os.PathLike) -> int:
    """Expand ``inputs`` like ``xrdbatch score`` does, write shard ``index``/``count`` one path a line (atomic)."""
    from xrdbatch.score import expand_inputs

    files = shard_of(expand_inputs(inputs), index, count)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(f"{f}\n" for f in files))
    os.replace(tmp, out)
    return len(files)


def render_from_options(options: dict) -> dict[str, str]:
    """:func:`render` from the flat option dict of ``xrdbatch jobs render`` (None means the default)."""
    o = {k.replace("-", "_"): v for k, v in options.items()}
    res_fields = dict(partition=o.get("partition"), account=o.get("account"), time=o.get("time") or "01:00:00",
                      nodes=o.get("nodes") or 1, cpus_per_node=o.get("cpus_per_node"), memory=o.get("mem"),
                      shards=o.get("shards") or 4, max_parallel=o.get("max_parallel"),
                      cpus_per_shard=o.get("cpus_per_shard") or 1, extra_sbatch=tuple(o.get("sbatch") or ()))
    env = Environment(image=o.get("image"), venv=o.get("venv"), setup=tuple(o.get("setup") or ()))
    path_fields = {name: o[name] for name in ("catalog", "store", "model", "report", "archive", "results",
                                              "shard_dir", "logs") if o.get(name)}
    paths = Paths(sources=tuple(o.get("source") or ()), **path_fields)
    return render(o["target"], o["job"], Resources(**res_fields), env, paths, image=o.get("image"),
                  pvc=o.get("pvc") or "xrdbatch-data", namespace=o.get("namespace") or "default")

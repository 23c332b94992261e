"""The rendered SLURM jobs, submitted with sbatch to a real single-node SLURM (tests/slurm_harness.py).

The module starts munged, slurmctld and slurmd once (about a second), renders the jobs with
:func:`xrdbatch.jobs.render` into a work folder, submits them the way a user would (``sbatch``, ``submit-score.sh``)
with ``SLURM_CONF`` exported, waits for them and checks what they wrote. The jobs activate a virtualenv made here
(``--system-site-packages`` plus this checkout installed into it), i.e. the ``--venv`` form of the scripts.

Without SLURM installed the tests skip with the reason on a developer machine, and fail in CI (``CI`` set), where
``.ci/system-deps`` installs slurm-wlm and munge. One node only: the multi-node part of the regeneration job (one
``srun`` worker per node) runs here with one node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xrdbatch import cli, jobs

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slurm_harness  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(1200)]
ROOT = Path(__file__).resolve().parents[1]
N_FILES = 7
N_SHARDS = 4


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    missing = slurm_harness.missing_binaries()
    if missing:
        reason = (f"SLURM not installed (missing {missing}); `.ci/system-deps` installs slurm-wlm and munge "
                  f"(apt-get install -y slurm-wlm munge)")
        if os.environ.get("CI") or os.environ.get("XRDBATCH_REQUIRE_SLURM"):
            pytest.fail(f"CI must run the SLURM tests: {reason}")
        pytest.skip(reason)
    cluster = slurm_harness.LocalSlurm.start(tmp_path_factory.mktemp("slurm"))
    # jobs inherit the submit environment: make this interpreter's scripts (xrdbatch, dask) win on PATH
    cluster.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{cluster.env.get('PATH', '')}"
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Work folder with a virtualenv that sees this environment's packages and this checkout's xrdbatch."""
    work = tmp_path_factory.mktemp("slurm-work")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=True, capture_output=True)
    assert (venv / "bin" / "xrdbatch").exists()
    return work


def _environment(work: Path) -> jobs.Environment:
    return jobs.Environment(venv=str(work / "venv"), setup=('echo "job $SLURM_JOB_ID on $(hostname)"',))


def _submit_and_wait(slurm, work, script: Path, timeout_s=900) -> tuple[str, dict]:
    job_id = slurm.sbatch(script, cwd=work)
    states = slurm.wait(job_id, timeout_s)
    return job_id, states


def _log(work: Path, pattern: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(work.glob(pattern)))


def _assert_completed(states: dict, work: Path, log_glob: str):
    bad = {k: v for k, v in states.items() if v != "COMPLETED"}
    assert not bad, f"jobs not COMPLETED: {bad}\n--- job logs ---\n{_log(work, log_glob)[-4000:]}"


# ------------------------------------------------------------------------------ regenerate ----
@pytest.fixture(scope="module")
def regenerated(slurm, work):
    """regenerate.sbatch: ingest builtin prototypes, simulate them on a Dask cluster inside the allocation."""
    paths = jobs.Paths(sources=("builtin:prototypes",), simulate_args=("--chunk-size", "100"))
    files = jobs.render("slurm", "regenerate", jobs.Resources(time="00:20:00"), _environment(work), paths)
    jobs.write_rendered(files, work / "jobs")
    job_id, states = _submit_and_wait(slurm, work, work / "jobs" / "regenerate.sbatch")
    _assert_completed(states, work, "xrdbatch-regenerate-*.out")
    return job_id


def test_regenerate_job_simulates_on_a_dask_cluster_inside_the_allocation(regenerated, work):
    import xarray as xr

    log = _log(work, f"xrdbatch-regenerate-{regenerated}.out")
    assert f"job {regenerated} on" in log
    assert "dask: scheduler tcp://" in log, log[-3000:]  # simulate connected through the scheduler file
    ds = xr.open_zarr(work / "store.zarr")
    status = ds["sim_status"].values
    assert ds.sizes["structure"] >= 250 and (status == "ok").sum() >= 250
    assert not list(work.glob("dask-scheduler-*.json")), "the job must remove its scheduler file"


# ----------------------------------------------------------------------------------- train ----
@pytest.fixture(scope="module")
def trained(slurm, work, regenerated):
    if "train" not in cli.COMMANDS:
        pytest.fail("`xrdbatch train` does not exist yet: the training job cannot run")
    files = jobs.render("slurm", "train", jobs.Resources(time="00:20:00"), _environment(work))
    jobs.write_rendered(files, work / "jobs")
    job_id, states = _submit_and_wait(slurm, work, work / "jobs" / "train.sbatch")
    _assert_completed(states, work, "xrdbatch-train-*.out")
    return job_id


def test_train_job_writes_a_model_bundle_and_report(trained, work):
    assert (work / "model" / "manifest.json").is_file(), _log(work, "xrdbatch-train-*.out")[-3000:]
    assert (work / "report").exists()


# ----------------------------------------------------------------------------- score array ----
def _write_archive(work: Path) -> list[Path]:
    """Measured-like files: N_FILES simulated patterns of the store as two-column .xy text."""
    import xarray as xr

    ds = xr.open_zarr(work / "store.zarr")
    ok = np.flatnonzero(ds["sim_status"].values == "ok")[:N_FILES]
    two_theta = ds["two_theta"].values
    archive = work / "archive"
    archive.mkdir(exist_ok=True)
    written = []
    for i in ok:
        path = archive / f"{ds['structure_id'].values[i]}.xy".replace("/", "_")
        np.savetxt(path, np.column_stack([two_theta, 1000 * ds["intensity"].values[i] + 10]), fmt="%.4f")
        written.append(path)
    return written


def test_score_array_job_scores_every_shard_then_merges_after_all_succeeded(slurm, work, trained):
    files = _write_archive(work)
    res = jobs.Resources(time="00:20:00", shards=N_SHARDS, max_parallel=2)
    rendered = jobs.render("slurm", "score", res, _environment(work), jobs.Paths(logs="logs"))
    jobs.write_rendered(rendered, work / "jobs")
    p = subprocess.run(["bash", str(work / "jobs" / "submit-score.sh")], cwd=work, env=slurm.env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    array_id, merge_id = p.stdout.split("score array: ")[1].split("  merge: ")
    merge_id = merge_id.strip()
    pending = slurm.job_states(merge_id)
    assert "Dependency" in subprocess.run(["scontrol", "show", "job", merge_id], env=slurm.env,
                                          capture_output=True, text=True).stdout or pending
    states = slurm.wait([array_id, merge_id], 900)
    _assert_completed(states, work, "logs/*.out")
    assert len([k for k in states if k.startswith(f"{array_id}_")]) == N_SHARDS
    results = pd.read_parquet(work / "results.parquet")
    assert len(results) == len(files) and sorted(results["shard"].unique()) == list(range(N_SHARDS))
    assert set(Path(f).name for f in results["file"]) == {f.name for f in files}


def test_merge_waits_for_the_array_and_never_runs_after_a_failed_shard(slurm, work, tmp_path):
    """afterok: one failing array task leaves the merge unrunnable (DependencyNeverSatisfied), no partial table."""
    res = jobs.Resources(time="00:05:00", shards=2)
    env = _environment(work)
    rendered = jobs.render("slurm", "score", res, env, jobs.Paths(archive=str(tmp_path / "nothing-here"),
                                                                 results=str(tmp_path / "partial.parquet"),
                                                                 shard_dir=str(tmp_path / "shards")))
    jobs.write_rendered(rendered, tmp_path)
    p = subprocess.run(["bash", str(tmp_path / "submit-score.sh")], cwd=tmp_path, env=slurm.env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    array_id, merge_id = (s.strip() for s in p.stdout.split("score array: ")[1].split("  merge: "))
    array_states = slurm.wait(array_id, 300)
    assert set(array_states.values()) == {"FAILED"}, array_states
    for _ in range(30):
        out = subprocess.run(["scontrol", "show", "job", merge_id], env=slurm.env, capture_output=True,
                             text=True).stdout
        if "DependencyNeverSatisfied" in out or "JobState=CANCELLED" in out:
            break
        time.sleep(1)
    assert "DependencyNeverSatisfied" in out or "JobState=CANCELLED" in out, out
    subprocess.run(["scancel", merge_id], env=slurm.env, check=False)
    assert not (tmp_path / "partial.parquet").exists()

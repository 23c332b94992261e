"""Tests of xrdbatch/jobs.py: rendered job files against golden files, the committed examples, shell syntax,
CLI compatibility of every command in them, Kubernetes schema validation, sharding and the shard merge.

Golden files live in tests/golden/<target>/; a missing or different one fails. After an intended change, rewrite
them with ``XRDBATCH_UPDATE_GOLDEN=1 python -m pytest tests/test_jobs.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from xrdbatch import cli, jobs

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"

# One fixed option set per target, covering every option (partition, account, time, nodes, image/venv/setup).
GOLDEN_OPTIONS = {
    "slurm": dict(
        resources=jobs.Resources(partition="cpu", account="proj42", time="02:00:00", nodes=3, memory="64G",
                                 shards=8, max_parallel=4, extra_sbatch=("--qos=normal",)),
        environment=jobs.Environment(venv="/opt/xrdbatch-venv", setup=("module load python/3.11",)),
        paths=jobs.Paths(sources=("cifs/",), simulate_args=("--chunk-size", "1000"))),
    "slurm-image": dict(
        resources=jobs.Resources(time="00:30:00", cpus_per_node=16, shards=2),
        environment=jobs.Environment(image="/shared/images/xrdbatch.sif", setup=("module load apptainer",))),
    "k8s": dict(
        resources=jobs.Resources(time="03:00:00", nodes=5, cpus_per_node=8, shards=10, max_parallel=5),
        environment=jobs.Environment(image="registry.example.org/xrdbatch:0.1.0"),
        paths=jobs.Paths(sources=("cifs/",)), pvc="xrd-pvc", namespace="science"),
}


def _render(name: str) -> dict[str, str]:
    target = name.split("-")[0]
    return jobs.render(target, "all", **GOLDEN_OPTIONS[name])


def _all_rendered():
    for name in GOLDEN_OPTIONS:
        for fname, text in _render(name).items():
            yield name, fname, text


def _pod_specs(doc: dict):
    if doc["kind"] == "Job":
        yield doc["spec"]["template"]["spec"]
    elif doc["kind"] == "DaskJob":
        yield doc["spec"]["job"]["spec"]
        yield doc["spec"]["cluster"]["spec"]["worker"]["spec"]
        yield doc["spec"]["cluster"]["spec"]["scheduler"]["spec"]


# ------------------------------------------------------------------------------- golden ----
@pytest.mark.parametrize("name", sorted(GOLDEN_OPTIONS))
def test_rendered_files_match_golden(name):
    files = _render(name)
    folder = GOLDEN / name
    if os.environ.get("XRDBATCH_UPDATE_GOLDEN"):
        jobs.write_rendered(files, folder)
    for fname, text in files.items():
        golden = folder / fname
        assert golden.exists(), (f"golden file {golden} is missing; create it with XRDBATCH_UPDATE_GOLDEN=1 "
                                 f"python -m pytest tests/test_jobs.py and review it")
        assert text == golden.read_text(), (f"{fname} rendered for {name!r} differs from {golden}; if intended, "
                                            "rerun with XRDBATCH_UPDATE_GOLDEN=1 and review the diff")
    assert sorted(p.name for p in folder.iterdir()) == sorted(files), f"stale files in {folder}"


def test_committed_examples_are_current(tmp_path):
    """jobs/slurm and jobs/k8s are exactly what jobs/render-examples.sh renders now."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if shutil.which("xrdbatch", path=env["PATH"]) is None:
        pytest.fail("the xrdbatch command is not installed: pip install -e .")
    subprocess.run(["bash", str(ROOT / "jobs" / "render-examples.sh"), str(tmp_path)], check=True, env=env,
                   capture_output=True)
    for target in ("slurm", "k8s"):
        fresh = {p.name: p.read_text() for p in (tmp_path / target).iterdir()}
        committed = {p.name: p.read_text() for p in (ROOT / "jobs" / target).iterdir()}
        assert fresh == committed, f"jobs/{target} is stale: run jobs/render-examples.sh and commit the result"


# --------------------------------------------------------------------------- shell + CLI ----
def _shell_scripts():
    for name, fname, text in _all_rendered():
        if fname.endswith((".sbatch", ".sh")):
            yield f"{name}/{fname}", text
        else:
            for doc in yaml.safe_load_all(text):
                for pod in _pod_specs(doc):
                    for c in pod["containers"]:
                        if c.get("command", [None])[0] == "/bin/bash":
                            yield f"{name}/{fname}:{c['name']}", c["args"][0]


@pytest.mark.parametrize("label,script", [pytest.param(lab, s, id=lab) for lab, s in _shell_scripts()])
def test_scripts_are_valid_bash(label, script, tmp_path):
    path = tmp_path / "script.sh"
    path.write_text(script)
    p = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, f"{label}: bash -n says {p.stderr}"


def _xrdbatch_commands(script: str):
    """Every `xrdbatch VERB ...` command line in a script, shell variables replaced by dummy values."""
    joined = re.sub(r"\\\n\s*", " ", script)
    for line in joined.splitlines():
        line = line.strip()
        if not line.startswith("xrdbatch ") or "()" in line:
            continue
        line = re.sub(r'"\$\{FILES\[@\]\}"', "a.xy b.xy", line)
        line = re.sub(r"\$\([^)]*\)", "1", line)
        line = re.sub(r"\$\{?[A-Za-z_][A-Za-z_0-9]*\}?", "1", line)  # also a valid int
        yield shlex.split(line)[1:]


def test_every_command_in_the_jobs_parses_with_the_real_cli():
    """The verbs and options the jobs call exist in xrdbatch.cli (catches drift between jobs and verbs)."""
    parser = cli.build_parser()
    seen = set()
    for label, script in _shell_scripts():
        for argv in _xrdbatch_commands(script):
            seen.add(argv[0] if argv[0] != "jobs" else f"jobs {argv[1]}")
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"{label}: `xrdbatch {' '.join(argv)}` is not accepted by the CLI "
                            f"(verbs: {sorted(cli.COMMANDS)})")
    assert {"ingest", "simulate", "features", "train", "report", "score", "jobs shard", "jobs merge"} <= seen


def test_slurm_options_are_rendered():
    files = _render("slurm")
    regen = files["regenerate.sbatch"]
    for line in ("#SBATCH --partition=cpu", "#SBATCH --account=proj42", "#SBATCH --time=02:00:00",
                 "#SBATCH --nodes=3", "#SBATCH --mem=64G", "#SBATCH --qos=normal", "module load python/3.11",
                 "source /opt/xrdbatch-venv/bin/activate", "--scheduler-file"):
        assert line in regen
    assert "#SBATCH --array=0-7%4" in files["score-array.sbatch"]
    assert "--dependency=afterok:" in files["submit-score.sh"]
    image = _render("slurm-image")["train.sbatch"]
    assert "apptainer exec --bind \"$PWD\" /shared/images/xrdbatch.sif" in image
    assert "#SBATCH --cpus-per-task=16" in image and "--exclusive" not in image


@pytest.mark.parametrize("kw,match", [
    (dict(time="2 hours"), "time limit"), (dict(nodes=0), "nodes"), (dict(shards=0), "shards"),
    (dict(cpus_per_node=0), "cpus_per_node"), (dict(max_parallel=0), "max_parallel"),
])
def test_bad_resources_are_rejected_with_the_expected_form(kw, match):
    with pytest.raises(jobs.JobSpecError, match=match):
        jobs.Resources(**kw)


def test_unknown_target_or_job_lists_the_valid_ones():
    with pytest.raises(jobs.JobSpecError, match="valid targets: slurm, k8s"):
        jobs.render("pbs", "train")
    with pytest.raises(jobs.JobSpecError, match="valid jobs: regenerate, train, score"):
        jobs.render("slurm", "fit")


def test_cli_render_writes_executable_files(tmp_path):
    assert cli.main(["jobs", "render", "slurm", "score", "--out-dir", str(tmp_path), "--shards", "3"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["score-array.sbatch", "score-merge.sbatch",
                                                           "submit-score.sh"]
    assert os.access(tmp_path / "submit-score.sh", os.X_OK)
    assert cli.main(["jobs", "render", "slurm", "train", "--time", "soon"]) == 2


# ----------------------------------------------------------------------------- Kubernetes ----
def _k8s_docs():
    for name in ("k8s",):
        for fname, text in _render(name).items():
            for doc in yaml.safe_load_all(text):
                yield fname, doc


def test_k8s_manifests_validate_against_the_kubernetes_schemas():
    """Jobs validate strictly (no unknown fields); the DaskJob's pod specs and service spec validate as the
    Pod and Service they become, and its own fields follow the Dask Kubernetes operator's CRD."""
    kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]' installs kubernetes-validate")
    version = kv.latest_version()
    kinds = set()
    for fname, doc in _k8s_docs():
        kinds.add(doc["kind"])
        assert doc["metadata"]["namespace"] == "science"
        if doc["kind"] == "Job":
            kv.validate(doc, version, strict=True)
            spec = doc["spec"]
            assert spec["template"]["spec"]["restartPolicy"] == "Never"
            if doc["metadata"]["name"] == "xrdbatch-score":
                assert spec["completionMode"] == "Indexed" and spec["completions"] == 10
                assert spec["parallelism"] == 5
        elif doc["kind"] == "DaskJob":
            assert doc["apiVersion"] == "kubernetes.dask.org/v1"
            cluster = doc["spec"]["cluster"]["spec"]
            assert cluster["worker"]["replicas"] == 5
            for i, pod in enumerate(_pod_specs(doc)):
                kv.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"}, "spec": pod},
                            version, strict=True)
            kv.validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                         "spec": cluster["scheduler"]["service"]}, version, strict=True)
            job = doc["spec"]["job"]["spec"]["containers"][0]["args"][0]
            assert '--scheduler-address "$DASK_SCHEDULER_ADDRESS"' in job
        else:
            pytest.fail(f"{fname}: unexpected kind {doc['kind']}")
        for pod in _pod_specs(doc):
            for c in pod["containers"]:
                assert c["image"] == "registry.example.org/xrdbatch:0.1.0"
    assert kinds == {"Job", "DaskJob"}


def test_k8s_validation_catches_a_broken_manifest():
    kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]' installs kubernetes-validate")
    _, doc = next(d for d in _k8s_docs() if d[1]["kind"] == "Job")
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, kv.latest_version(), strict=True)


# ------------------------------------------------------------------------ sharding + merge ----
@given(st.lists(st.text(min_size=1, max_size=8), max_size=60, unique=True), st.integers(1, 12))
def test_shards_partition_the_archive_evenly(files, count):
    shards = [jobs.shard_of(files, i, count) for i in range(count)]
    assert sorted(f for s in shards for f in s) == sorted(files)
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    assert jobs.shard_of(list(reversed(files)), 0, count) == shards[0]  # independent of listing order


@pytest.mark.parametrize("index,count", [(3, 3), (-1, 2), (0, 0)])
def test_bad_shard_index_is_an_error(index, count):
    with pytest.raises(jobs.JobSpecError, match="0 <= index < count"):
        jobs.shard_of(["a"], index, count)


def test_shard_list_and_merge_round_trip(tmp_path):
    archive = tmp_path / "archive"
    (archive / "sub").mkdir(parents=True)
    for i in range(7):
        (archive / ("sub" if i % 2 else ".") / f"p{i}.xy").write_text("10 1\n11 2\n")
    (archive / ".hidden.xy").write_text("")
    shard_dir = tmp_path / "shards"
    listed = []
    for i in range(3):
        assert cli.main(["jobs", "shard", str(archive), "--index", str(i), "--count", "3",
                         "--out", str(shard_dir / f"shard-{i:05d}.txt")]) == 0
        names = (shard_dir / f"shard-{i:05d}.txt").read_text().split()
        listed += names
        pd.DataFrame({"file": names, "crystal_system": "cubic"}).to_parquet(shard_dir / f"shard-{i:05d}.parquet")
    assert len(listed) == 7 and len(set(listed)) == 7 and not any(".hidden" in n for n in listed)
    (shard_dir / "shard-00003.empty").touch()
    out = tmp_path / "results.parquet"
    assert cli.main(["jobs", "merge", str(shard_dir), "--expect", "4", "--out", str(out)]) == 0
    merged = pd.read_parquet(out)
    assert sorted(merged["file"]) == sorted(listed)
    assert sorted(merged["shard"].unique()) == [0, 1, 2]


def test_merge_names_the_missing_shards(tmp_path):
    pd.DataFrame({"file": ["a"]}).to_csv(tmp_path / "shard-00001.csv", index=False)
    with pytest.raises(FileNotFoundError, match=r"missing shards \[0, 2\]"):
        jobs.merge_shards(tmp_path, tmp_path / "out.csv", expect=3)
    summary = jobs.merge_shards(tmp_path, tmp_path / "out.csv")
    assert summary["rows"] == 1 and pd.read_csv(tmp_path / "out.csv")["shard"].tolist() == [1]
    assert cli.main(["jobs", "merge", str(tmp_path / "nothing"), "--out", str(tmp_path / "o.parquet")]) == 2

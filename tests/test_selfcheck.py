"""Tests of xrdbatch/selfcheck.py and the `xrdbatch selfcheck` verb (real checks, nothing mocked)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from xrdbatch import cli, selfcheck


def test_every_check_passes_in_this_environment():
    results = selfcheck.run_checks()
    assert [r.name for r in results] == list(selfcheck.CHECKS)
    failed = {r.name: r.detail for r in results if not r.ok}
    assert not failed, failed
    by_name = {r.name: r.detail for r in results}
    assert "numpy" in by_name["versions"] and "skops" in by_name["versions"]
    assert "strongest line" in by_name["simulation"]
    assert "LocalCluster" in by_name["cluster"]


def test_quick_runs_only_the_fast_checks():
    assert [r.name for r in selfcheck.run_checks(quick=True)] == list(selfcheck.QUICK)


def test_a_failing_check_is_reported_and_the_others_still_run(tmp_path):
    missing = str(tmp_path / "no-scheduler.json")
    results = selfcheck.run_checks(["cluster", "writable"], scheduler_file=missing)
    assert [r.ok for r in results] == [False, True]
    assert "does not exist" in results[0].detail and missing in results[0].detail
    text = selfcheck.format_results(results)
    assert text.splitlines()[-1] == "selfcheck: FAILED: cluster"


def test_cli_exit_codes(capsys):
    assert cli.main(["selfcheck", "--quick"]) == 0
    assert "selfcheck: all checks passed" in capsys.readouterr().out
    assert cli.main(["selfcheck", "--check", "cluster", "--scheduler-file", "/nonexistent/s.json"]) == 1
    assert cli.main(["selfcheck", "--check", "nosuch"]) == 2
    assert "valid: versions" in capsys.readouterr().err


def test_connect_counts_the_workers_of_the_cluster_it_would_use():
    (result,) = selfcheck.run_checks(["cluster"], connect=True, n_workers=1, threads_per_worker=1)
    assert result.ok, result.detail
    assert "connected: 1 worker(s), 1 thread(s)" in result.detail


@pytest.mark.slow
def test_selfcheck_as_a_subprocess_like_the_container_healthcheck():
    p = subprocess.run([sys.executable, "-m", "xrdbatch.cli", "selfcheck"], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "selfcheck: all checks passed" in p.stdout

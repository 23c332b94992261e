"""Tests of xrdbatch.cluster: the embedded LocalCluster, a scheduler address, a scheduler file."""

from __future__ import annotations

import os

import pytest

from xrdbatch import cluster


def test_local_cluster_shape_defaults_to_one_process_per_core():
    assert cluster.local_cluster_size() == (cluster.machine_cores(), 1)
    assert cluster.local_cluster_size(threads_per_worker=2) == (max(1, cluster.machine_cores() // 2), 2)
    with pytest.raises(ValueError, match="n_workers >= 1"):
        cluster.local_cluster_size(-1, 1)


def test_local_cluster_prints_the_dashboard_and_closes():
    lines = []
    with cluster.get_client(n_workers=2, threads_per_worker=1, log=lines.append) as client:
        assert len(client.nthreads()) == 2 and set(client.nthreads().values()) == {1}
        assert client.submit(os.getpid).result() != os.getpid()  # worker processes, not threads
    assert lines and "2 worker(s); dashboard: http" in lines[0]
    assert client.status == "closed"


def test_scheduler_address_and_file_connect_to_a_running_cluster(tmp_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as lc:
        lines = []
        with cluster.get_client(scheduler_address=lc.scheduler_address, log=lines.append) as client:
            assert client.submit(lambda: 41 + 1).result() == 42
        assert f"scheduler {lc.scheduler_address}" in lines[0]
        scheduler_file = tmp_path / "scheduler.json"
        with Client(lc) as c:
            c.write_scheduler_file(str(scheduler_file))
        with cluster.get_client(scheduler_file=str(scheduler_file), log=None) as client:
            assert client.submit(lambda: 7).result() == 7
        assert lc.status.name == "running"  # connecting never shuts a cluster down


def test_dask_scheduler_address_setting_is_honoured(monkeypatch):
    """$DASK_SCHEDULER_ADDRESS (the Dask Kubernetes operator sets it in the job pod) means that cluster, not a new one."""
    import dask
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as lc:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", lc.scheduler_address)
        dask.config.refresh()
        try:
            lines = []
            with cluster.get_client(log=lines.append) as client:
                assert client.scheduler.address == lc.scheduler_address
            assert f"scheduler {lc.scheduler_address}" in lines[0]
        finally:
            monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
            dask.config.refresh()
        assert dask.config.get("scheduler-address", None) is None


def test_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="start the scheduler first"):
        with cluster.get_client(scheduler_file=str(tmp_path / "missing.json")):
            pass
    with pytest.raises(ValueError, match="either scheduler_address"):
        with cluster.get_client(scheduler_address="tcp://x:1", scheduler_file="f"):
            pass

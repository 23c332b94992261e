"""One way to get a Dask client: embedded LocalCluster, a scheduler address, or a scheduler file.

Every distributed stage (``simulate``, ``retarget``, ``ingest``, ``score``) takes a
``distributed.Client``; the command line resolves the cluster options once with
:func:`get_client` and passes the client down, so the same library code runs on a laptop,
inside a SLURM allocation (``--scheduler-file`` written by ``dask scheduler`` / ``dask-mpi``)
and on any remote Dask cluster (``--scheduler-address tcp://...``). Without either option, Dask's own
``scheduler-address`` setting (``$DASK_SCHEDULER_ADDRESS``, as set by the Dask Kubernetes operator and
``dask-gateway``, or a Dask config file) is honoured before an embedded cluster is started.

``distributed`` is imported inside the function (nothing happens at import time).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable, Iterator


def machine_cores() -> int:
    """Cores this process may use (CPU affinity / cgroup aware where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover  (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def local_cluster_size(n_workers: int | None = None, threads_per_worker: int | None = None) -> tuple[int, int]:
    """Default LocalCluster shape: one single-threaded worker process per core.

    The simulation is numpy/Python code that holds the GIL for much of its time, so processes scale
    and threads do not. Explicit values win; ``n_workers`` defaults to ``cores // threads_per_worker``.

    >>> local_cluster_size(3, 2)
    (3, 2)
    """
    threads = int(threads_per_worker or 1)
    workers = int(n_workers or max(1, machine_cores() // threads))
    if workers < 1 or threads < 1:
        raise ValueError(f"need n_workers >= 1 and threads_per_worker >= 1, got {n_workers!r}, {threads_per_worker!r}")
    return workers, threads


@contextlib.contextmanager
def get_client(
    scheduler_address: str | None = None,
    scheduler_file: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    *,
    memory_limit: str | int | None = "auto",
    log: Callable[[str], None] | None = print,
) -> Iterator:
    """A ``distributed.Client`` for the duration of a ``with`` block.

    Parameters
    ----------
    scheduler_address : str, optional
        ``tcp://host:port`` of a running scheduler. The cluster is not shut down on exit. Default: Dask's
        ``scheduler-address`` config (``$DASK_SCHEDULER_ADDRESS``) when set and no scheduler file is given.
    scheduler_file : str, optional
        JSON scheduler file (``dask scheduler --scheduler-file F``), as written inside a SLURM job.
    n_workers, threads_per_worker : int, optional
        Shape of the embedded LocalCluster (default: one single-threaded process per core); ignored when
        connecting to an existing scheduler.
    memory_limit : str or int, optional
        Per-worker memory limit of the LocalCluster (``"auto"`` = machine memory / workers).
    log : callable or None
        Where the dashboard link goes (``print`` by default; ``None`` for silence).

    Yields
    ------
    distributed.Client
    """
    import dask
    from distributed import Client, LocalCluster

    if not scheduler_address and not scheduler_file:
        scheduler_address = dask.config.get("scheduler-address", None)
    if scheduler_address and scheduler_file:
        raise ValueError(
            f"give either scheduler_address ({scheduler_address!r}) or scheduler_file ({scheduler_file!r}), not both"
        )
    if scheduler_file:
        if not os.path.exists(scheduler_file):
            raise FileNotFoundError(
                f"scheduler file {scheduler_file!r} does not exist: start the scheduler first "
                "(`dask scheduler --scheduler-file FILE`) or drop --scheduler-file for a local cluster"
            )
        client = Client(scheduler_file=scheduler_file)
        cluster = None
    elif scheduler_address:
        client = Client(scheduler_address)
        cluster = None
    else:
        workers, threads = local_cluster_size(n_workers, threads_per_worker)
        # dashboard on a free port: several users/runs share login nodes and CI machines.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                               memory_limit=memory_limit, dashboard_address=":0", silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        if log is not None:
            where = "local cluster" if cluster is not None else f"scheduler {client.scheduler.address}"
            n = len(client.nthreads())
            log(f"dask: {where}, {n} worker(s); dashboard: {client.dashboard_link}")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

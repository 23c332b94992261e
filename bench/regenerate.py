"""Benchmark: regeneration end to end (catalog -> Zarr store) on a Dask LocalCluster, and retarget.

1. ``sources.ingest_to_parquet(["synthetic:N"])``: an ICSD-like synthetic catalog (timed, reported apart).
2. ``store.simulate`` on a LocalCluster of ``--workers`` single-threaded processes: wall time from the call
   to the finished store (planning, template, every chunk, finalising; cluster start-up reported apart),
   structures/s, the peak resident memory of any worker (``ru_maxrss`` recorded in every done marker) and
   the worker CPU seconds (sum over chunks: the rate on dedicated cores when the machine is shared).
   Extrapolated to 160,000 structures: goal <= 300 s on 2 cores, worker memory < 2 GB.
3. ``store.retarget`` of that store to another wavelength and range vs **re-simulating** the same catalog at
   those conditions (the reference, measured in the same run on the same cluster): speed ratio (goal
   >= 100x) and the largest difference between the two stores' patterns (goal: float32 precision).

Usage::

    python bench/regenerate.py [--n 20000] [--workers 2] [--chunk-size 500] [--out /tmp/xrdbatch-bench-regen]
                               [--catalog existing-synthetic-catalog.parquet]

Nothing here gates CI; numbers are printed and written to ``<out>/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

GOAL_N = 160_000
GOAL_SECONDS = 300.0
GOAL_MEMORY_BYTES = 2 * 2**30


def _markers_cpu(store_path: str) -> tuple[float, int]:
    from xrdbatch import store

    markers = store.done_chunks(store_path).values()
    return sum(m.get("cpu_seconds", 0.0) for m in markers), max(m["worker_peak_rss_bytes"] for m in markers)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="synthetic structures (default 20000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/xrdbatch-bench-regen")
    parser.add_argument("--keep", action="store_true", help="keep the stores (default: delete at the end)")
    parser.add_argument("--catalog", default=None, help="reuse this synthetic catalog instead of ingesting one")
    args = parser.parse_args(argv)

    from xrdbatch import sources, store
    from xrdbatch.cluster import get_client
    from xrdbatch.conditions import Conditions

    out = Path(args.out)
    for name in ("store.zarr", "retarget.zarr", "fresh.zarr"):
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    catalog = args.catalog or str(out / "catalog.parquet")
    conditions = Conditions()  # CuKa, 5-90 deg, step 0.02 (4251 points), pseudo-Voigt FWHM 0.1
    new = Conditions.from_radiation("CoKa", two_theta_min_deg=10.0, two_theta_max_deg=100.0,
                                    two_theta_step_deg=0.02, fwhm_deg=0.08)
    results: dict = {"n": args.n, "workers": args.workers, "chunk_size": args.chunk_size,
                     "conditions": conditions.to_dict(), "retarget_conditions": new.to_dict()}

    t0 = time.perf_counter()
    with get_client(n_workers=args.workers, threads_per_worker=1, log=print) as client:
        results["cluster_start_s"] = time.perf_counter() - t0
        t = time.perf_counter()
        if args.catalog is None:
            summary = sources.ingest_to_parquet([f"synthetic:{args.n}"], catalog, seed=args.seed, client=client)
            print(f"ingest: {summary}")
        results["ingest_s"] = time.perf_counter() - t
        import pyarrow.parquet as pq

        results["n"] = args.n = pq.ParquetFile(catalog).metadata.num_rows

        # warm the workers (numba kernels load from the on-disk cache once per process) outside the timing
        client.run(lambda: __import__("xrdbatch.simulate"))

        store_path = str(out / "store.zarr")
        t = time.perf_counter()
        sim = store.simulate(catalog, store_path, conditions, chunk_size=args.chunk_size, client=client,
                             progress=True)
        results["simulate_s"] = time.perf_counter() - t
        cpu, peak = _markers_cpu(store_path)
        results.update(simulate_worker_cpu_s=cpu, worker_peak_rss_bytes=peak, n_ok=sim.n_ok, n_failed=sim.n_failed)
        print(sim)

        # retarget vs re-simulating at the new conditions (the reference), same cluster, same run
        retarget_path = str(out / "retarget.zarr")
        t = time.perf_counter()
        store.retarget(store_path, retarget_path, new, client=client, progress=True)
        results["retarget_s"] = time.perf_counter() - t
        results["retarget_worker_cpu_s"] = _markers_cpu(retarget_path)[0]
        fresh_path = str(out / "fresh.zarr")
        t = time.perf_counter()
        store.simulate(catalog, fresh_path, new, chunk_size=args.chunk_size, client=client, progress=True)
        results["resimulate_s"] = time.perf_counter() - t
        results["resimulate_worker_cpu_s"] = _markers_cpu(fresh_path)[0]

    a = store.open_dataset(retarget_path)
    b = store.open_dataset(fresh_path)
    max_diff = 0.0
    for start in range(0, a.sizes["structure"], 5000):
        sl = slice(start, start + 5000)
        max_diff = max(max_diff, float(np.max(np.abs(a["intensity"][sl].values - b["intensity"][sl].values))))
    results["retarget_max_abs_diff"] = max_diff
    results["retarget_status_equal"] = bool((a["sim_status"].values == b["sim_status"].values).all())

    n, w = args.n, args.workers
    rate = n / results["simulate_s"]
    rate_cpu = n / (results["simulate_worker_cpu_s"] / w)
    results.update(
        structures_per_s=rate, structures_per_s_dedicated=rate_cpu,
        extrapolated_160k_s=GOAL_N / rate, extrapolated_160k_dedicated_s=GOAL_N / rate_cpu,
        retarget_speedup=results["resimulate_s"] / results["retarget_s"],
        retarget_speedup_cpu=results["resimulate_worker_cpu_s"] / max(results["retarget_worker_cpu_s"], 1e-9),
    )
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))

    mib = results["worker_peak_rss_bytes"] / 2**20
    print()
    print(f"regenerate {n} synthetic structures on {w} worker processes x 1 thread, chunk {args.chunk_size}")
    print(f"  ingest (apart)          {results['ingest_s']:8.1f} s")
    print(f"  simulate, wall          {results['simulate_s']:8.1f} s   {rate:8.0f} structures/s"
          f"   -> 160k in {GOAL_N / rate:6.0f} s (goal <= {GOAL_SECONDS:.0f} s)")
    print(f"  simulate, worker CPU    {results['simulate_worker_cpu_s']:8.1f} s   {rate_cpu:8.0f} structures/s on "
          f"{w} dedicated cores -> 160k in {GOAL_N / rate_cpu:6.0f} s")
    print(f"  peak worker memory      {mib:8.0f} MiB (goal < 2048 MiB)")
    print(f"  retarget, wall          {results['retarget_s']:8.1f} s   re-simulate {results['resimulate_s']:.1f} s"
          f"   ratio {results['retarget_speedup']:6.0f}x (goal >= 100x); worker CPU ratio "
          f"{results['retarget_speedup_cpu']:.0f}x")
    print(f"  retarget vs re-simulate max |diff| {max_diff:.3g} (float32 eps 1.2e-7); sim_status equal: "
          f"{results['retarget_status_equal']}")
    if not args.keep:
        for name in ("store.zarr", "retarget.zarr", "fresh.zarr"):
            shutil.rmtree(out / name, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())

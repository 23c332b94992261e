"""Benchmark: regeneration end to end (catalog -> Zarr store) on a Dask LocalCluster, and retarget.

1. ``sources.ingest_to_parquet(["synthetic:N"])``: an ICSD-like synthetic catalog (timed, reported apart).
2. ``store.simulate`` on a LocalCluster of ``--workers`` single-threaded processes: wall time from the call
   to the finished store (planning, template, every chunk, finalising; cluster start-up reported apart),
   structures/s, the peak resident memory of any worker (``ru_maxrss`` recorded in every done marker) and
   the worker CPU seconds (sum over chunks: the rate on dedicated cores when the machine is shared).
   Extrapolated to 160,000 structures: goal <= 300 s on 2 cores, worker memory < 2 GB.
3. ``store.retarget`` of that store to another wavelength and range, against two references measured in the
   same run (goal: >= 100x faster, and equal to float32 precision to a fresh simulation):

   * **re-simulating with our own simulator** (``store.simulate`` of the same catalog at the new conditions,
     same cluster): wall and worker-CPU ratios, and the largest difference between the two stores;
   * **re-simulating with pymatgen's XRDCalculator** (the seed's simulator): ``get_pattern`` timed in this
     process (CPU and wall seconds) on a seeded random sample of ``--pymatgen-sample`` structures of the same
     catalog at the new wavelength and range, **extrapolated** to the whole catalog (per-structure mean x N; for
     the wall ratio, divided by the number of workers as if it parallelised perfectly). It computes a stick
     pattern only (no profile on a grid, no store), so the ratio flatters pymatgen.

4. Anatomy of one chunk (the client process replays the phases of a retarget task and of a simulate task on
   the stores just made, single-threaded, CPU time): where the time per structure goes, and the floor that
   no retarget can go under: encoding and writing the float32 pattern it must produce
   (``n_points x 4`` bytes per structure before compression). That floor bounds the ratio against our own
   simulator: ``(re-simulation CPU per structure) / (encode + write CPU per structure)``.

Usage::

    python bench/regenerate.py [--n 20000] [--workers 2] [--chunk-size 500] [--out /tmp/xrdbatch-bench-regen]
                               [--catalog existing-synthetic-catalog.parquet] [--pymatgen-sample 300]

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


def _markers_cpu(store_path: str) -> tuple[float, int, float]:
    """(worker CPU s summed over chunks, peak worker RSS bytes, task wall s summed over chunks)."""
    from xrdbatch import store

    markers = store.done_chunks(store_path).values()
    return (sum(m.get("cpu_seconds", 0.0) for m in markers), max(m["worker_peak_rss_bytes"] for m in markers),
            sum(m.get("seconds", 0.0) for m in markers))


def _phases(store_path: str) -> dict[str, float]:
    """Worker CPU seconds per task phase (read, reflections, render, write, link), summed over chunks."""
    from xrdbatch import store

    out: dict[str, float] = {}
    for marker in store.done_chunks(store_path).values():
        for name, sec in marker.get("phases_cpu_seconds", {}).items():
            out[name] = out.get(name, 0.0) + sec
    return out


def _pymatgen_per_structure(catalog: str, conditions, sample: int, seed: int) -> tuple[float, float, int]:
    """Mean CPU and wall seconds of ``XRDCalculator(lambda).get_pattern`` over a seeded sample of the catalog's
    ok rows, in this process. Conversion to a pymatgen Structure happens outside the timed region.

    Returns (CPU seconds, wall seconds, structures timed).
    """
    import warnings

    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    from xrdbatch.crystal import Crystal
    from xrdbatch.sources import read_catalog

    table = read_catalog(catalog)
    table = table[table["status"] == "ok"]
    rows = table.sample(n=min(sample, len(table)), random_state=seed)
    structures = [Crystal.from_columns(row).to_structure() for row in rows.to_dict("records")]
    calc = XRDCalculator(conditions.wavelength_angstrom)
    rng = (conditions.two_theta_min_deg, conditions.two_theta_max_deg)
    calc.get_pattern(structures[0], True, rng)  # first-call imports outside the timing
    cpu = wall = 0.0
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in structures:
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                calc.get_pattern(s, True, rng)
            except Exception:  # noqa: BLE001  (a pymatgen failure is not timed)
                continue
            cpu += time.process_time() - c0
            wall += time.perf_counter() - t0
            n += 1
    return cpu / max(n, 1), wall / max(n, 1), n


def _cpu(fn, *args, **kw):
    c0 = time.process_time()
    out = fn(*args, **kw)
    return out, time.process_time() - c0


def _anatomy(source_path: str, retarget_path: str, fresh_path: str, catalog: str, new, chunks: int,
             scratch: Path) -> dict:
    """Replay the phases of retarget and simulate tasks on ``chunks`` chunks, CPU us per structure each."""
    import numcodecs
    import zarr

    from xrdbatch import simulate as sim
    from xrdbatch import store
    from xrdbatch.crystal import Crystal

    ds_attrs = dict(zarr.open_group(source_path, mode="r").attrs)
    chunk_size = int(ds_attrs["chunk_size"])
    n_rows = zarr.open_array(source_path, path="sim_status", mode="r").shape[0]
    tasks = store.plan_chunks(n_rows, chunk_size)[:chunks]
    n = sum(t.size for t in tasks)
    codec = store.INTENSITY_CODEC
    blosc = numcodecs.Blosc(codec["cname"], codec["clevel"], {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[
        codec["shuffle"]])
    shutil.rmtree(scratch, ignore_errors=True)
    # load the numba kernels from their cache (~1 s of CPU per process) outside the timing
    sim.patterns_from_flat(np.array([2.0]), np.array([1.0]), np.array([0, 1]), new)
    sim.reflections(Crystal(np.eye(3) * 4.0, ["Si"], [[0, 0, 0]], [1.0], [0.0]), new.d_min_angstrom)
    scratch_arr = zarr.create_array(str(scratch), shape=(chunk_size * chunks, new.n_points),
                                    chunks=(chunk_size, new.n_points), dtype="float32",
                                    fill_value=np.float32("nan"), compressors=zarr.codecs.BloscCodec(**codec))
    t = dict.fromkeys(("retarget: read counts + reflections", "render (patterns_from_flat)", "encode (Blosc LZ4)",
                       "zarr region write (incl. encode)", "simulate: read catalog rows",
                       "simulate: reflections (per structure)"), 0.0)
    info = store.read_catalog_info(catalog)
    staged, starts = store.stage_catalog(info, fresh_path, chunk_size)
    work = store.SimulateChunks(fresh_path, staged, new.to_json(), new.d_min_angstrom, "", starts)
    for k, task in enumerate(tasks):
        def read():
            counts = zarr.open_array(source_path, path="reflections/count", mode="r")[task.start:task.stop]
            group = zarr.open_group(source_path, path=f"reflections/chunk-{task.index:06d}", mode="r")
            return counts, group["d_angstrom"][:], group["intensity"][:]
        (counts, d, inten), c = _cpu(read)
        t["retarget: read counts + reflections"] += c
        keep = d >= new.d_min_angstrom
        owner = np.repeat(np.arange(task.size), counts)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=task.size))]).astype(np.int64)
        y, c = _cpu(sim.patterns_from_flat, d[keep], inten[keep], offsets, new)
        t["render (patterns_from_flat)"] += c
        t["encode (Blosc LZ4)"] += _cpu(blosc.encode, np.ascontiguousarray(y))[1]
        region = slice(k * chunk_size, k * chunk_size + task.size)
        t["zarr region write (incl. encode)"] += _cpu(scratch_arr.__setitem__, region, y)[1]
        rows, c = _cpu(work.read_rows, task)
        t["simulate: read catalog rows"] += c
        c0 = time.process_time()
        for row in rows[rows["status"] == "ok"].to_dict("records"):
            try:
                sim.reflections(Crystal.from_columns(row), new.d_min_angstrom)
            except Exception:  # noqa: BLE001
                pass
        t["simulate: reflections (per structure)"] += time.process_time() - c0
    out = {name: 1e6 * sec / n for name, sec in t.items()}
    chunk_files = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(retarget_path, "intensity", "c"))
                   for f in fs]
    n_all = zarr.open_array(retarget_path, path="sim_status", mode="r").shape[0]
    out["bytes written per structure (intensity, compressed)"] = sum(map(os.path.getsize, chunk_files)) / n_all
    out["bytes per structure before compression"] = 4.0 * new.n_points
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="synthetic structures (default 20000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/xrdbatch-bench-regen")
    parser.add_argument("--keep", action="store_true", help="keep the stores (default: delete at the end)")
    parser.add_argument("--catalog", default=None, help="reuse this synthetic catalog instead of ingesting one")
    parser.add_argument("--pymatgen-sample", type=int, default=300,
                        help="structures of the catalog timed with pymatgen's XRDCalculator (default 300)")
    parser.add_argument("--anatomy-chunks", type=int, default=4, help="chunks replayed for the time breakdown")
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
                     "conditions": conditions.to_dict(), "retarget_conditions": new.to_dict(),
                     "load_average_start": os.getloadavg()}

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
        cpu, peak, _ = _markers_cpu(store_path)
        results.update(simulate_worker_cpu_s=cpu, worker_peak_rss_bytes=peak, n_ok=sim.n_ok, n_failed=sim.n_failed)
        print(sim)

        # retarget vs re-simulating at the new conditions (the reference), same cluster, same run
        retarget_path = str(out / "retarget.zarr")
        t = time.perf_counter()
        store.retarget(store_path, retarget_path, new, client=client, progress=True)
        results["retarget_s"] = time.perf_counter() - t
        results["retarget_worker_cpu_s"], _, results["retarget_task_wall_s"] = _markers_cpu(retarget_path)
        results["retarget_phases_cpu_s"] = _phases(retarget_path)
        fresh_path = str(out / "fresh.zarr")
        t = time.perf_counter()
        store.simulate(catalog, fresh_path, new, chunk_size=args.chunk_size, client=client, progress=True)
        results["resimulate_s"] = time.perf_counter() - t
        results["resimulate_worker_cpu_s"], _, results["resimulate_task_wall_s"] = _markers_cpu(fresh_path)
        results["resimulate_phases_cpu_s"] = _phases(fresh_path)

    a = store.open_dataset(retarget_path)
    b = store.open_dataset(fresh_path)
    max_diff = 0.0
    for start in range(0, a.sizes["structure"], 5000):
        sl = slice(start, start + 5000)
        max_diff = max(max_diff, float(np.max(np.abs(a["intensity"][sl].values - b["intensity"][sl].values))))
    results["retarget_max_abs_diff"] = max_diff
    results["retarget_status_equal"] = bool((a["sim_status"].values == b["sim_status"].values).all())

    # pymatgen (the seed's simulator) on a sample of the same catalog, after the cluster is gone
    pmg_s, pmg_wall_s, pmg_n = _pymatgen_per_structure(catalog, new, args.pymatgen_sample, args.seed)
    results.update(pymatgen_cpu_per_structure_s=pmg_s, pymatgen_wall_per_structure_s=pmg_wall_s, pymatgen_sample=pmg_n)
    results["anatomy_us_per_structure"] = anatomy = _anatomy(store_path, retarget_path, fresh_path, catalog, new,
                                                             args.anatomy_chunks, out / "scratch.zarr")
    results["load_average_end"] = os.getloadavg()

    n, w = args.n, args.workers
    rate = n / results["simulate_s"]
    rate_cpu = n / (results["simulate_worker_cpu_s"] / w)
    pmg_cpu_total = pmg_s * n
    # wall: measured per structure in one process on the same (shared) machine, spread over the w workers
    pmg_wall = pmg_wall_s * n / w
    results.update(
        structures_per_s=rate, structures_per_s_dedicated=rate_cpu,
        extrapolated_160k_s=GOAL_N / rate, extrapolated_160k_dedicated_s=GOAL_N / rate_cpu,
        retarget_speedup=results["resimulate_s"] / results["retarget_s"],
        retarget_speedup_cpu=results["resimulate_worker_cpu_s"] / max(results["retarget_worker_cpu_s"], 1e-9),
        pymatgen_extrapolated_cpu_s=pmg_cpu_total, pymatgen_extrapolated_wall_s=pmg_wall,
        retarget_speedup_vs_pymatgen=pmg_wall / results["retarget_s"],
        retarget_speedup_vs_pymatgen_cpu=pmg_cpu_total / max(results["retarget_worker_cpu_s"], 1e-9),
    )
    resim_us = 1e6 * results["resimulate_worker_cpu_s"] / n
    retarget_us = 1e6 * results["retarget_worker_cpu_s"] / n
    floor_us = anatomy["zarr region write (incl. encode)"]
    results.update(resimulate_cpu_us_per_structure=resim_us, retarget_cpu_us_per_structure=retarget_us,
                   write_floor_cpu_us_per_structure=floor_us, ceiling_ratio_vs_own_simulate=resim_us / floor_us)
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))

    def verdict(ratio: float) -> str:
        return "MEETS >= 100x" if ratio >= 100 else "does NOT meet >= 100x"

    mib = results["worker_peak_rss_bytes"] / 2**20
    print()
    print(f"regenerate {n} synthetic structures on {w} worker processes x 1 thread, chunk {args.chunk_size}; "
          f"load average {results['load_average_start'][0]:.2f} at start, {results['load_average_end'][0]:.2f} at end")
    print(f"  ingest (apart)          {results['ingest_s']:8.1f} s")
    print(f"  simulate, wall          {results['simulate_s']:8.1f} s   {rate:8.0f} structures/s"
          f"   -> 160k in {GOAL_N / rate:6.0f} s (goal <= {GOAL_SECONDS:.0f} s)")
    print(f"  simulate, worker CPU    {results['simulate_worker_cpu_s']:8.1f} s   {rate_cpu:8.0f} structures/s on "
          f"{w} dedicated cores -> 160k in {GOAL_N / rate_cpu:6.0f} s")
    print(f"  peak worker memory      {mib:8.0f} MiB (goal < 2048 MiB)")
    print()
    print(f"retarget to {new.wavelength_angstrom} A, {new.two_theta_min_deg}-{new.two_theta_max_deg} deg "
          f"({new.n_points} points), goal >= 100x faster than re-simulating and equal to a fresh simulation:")
    print(f"  retarget                wall {results['retarget_s']:7.2f} s   worker CPU "
          f"{results['retarget_worker_cpu_s']:7.2f} s   ({retarget_us:.0f} us CPU per structure)")
    print(f"  re-simulate (ours)      wall {results['resimulate_s']:7.2f} s   worker CPU "
          f"{results['resimulate_worker_cpu_s']:7.2f} s   ({resim_us:.0f} us CPU per structure)")
    print(f"  pymatgen XRDCalculator  wall {pmg_wall:7.1f} s   CPU {pmg_cpu_total:8.1f} s   EXTRAPOLATED from "
          f"{pmg_n} sampled structures ({1e3 * pmg_s:.2f} ms CPU, {1e3 * pmg_wall_s:.2f} ms wall each; wall / {w} "
          "workers as if perfectly parallel; sticks only)")
    own = min(results["retarget_speedup"], results["retarget_speedup_cpu"])
    print(f"  ratio vs our simulate:  wall {results['retarget_speedup']:6.1f}x   worker CPU "
          f"{results['retarget_speedup_cpu']:6.1f}x   -> {verdict(own)}")
    print(f"  ratio vs pymatgen:      wall {results['retarget_speedup_vs_pymatgen']:6.0f}x   CPU "
          f"{results['retarget_speedup_vs_pymatgen_cpu']:6.0f}x   -> "
          f"{verdict(min(results['retarget_speedup_vs_pymatgen'], results['retarget_speedup_vs_pymatgen_cpu']))}"
          f" (extrapolated)")
    print(f"  retarget vs fresh simulation: max |diff| {max_diff:.3g} (float32 eps 1.2e-7); sim_status equal: "
          f"{results['retarget_status_equal']}")
    print()
    print("where the time goes, per structure (worker CPU per task phase from the done markers; the rest of the wall")
    print("time is the client: planning, template, Dask scheduling, finalising)")
    for label, key in (("retarget", "retarget"), ("re-simulate", "resimulate")):
        phases = "  ".join(f"{name} {1e6 * sec / n:6.1f}" for name, sec in results[f"{key}_phases_cpu_s"].items())
        outside = results[f"{key}_s"] - results[f"{key}_task_wall_s"] / w
        print(f"  {label:12s} CPU us: {phases}   | wall outside tasks ~{outside:5.2f} s "
              f"({1e6 * outside / n:5.1f} us/structure)")
    print()
    print(f"anatomy: CPU us per structure, {args.anatomy_chunks} chunks replayed in this process")
    for name, value in anatomy.items():
        unit = "bytes" if name.startswith("bytes") else "us"
        print(f"  {name:52s} {value:9.1f} {unit}")
    # The floor: whatever else is removed, a retarget must encode and write n_points float32 per structure.
    print(f"  floor of any retarget (encode + write of the pattern) {floor_us:.1f} us; re-simulation "
          f"{resim_us:.0f} us -> best possible ratio vs our simulate ~{resim_us / floor_us:.0f}x "
          f"({'so 100x is arithmetically impossible' if resim_us / floor_us < 100 else '100x is within reach'})")
    if not args.keep:
        for name in ("store.zarr", "retarget.zarr", "fresh.zarr"):
            shutil.rmtree(out / name, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())

"""Benchmark: structure ingest (parse + symmetry expansion + sanity checks + spglib labels), structures/s/core.

On one sample of CIF files (the same files for every contender, in the same run):

* **xrdbatch**: ``sources.read_cif`` (gemmi) + ``sources.make_row`` (checks, spglib labels, catalog row);
* **pymatgen parse**: ``CifParser(path).parse_structures(primitive=False)`` -- parsing only;
* **pymatgen parse + labels**: the same plus ``SpacegroupAnalyzer`` (space group, conventional cell), i.e.
  what xrdbatch does, done the pymatgen way.

Each is timed serially in this process, in CPU seconds (``time.process_time``, robust to other jobs on a
shared machine) and wall seconds; rates are structures per second per core, with ratios against pymatgen.
Then every ingest task of the folders runs on ``--workers`` forked processes: records per second per core by
wall clock and per worker CPU second (the latter is what a free core would do; the machine load is printed).

Goal (issue 2): >= 300 structures/s/core including labels. Nothing here gates CI.

Usage::

    python bench/ingest.py [--sample 400] [--workers 2] [--folders DIR ...] [--seed 0]

Default folders: ../shared/data/structures/{aflow_prototypes,autoxrd_references,cif_edge_cases}.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "structures"


def _timed(fn, files):
    """(cpu seconds, wall seconds, structures made) of fn over files."""
    c0, w0 = time.process_time(), time.perf_counter()
    n = sum(fn(f) for f in files)
    return time.process_time() - c0, time.perf_counter() - w0, n


def run_xrdbatch(path: Path) -> int:
    from xrdbatch import sources

    options = sources.Options()
    rows = [sources.make_row(raw, "bench", str(path), options) for raw in sources.read_cif(path, path.read_bytes())]
    return sum(r["status"] == "ok" for r in rows)


def run_pymatgen_parse(path: Path) -> int:
    from pymatgen.io.cif import CifParser

    try:
        return len(CifParser(path).parse_structures(primitive=False))
    except Exception:  # noqa: BLE001 - pymatgen raises on malformed files; they count as zero structures
        return 0


def run_pymatgen_labels(path: Path) -> int:
    from pymatgen.io.cif import CifParser
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        structures = CifParser(path).parse_structures(primitive=False)
    except Exception:  # noqa: BLE001
        return 0
    n = 0
    for s in structures:
        try:
            sga = SpacegroupAnalyzer(s, symprec=1e-3)
            sga.get_space_group_number()
            sga.get_conventional_standard_structure().lattice.abc
            n += 1
        except Exception:  # noqa: BLE001
            pass
    return n


def _timed_task(task, options):
    """Run one ingest task in a worker; return (records, worker CPU seconds)."""
    from xrdbatch import sources

    c0 = time.process_time()
    n = sources.run_task_table(task, options).num_rows
    return n, time.process_time() - c0


def parallel_rate(specs, workers: int, **plan_kw):
    """Ingest tasks on ``workers`` forked processes: (records, wall s, summed worker CPU s)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from xrdbatch import sources

    tasks = sources.plan(specs, **plan_kw)
    options = sources.Options()
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        results = list(pool.map(_timed_task, tasks, [options] * len(tasks)))
    wall = time.perf_counter() - t0
    return sum(n for n, _ in results), wall, sum(c for _, c in results)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folders", nargs="*", default=[str(SHARED / d) for d in
                                                      ("aflow_prototypes", "autoxrd_references", "cif_edge_cases")])
    p.add_argument("--sample", type=int, default=400, help="CIF files timed serially against pymatgen")
    p.add_argument("--workers", type=int, default=2, help="local processes of the parallel ingest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-parallel", action="store_true")
    args = p.parse_args(argv)

    import numpy as np

    from xrdbatch import sources

    folders = [Path(f) for f in args.folders if Path(f).is_dir()]
    if not folders:
        print(f"no input folders ({args.folders}); point --folders at CIF folders", file=sys.stderr)
        return 2
    files = sorted(f for d in folders for f in d.rglob("*.cif"))
    rng = np.random.default_rng(args.seed)
    sample = [files[i] for i in sorted(rng.choice(len(files), size=min(args.sample, len(files)), replace=False))]
    print(f"sample: {len(sample)} of {len(files)} CIF files under {', '.join(str(f) for f in folders)}")

    warnings.simplefilter("ignore")
    for fn in (run_xrdbatch, run_pymatgen_parse, run_pymatgen_labels):  # imports and caches outside the timing
        fn(sample[0])
    results = {}
    for name, fn in (("xrdbatch (gemmi + spglib labels)", run_xrdbatch),
                     ("pymatgen CifParser (parse only)", run_pymatgen_parse),
                     ("pymatgen CifParser + SpacegroupAnalyzer", run_pymatgen_labels)):
        results[name] = _timed(fn, sample)
    ref = results["pymatgen CifParser (parse only)"]
    print(f"\n{'serial, one core':42s} {'structures':>10s} {'cpu s':>7s} {'wall s':>7s} {'/s/core (cpu)':>14s} "
          f"{'ms/file':>8s} {'x pymatgen parse':>17s}")
    for name, (cpu, wall, n) in results.items():
        rate = n / cpu if cpu else float("nan")
        print(f"{name:42s} {n:10d} {cpu:7.2f} {wall:7.2f} {rate:14.0f} {1e3 * cpu / len(sample):8.2f} "
              f"{(n / cpu) / (ref[2] / ref[0]):17.1f}")
    full = results["pymatgen CifParser + SpacegroupAnalyzer"]
    mine = results["xrdbatch (gemmi + spglib labels)"]
    print(f"per file (CPU): xrdbatch {1e3 * mine[0] / len(sample):.2f} ms, pymatgen parse {1e3 * ref[0] / len(sample):.2f} ms "
          f"({ref[0] / mine[0]:.1f}x), pymatgen parse+labels {1e3 * full[0] / len(sample):.2f} ms "
          f"({full[0] / mine[0]:.1f}x)")

    if not args.skip_parallel:
        import os

        n, wall, cpu = parallel_rate([str(f) for f in folders], args.workers)
        print(f"\nparallel ingest tasks over all {n} records on {args.workers} processes: {wall:.1f} s wall "
              f"({n / wall / args.workers:.0f} records/s/core by wall clock), {cpu:.1f} worker CPU s "
              f"({n / cpu:.0f} records per CPU second); load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores (other jobs share them)")
    print("\ngoal (issue 2): >= 300 structures/s/core including labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the synthetic:N generator, structures/s/core, against pyxtal in the same run.

* **xrdbatch** ``synthetic.rows`` (generation + spglib labels + catalog row), serially in this process,
  CPU seconds (``time.process_time``, robust to other jobs on a shared machine) and wall seconds;
* **pyxtal** ``pyxtal().from_random(3, sg, species, counts)`` for the same space groups and compositions as
  the first ``--pyxtal`` xrdbatch crystals (generation only, no labels), if pyxtal is installed;
* the ``synthetic:N`` tasks on ``--workers`` forked processes: rate by wall clock and per worker CPU second,
  and the projected time for 160,000 structures on 2 free cores.

Also prints the population: median / 90th percentile atoms per cell, volume per atom, spglib == drawn
space group, crystal systems. Goal (issue 2): 160k structures in well under an hour on 2 cores.

Usage::

    python bench/synthetic.py [--n 2000] [--workers 2] [--pyxtal 40] [--seed 0] [--labeller spglib]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from ingest import parallel_rate  # the same parallel timing as bench/ingest.py (bench/ is on sys.path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="structures generated serially")
    p.add_argument("--parallel-n", type=int, default=4000, help="structures of the parallel ingest (0: skip)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pyxtal", type=int, default=40, help="structures for the pyxtal reference (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labeller", default="spglib", help="symmetry finder of the labels (spglib, moyopy)")
    args = p.parse_args(argv)

    import numpy as np
    import pandas as pd

    from xrdbatch import sources, synthetic

    options = sources.Options(labeller=args.labeller)
    synthetic.rows(0, 2, seed=args.seed + 1, options=options)  # tables and imports outside the timing
    c0, w0 = time.process_time(), time.perf_counter()
    rows = synthetic.rows(0, args.n, seed=args.seed, source=f"synthetic:{args.n}", options=options)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    df = pd.DataFrame(rows)
    ok = df[df.status == "ok"]
    rate = len(df) / cpu
    print(f"xrdbatch synthetic (labels by {args.labeller}), serial: {len(df)} structures in {cpu:.1f} CPU s ({wall:.1f} s wall): "
          f"{rate:.0f} structures/s/core (CPU), {len(df) / wall:.0f}/s wall; {1e3 * cpu / len(df):.2f} ms each")
    vpa = ok.volume / ok.occupancies.map(sum)
    print(f"  population: ok {len(ok)}/{len(df)}; atoms/cell median {ok.n_atoms.median():.0f}, "
          f"90th pct {ok.n_atoms.quantile(0.9):.0f}, max {ok.n_atoms.max()}; volume/atom median {vpa.median():.1f} "
          f"angstrom^3 (5-95 %: {vpa.quantile(0.05):.1f}-{vpa.quantile(0.95):.1f}); {args.labeller} == drawn space group "
          f"{(ok.spacegroup_number == ok.stated_spacegroup_number).mean():.1%}; "
          f"{ok.spacegroup_number.nunique()} space groups")
    print("  crystal systems: " + ", ".join(f"{k} {v:.1%}" for k, v in
                                             ok.crystal_system.value_counts(normalize=True).items()))

    if args.pyxtal:
        try:
            from pyxtal import pyxtal
        except ImportError:
            print("pyxtal not installed: no reference")
        else:
            warnings.simplefilter("ignore")
            todo = []
            for row in ok.head(args.pyxtal).itertuples():
                species, counts = np.unique(np.asarray(row.symbols), return_counts=True)
                todo.append((int(row.stated_spacegroup_number), species.tolist(), counts.tolist()))
            c0 = time.process_time()
            made = 0
            for sg, species, counts in todo:
                try:
                    x = pyxtal()
                    x.from_random(3, sg, species, counts, random_state=args.seed)
                    made += bool(x.valid)
                except Exception:  # noqa: BLE001 - pyxtal raises on compositions it cannot place
                    pass
            px_cpu = time.process_time() - c0
            px_rate = len(todo) / px_cpu
            print(f"pyxtal from_random, same {len(todo)} space groups and compositions: {made} made in "
                  f"{px_cpu:.1f} CPU s: {px_rate:.1f} structures/s/core (generation only, no labels); "
                  f"xrdbatch is {rate / px_rate:.0f}x faster")

    if args.parallel_n:
        import os

        n, wall, cpu = parallel_rate([f"synthetic:{args.parallel_n}"], args.workers, labeller=args.labeller,
                                     seed=args.seed, batch_size=250)
        per_cpu = n / cpu
        print(f"parallel synthetic:{args.parallel_n} on {args.workers} processes: {wall:.1f} s wall "
              f"({n / wall / args.workers:.0f}/s/core by wall clock), {cpu:.1f} worker CPU s ({per_cpu:.0f} per CPU "
              f"second); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores. 160,000 on 2 free cores: "
              f"{160_000 / (per_cpu * 2) / 60:.1f} min")
    print("goal (issue 2): 160,000 structures in well under an hour on 2 cores (aim >= 500/s/core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

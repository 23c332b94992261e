"""CPU cost of the feature sets and their blocks, per pattern, against ``measured`` in the same run.

Peaks are found once (on the labelled RRUFF dev patterns); every block of every requested set is then timed on
its own, and every set as the product computes it (``features.from_peaks``: blocks in order; ``indexed3``'s
``consensus_centring`` runs one trial-cell scan for the columns of ``consensus`` and ``centring``), after one
warm-up call (numba compiles on first use). Each timed call gets a fresh copy of the Peaks table. Prints
CPU and wall time per pattern next to the load average, and each set's cost as a ratio of ``measured`` (the
product default) measured in the same run.

Usage::

    python bench/features.py                         # RRUFF dev, all feature sets
    python bench/features.py --sets measured,indexed,indexed3 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xrdbatch import features  # noqa: E402

RRUFF = ROOT.parent / "shared" / "data" / "measured" / "rruff_minerals_dev"


def rruff_peaks(peak_params: dict, limit: int | None = None):
    """Peaks of the RRUFF dev patterns on the bench's instrument grid (as ``bench/accuracy.py`` reads them)."""
    import pandas as pd

    from xrdbatch import readers, score
    from xrdbatch.conditions import Conditions

    conditions = Conditions.from_radiation("CuKa12", two_theta_min_deg=5.0, two_theta_max_deg=89.99,
                                           two_theta_step_deg=0.01)
    files = pd.read_csv(RRUFF / "labels.csv")["file"].tolist()[:limit]
    rows = []
    for f in files:
        pattern = readers.read_patterns(str(RRUFF / f))[0]
        tt, y, _ = score.prepare_pattern(pattern, conditions, 1.540598)
        rows.append(y)
    tt = conditions.two_theta_deg()
    t0, c0 = time.perf_counter(), time.process_time()
    peaks = features.find_peaks(tt, np.stack(rows), conditions.wavelength_angstrom, **peak_params)
    return peaks, (time.perf_counter() - t0, time.process_time() - c0)


def _best_time(call, peaks, repeat: int):
    """``(wall s, CPU s)`` of the call with the least CPU time among ``repeat`` calls after a warm-up call, each
    on a fresh copy of ``peaks`` (a block remembers its last search by the identity of the Peaks arrays)."""
    call(features.Peaks(*[a.copy() for a in peaks]))  # warm-up (numba compile / cache load)
    best = (np.inf, np.inf)
    for _ in range(repeat):
        fresh = features.Peaks(*[a.copy() for a in peaks])
        t0, c0 = time.perf_counter(), time.process_time()
        call(fresh)
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0), key=lambda t: t[1])
    return best


def time_blocks(peaks, blocks, repeat: int) -> dict:
    """``{(block, k): (wall s, CPU s)}`` of each block on its own (best of ``repeat`` calls)."""
    return {(block, k): _best_time(lambda p, b=block, k=k: features.BLOCKS[b](p, k), peaks, repeat)
            for block, k in blocks}


def time_sets(peaks, sets, repeat: int) -> dict:
    """``{set: (wall s, CPU s)}`` of each feature set as the product computes it (``features.from_peaks``)."""
    return {s: _best_time(lambda p, s=s: features.from_peaks(p, s), peaks, repeat) for s in sets}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default=",".join(features.FEATURE_SETS), help="comma-separated feature sets")
    p.add_argument("--repeat", type=int, default=3, help="timed calls per block (best CPU time is kept)")
    p.add_argument("--limit", type=int, default=None, help="first N RRUFF patterns only")
    p.add_argument("--height-rel", type=float, default=0.04)
    args = p.parse_args(argv)
    sets = args.sets.split(",")
    if "measured" not in sets:
        sets.insert(0, "measured")
    if not RRUFF.exists():
        print(f"{RRUFF} not found: this bench needs the shared measured data", file=sys.stderr)
        return 2
    peaks, (pw, pc) = rruff_peaks({"height_rel": args.height_rel}, args.limit)
    n = peaks.n_patterns
    load = os.getloadavg()[0]
    print(f"{n} RRUFF dev patterns, median {np.median(peaks.count):.0f} peaks (height_rel {args.height_rel}); "
          f"load {load:.1f} (2 cores shared)")
    print(f"find_peaks (all patterns in one call): {1e3 * pc / n:.3f} ms CPU / pattern ({1e3 * pw / n:.3f} wall)")
    blocks = sorted({bk for s in sets for bk in features.FEATURE_SETS[s].blocks})
    cost = time_blocks(peaks, blocks, args.repeat)
    print(f"\n{'block (alone)':<16} {'k':>3} {'ms CPU/pattern':>15} {'ms wall/pattern':>16}")
    for (b, k), (w, c) in sorted(cost.items(), key=lambda kv: -kv[1][1]):
        print(f"{b:<16} {k:>3} {1e3 * c / n:15.3f} {1e3 * w / n:16.3f}")
    set_cost = time_sets(peaks, sets, args.repeat)
    ref = set_cost["measured"][1]
    print(f"\n{'feature set':<12} {'cols':>5} {'ms CPU/pattern':>15} {'ms wall/pattern':>16} {'x measured (CPU)':>17} "
          f"{'sum of blocks':>14}")
    for s in sets:
        w, c = set_cost[s]
        c_blocks = sum(cost[bk][1] for bk in features.FEATURE_SETS[s].blocks)
        print(f"{s:<12} {features.FEATURE_SETS[s].n_features:>5} {1e3 * c / n:15.3f} {1e3 * w / n:16.3f} "
              f"{c / ref:17.2f} {1e3 * c_blocks / n:14.3f}")
    print("(a set: features.from_peaks, blocks in order; sum of blocks: each block of the set timed on its own)")
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""CPU cost of the feature sets and their blocks, per pattern, against ``measured`` in the same run.

Peaks are found once (on the labelled RRUFF dev patterns, or on measurement-like simulated patterns when the
shared data is absent); every block of every requested set is then timed on the same Peaks table, after one
warm-up call (numba compiles on first use). Prints CPU and wall time per pattern next to the load average,
and each set's cost as a ratio of ``measured`` (the product default) measured in the same run.

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


def time_blocks(peaks, blocks, repeat: int) -> dict:
    """``{(block, k): (wall s, CPU s)}``: best of ``repeat`` calls after a warm-up call."""
    out = {}
    for block, k in blocks:
        features.BLOCKS[block](peaks, k)  # warm-up (numba compile / cache load)
        best = (np.inf, np.inf)
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            features.BLOCKS[block](peaks, k)
            best = min(best, (time.perf_counter() - t0, time.process_time() - c0), key=lambda t: t[1])
        out[(block, k)] = best
    return out


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
    print(f"\n{'block':<16} {'k':>3} {'ms CPU/pattern':>15} {'ms wall/pattern':>16}")
    for (b, k), (w, c) in sorted(cost.items(), key=lambda kv: -kv[1][1]):
        print(f"{b:<16} {k:>3} {1e3 * c / n:15.3f} {1e3 * w / n:16.3f}")
    ref = sum(cost[bk][1] for bk in features.FEATURE_SETS["measured"].blocks)
    print(f"\n{'feature set':<12} {'cols':>5} {'ms CPU/pattern':>15} {'ms wall/pattern':>16} {'x measured (CPU)':>17}")
    for s in sets:
        bl = features.FEATURE_SETS[s].blocks
        c = sum(cost[bk][1] for bk in bl)
        w = sum(cost[bk][0] for bk in bl)
        print(f"{s:<12} {features.FEATURE_SETS[s].n_features:>5} {1e3 * c / n:15.3f} {1e3 * w / n:16.3f} "
              f"{c / ref:17.2f}")
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does the simulation look like the measurement? Peak widths and counts, measured set vs augmentation.

Issue 8's augmentation (:mod:`xrdbatch.augment`) must produce patterns like the measured ones the model will
score. This bench compares, per 2-theta band, the full width at half maximum of the 5 strongest peaks of every
pattern (half height above the lowest point within +-1 deg) and the number of peaks the product's peak finder
finds, on a labelled measured set and on measurement-like simulations of real structures rendered with the
given augmentation parameters, side by side in one run. Labels are not read: only the patterns.

Session 4 found the default widths twice as broad as the RRUFF minerals' (median FWHM 0.19-0.27 deg vs
0.09-0.11 above 20 deg 2-theta); ``bench/results/session4`` has the tables.

Usage::

    python bench/realism.py                                  # RRUFF dev vs the default augmentation
    python bench/realism.py --augment-params '{"crystallite_nm_log": [100, 1000]}'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accuracy import (DEFAULT_CACHE, MEASURED_SETS, measured_patterns, reflections_of_catalog,  # noqa: E402
                            target_conditions)
from xrdbatch import augment, features  # noqa: E402

BANDS_DEG = (5, 20, 35, 50, 65, 80)


def strongest_widths(two_theta_deg, rows, n_peaks: int = 5, window_deg: float = 1.0) -> np.ndarray:
    """``(m, 2)`` rows of (position, FWHM) in degrees of the ``n_peaks`` strongest maxima of each pattern, at
    least ``window_deg`` apart; half height is taken above the lowest point within ``+-window_deg``."""
    tt = np.asarray(two_theta_deg, dtype=np.float64)
    w = max(1, int(round(window_deg / (tt[1] - tt[0]))))
    out = []
    for y in np.asarray(rows, dtype=np.float64):
        left = y.copy()
        for _ in range(n_peaks):
            i = int(np.argmax(left))
            if left[i] <= 0:
                break
            lo, hi = max(0, i - w), min(y.size, i + w + 1)
            half = y[lo:hi].min() + (y[i] - y[lo:hi].min()) / 2
            a = i
            while a > lo and y[a] > half:
                a -= 1
            b = i
            while b < hi - 1 and y[b] > half:
                b += 1
            out.append((tt[i], tt[b] - tt[a]))
            left[lo:hi] = 0
    return np.array(out).reshape(-1, 2)


def summary(widths: np.ndarray, counts: np.ndarray) -> list[str]:
    lines = [f"  peaks found per pattern: median {np.median(counts):.0f}, p10 {np.percentile(counts, 10):.0f}, "
             f"p90 {np.percentile(counts, 90):.0f}"]
    for lo, hi in zip(BANDS_DEG[:-1], BANDS_DEG[1:]):
        m = (widths[:, 0] >= lo) & (widths[:, 0] < hi)
        if m.any():
            v = widths[m, 1]
            lines.append(f"  2-theta {lo:2d}-{hi:2d}: {m.sum():5d} peaks, FWHM median {np.median(v):.3f} deg, "
                         f"p10 {np.percentile(v, 10):.3f}, p90 {np.percentile(v, 90):.3f}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", default="rruff_minerals_dev", choices=sorted(MEASURED_SETS))
    p.add_argument("--catalog", default=str(DEFAULT_CACHE / "catalog_real.parquet"),
                   help="catalog Parquet of the structures to simulate (xrdbatch ingest)")
    p.add_argument("--n", type=int, default=500, help="simulated patterns")
    p.add_argument("--augment-params", default="{}", help="JSON of xrdbatch.augment.AugmentParams fields")
    p.add_argument("--peak-params", default='{"height_rel": 0.04}', help="JSON of xrdbatch.features.PeakParams")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = p.parse_args(argv)
    conditions = target_conditions()
    peak_params = json.loads(args.peak_params)

    # measured files may sit on different grids (ranges): widths and peak counts file by file
    widths_m, counts_m = [], []
    for _, tt, y in measured_patterns(MEASURED_SETS[args.set](), conditions):
        widths_m.append(strongest_widths(tt, y[None, :]))
        counts_m.append(features.find_peaks(tt, y[None, :], conditions.wavelength_angstrom, **peak_params).count[0])
    print(f"measured: {args.set} ({len(counts_m)} patterns)")
    print("\n".join(summary(np.concatenate(widths_m), np.array(counts_m))))

    refls, _ = reflections_of_catalog(args.catalog, conditions.d_min_angstrom * 0.98, args.cache)
    pick = np.random.default_rng(0).choice(len(refls), min(args.n, len(refls)), replace=False)
    params = augment.AugmentParams.from_dict(json.loads(args.augment_params))
    rows, _ = augment.measured_patterns([refls[i] for i in pick], conditions, params=params, seed=0)
    tt = conditions.two_theta_deg()
    peaks = features.find_peaks(tt, rows, conditions.wavelength_angstrom, **peak_params)
    print(f"simulated: {len(rows)} structures of {Path(args.catalog).name}, augmentation {args.augment_params}")
    print("\n".join(summary(strongest_widths(tt, rows), peaks.count)))
    print(f"load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

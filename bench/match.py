"""Benchmark: search-match (:func:`xrdbatch.match.best_matches`) against libraries of growing size.

Libraries of ICSD-like entries (``xrdbatch.train.synthetic_lattice_features``, feature set ``measured``) of
``--sizes`` entries; queries: ``--queries`` unseen patterns (nothing should match) and as many library entries
with every line scaled by a random +-0.3 % and their third-strongest line removed (they should match). Printed per
size, CPU time per query row and view:

* the product path (``min_score`` = :data:`xrdbatch.match.MIN_SCORE`: only entries whose forward fraction can
  reach it are scored in full);
* the reference measured in the same run: every entry scored in full (``min_score=0``) on ``--reference-rows``
  of the queries, up to ``--reference-max`` entries (it costs ~1.5 us per entry and row);
* their ratio, and whether the two agree on the score and entry of every row that scores ``MIN_SCORE`` or more
  (rows below it report no match on the product path); the rows decided at the threshold.

Usage::

    python bench/match.py [--sizes 2000 10000 40000 160000] [--queries 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 40000, 160000])
    parser.add_argument("--queries", type=int, default=200, help="unseen rows, and as many library rows")
    parser.add_argument("--reference-rows", type=int, default=60)
    parser.add_argument("--reference-max", type=int, default=40000)
    args = parser.parse_args(argv)

    from xrdbatch import features, match, train

    n_max = max(args.sizes)
    X, labels = train.synthetic_lattice_features(n_max + args.queries, "measured", seed=1)
    names = features.feature_names("measured")
    labels = labels.rename(columns={"spacegroup_number": "space_group"})
    q_cols = [names.index(c) for c in match._ALL]
    rng = np.random.default_rng(0)
    print(f"search-match, feature set measured, tolerance {match.TOLERANCE}, min_score {match.MIN_SCORE}, "
          f"threshold {match.THRESHOLD}; {args.queries} unseen + {args.queries} perturbed library rows per size")
    for n in args.sizes:
        known = X[rng.choice(n, args.queries, replace=False)].copy()
        scale = rng.uniform(0.997, 1.003, (len(known), 1))
        known[:, q_cols] = np.where(known[:, q_cols] > 0, known[:, q_cols] * scale, known[:, q_cols])
        known[:, names.index("strongest_q_3")] = features.MISSING
        rows = np.concatenate([X[n_max:n_max + args.queries], known])
        library = match.ReferenceLibrary.from_features(X[:n], names, labels.iloc[:n])
        t = time.process_time()
        library.sorted_lines()
        t_index = time.process_time() - t
        t = time.process_time()
        found = match.best_matches(library, rows, names)
        t_product = (time.process_time() - t) / len(rows)
        line = (f"{n:>7} entries: {1e3 * t_product:6.3f} ms/row, {(found['match_score'] >= match.MIN_SCORE).sum():>3} "
                f"rows >= {match.MIN_SCORE}, {match.decided(found).sum():>3} decided (index {1e3 * t_index:.0f} ms)")
        if n <= args.reference_max:
            sample = np.concatenate([np.arange(args.reference_rows // 2),
                                     args.queries + np.arange(args.reference_rows - args.reference_rows // 2)])
            t = time.process_time()
            full = match.best_matches(library, rows[sample], names, min_score=0)
            t_full = (time.process_time() - t) / len(sample)
            part = found.iloc[sample].reset_index(drop=True)
            high = full["match_score"].to_numpy() >= match.MIN_SCORE
            agree = (np.allclose(part["match_score"][high], full["match_score"][high])
                     and (part["match_index"][high] == full["match_index"][high]).all()
                     and (part["match_index"][~high] == -1).all())
            line += (f"; every entry scored: {1e3 * t_full:7.3f} ms/row -> {t_full / t_product:5.1f}x; "
                     f"agree on {len(sample)} rows: {agree}")
        print(line, flush=True)


if __name__ == "__main__":
    main()

"""Search-match against a reference library: is a measured pattern a structure the training set already knows?

Phase identification in the lab starts this way: the measured lines are compared with the lines of known
structures, and a structure whose strong lines are all there (and that explains the measured strong lines) is the
answer. A model trained to generalise to unseen structure types does not exploit an exact match as well as a
direct comparison does, so scoring can ask the library first and let a confident match decide.

The library is a table of known structures (the real structures a model was trained on, ideal simulation), each
with its line positions in Q taken from feature columns of the sets ``measured`` and ``indexed*``: the first 20
peaks (``q_1..q_20``) and the 10 strongest (``strongest_q_1..10``). A measured pattern matches entry ``e`` with

* ``forward`` = the fraction of the pattern's 10 strongest lines that lie within ``tolerance`` (relative, in Q) of
  a line of ``e``, and
* ``reverse`` = the fraction of ``e``'s 10 strongest lines (those inside the pattern's Q range) that lie within
  ``tolerance`` of a line of the pattern,

score ``min(forward, reverse)``: the reverse term stops a large cell with lines everywhere from matching
anything. The best entry is reported. Among entries within :data:`MARGIN` of the best score the most symmetric
(highest space-group number) wins, as an indexing program prefers the simplest cell that explains the lines: pyrite
must not be reported as its P1 description, sphalerite as a tetragonal superstructure. Entries at or above
``threshold`` (:func:`decided`) answer the pattern: :meth:`xrdbatch.train.CrystalForest.predict_frame` (``matches=``)
takes their crystal system, puts their space group first in the ranking and reports their lattice constants.

In the product the library is the bundle's ``library.parquet`` (:func:`xrdbatch.train.reference_library`: the
real structures of the ideal training store) and ``xrdbatch score --search-match`` applies it. Lines are looked
up through a sorted line list, and only entries that share enough strong lines with a pattern to reach
:data:`MIN_SCORE` are scored in full (:func:`best_matches`): ``bench/match.py`` measures 0.06 / 0.8 / 3.2 ms per
pattern and view against 2,000 / 40,000 / 160,000 ICSD-like entries, the same answers as scoring every entry.

Defaults (``tolerance`` 0.004, ``threshold`` 0.8) were chosen on RRUFF dev (``bench/results/session8/``). There,
139 of 504 measured minerals match a real training structure (over the 7 zero-shifted views); 97.8 % of those
matches have the right crystal system and 92.8 % the right space group. On held-out real structure types (not in
the library) 4.1 % of the rows take a match, 72 % of them with the right crystal system.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from xrdbatch.features import MISSING

#: Relative tolerance in Q of a line match, and the score from which a match decides (see the module docstring).
TOLERANCE = 0.004
THRESHOLD = 0.8
#: Entries within this score of the best one count as equally good; the most symmetric of them (highest space-group
#: number) is reported: a superstructure or a low-symmetry description of the same lines must not beat the simple cell.
MARGIN = 0.05
#: Rows scoring below this against every entry report no match; only entries whose forward fraction reaches
#: ``MIN_SCORE - MARGIN`` are scored in full (:func:`best_matches`).
MIN_SCORE = 0.5
#: Rows x entries x 10 cells of the boolean hit planes of one chunk of rows (bounds the chunk for big libraries).
_CELLS = 4_000_000

_STRONG = [f"strongest_q_{i + 1}" for i in range(10)]
_ALL = [f"q_{i + 1}" for i in range(20)] + _STRONG  # the strong lines are the last 10 columns


def has_line_columns(feature_names) -> bool:
    """Whether a feature set's columns hold what a match needs (sets ``measured`` and up; not ``seed11``)."""
    return set(_ALL) <= set(feature_names)


def _lines(X: np.ndarray, feature_names) -> np.ndarray:
    """``(n, 30)`` line positions in Q (``_ALL`` columns of ``X``), NaN where a pattern has no such line."""
    names = list(feature_names)
    missing = [c for c in _ALL if c not in names]
    if missing:
        raise ValueError(f"search-match needs the feature columns {missing[:3]}... (feature sets 'measured' and up)")
    out = np.asarray(X, dtype=np.float64)[:, [names.index(c) for c in _ALL]]
    return np.where((out > 0) & (out != MISSING), out, np.nan)


@dataclass
class ReferenceLibrary:
    """Known structures: ``lines`` (n, 30) Q of the first 20 and the 10 strongest lines, NaN-padded, and
    ``labels`` (n rows: ``crystal_system``, ``space_group`` and any identifying columns)."""

    lines: np.ndarray
    labels: pd.DataFrame
    _sorted: tuple | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_features(cls, X: np.ndarray, feature_names, labels: pd.DataFrame) -> ReferenceLibrary:
        """A library from feature rows of *ideal* simulations (augmented rows are strained and shifted)."""
        if len(X) != len(labels):
            raise ValueError(f"{len(X)} feature rows but {len(labels)} label rows")
        for col in ("crystal_system", "space_group"):
            if col not in labels:
                raise ValueError(f"library labels need a {col!r} column; got {list(labels.columns)}")
        return cls(_lines(X, feature_names), labels.reset_index(drop=True))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def strong(self) -> np.ndarray:
        """``(n, 10)`` Q of the 10 strongest lines (the last columns of ``lines``)."""
        return self.lines[:, -len(_STRONG):]

    def to_frame(self) -> pd.DataFrame:
        """The library as one table: the label columns, then ``q_1..20`` and ``strongest_q_1..10`` (float32,
        NaN where a pattern has fewer lines); :meth:`from_frame` reads it back (the bundle's ``library.parquet``)."""
        lines = pd.DataFrame(self.lines.astype(np.float32), columns=_ALL)
        return pd.concat([self.labels.reset_index(drop=True), lines], axis=1)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ReferenceLibrary:
        """Inverse of :meth:`to_frame`."""
        missing = [c for c in _ALL if c not in frame]
        if missing:
            raise ValueError(f"a library table needs the line columns q_1..20 and strongest_q_1..10; "
                             f"missing {missing[:3]}")
        return cls.from_features(frame[_ALL].to_numpy(dtype=np.float64), _ALL,
                                 frame.drop(columns=_ALL))

    def sorted_lines(self):
        """``(line Q, its entry)`` of every distinct line of every entry, sorted by Q (cached). A strong line is
        usually among the first 20 too: it is listed once."""
        if self._sorted is None:
            per_entry = np.sort(self.lines, axis=1)  # NaN last
            per_entry[:, 1:][per_entry[:, 1:] == per_entry[:, :-1]] = np.nan
            flat = per_entry.ravel()
            keep = np.flatnonzero(~np.isnan(flat))
            order = keep[np.argsort(flat[keep], kind="stable")]
            self._sorted = (flat[order], order // self.lines.shape[1])
        return self._sorted

    def subset(self, rows) -> ReferenceLibrary:
        rows = np.asarray(rows)
        return ReferenceLibrary(self.lines[rows], self.labels.iloc[rows].reset_index(drop=True))


def best_matches(library: ReferenceLibrary, X: np.ndarray, feature_names, tolerance: float = TOLERANCE,
                 views=(), chunk: int = 256, min_score: float = MIN_SCORE) -> pd.DataFrame:
    """The best library entry of every row of ``X``: ``match_score``, ``match_forward``, ``match_reverse``,
    ``match_index`` (-1 when nothing matches) and the entry's label columns prefixed ``match_``.

    ``min_score``: a row whose best entry scores less reports no match (score 0, index -1); only entries that
    could reach ``min_score - MARGIN`` are scored in full, which keeps big libraries cheap. Scores from
    ``min_score`` up, and the entries reported for them, are those of a comparison with every entry; 0 compares
    with every entry.

    ``views``: the same rows with their peak lists moved by zero shifts (:func:`xrdbatch.features.shifted_views`);
    each row keeps its best score over ``X`` and the views (a zero error moves low-angle lines by more than the
    tolerance)."""
    best = _best(library, X, feature_names, tolerance, chunk, min_score)
    for V in views:
        other = _best(library, V, feature_names, tolerance, chunk, min_score)
        better = other[0] > best[0]
        best = tuple(np.where(better, o, b) for o, b in zip(other, best))
    score, fwd_best, rev_best, index = best
    n = len(score)
    out = pd.DataFrame({"match_score": score, "match_forward": fwd_best, "match_reverse": rev_best,
                        "match_index": index})
    for col in library.labels.columns:
        values = library.labels[col].to_numpy()
        out[f"match_{col}"] = pd.Series(values[np.maximum(index, 0)] if len(values) else [None] * n).where(
            index >= 0, None).to_numpy()
    return out


def _windows(values: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """``(query, position)`` of every sorted ``values[position]`` strictly inside ``(lo[query], hi[query])``."""
    start = np.searchsorted(values, lo, side="right")
    n = np.maximum(np.searchsorted(values, hi, side="left") - start, 0)
    query = np.repeat(np.arange(len(lo)), n)
    position = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(start, n)
    return query, position


def _best(library, X, feature_names, tolerance, chunk, min_score):
    """Best entry of every row: forward hits through sorted line lists, the rest on candidate pairs only.

    Every strong line of a pattern looks up the library lines inside its tolerance window (``searchsorted``);
    the hits, counted per (row, entry), give the forward fraction of every entry at once. An entry can score
    ``min_score - MARGIN`` or more (and so be the answer, or tie with it) only if its forward fraction does, so the
    reverse fraction and the tie-break are computed for those (row, entry) pairs alone: a random entry of a big
    library shares few strong lines with a pattern, and the pairs stay few."""
    lines = _lines(X, feature_names)
    strong = lines[:, -len(_STRONG):]
    n, n_lib = len(lines), len(library)
    score, fwd_best, rev_best = np.zeros(n), np.zeros(n), np.zeros(n)
    index = np.full(n, -1, dtype=np.int64)
    if not (n_lib and n):
        return score, fwd_best, rev_best, index
    line_values, line_entry = library.sorted_lines()
    lib_strong = library.strong
    symmetry = library.labels["space_group"].to_numpy(dtype=np.float64) * 10.0  # ranks above any score gap
    n_strong = (~np.isnan(strong)).sum(1)
    # forward hits an entry needs to reach min_score - MARGIN (loosened by a rounding margin: a superset is exact)
    need = np.maximum(np.ceil((min_score - MARGIN) * n_strong - 1e-6), 0).astype(np.int64)
    chunk = max(1, min(chunk, _CELLS // (n_lib * 10)))  # bounds the (10, rows, entries) hit planes
    for a in range(0, n, chunk):
        s, m = strong[a:a + chunk], lines[a:a + chunk]  # (c, 10), (c, 30)
        c = len(s)
        q = s.ravel()
        ok = np.flatnonzero(~np.isnan(q))
        query, pos = _windows(line_values, q[ok] * (1 - tolerance), q[ok] * (1 + tolerance))
        hit = np.zeros((10, c, n_lib), dtype=bool)  # one plane per strong line: an entry counts once per line
        row, slot = np.divmod(ok[query], 10)
        hit.ravel()[(slot * c + row) * n_lib + line_entry[pos]] = True
        count = hit.sum(0, dtype=np.uint8)
        row, entry = np.nonzero(count >= need[a:a + c, None])  # candidate pairs, sorted by row
        if not len(row):
            continue
        n_s = n_strong[a:a + c][row]
        fwd = count[row, entry] / np.maximum(n_s, 1)
        # reverse: the entry's strong lines inside the row's range found among the row's lines,
        # relative to the entry's line: |x - m| < tol x  <=>  m / (1 + tol) < x < m / (1 - tol)
        e_strong, r_lines = lib_strong[entry][:, :, None], m[row][:, None, :]  # (p, 10, 1), (p, 1, 30)
        q_max = np.where(np.isnan(m), -np.inf, m).max(axis=1)[row]
        with np.errstate(invalid="ignore"):
            inside = e_strong[:, :, 0] <= q_max[:, None] * (1 + tolerance)
            found = ((e_strong > r_lines / (1 + tolerance)) & (e_strong < r_lines / (1 - tolerance))).any(axis=2)
        n_in = inside.sum(1)
        rev = np.where(n_in > 0, (found & inside).sum(1) / np.maximum(n_in, 1), 0.0)
        sc = np.where(n_s > 0, np.minimum(fwd, rev), 0.0)
        # per row: the most symmetric entry within MARGIN of the best score (the lowest entry index on a tie)
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        top = np.maximum.reduceat(sc, starts)[np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(row)]))]
        key = np.where(sc >= top - MARGIN, symmetry[entry] + sc, -np.inf)
        order = np.lexsort((-entry, key, row))
        last = order[np.r_[row[order][1:] != row[order][:-1], True]]
        keep = last[(top[last] >= min_score) & (sc[last] > 0)]
        at = a + row[keep]
        score[at], fwd_best[at], rev_best[at], index[at] = sc[keep], fwd[keep], rev[keep], entry[keep]
    return score, fwd_best, rev_best, index


def decided(matches: pd.DataFrame, threshold: float = THRESHOLD) -> np.ndarray:
    """Rows whose match is confident enough to answer them (score ``>= threshold`` and an entry found); the
    answer itself is formed by :meth:`xrdbatch.train.CrystalForest.predict_frame` (``matches=``)."""
    return (matches["match_score"].to_numpy() >= threshold) & (matches["match_index"].to_numpy() >= 0)

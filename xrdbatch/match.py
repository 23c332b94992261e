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
real structures of the ideal training store) and ``xrdbatch score --search-match`` applies it; lines are looked
up through sorted line lists (:func:`best_matches`), ~0.3 ms per pattern and view against 2,101 entries.

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
#: Rows x entries x 10 cells of the boolean work arrays of one chunk of rows (bounds the chunk for big libraries).
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
        """``(line Q, its entry, strong-line Q, its flat slot entry * 10 + k)``, each sorted by Q (cached)."""
        if self._sorted is None:
            flat = self.lines.ravel()
            keep = np.flatnonzero(~np.isnan(flat))
            order = keep[np.argsort(flat[keep], kind="stable")]
            flat_s = self.strong.ravel()
            keep_s = np.flatnonzero(~np.isnan(flat_s))
            order_s = keep_s[np.argsort(flat_s[keep_s], kind="stable")]
            self._sorted = (flat[order], order // self.lines.shape[1], flat_s[order_s], order_s)
        return self._sorted

    def subset(self, rows) -> ReferenceLibrary:
        rows = np.asarray(rows)
        return ReferenceLibrary(self.lines[rows], self.labels.iloc[rows].reset_index(drop=True))


def best_matches(library: ReferenceLibrary, X: np.ndarray, feature_names, tolerance: float = TOLERANCE,
                 views=(), chunk: int = 256) -> pd.DataFrame:
    """The best library entry of every row of ``X``: ``match_score``, ``match_forward``, ``match_reverse``,
    ``match_index`` (-1 when nothing matches) and the entry's label columns prefixed ``match_``.

    ``views``: the same rows with their peak lists moved by zero shifts (:func:`xrdbatch.features.shifted_views`);
    each row keeps its best score over ``X`` and the views (a zero error moves low-angle lines by more than the
    tolerance)."""
    best = _best(library, X, feature_names, tolerance, chunk)
    for V in views:
        other = _best(library, V, feature_names, tolerance, chunk)
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


def _best(library, X, feature_names, tolerance, chunk):
    """Score of every row against every entry, through sorted line lists.

    Every pattern line looks up only the library lines inside its tolerance window (``searchsorted``), so the
    cost grows with the lines that are near, not with ``library size x 30 x 10`` comparisons; the scores are
    then formed on dense ``(rows, entries)`` arrays as a direct comparison would form them."""
    lines = _lines(X, feature_names)
    strong = lines[:, -len(_STRONG):]
    n, n_lib = len(lines), len(library)
    score, fwd_best, rev_best = np.zeros(n), np.zeros(n), np.zeros(n)
    index = np.full(n, -1, dtype=np.int64)
    if not (n_lib and n):
        return score, fwd_best, rev_best, index
    line_values, line_entry, strong_values, strong_slot = library.sorted_lines()
    lib_strong_t = np.ascontiguousarray(library.strong.T)  # (10, entries)
    symmetry = library.labels["space_group"].to_numpy(dtype=np.float64) * 10.0  # ranks above any score gap
    chunk = max(1, min(chunk, _CELLS // (n_lib * 10)))  # bounds the (rows, entries, 10) work arrays
    for a in range(0, n, chunk):
        s, m = strong[a:a + chunk], lines[a:a + chunk]  # (c, 10), (c, 30)
        c = len(s)
        # forward: which of each row's strong lines have an entry line within the tolerance
        q = s.ravel()
        ok = np.flatnonzero(~np.isnan(q))
        query, pos = _windows(line_values, q[ok] * (1 - tolerance), q[ok] * (1 + tolerance))
        # work arrays are (slot, row, entry): the sums over the 10 slots are then adds of contiguous planes
        hit = np.zeros((10, c, n_lib), dtype=bool)
        row, slot = np.divmod(ok[query], 10)
        hit[slot, row, line_entry[pos]] = True
        n_s = (~np.isnan(s)).sum(1)
        fwd = hit.sum(0) / np.maximum(n_s, 1)[:, None]
        # reverse: which of each entry's strong lines (inside the row's range) have a row line within the
        # tolerance, relative to the entry's line: |x - m| < tol x  <=>  m / (1 + tol) < x < m / (1 - tol)
        q = m.ravel()
        ok = np.flatnonzero(~np.isnan(q))
        query, pos = _windows(strong_values, q[ok] / (1 + tolerance), q[ok] / (1 - tolerance))
        q_max = np.where(np.isnan(m), -np.inf, m).max(axis=1)
        with np.errstate(invalid="ignore"):
            inside = lib_strong_t[:, None, :] <= q_max[None, :, None] * (1 + tolerance)  # (10, c, entries)
        found = np.zeros((10, c, n_lib), dtype=bool)
        entry, slot = np.divmod(strong_slot[pos], 10)
        found[slot, ok[query] // 30, entry] = True
        n_in = inside.sum(0)
        rev = np.where(n_in > 0, (found & inside).sum(0) / np.maximum(n_in, 1), 0.0)
        sc = np.minimum(fwd, rev)
        sc[n_s == 0] = 0.0
        near = sc >= sc.max(axis=1, keepdims=True) - MARGIN
        best = np.argmax(np.where(near, symmetry[None, :] + sc, -np.inf), axis=1)
        rows = np.arange(c)
        score[a:a + c] = sc[rows, best]
        fwd_best[a:a + c], rev_best[a:a + c] = fwd[rows, best], rev[rows, best]
        index[a:a + c] = np.where(sc[rows, best] > 0, best, -1)
    return score, fwd_best, rev_best, index


def decided(matches: pd.DataFrame, threshold: float = THRESHOLD) -> np.ndarray:
    """Rows whose match is confident enough to answer them (score ``>= threshold`` and an entry found); the
    answer itself is formed by :meth:`xrdbatch.train.CrystalForest.predict_frame` (``matches=``)."""
    return (matches["match_score"].to_numpy() >= threshold) & (matches["match_index"].to_numpy() >= 0)

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
must not be reported as its P1 description, sphalerite as a tetragonal superstructure. :func:`apply_matches` lets
entries at or above ``threshold`` set the crystal system and put their space group first in the ranking.

Defaults (``tolerance`` 0.004, ``threshold`` 0.8) were chosen on RRUFF dev (``bench/results/session8/``). There,
139 of 504 measured minerals match a real training structure (over the 7 zero-shifted views); 97.8 % of those
matches have the right crystal system and 92.8 % the right space group. On held-out real structure types (not in
the library) 4.1 % of the rows take a match, 72 % of them with the right crystal system.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xrdbatch.features import MISSING

#: Relative tolerance in Q of a line match, and the score from which a match decides (see the module docstring).
TOLERANCE = 0.004
THRESHOLD = 0.8
#: Entries within this score of the best one count as equally good; the most symmetric of them (highest space-group
#: number) is reported: a superstructure or a low-symmetry description of the same lines must not beat the simple cell.
MARGIN = 0.05

_ALL = [f"q_{i + 1}" for i in range(20)] + [f"strongest_q_{i + 1}" for i in range(10)]
_STRONG = [f"strongest_q_{i + 1}" for i in range(10)]


def _columns(X: np.ndarray, feature_names, wanted) -> np.ndarray:
    names = list(feature_names)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ValueError(f"search-match needs the feature columns {missing[:3]}... (feature sets 'measured' and up)")
    out = np.asarray(X, dtype=np.float64)[:, [names.index(c) for c in wanted]]
    return np.where((out > 0) & (out != MISSING), out, np.nan)


@dataclass
class ReferenceLibrary:
    """Known structures: ``lines`` (n, 30) Q of the first 20 and the 10 strongest lines, ``strong`` (n, 10),
    NaN-padded, and ``labels`` (n rows: ``crystal_system``, ``space_group`` and any identifying columns)."""

    lines: np.ndarray
    strong: np.ndarray
    labels: pd.DataFrame

    @classmethod
    def from_features(cls, X: np.ndarray, feature_names, labels: pd.DataFrame) -> ReferenceLibrary:
        """A library from feature rows of *ideal* simulations (augmented rows are strained and shifted)."""
        if len(X) != len(labels):
            raise ValueError(f"{len(X)} feature rows but {len(labels)} label rows")
        for col in ("crystal_system", "space_group"):
            if col not in labels:
                raise ValueError(f"library labels need a {col!r} column; got {list(labels.columns)}")
        return cls(_columns(X, feature_names, _ALL), _columns(X, feature_names, _STRONG),
                   labels.reset_index(drop=True))

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows) -> ReferenceLibrary:
        rows = np.asarray(rows)
        return ReferenceLibrary(self.lines[rows], self.strong[rows], self.labels.iloc[rows].reset_index(drop=True))


def best_matches(library: ReferenceLibrary, X: np.ndarray, feature_names, tolerance: float = TOLERANCE,
                 views=(), chunk: int = 16) -> pd.DataFrame:
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


def _best(library, X, feature_names, tolerance, chunk):
    lines, strong = _columns(X, feature_names, _ALL), _columns(X, feature_names, _STRONG)
    n = len(lines)
    score, fwd_best, rev_best = np.zeros(n), np.zeros(n), np.zeros(n)
    index = np.full(n, -1, dtype=np.int64)
    if len(library) and n:
        lib_lines, lib_strong = library.lines, library.strong
        symmetry = library.labels["space_group"].to_numpy(dtype=np.float64) * 10.0  # ranks above any score gap
        for a in range(0, n, chunk):
            s = strong[a:a + chunk]  # (c, 10)
            m = lines[a:a + chunk]  # (c, 30)
            with np.errstate(invalid="ignore"):
                # forward: each of the pattern's strong lines against every entry's lines -> (c, L, 10)
                rel = np.abs(lib_lines[None, :, :, None] - s[:, None, None, :]) / s[:, None, None, :]
                hit = np.where(np.isnan(rel), np.inf, rel).min(axis=2) < tolerance  # (c, L, 10)
                n_s = (~np.isnan(s)).sum(1)  # (c,)
                fwd = hit.sum(2) / np.maximum(n_s, 1)[:, None]
                # reverse: each entry's strong lines inside the pattern's range against the pattern's lines
                q_max = np.where(np.isnan(m), -np.inf, m).max(axis=1)  # (c,)
                rel = np.abs(lib_strong[None, :, :, None] - m[:, None, None, :]) / lib_strong[None, :, :, None]
                found = np.where(np.isnan(rel), np.inf, rel).min(axis=3) < tolerance  # (c, L, 10)
                inside = lib_strong[None, :, :] <= q_max[:, None, None] * (1 + tolerance)
                n_in = inside.sum(2)
                rev = np.where(n_in > 0, (found & inside).sum(2) / np.maximum(n_in, 1), 0.0)
            sc = np.minimum(fwd, rev)
            sc[n_s == 0] = 0.0
            near = sc >= sc.max(axis=1, keepdims=True) - MARGIN
            best = np.argmax(np.where(near, symmetry[None, :] + sc, -np.inf), axis=1)
            rows = np.arange(len(s))
            score[a:a + chunk] = sc[rows, best]
            fwd_best[a:a + chunk], rev_best[a:a + chunk] = fwd[rows, best], rev[rows, best]
            index[a:a + chunk] = np.where(sc[rows, best] > 0, best, -1)
    return score, fwd_best, rev_best, index


def apply_matches(frame: pd.DataFrame, matches: pd.DataFrame, threshold: float = THRESHOLD) -> pd.DataFrame:
    """A copy of a prediction frame (``crystal_system``, ``space_group_1..k``) where every row whose match
    scores ``>= threshold`` takes the matched crystal system and has the matched space group first (the others
    keep their order); ``matched`` marks those rows. Probabilities are left as the model gave them."""
    if len(frame) != len(matches):
        raise ValueError(f"{len(frame)} predictions but {len(matches)} matches")
    out = frame.copy()
    hit = (matches["match_score"].to_numpy() >= threshold) & (matches["match_index"].to_numpy() >= 0)
    out["matched"] = hit
    if not hit.any():
        return out
    k = 1
    while f"space_group_{k + 1}" in out:
        k += 1
    ranks = np.stack([out[f"space_group_{i}"].to_numpy() for i in range(1, k + 1)], axis=1).astype(np.int64)
    sg = matches["match_space_group"].to_numpy()
    for i in np.flatnonzero(hit):
        g = int(sg[i])
        ranks[i] = ([g] + [s for s in ranks[i] if s != g])[:k]
    for j in range(k):
        out[f"space_group_{j + 1}"] = ranks[:, j]
    out.loc[hit, "crystal_system"] = matches.loc[hit, "match_crystal_system"].to_numpy()
    return out

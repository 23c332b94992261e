"""Training: ExtraTrees for crystal system, space group (ranked) and lattice constants, honestly split.

How the parts fit:

- :class:`CrystalForest` is the composite estimator (scikit-learn etiquette: ``__init__`` stores parameters,
  ``fit`` returns ``self``, fitted state ends in ``_``, ``random_state`` explicit). It composes plain
  scikit-learn forests, it does not subclass them:

  * ``crystal_system_model_``: one ``ExtraTreesClassifier`` over the 7 crystal systems (or, opt-in, a
    ``HistGradientBoostingClassifier``: :class:`BoostingParams`);
  * ``space_group_models_[system]``: one ``ExtraTreesClassifier`` per crystal system, trained on that
    system's rows only. Ranked candidates come from ``P(sg) = P(system) P(sg | system)`` over all 230
    groups, ordered with ``classes_``. This is the answer to the size problem: a forest stores one value
    per class in every node, so one 230-class forest costs ~33x a 7-class forest of the same shape;
    per-system forests have 2-68 classes and each sees only its own rows;
  * ``lattice_models_[system]``: one ``ExtraTreesRegressor`` per system for its *free* parameters only
    (:data:`LATTICE_FREE`: cubic a; tetragonal/hexagonal/trigonal a, c; ...), the fixed ones are filled in.

  Node counts are bounded by ``min_samples_leaf`` and ``max_samples`` (each tree sees a bootstrap
  fraction): the bundle size and the fit time scale with them (see ``bench/train.py``).
- :func:`split_indices` (random, or grouped by structure type with ``GroupShuffleSplit`` so that
  near-duplicates never straddle train and test), :func:`evaluate` (metrics), and
  :func:`train_from_store` / :func:`train_arrays` (the orchestration behind ``xrdbatch train``: read the
  features, split, fit, predict the held-out rows, write the bundle with the evaluation table beside it).

Parallelism: ``n_jobs`` threads on one node; ``backend="dask"`` runs the same fits through joblib's Dask
backend on a ``distributed`` cluster (the client must exist; see :func:`xrdbatch.cluster.get_client`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xrdbatch.crystal import CRYSTAL_SYSTEMS

LATTICE_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")

#: Free lattice parameters per crystal system (conventional standard cell; trigonal in hexagonal axes).
LATTICE_FREE: dict[str, tuple[str, ...]] = {
    "triclinic": ("a", "b", "c", "alpha", "beta", "gamma"),
    "monoclinic": ("a", "b", "c", "beta"),
    "orthorhombic": ("a", "b", "c"),
    "tetragonal": ("a", "c"),
    "trigonal": ("a", "c"),
    "hexagonal": ("a", "c"),
    "cubic": ("a",),
}

#: Fixed angles per system (degrees); lengths tied to ``a`` are filled by :func:`complete_lattice`.
_FIXED_ANGLES = {
    "triclinic": {},
    "monoclinic": {"alpha": 90.0, "gamma": 90.0},
    "orthorhombic": {"alpha": 90.0, "beta": 90.0, "gamma": 90.0},
    "tetragonal": {"alpha": 90.0, "beta": 90.0, "gamma": 90.0},
    "trigonal": {"alpha": 90.0, "beta": 90.0, "gamma": 120.0},
    "hexagonal": {"alpha": 90.0, "beta": 90.0, "gamma": 120.0},
    "cubic": {"alpha": 90.0, "beta": 90.0, "gamma": 90.0},
}

SPLITS = ("random", "grouped")

#: Approximate shares of mineral species by crystal system (rounded from published symmetry statistics of
#: the IMA list: about a third monoclinic, a fifth orthorhombic). Fixed here, never fitted to measured sets.
MINERAL_SYSTEM_SHARES = {"triclinic": 0.09, "monoclinic": 0.32, "orthorhombic": 0.21, "tetragonal": 0.09,
                         "trigonal": 0.12, "hexagonal": 0.08, "cubic": 0.09}

#: Class mixes a training set can be resampled to (``class_mix``, issue 8): name -> crystal-system shares,
#: or None for "as the catalogs are" (the generator's real-database space-group prior).
CLASS_MIXES = ("catalog", "balanced", "mineral", "icsd", "cod", "mp")

#: Where a training row comes from (issue 8): a structure read from a file or database (``"real"``), an
#: element-substituted copy of one (``"variant"``, :func:`xrdbatch.augment.substituted_catalog`), a crystal of
#: the synthetic generator (``"synthetic"``), or ``"unknown"`` (the store's catalog cannot be read).
ORIGINS = ("real", "variant", "synthetic", "unknown")

#: How :func:`xrdbatch.augment.substituted_catalog` names a variant: ``"<parent id>~sub<v>"``.
VARIANT_ID_MARK = "~sub"

#: Default weight of synthetic rows in the space-group forests (0 = real structures and their variants only;
#: the crystal-system and lattice forests always use every row). Chosen on held-out real structure types
#: (``bench/sg_weight.py``, results in its docstring): 0 ranked the space groups of unseen real structure types
#: best or level with any other weight (18k run: top-1 +1.3 +- 0.5 points over weight 1, top-5 +0.9 +- 0.5;
#: 56k run: +0.7 +- 0.6, +1.0 +- 0.6), and fits the space-group forests several times faster.
SPACE_GROUP_SYNTHETIC_WEIGHT = 0.0

#: Below this many rows per tree, forests do not subsample (``max_samples`` is ignored).
MIN_SUBSAMPLE_ROWS = 2000


def class_mix_shares(mix: str, systems=None) -> dict[str, float] | None:
    """Crystal-system shares of a named class mix (see :data:`CLASS_MIXES`); None for ``"catalog"``.

    ``"icsd"``, ``"cod"`` and ``"mp"`` sum the space-group counts of that database
    (``data/space_group_prior.json``) per crystal system; ``"balanced"`` is uniform over ``systems``
    (default all seven); ``"mineral"`` is :data:`MINERAL_SYSTEM_SHARES`.

    >>> round(sum(class_mix_shares("cod").values()), 6), class_mix_shares("catalog") is None
    (1.0, True)
    """
    import json
    from importlib import resources

    from xrdbatch.crystal import crystal_system_of

    if mix not in CLASS_MIXES:
        raise ValueError(f"unknown class mix {mix!r}; valid: {', '.join(CLASS_MIXES)}")
    if mix == "catalog":
        return None
    if mix == "balanced":
        names = sorted(set(np.asarray(systems).astype(str))) if systems is not None else list(CRYSTAL_SYSTEMS)
        return {s: 1.0 / len(names) for s in names}
    if mix == "mineral":
        return dict(MINERAL_SYSTEM_SHARES)
    table = json.loads(resources.files("xrdbatch").joinpath("data", "space_group_prior.json").read_text())
    counts = np.asarray(table[mix]["counts"], dtype=np.float64)
    shares = dict.fromkeys(CRYSTAL_SYSTEMS, 0.0)
    for number, count in enumerate(counts, start=1):
        shares[crystal_system_of(number)] += count
    total = sum(shares.values())
    return {s: float(v / total) for s, v in shares.items()}


def resample_to_mix(systems, mix: str, random_state: int = 0, n_rows: int | None = None) -> np.ndarray:
    """Row indices whose crystal systems follow the class mix ``mix`` (same total, ``n_rows`` by default).

    Every system of the mix that has rows gets ``round(share * n)`` of them, drawn without replacement
    where there are enough and with replacement where there are not (rare systems are repeated rather
    than synthesised). ``"catalog"`` returns every row once.

    >>> s = np.array(["cubic"] * 8 + ["triclinic"] * 2)
    >>> np.unique(s[resample_to_mix(s, "balanced")], return_counts=True)[1].tolist()
    [5, 5]
    """
    systems = np.asarray(systems).astype(str)
    shares = class_mix_shares(mix, systems)
    if shares is None:
        return np.arange(len(systems))
    n = len(systems) if n_rows is None else int(n_rows)
    present = {s: v for s, v in shares.items() if np.any(systems == s)}
    total = sum(present.values())
    rng = np.random.default_rng(random_state)
    parts = []
    for system, share in present.items():
        rows = np.flatnonzero(systems == system)
        k = int(round(n * share / total))
        parts.append(rng.choice(rows, size=k, replace=k > len(rows)))
    return np.sort(np.concatenate(parts)) if parts else np.arange(0)


def row_origins(structure_id, source) -> np.ndarray:
    """Origin (:data:`ORIGINS`) of every row from its catalog ``id`` and ``source``.

    ``source`` starting with ``"synthetic"`` -> synthetic; an id carrying :data:`VARIANT_ID_MARK` -> variant;
    another known source -> real; a missing source (None, NaN, "") -> unknown.

    >>> row_origins(["a", "a~sub1", "s1", "x"], ["cifs/", "cifs/", "synthetic:10", None]).tolist()
    ['real', 'variant', 'synthetic', 'unknown']
    """
    ids = pd.Series(np.asarray(structure_id, dtype=object)).astype(str)
    src = pd.Series(np.asarray(source, dtype=object))
    known = src.notna() & (src.astype(str) != "")
    src = src.astype(str)
    out = np.where(src.str.startswith("synthetic"), "synthetic",
                   np.where(ids.str.contains(VARIANT_ID_MARK, regex=False), "variant", "real"))
    return np.where(known.to_numpy(), out, "unknown").astype(object)


def origin_weights(origins, synthetic_weight: float) -> np.ndarray:
    """Space-group sample weight of every row: ``synthetic_weight`` for synthetic rows, 1 for the others
    (real, variant, unknown: a row of unknown origin is not down-weighted on a guess).

    >>> origin_weights(["real", "synthetic", "variant"], 0.3).tolist()
    [1.0, 0.3, 1.0]
    """
    w = float(synthetic_weight)
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"synthetic space-group weight must be in [0, 1] (0 = real structures only), got {w}")
    origins = np.asarray(origins, dtype=object)
    return np.where(origins == "synthetic", w, 1.0)


def complete_lattice(system: str, free: np.ndarray) -> np.ndarray:
    """All six lattice parameters ``(n, 6)`` (a, b, c in angstrom, angles in degrees) from the free ones.

    >>> complete_lattice("tetragonal", np.array([[4.0, 6.0]])).tolist()
    [[4.0, 4.0, 6.0, 90.0, 90.0, 90.0]]
    """
    names = LATTICE_FREE[system]
    free = np.asarray(free, dtype=np.float64).reshape(-1, len(names))
    out = np.full((free.shape[0], 6), np.nan)
    for j, name in enumerate(names):
        out[:, LATTICE_NAMES.index(name)] = free[:, j]
    for name, value in _FIXED_ANGLES[system].items():
        out[:, LATTICE_NAMES.index(name)] = value
    if "b" not in names:
        out[:, 1] = out[:, 0]
    if "c" not in names:
        out[:, 2] = out[:, 0]
    return out


@dataclass(frozen=True)
class ForestParams:
    """Shape of one family of forests (passed to ``ExtraTrees*``)."""

    n_estimators: int = 100
    max_depth: int | None = None
    min_samples_leaf: int = 1
    max_features: float | int | str | None = "sqrt"
    max_samples: float | None = None  # bootstrap fraction per tree (None = every tree sees all rows)
    class_weight: str | None = None  # classifiers only: "balanced" / "balanced_subsample" (issue 8)

    def estimator_kwargs(self) -> dict:
        kw = dict(n_estimators=self.n_estimators, max_depth=self.max_depth,
                  min_samples_leaf=self.min_samples_leaf, max_features=self.max_features)
        if self.max_samples is not None:
            kw.update(bootstrap=True, max_samples=self.max_samples)
        return kw


@dataclass(frozen=True)
class BoostingParams:
    """Shape of a gradient-boosted crystal-system classifier (``HistGradientBoostingClassifier``), the
    alternative to the ExtraTrees forest for that family only (:data:`BOOSTED_CRYSTAL_SYSTEM`).

    On the issue-8 features (``indexed4``, shift-averaged; bench/results/README.md, session 6) it called the crystal
    system of held-out simulated structure types 4.6 points better than the forest (66.9 against 62.3 %; RRUFF dev
    65.3 against 61.9 %), for ~1.2-2x the forest's fit (160k rows: 28.7 s against 23.5 s; all 15 models 48.5
    CPU-s per core): opt in (``xrdbatch train --crystal-system-model boosting``, ``training.crystal_system_model``).
    It runs on OpenMP threads (``OMP_NUM_THREADS``), not on ``n_jobs`` or a Dask backend."""

    max_iter: int = 100
    learning_rate: float = 0.2
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0
    class_weight: str | None = None

    def __post_init__(self):
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight {self.class_weight!r} is for forests; the boosted crystal-system model "
                             "takes 'balanced' (or None)")

    def estimator_kwargs(self) -> dict:
        return dict(max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
                    min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
                    class_weight=self.class_weight, early_stopping=False)


#: The boosted crystal-system model (session 6, bench/results/README.md): 100 rounds of 31-leaf trees at rate 0.2, the
#: shape inside the training issue's 60 s at 160k rows; 200 rounds at 0.1 (79.5 CPU-s per core, over it) scored 0.5
#: points more on held-out types and 0.2 on RRUFF; 300 rounds, 63 leaves, l2 3 or 40-row leaves within 1 point.
BOOSTED_CRYSTAL_SYSTEM = BoostingParams()

#: Crystal-system model kinds of ``xrdbatch train --crystal-system-model`` / ``training.crystal_system_model``.
CRYSTAL_SYSTEM_MODELS = ("extra_trees", "boosting")


def crystal_system_params(kind: str):
    """Model shape of a :data:`CRYSTAL_SYSTEM_MODELS` kind (None: the default forest)."""
    if kind not in CRYSTAL_SYSTEM_MODELS:
        raise ValueError(f"unknown crystal-system model {kind!r}; known: {', '.join(CRYSTAL_SYSTEM_MODELS)}")
    return BOOSTED_CRYSTAL_SYSTEM if kind == "boosting" else None


def params_record(params) -> dict:
    """JSON-able record of a :class:`ForestParams` / :class:`BoostingParams` (bundle manifests)."""
    return {"model": "boosting" if isinstance(params, BoostingParams) else "extra_trees", **params.__dict__}


#: Defaults chosen with bench/train.py: 160k rows fit in < 60 s on 2 cores, bundle well under 300 MB.
#: Space groups: half the features per split (``max_features`` 0.5 instead of sqrt) ranked unseen real
#: structure types better (bench/sg_weight.py, real + variants: top-1 +0.9 +- 0.4, top-5 +1.4 +- 0.4 points).
#: Crystal systems: 30 % of the features per split instead of sqrt (about 10 % of indexed3's 108) scored held-out
#: simulated structure types +2.4 points (56.9 -> 59.3 %, indexed3, shift-averaged) and RRUFF +0.4 for ~1.5x
#: that forest's fit time (bench/results/session5; 0.2 / 0.5 gave 58.6 / 59.7).
DEFAULT_PARAMS = {
    "crystal_system": ForestParams(n_estimators=100, min_samples_leaf=2, max_samples=0.5, max_features=0.3),
    "space_group": ForestParams(n_estimators=60, min_samples_leaf=3, max_samples=0.5, max_features=0.5),
    "lattice": ForestParams(n_estimators=40, min_samples_leaf=5, max_samples=0.5, max_features=0.5),
}

#: The seed's recipe (for comparison only; its models are gigabytes at 160k rows).
SEED_PARAMS = {
    "crystal_system": ForestParams(n_estimators=500, max_depth=30, max_features=9),
    "space_group": ForestParams(n_estimators=200, max_depth=25, max_features="sqrt"),
}


class CrystalForest:
    """Crystal system, ranked space groups and lattice constants from peak features.

    Parameters
    ----------
    crystal_system, space_group, lattice : ForestParams
        Forest shapes of the three families (defaults :data:`DEFAULT_PARAMS`); ``crystal_system`` may also be a
        :class:`BoostingParams` (gradient boosting instead of the forest).
    hierarchical_space_group : bool
        True (default): one space-group forest per crystal system. False: one flat forest over all
        space groups (the seed's way; large).
    system_exponent : float
        Ranked space groups score ``P(system) ** system_exponent * P(sg | system)`` (rows renormalised).
        1 (default) is the plain product; below 1 the top-k spreads over the runner-up systems, which
        pays when the crystal-system call is uncertain (measured patterns, issue 8).
    random_state : int
    n_jobs : int or None
        Threads per forest fit/predict.

    Attributes
    ----------
    crystal_system_model_ : ExtraTreesClassifier (HistGradientBoostingClassifier with :class:`BoostingParams`)
    space_group_models_ : dict str -> ExtraTreesClassifier
        Per crystal system (key ``"all"`` when not hierarchical).
    space_group_fallback_ : list of str
        Systems whose space-group forest learnt from all their rows because none had a positive weight
        (see :meth:`fit_space_groups`; not stored in bundles, the manifest records it).
    lattice_models_ : dict str -> ExtraTreesRegressor
    fit_seconds_ : dict str -> float
        Wall time of every fitted forest.
    """

    def __init__(self, crystal_system: ForestParams | BoostingParams | None = None,
                 space_group: ForestParams | None = None, lattice: ForestParams | None = None, *,
                 hierarchical_space_group: bool = True, fit_lattice: bool = True, scale_column: int | None = None,
                 scale_kind: str | None = None, wavelength_angstrom: float | None = None, system_exponent: float = 1.0,
                 random_state: int = 0, n_jobs: int | None = None):
        self.crystal_system = crystal_system
        self.space_group = space_group
        self.lattice = lattice
        self.hierarchical_space_group = hierarchical_space_group
        self.fit_lattice = fit_lattice
        self.scale_column = scale_column
        self.scale_kind = scale_kind
        self.wavelength_angstrom = wavelength_angstrom
        self.system_exponent = system_exponent
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _scale(self, X) -> np.ndarray | None:
        """d-spacing of the first peak per row (angstrom), or None when no scale column is set.

        Lengths are regressed as ``log(length / d_1)``: scale-free targets (for a cubic cell, sqrt of an
        integer), which trees predict far better than raw lengths that span 3-30 angstrom.
        """
        if self.scale_column is None:
            return None
        v = np.asarray(X[:, self.scale_column], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.scale_kind == "q":
                d = 2 * np.pi / v
            elif self.scale_kind == "two_theta":
                d = self.wavelength_angstrom / (2 * np.sin(np.radians(v) / 2))
            else:
                raise ValueError(f"scale_kind must be 'q' or 'two_theta', got {self.scale_kind!r}")
        bad = ~np.isfinite(d) | (v <= 0)
        d[bad] = getattr(self, "scale_fallback_", 1.0)
        return d

    def _lattice_target(self, system, lattice_rows, scale_rows):
        names = LATTICE_FREE[system]
        target = lattice_rows[:, [LATTICE_NAMES.index(p) for p in names]].astype(np.float64)
        if scale_rows is not None:
            for j, name in enumerate(names):
                if name in ("a", "b", "c"):
                    target[:, j] = np.log(target[:, j] / scale_rows)
        return target

    def _lattice_from_target(self, system, pred, scale_rows):
        names = LATTICE_FREE[system]
        pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), len(names)).copy()
        if scale_rows is not None:
            for j, name in enumerate(names):
                if name in ("a", "b", "c"):
                    pred[:, j] = np.exp(pred[:, j]) * scale_rows
        return complete_lattice(system, pred)

    # -- fitting ------------------------------------------------------------------------------
    def _forest(self, kind: str, family: str, n_rows: int):
        from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, HistGradientBoostingClassifier

        params = getattr(self, family) or DEFAULT_PARAMS[family]
        if isinstance(params, BoostingParams):
            if kind != "classifier":
                raise ValueError(f"{family}: BoostingParams shape classifiers only")
            return HistGradientBoostingClassifier(random_state=self.random_state, **params.estimator_kwargs())
        cls = ExtraTreesClassifier if kind == "classifier" else ExtraTreesRegressor
        kw = params.estimator_kwargs()
        if kind == "classifier" and getattr(params, "class_weight", None):
            kw["class_weight"] = params.class_weight
        if params.max_samples is not None and n_rows * params.max_samples < MIN_SUBSAMPLE_ROWS:
            # subsampling exists to bound size and time on large sets; small sets keep every row
            kw.pop("bootstrap", None)
            kw.pop("max_samples", None)
        return cls(random_state=self.random_state, n_jobs=self.n_jobs, **kw)

    def _fit_one(self, name: str, estimator, X, y, sample_weight=None):
        import warnings

        t = time.perf_counter()
        with warnings.catch_warnings():
            # per-system space-group subsets of small sets have many classes per row; that is expected
            warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
            estimator.fit(X, y, sample_weight=sample_weight)
        self.fit_seconds_[name] = time.perf_counter() - t
        return estimator

    def fit(self, X, crystal_system, space_group, lattice=None, space_group_rows=None,
            space_group_weight=None) -> CrystalForest:
        """Fit every forest.

        Parameters
        ----------
        X : array (n, n_features)
        crystal_system : array (n,) of str (values of CRYSTAL_SYSTEMS)
        space_group : array (n,) of int (1-230)
        lattice : array (n, 6), optional
            a, b, c (angstrom), alpha, beta, gamma (degree); required when ``fit_lattice``.
        space_group_rows : array (n,) of bool, optional
            Rows the space-group forests learn from (default all), e.g. only real structures when
            synthetic ones have another space-group mix (issue 8); the crystal-system forest uses all rows.
        space_group_weight : array (n,) of float >= 0, optional
            Sample weight of every row in the space-group forests (see :meth:`fit_space_groups`), e.g.
            :func:`origin_weights`; combined with ``space_group_rows`` (rows outside it weigh 0). The
            crystal-system and lattice forests always learn from every row with equal weight.
        """
        X = np.asarray(X, dtype=np.float32)
        systems = np.asarray(crystal_system).astype(str)
        sg = np.asarray(space_group).astype(np.int64)
        self.fit_seconds_ = {}

        self.crystal_system_model_ = self._fit_one("crystal_system", self._forest("classifier", "crystal_system",
                                                                                  len(X)), X, systems)
        weight = np.ones(len(X)) if space_group_weight is None else np.asarray(space_group_weight, dtype=np.float64)
        if space_group_rows is not None:
            weight = np.where(np.asarray(space_group_rows, dtype=bool), weight, 0.0)
        self.fit_space_groups(X, systems, sg, weight)

        self.lattice_models_ = {}
        if self.fit_lattice:
            if lattice is None:
                raise ValueError("fit_lattice=True needs lattice (n, 6); pass lattice= or fit_lattice=False")
            lattice = np.asarray(lattice, dtype=np.float64)
            if self.scale_column is not None:
                self.scale_fallback_ = 1.0
                raw = self._scale(X)
                good = X[:, self.scale_column] > 0
                self.scale_fallback_ = float(np.median(raw[good])) if good.any() else 1.0
            scale = self._scale(X)
            for system in sorted(set(systems)):
                rows = systems == system
                target = self._lattice_target(system, lattice[rows], None if scale is None else scale[rows])
                if target.shape[1] == 1:
                    target = target.ravel()
                forest = self._forest("regressor", "lattice", int(rows.sum()))
                self.lattice_models_[system] = self._fit_one(f"lattice/{system}", forest, X[rows], target)
        return self

    def fit_space_groups(self, X, crystal_system, space_group, sample_weight=None) -> CrystalForest:
        """(Re)fit only the space-group forests (the crystal-system forest is left as it is).

        Rows of weight 0 are left out of the fit (weight 0 for synthetic rows = "real structures only");
        the others enter ``ExtraTreesClassifier.fit(sample_weight=...)`` (weights scale each row's share
        of the impurity and of the leaf class frequencies; bootstrap draws stay uniform). A crystal
        system none of whose rows has a positive weight learns from all its rows with equal weight, so
        that a store of synthetic crystals only still gets space groups; such systems are listed in
        ``space_group_fallback_``.

        Parameters
        ----------
        X : array (n, n_features)
        crystal_system : array (n,) of str
        space_group : array (n,) of int
        sample_weight : array (n,) of float >= 0, optional
            Default: every row weighs 1.
        """
        X = np.asarray(X, dtype=np.float32)
        systems = np.asarray(crystal_system).astype(str)
        sg = np.asarray(space_group).astype(np.int64)
        weight = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if weight.shape != (len(X),) or not np.all(np.isfinite(weight)) or np.any(weight < 0):
            raise ValueError(f"space-group sample weights must be {len(X)} finite values >= 0; got shape "
                             f"{weight.shape}, min {np.nanmin(weight) if weight.size else None}")
        if not hasattr(self, "fit_seconds_"):
            self.fit_seconds_ = {}
        self.space_group_models_ = {}
        self.space_group_fallback_ = []
        groups = sorted(set(systems)) if self.hierarchical_space_group else ["all"]
        for system in groups:
            in_system = systems == system if system != "all" else np.ones(len(X), dtype=bool)
            rows = in_system & (weight > 0)
            w = weight[rows]
            if not rows.any():
                rows, w = in_system, None
                self.space_group_fallback_.append(system)
            elif np.all(w == w[0]):
                w = None  # equal weights: the same fit, without the weighted code path
            forest = self._forest("classifier", "space_group", int(rows.sum()))
            self.space_group_models_[system] = self._fit_one(f"space_group/{system}", forest, X[rows], sg[rows], w)
        return self

    # -- prediction ---------------------------------------------------------------------------
    @property
    def classes_(self) -> np.ndarray:
        """Crystal systems in the column order of :meth:`predict_proba`."""
        return self.crystal_system_model_.classes_

    def predict_proba(self, X) -> np.ndarray:
        """Crystal-system probabilities ``(n, len(classes_))``."""
        return self.crystal_system_model_.predict_proba(np.asarray(X, dtype=np.float32))

    def space_group_proba(self, X, system_proba: np.ndarray | None = None):
        """``(groups (m,) int, P (n, m))``: ``P(sg) ~ P(system) ** system_exponent P(sg | system)`` over every
        known group (rows sum to 1)."""
        X = np.asarray(X, dtype=np.float32)
        if "all" in self.space_group_models_:
            model = self.space_group_models_["all"]
            return model.classes_.astype(np.int64), model.predict_proba(X)
        if system_proba is None:
            system_proba = self.predict_proba(X)
        weight = np.asarray(system_proba, dtype=np.float64) ** getattr(self, "system_exponent", 1.0)
        groups, blocks = [], []
        for j, system in enumerate(self.classes_):
            model = self.space_group_models_.get(system)
            if model is None:
                continue
            groups.append(model.classes_.astype(np.int64))
            blocks.append(model.predict_proba(X) * weight[:, j:j + 1])
        proba = np.concatenate(blocks, axis=1)
        total = proba.sum(axis=1, keepdims=True)
        return np.concatenate(groups), np.divide(proba, total, out=np.zeros_like(proba), where=total > 0)

    def predict_proba_views(self, views) -> np.ndarray:
        """Crystal-system probabilities averaged over several feature matrices of the same patterns
        (e.g. :func:`xrdbatch.features.shifted_views`)."""
        return np.mean([self.predict_proba(V) for V in views], axis=0)

    def predict_frame(self, X, top_k: int = 5, proba: np.ndarray | None = None, views=(), matches=None,
                      match_threshold: float | None = None, class_weights=None) -> pd.DataFrame:
        """The contract's prediction table (see :meth:`xrdbatch.bundle.ModelBundle.predict`).

        Columns: crystal_system, crystal_system_prob, space_group_1..k, space_group_prob_1..k (0 and 0.0
        where fewer than k groups are known), a, b, c, alpha, beta, gamma (lattice of the predicted system).
        ``proba`` replaces the forest's crystal-system probabilities (e.g. calibrated ones, issue 8).
        ``views``: more feature matrices of the same patterns (shifted peak lists); crystal-system and
        space-group probabilities are averaged over ``X`` and the views (``proba``, when given, is taken as
        that average), lattice constants come from ``X``.

        ``matches`` (:func:`xrdbatch.match.best_matches` of the rows): a row whose match scores at least
        ``match_threshold`` (default :data:`xrdbatch.match.THRESHOLD`) is answered by the matched structure: its
        crystal system, its space group first (then the model's ranking without it) and its lattice constants
        when the library has them (``match_a`` ...). Probabilities stay the model's (of the groups and system
        shown), so a low one flags a match the model disagrees with; a ``matched`` column marks those rows.

        ``class_weights`` (one per ``classes_``): the crystal system is ``argmax(P * weights)`` instead of
        ``argmax(P)``; ``1 / training share`` is the decision that maximises the expected macro recall
        (:meth:`xrdbatch.bundle.ModelBundle.decision_weights`). The reported probability stays ``P`` of that system.
        """
        X = np.asarray(X, dtype=np.float32)
        views = [np.asarray(V, dtype=np.float32) for V in views]
        n = X.shape[0]
        proba = self.predict_proba_views([X, *views]) if proba is None else np.asarray(proba, dtype=np.float64)
        best = (proba if class_weights is None else proba * np.asarray(class_weights, dtype=np.float64)).argmax(axis=1)
        systems = self.classes_[best].astype(object)
        matched = np.zeros(n, dtype=bool)
        if matches is not None:
            from xrdbatch import match

            if len(matches) != n:
                raise ValueError(f"{n} rows but {len(matches)} matches")
            matched = match.decided(matches, match.THRESHOLD if match_threshold is None else match_threshold)
            systems[matched] = matches["match_crystal_system"].to_numpy()[matched].astype(str)
            column = {c: j for j, c in enumerate(self.classes_)}
            best = np.array([column.get(str(s), -1) for s in systems])
        rows = np.arange(n)
        out = {"crystal_system": systems,
               "crystal_system_prob": np.where(best >= 0, proba[rows, np.maximum(best, 0)], 0.0)}
        groups, sg_proba = self.space_group_proba(X, proba)
        for V in views:
            sg_proba = sg_proba + self.space_group_proba(V, proba)[1]
        sg_proba = sg_proba / (1 + len(views))
        k = min(top_k, groups.size)
        order = np.argsort(-sg_proba, axis=1, kind="stable")
        ranked = groups[order[:, :k]]
        ranked_p = np.take_along_axis(sg_proba, order[:, :k], axis=1)
        if matched.any():
            where = {int(g): j for j, g in enumerate(groups)}
            for i in np.flatnonzero(matched):
                g = int(matches["match_space_group"].iloc[i])
                rest = order[i][groups[order[i]] != g][:k - 1]
                ranked[i] = np.concatenate([[g], groups[rest]])[:k]
                ranked_p[i] = np.concatenate([[sg_proba[i, where[g]] if g in where else 0.0],
                                              sg_proba[i, rest]])[:k]
        for i in range(top_k):
            out[f"space_group_{i + 1}"] = ranked[:, i] if i < k else np.zeros(n, dtype=np.int64)
            out[f"space_group_prob_{i + 1}"] = ranked_p[:, i] if i < k else np.zeros(n)
        lattice = self._predict_lattice(X, out["crystal_system"])
        known = [f"match_{name}" for name in LATTICE_NAMES]
        if matched.any() and all(c in matches for c in known):
            lattice[matched] = matches[known].to_numpy(dtype=np.float64)[matched]
        for j, name in enumerate(LATTICE_NAMES):
            out[name] = lattice[:, j]
        frame = pd.DataFrame(out)
        frame["crystal_system"] = frame["crystal_system"].astype(str)
        if matches is not None:
            frame["matched"] = matched
        return frame

    def predict_lattice_given_system(self, X, systems) -> np.ndarray:
        """Lattice ``(n, 6)`` predicted with the regressor of the given (true) systems: isolates regression
        quality from crystal-system mistakes in the report."""
        return self._predict_lattice(np.asarray(X, dtype=np.float32), np.asarray(systems).astype(str))

    def _predict_lattice(self, X, systems) -> np.ndarray:
        out = np.full((X.shape[0], 6), np.nan)
        scale = self._scale(X)
        for system, model in self.lattice_models_.items():
            rows = systems == system
            if rows.any():
                out[rows] = self._lattice_from_target(system, model.predict(X[rows]),
                                                      None if scale is None else scale[rows])
        return out

    def get_params(self) -> dict:
        """Constructor parameters that are not forest shapes (saved in the bundle manifest)."""
        return {"hierarchical_space_group": self.hierarchical_space_group, "fit_lattice": self.fit_lattice,
                "scale_column": self.scale_column, "scale_kind": self.scale_kind,
                "wavelength_angstrom": self.wavelength_angstrom, "system_exponent": self.system_exponent,
                "random_state": self.random_state,
                "scale_fallback_": getattr(self, "scale_fallback_", None)}

    # -- parts (for the bundle) ---------------------------------------------------------------
    def parts(self) -> dict:
        """Every fitted scikit-learn estimator by a file-safe name."""
        parts = {"crystal_system": self.crystal_system_model_}
        parts.update({f"space_group__{k}": m for k, m in self.space_group_models_.items()})
        parts.update({f"lattice__{k}": m for k, m in self.lattice_models_.items()})
        return parts

    @classmethod
    def from_parts(cls, parts: dict, **params) -> CrystalForest:
        """Inverse of :meth:`parts` (used by :func:`xrdbatch.bundle.load_bundle`)."""
        fallback = params.pop("scale_fallback_", None)
        self = cls(**params)
        if fallback is not None:
            self.scale_fallback_ = fallback
        self.crystal_system_model_ = parts["crystal_system"]
        self.space_group_models_ = {k.split("__", 1)[1]: m for k, m in parts.items() if k.startswith("space_group__")}
        self.lattice_models_ = {k.split("__", 1)[1]: m for k, m in parts.items() if k.startswith("lattice__")}
        self.hierarchical_space_group = "all" not in self.space_group_models_
        return self

    def feature_importances(self) -> np.ndarray:
        """Impurity importances of the crystal-system forest (boosted model: the loss reduction of its splits per
        feature, normalised the same way)."""
        model = self.crystal_system_model_
        if hasattr(model, "feature_importances_"):
            return model.feature_importances_
        gain = np.zeros(model.n_features_in_)
        for predictors in model._predictors:
            for predictor in predictors:
                split = predictor.nodes[predictor.nodes["is_leaf"] == 0]
                np.add.at(gain, split["feature_idx"], np.maximum(split["gain"], 0.0))
        return gain / gain.sum() if gain.sum() > 0 else gain


# ------------------------------------------------------------------------------ splits ----
def split_indices(n: int, split: str = "grouped", groups=None, test_size: float = 0.2,
                  random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices.

    ``"random"``: ShuffleSplit. ``"grouped"``: GroupShuffleSplit over ``groups`` (structure types), so that
    every structure type is entirely in train or entirely in test (``test_size`` is then the fraction of
    groups, not rows).
    """
    from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {SPLITS}")
    if split == "grouped":
        if groups is None:
            raise ValueError("split='grouped' needs groups (the structure_type of every row)")
        groups = np.asarray(groups)
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
        train, test = next(splitter.split(np.zeros(n), groups=groups))
    else:
        splitter = ShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
        train, test = next(splitter.split(np.zeros(n)))
    return np.sort(train), np.sort(test)


# ------------------------------------------------------------------------------ metrics ----
def evaluate(frame: pd.DataFrame) -> dict:
    """Metrics of an evaluation table (true_* and predicted columns, see :func:`evaluation_table`).

    Returns accuracy, macro accuracy (mean per-class recall), per-class recall, space-group top-1/5/10
    (also per row origin, ``space_group_by_origin``, when the table has an ``origin`` column),
    and lattice R^2 and MAPE (percent) per crystal system, for the regressor of the true system
    (``lattice_given_system``) and end to end (``lattice``, with the predicted system).
    """
    from sklearn.metrics import r2_score

    true = frame["true_crystal_system"].astype(str).to_numpy()
    pred = frame["crystal_system"].astype(str).to_numpy()
    recall = {s: float(np.mean(pred[true == s] == s)) for s in CRYSTAL_SYSTEMS if np.any(true == s)}
    sg_true = frame["true_space_group"].to_numpy()
    ks = sorted(int(c.rsplit("_", 1)[1]) for c in frame.columns
                if c.startswith("space_group_") and not c.startswith("space_group_prob") and c[12:].isdigit())
    hits = np.stack([frame[f"space_group_{k}"].to_numpy() == sg_true for k in ks], axis=1)
    top = {f"top{k}": float(hits[:, :k].any(axis=1).mean()) for k in (1, 5, 10) if k <= len(ks)}
    metrics = {
        "n_test": int(len(frame)),
        "crystal_system": {"accuracy": float(np.mean(true == pred)),
                           "macro_accuracy": float(np.mean(list(recall.values()))) if recall else float("nan"),
                           "recall": recall,
                           "support": {s: int(np.sum(true == s)) for s in recall}},
        "space_group": top,
    }
    if "origin" in frame:  # real structures are what measured samples resemble: their numbers separately
        origin = frame["origin"].astype(str).to_numpy()
        metrics["space_group_by_origin"] = {
            o: {**{f"top{k}": float(hits[origin == o, :k].any(axis=1).mean()) for k in (1, 5) if k <= len(ks)},
                "n": int(np.sum(origin == o))} for o in sorted(set(origin))}
    lattice = {}
    for system in CRYSTAL_SYSTEMS:
        rows = true == system
        if rows.sum() < 2:
            continue
        entry = {}
        for name in LATTICE_FREE[system]:
            y = frame.loc[rows, f"true_{name}"].to_numpy(dtype=float)
            for label, col in (("given_system", f"lattice_given_system_{name}"), ("end_to_end", name)):
                if col not in frame:
                    continue
                p = frame.loc[rows, col].to_numpy(dtype=float)
                ok = np.isfinite(p) & np.isfinite(y) & (y != 0)
                if ok.sum() < 2:
                    continue
                entry.setdefault(label, {})[name] = {
                    "r2": float(r2_score(y[ok], p[ok])),
                    "mape_percent": float(100 * np.mean(np.abs(p[ok] - y[ok]) / np.abs(y[ok]))),
                }
        if entry:
            given = entry.get("given_system", {})
            entry["mape_percent"] = float(np.mean([v["mape_percent"] for v in given.values()])) if given else None
            lattice[system] = entry
    metrics["lattice"] = lattice
    mapes = [v["mape_percent"] for v in lattice.values() if v.get("mape_percent") is not None]
    metrics["lattice_mape_percent_mean"] = float(np.mean(mapes)) if mapes else None
    return metrics


def evaluation_table(model: CrystalForest, X, labels: pd.DataFrame, feature_names, top_k: int = 10) -> pd.DataFrame:
    """Held-out rows: features, true labels, predictions (top-k groups), crystal-system probabilities and
    the lattice predicted with the true system. Saved in the bundle so the report needs no store."""
    X = np.asarray(X, dtype=np.float32)
    pred = model.predict_frame(X, top_k=top_k)
    table = pd.DataFrame(X, columns=[f"x_{n}" for n in feature_names])
    table.insert(0, "structure_id", labels["structure_id"].to_numpy() if "structure_id" in labels else np.arange(len(X)))
    table["true_crystal_system"] = labels["crystal_system"].astype(str).to_numpy()
    table["true_space_group"] = labels["spacegroup_number"].astype(np.int64).to_numpy()
    for name in LATTICE_NAMES:
        table[f"true_{name}"] = labels[name].to_numpy(dtype=float)
    if "structure_type" in labels:
        table["structure_type"] = labels["structure_type"].astype(str).to_numpy()
    if "origin" in labels:
        table["origin"] = labels["origin"].astype(str).to_numpy()
    for col in pred.columns:
        table[col] = pred[col].to_numpy()
    proba = model.predict_proba(X)
    for j, system in enumerate(model.classes_):
        table[f"proba_{system}"] = proba[:, j]
    given = model.predict_lattice_given_system(X, table["true_crystal_system"].to_numpy())
    for j, name in enumerate(LATTICE_NAMES):
        table[f"lattice_given_system_{name}"] = given[:, j]
    return table


# ------------------------------------------------------------------------------ orchestration ----
LABEL_COLUMNS = ("structure_id", "crystal_system", "spacegroup_number", "a", "b", "c", "alpha", "beta", "gamma",
                 "structure_type")


def data_hash(X: np.ndarray, labels: pd.DataFrame) -> str:
    """sha256 of the training matrix and labels (what the bundle was trained on)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(X, dtype=np.float32).tobytes())
    for col in LABEL_COLUMNS:
        if col in labels:
            h.update(col.encode())
            h.update(pd.util.hash_pandas_object(labels[col].reset_index(drop=True), index=False).to_numpy().tobytes())
    return h.hexdigest()


def _fit(model: CrystalForest, X, labels, backend: str | None, space_group_weight=None):
    args = (X, labels["crystal_system"].to_numpy(), labels["spacegroup_number"].to_numpy(),
            labels[list(LATTICE_NAMES)].to_numpy(dtype=float))
    if backend in (None, "threads"):
        return model.fit(*args, space_group_weight=space_group_weight)
    import joblib

    with joblib.parallel_config(backend=backend):
        return model.fit(*args, space_group_weight=space_group_weight)


def train_arrays(X, labels: pd.DataFrame, out, *, feature_set: str, feature_names, peak_params: dict,
                 conditions, split: str = "grouped", test_size: float = 0.2, random_state: int = 0,
                 n_jobs: int | None = None, backend: str | None = None, model_params: dict | None = None,
                 source: dict | None = None, overwrite: bool = False, log=print,
                 calibrate: str | None = None, class_mix: str = "catalog",
                 space_group_synthetic_weight: float = SPACE_GROUP_SYNTHETIC_WEIGHT, library=None) -> dict:
    """Split, fit, evaluate on the held-out rows, refit nothing, and write the bundle to ``out``.

    ``calibrate`` ("isotonic" or "temperature", issue 8): 15 % of the training structure types are kept
    out of the fit and used to fit a :class:`xrdbatch.calibration.ProbabilityCalibrator` for the
    crystal-system probabilities; it is stored in the manifest (``training.calibration``) and applied by
    :meth:`xrdbatch.bundle.ModelBundle.predict`.

    ``class_mix`` (:data:`CLASS_MIXES`): the fitted rows are resampled to that crystal-system mix
    (:func:`resample_to_mix`); held-out and calibration rows keep the catalog's mix.

    ``space_group_synthetic_weight`` (0..1): sample weight of synthetic rows in the space-group forests
    (:func:`origin_weights`; 0 = real structures and their variants only), from the ``origin`` column of
    ``labels`` (:func:`row_origins`; rows without one count as ``"unknown"``, weight 1). The crystal-system
    and lattice forests learn from every row. Recorded in the manifest with the origin counts of the
    fitted rows (``training.space_group_synthetic_weight``, ``training.origins``).

    ``library``: ``(ReferenceLibrary, where it came from)`` for the bundle's search-match (:mod:`xrdbatch.match`).

    The held-out evaluation table goes into the bundle (``evaluation.parquet``) for the report.
    Returns the manifest.
    """
    from xrdbatch import bundle

    X = np.asarray(X, dtype=np.float32)
    labels = labels.reset_index(drop=True)
    groups = labels["structure_type"].astype(str).to_numpy() if "structure_type" in labels else None
    train, test = split_indices(len(X), split, groups, test_size, random_state)
    log(f"train: {len(train)} rows, test: {len(test)} rows ({split} split"
        + (f", {len(set(groups[test]))} held-out structure types)" if split == "grouped" else ")"))
    names = list(feature_names)
    scale = {}
    if "q_1" in names:
        scale = {"scale_column": names.index("q_1"), "scale_kind": "q"}
    elif "two_theta_1" in names:
        scale = {"scale_column": names.index("two_theta_1"), "scale_kind": "two_theta",
                 "wavelength_angstrom": conditions.wavelength_angstrom}
    model = CrystalForest(**{**scale, **(model_params or {})}, random_state=random_state, n_jobs=n_jobs)
    calibration = None
    if calibrate:
        from xrdbatch.calibration import calibrate_split

        train, calibration_rows = calibrate_split(train, groups, random_state)
    fit_rows = train[resample_to_mix(labels["crystal_system"].to_numpy()[train], class_mix, random_state)]
    if class_mix != "catalog":
        log(f"class mix {class_mix}: {len(train)} training rows resampled to {len(fit_rows)}")
    origin = (labels["origin"].astype(object).to_numpy() if "origin" in labels
              else np.full(len(labels), "unknown", dtype=object))
    sg_weight = origin_weights(origin[fit_rows], space_group_synthetic_weight)
    origins = {o: int(n) for o, n in zip(*np.unique(origin[fit_rows].astype(str), return_counts=True))}
    t0 = time.perf_counter()
    _fit(model, X[fit_rows], labels.iloc[fit_rows], backend, space_group_weight=sg_weight)
    fit_seconds = time.perf_counter() - t0
    log(f"fitted {len(model.parts())} forests in {fit_seconds:.1f} s; space groups weigh synthetic rows "
        f"{space_group_synthetic_weight:g} (fitted rows by origin: {origins})"
        + (f"; {model.space_group_fallback_} have no weighted row and learn from all theirs"
           if model.space_group_fallback_ else ""))
    if calibrate:
        from xrdbatch.calibration import fit_for_model

        calibration = fit_for_model(model, X[calibration_rows], labels.iloc[calibration_rows], calibrate)
        log(f"calibrated ({calibrate}) on {len(calibration_rows)} held-out training rows: ECE "
            f"{calibration['ece_raw']:.3f} -> {calibration['ece_calibrated']:.3f}")
    table = evaluation_table(model, X[test], labels.iloc[test], feature_names)
    metrics = evaluate(table)
    cs = metrics["crystal_system"]
    log(f"held-out: crystal system {cs['accuracy']:.3f} (macro {cs['macro_accuracy']:.3f}), space group "
        + ", ".join(f"{k} {v:.3f}" for k, v in metrics["space_group"].items())
        + "".join(f"; {o} ({v['n']} rows) " + ", ".join(f"{k} {x:.3f}" for k, x in v.items() if k != "n")
                  for o, v in metrics.get("space_group_by_origin", {}).items())
        + (f", lattice MAPE {metrics['lattice_mape_percent_mean']:.2f} %" if metrics["lattice_mape_percent_mean"]
           is not None else ""))
    fitted_systems = pd.Series(labels["crystal_system"].to_numpy()[fit_rows]).astype(str)
    training = {
        "split": split, "test_size": test_size, "random_state": random_state, "class_mix": class_mix,
        "class_shares": {k: float(v) for k, v in fitted_systems.value_counts(normalize=True).sort_index().items()},
        "space_group_synthetic_weight": float(space_group_synthetic_weight), "origins": origins,
        "space_group_fallback": list(model.space_group_fallback_),
        "n_train": int(len(train)), "n_test": int(len(test)), "n_rows": int(len(X)),
        "data_sha256": data_hash(X, labels), "fit_seconds": fit_seconds,
        "fit_seconds_by_model": model.fit_seconds_, "n_jobs": n_jobs, "backend": backend or "threads",
        "model_params": {k: (params_record(v) if isinstance(v, (ForestParams, BoostingParams)) else v)
                         for k, v in {"crystal_system": model.crystal_system or DEFAULT_PARAMS["crystal_system"],
                                      "space_group": model.space_group or DEFAULT_PARAMS["space_group"],
                                      "lattice": model.lattice or DEFAULT_PARAMS["lattice"],
                                      "hierarchical_space_group": model.hierarchical_space_group}.items()},
        "source": source or {},
    }
    if calibration is not None:
        training["calibration"] = calibration
    return bundle.save_bundle(model, out, conditions=conditions, feature_set=feature_set,
                              feature_names=list(feature_names), peak_params=peak_params, training=training,
                              metrics=metrics, evaluation=table, overwrite=overwrite, library=library)


def read_training_data(store_path, feature_set: str):
    """``(X, labels DataFrame, feature names, peak params, conditions, source info)`` of the ok rows of a store."""
    from xrdbatch import features, store as xstore

    X, names, peak_params, ds = features.read_features(store_path, feature_set)
    status = (np.asarray(ds["sim_status"].values.tolist(), dtype=object) if "sim_status" in ds
              else np.full(len(X), "ok", dtype=object))
    labels = pd.DataFrame({col: (ds[col].values.tolist() if ds[col].dtype.kind not in "fiu" else ds[col].values)
                           for col in LABEL_COLUMNS if col in ds.variables})
    ok = (status == "ok") & labels["crystal_system"].astype(str).isin(CRYSTAL_SYSTEMS).to_numpy()
    labels["origin"], origin_from = store_origins(ds, labels["structure_id"] if "structure_id" in labels
                                                  else np.full(len(X), ""))
    conditions = xstore.read_conditions(store_path)
    source = {"store": str(store_path), "catalog_sha256": ds.attrs.get("catalog_sha256", ""),
              "n_structures": int(len(X)), "n_ok": int(ok.sum()), "origin_from": origin_from}
    return X[ok], labels[ok].reset_index(drop=True), names, peak_params, conditions, source


def store_origins(ds, structure_id) -> tuple[np.ndarray, str]:
    """``(origin of every row (ORIGINS), where it was read)`` for a store's rows.

    A ``source`` coordinate of the store is used when there is one; otherwise the catalog the store was
    simulated from (attrs ``catalog_path``, also carried by retargeted and augmented copies), provided it
    still has the content the store recorded (``catalog_sha256``). A catalog that moved or changed gives
    ``"unknown"`` rows (weighed like real ones) rather than a guess.
    """
    from xrdbatch import sources

    ids = np.asarray(structure_id, dtype=object)
    if "source" in ds.variables:
        return row_origins(ids, ds["source"].values.tolist()), "store"
    path = ds.attrs.get("catalog_path")
    if not path or not os.path.exists(path) or sources.catalog_hash(path) != ds.attrs.get("catalog_sha256"):
        return np.full(len(ids), "unknown", dtype=object), f"none (catalog {path!r} missing or changed)"
    table = pd.read_parquet(path, columns=["id", "source"]).drop_duplicates("id").set_index("id")["source"]
    return row_origins(ids, table.reindex(ids.astype(str)).to_numpy(dtype=object)), str(path)


#: Feature set the search-match library's lines are found with (the cheapest that has every column it keeps).
LIBRARY_FEATURE_SET = "measured"


def default_library_store(store_paths) -> tuple[str | None, str]:
    """``(store, why)``: where the search-match library of a model trained on ``store_paths`` comes from.

    A training store with ideal patterns is its own library store; an augmented copy (``augmentation`` in
    its attrs) points to the store it was rendered from (``retargeted_from``), used when it still exists and
    has the same conditions. ``store`` is None (and ``why`` says why) when there is none."""
    import zarr

    paths = [store_paths] if isinstance(store_paths, (str, bytes, os.PathLike)) else list(store_paths)
    first = dict(zarr.open_group(os.fspath(paths[0]), mode="r").attrs)
    if not first.get("augmentation"):
        return os.fspath(paths[0]), "the training store (ideal patterns)"
    source = (first.get("retargeted_from") or {}).get("store")
    if not source or not os.path.isdir(source):
        return None, f"{paths[0]} is augmented and the ideal store it was rendered from ({source!r}) is not there"
    if dict(zarr.open_group(source, mode="r").attrs).get("conditions") != first.get("conditions"):
        return None, f"{source} (the ideal store behind {paths[0]}) has other instrument conditions"
    return source, f"{source}, the ideal store the augmented training stores were rendered from"


def reference_library(store_path, peak_params: dict, *, chunk: int = 500):
    """The search-match library (:class:`xrdbatch.match.ReferenceLibrary`) of a store of ideal patterns: its
    real structures (origin ``"real"``: no element-substituted variants, no synthetic crystals) that have a
    pattern, with their lines found by the peak finder with ``peak_params`` (the model's), and the labels
    ``id``, ``formula``, ``crystal_system``, ``space_group``, ``structure_type`` and the lattice constants.

    Raises ValueError for an augmented store (its lines are strained and shifted)."""
    import dask

    from xrdbatch import features, match, store as xstore

    ds = xstore.open_dataset(store_path)
    if ds.attrs.get("augmentation"):
        raise ValueError(f"{store_path}: a store of measurement-like (augmented) patterns; the search-match library "
                         "needs ideal ones: give the store it was rendered from")
    n = ds.sizes["structure"]
    ids = np.asarray(ds["structure_id"].values.tolist(), dtype=object)
    status = (np.asarray(ds["sim_status"].values.tolist(), dtype=object) if "sim_status" in ds
              else np.full(n, "ok", dtype=object))
    systems = np.asarray(ds["crystal_system"].values.tolist(), dtype=object)
    origin, _ = store_origins(ds, ids)
    rows = np.flatnonzero((status == "ok") & (origin == "real") & np.isin(systems, CRYSTAL_SYSTEMS))

    def column(name, default=""):
        return (np.asarray(ds[name].values.tolist(), dtype=object)[rows] if name in ds.variables
                else np.full(len(rows), default, dtype=object))

    labels = pd.DataFrame({"id": ids[rows].astype(str), "formula": column("formula").astype(str),
                           "crystal_system": systems[rows].astype(str),
                           "space_group": np.asarray(ds["spacegroup_number"].values)[rows].astype(np.int64),
                           "structure_type": column("structure_type").astype(str)})
    for name in LATTICE_NAMES:
        labels[name] = np.asarray(ds[name].values, dtype=np.float64)[rows]
    wavelength = xstore.read_conditions(store_path).wavelength_angstrom
    tt = ds["two_theta"].values.astype(np.float64)
    names = features.feature_names(LIBRARY_FEATURE_SET)

    X = np.zeros((0, len(names)), np.float32)
    if len(rows):  # blocks of rows in parallel: the active Dask client (train --backend dask, the pipeline) or threads
        extract = dask.delayed(features.extract, pure=True)
        blocks = ds["intensity"].data[rows].rechunk((chunk, -1)).to_delayed().ravel()
        X = np.concatenate(dask.compute(*[extract(tt, block, wavelength, LIBRARY_FEATURE_SET, **(peak_params or {}))
                                          for block in blocks]))
    return match.ReferenceLibrary.from_features(X, names, labels)


def library_from_stores(stores, conditions, peak_params: dict, base=None):
    """The search-match library of the real structures of several stores of ideal patterns (each simulated at
    ``conditions``, the model's), after the entries of ``base`` (a :class:`xrdbatch.match.ReferenceLibrary`) when
    given; a structure id already listed is not added again. For :func:`xrdbatch.bundle.replace_library`.

    Raises ValueError for a store simulated at other conditions or an augmented one."""
    from xrdbatch import match, store as xstore

    parts = [] if base is None else [base]
    for path in stores:
        theirs = xstore.read_conditions(path)
        if theirs != conditions:
            ours = conditions.to_dict()
            differ = {k: (v, ours.get(k)) for k, v in theirs.to_dict().items() if v != ours.get(k)}
            raise ValueError(f"library store {path}: simulated at other instrument conditions than the model's "
                             f"training stores (store, model: {differ}); retarget it first (`xrdbatch retarget`)")
        parts.append(reference_library(path, peak_params))
    if not parts:
        raise ValueError("a search-match library needs at least one store")
    lines = np.concatenate([p.lines for p in parts])
    labels = pd.concat([p.labels for p in parts], ignore_index=True)
    keep = ~labels["id"].astype(str).duplicated().to_numpy()
    return match.ReferenceLibrary(lines[keep], labels[keep].reset_index(drop=True))


def _library_for(library_store, training_stores, feature_set, names, conditions, peak_params, log):
    """``(ReferenceLibrary, its store)`` for :func:`train_from_store`, or None (logged why)."""
    from xrdbatch import match

    if library_store is None:
        return None
    if not match.has_line_columns(names):
        log(f"search-match library: none (feature set {feature_set!r} has no line positions in Q)")
        return None
    why = "given"
    if library_store == "auto":
        library_store, why = default_library_store(training_stores)
        if library_store is None:
            log(f"search-match library: none ({why})")
            return None
    t0 = time.perf_counter()
    library = library_from_stores([library_store], conditions, peak_params)
    if not len(library):
        log(f"search-match library: none (no real structure with a pattern in {library_store})")
        return None
    log(f"search-match library: {len(library)} real structures of {library_store} ({why}) in "
        f"{time.perf_counter() - t0:.1f} s")
    return library, str(library_store)


def train_from_store(store_path, out, *, feature_set: str = "seed11", library_store: str | None = "auto",
                     **kwargs) -> dict:
    """``xrdbatch train``: read the features of a store (or of several stores with the same conditions,
    feature set and peak parameters, e.g. augmented copies, issue 8), then :func:`train_arrays`.

    ``library_store``: the store of ideal patterns whose real structures become the bundle's search-match
    library (:func:`reference_library`); ``"auto"`` = :func:`default_library_store`, None = no library. A
    feature set without line positions in Q (``seed11``) gets none."""
    log = kwargs.get("log", print)
    stores = store_path
    if not isinstance(store_path, (str, bytes)) and hasattr(store_path, "__iter__"):
        parts = [read_training_data(p, feature_set) for p in store_path]
        for p, part in zip(store_path, parts):
            if part[1:].__len__() and (part[2] != parts[0][2] or part[3] != parts[0][3]
                                       or part[4] != parts[0][4]):
                raise ValueError(f"{p}: feature names, peak parameters or conditions differ from {store_path[0]}; "
                                 "stores trained together must be featurised the same way")
        X = np.concatenate([part[0] for part in parts])
        labels = pd.concat([part[1] for part in parts], ignore_index=True)
        names, peak_params, conditions = parts[0][2], parts[0][3], parts[0][4]
        source = {"stores": [part[5] for part in parts], "n_structures": int(sum(p[5]["n_structures"] for p in parts))}
        store_path = ", ".join(str(p) for p in store_path)
    else:
        X, labels, names, peak_params, conditions, source = read_training_data(store_path, feature_set)
    if len(X) < 10:
        raise ValueError(f"{store_path}: only {len(X)} usable rows (sim_status ok with a crystal system); "
                         "need at least 10 to split and train")
    library = _library_for(library_store, stores, feature_set, names, conditions, peak_params, log)
    return train_arrays(X, labels, out, feature_set=feature_set, feature_names=names, peak_params=peak_params,
                        conditions=conditions, source=source, library=library, **kwargs)


# ------------------------------------------------------------------------------ synthetic features ----
@functools.lru_cache(maxsize=1)
def _centring_of_groups() -> dict[int, str]:
    """Lattice centring letter (P, A, B, C, I, F, R) of every space group's standard setting (spglib)."""
    import warnings

    import spglib

    letters = {}
    for hall in range(1, 531):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            t = spglib.get_spacegroup_type(hall)
        number = t.number
        if number not in letters:
            letters[number] = t.international_short[0]
    return letters


def _space_group_prior() -> np.ndarray:
    import json
    from importlib import resources

    try:
        data = json.loads(resources.files("xrdbatch").joinpath("data", "space_group_prior.json").read_text())
        counts = np.asarray(data["icsd"]["counts"], dtype=float)
    except (FileNotFoundError, KeyError, ModuleNotFoundError):
        counts = np.ones(230)
    return (counts + 0.5) / (counts + 0.5).sum()


def synthetic_lattice_features(n: int, feature_set: str = "seed11", *, seed: int = 0, **kwargs):
    """``(X, labels)``: :func:`synthetic_lattice_peaks` turned into the features of ``feature_set``."""
    from xrdbatch import features

    peaks, labels = synthetic_lattice_peaks(n, seed=seed, **kwargs)
    return features.from_peaks(peaks, feature_set), labels


def synthetic_lattice_peaks(n: int, *, wavelength_angstrom: float = 1.5406, two_theta_range_deg=(5.0, 90.0),
                            height_rel: float = 0.01, seed: int = 0, chunk: int = 5000):
    """ICSD-like peak tables without simulating patterns: for benchmarks and tests of training at scale.

    Space groups are drawn from the ICSD frequencies, cells per crystal system (lengths 3-20 angstrom,
    log-uniform; monoclinic beta 90-120 deg; triclinic angles 60-120 deg), reflections h,k,l in -6..6 kept by
    the lattice centring only (glide/screw absences ignored), Wilson-statistics intensities (exponential,
    summed where d-spacings coincide within 0.02 deg) with a Debye-Waller fall-off, weak ones
    (< ``height_rel`` of the strongest) dropped. The result has the feature distribution of simulated
    patterns (positions, counts, ratios), so fit times and model sizes measured on it transfer.

    Returns
    -------
    peaks : xrdbatch.features.Peaks
    labels : DataFrame
        structure_id, crystal_system, spacegroup_number, a, b, c, alpha, beta, gamma, structure_type
        (synthetic groups of 4 consecutive structures of one space group, for grouped splits).
    """
    from xrdbatch import features
    from xrdbatch.crystal import crystal_system_of

    rng = np.random.default_rng(seed)
    prior = _space_group_prior()
    sg = rng.choice(np.arange(1, 231), size=n, p=prior)
    systems = np.array([crystal_system_of(s) for s in range(1, 231)])[sg - 1]
    centring = _centring_of_groups()
    letter = np.array([centring[s] for s in range(1, 231)])[sg - 1]

    lengths = np.exp(rng.uniform(np.log(3.0), np.log(20.0), size=(n, 3)))
    angles = np.full((n, 3), 90.0)
    lat = np.concatenate([lengths, angles], axis=1)
    for system in CRYSTAL_SYSTEMS:
        rows = systems == system
        m = int(rows.sum())
        if system == "cubic":
            lat[rows, 1] = lat[rows, 2] = lat[rows, 0]
        elif system == "tetragonal":
            lat[rows, 1] = lat[rows, 0]
        elif system in ("hexagonal", "trigonal"):
            lat[rows, 1] = lat[rows, 0]
            lat[rows, 5] = 120.0
        elif system == "monoclinic":
            lat[rows, 4] = rng.uniform(90.0, 120.0, m)
        elif system == "triclinic":
            lat[rows, 3:] = rng.uniform(70.0, 110.0, (m, 3))
    # Volume per atom ~ ICSD-like: keep cells below ~2000 A^3 by shrinking the longest axes a little.
    hkl = np.stack(np.meshgrid(*[np.arange(-6, 7)] * 3, indexing="ij"), -1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    h, k, l = hkl.T
    allowed = {
        "P": np.ones(len(hkl), bool), "I": (h + k + l) % 2 == 0,
        "F": ((h % 2) == (k % 2)) & ((k % 2) == (l % 2)), "C": (h + k) % 2 == 0,
        "A": (k + l) % 2 == 0, "B": (h + l) % 2 == 0, "R": (-h + k + l) % 3 == 0,
    }
    lo, hi = two_theta_range_deg
    s_max = 2 * np.sin(np.radians(hi) / 2) / wavelength_angstrom  # 1/d max
    s_min = 2 * np.sin(np.radians(lo) / 2) / wavelength_angstrom
    bin_deg = 0.02
    rows_all, pos_all, height_all = [], [], []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        a, b, c = (lat[start:stop, i] for i in range(3))
        al, be, ga = (np.radians(lat[start:stop, i]) for i in range(3, 6))
        # reciprocal metric tensor G* = G^-1
        G = np.empty((stop - start, 3, 3))
        G[:, 0, 0], G[:, 1, 1], G[:, 2, 2] = a * a, b * b, c * c
        G[:, 0, 1] = G[:, 1, 0] = a * b * np.cos(ga)
        G[:, 0, 2] = G[:, 2, 0] = a * c * np.cos(be)
        G[:, 1, 2] = G[:, 2, 1] = b * c * np.cos(al)
        Gs = np.linalg.inv(G)
        inv_d2 = np.einsum("mi,nij,mj->nm", hkl.astype(float), Gs, hkl.astype(float), optimize=True)
        inv_d = np.sqrt(np.maximum(inv_d2, 0))
        mask = np.stack([allowed[x] for x in letter[start:stop]]) & (inv_d >= s_min) & (inv_d <= s_max)
        tt = np.degrees(2 * np.arcsin(np.clip(inv_d * wavelength_angstrom / 2, 0, 1)))
        intensity = rng.exponential(1.0, size=tt.shape) * np.exp(-0.5 * inv_d2)  # B ~ 2 A^2
        r, j = np.nonzero(mask)
        key = r.astype(np.int64) * 10_000_000 + np.round(tt[r, j] / bin_deg).astype(np.int64)
        uniq, inv = np.unique(key, return_inverse=True)
        summed = np.bincount(inv, weights=intensity[r, j])
        ur = uniq // 10_000_000
        upos = (uniq % 10_000_000) * bin_deg
        rmax = np.zeros(stop - start)
        np.maximum.at(rmax, ur, summed)
        hgt = summed / np.maximum(rmax[ur], 1e-300)
        keep = hgt >= height_rel
        rows_all.append(ur[keep] + start)
        pos_all.append(upos[keep])
        height_all.append(hgt[keep])
    rows = np.concatenate(rows_all)
    pos = np.concatenate(pos_all)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    q = 4 * np.pi * np.sin(np.radians(pos) / 2) / wavelength_angstrom
    peaks = features.Peaks(rows, pos, q, np.concatenate(height_all).astype(np.float32), offsets)
    labels = pd.DataFrame({
        "structure_id": [f"lat-{seed}-{i}" for i in range(n)],
        "crystal_system": systems, "spacegroup_number": sg,
        "a": lat[:, 0], "b": lat[:, 1], "c": lat[:, 2], "alpha": lat[:, 3], "beta": lat[:, 4], "gamma": lat[:, 5],
        "structure_type": [f"lat_{s}_{i // 4}" for i, s in enumerate(sg)],
    })
    return peaks, labels

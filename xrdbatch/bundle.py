"""Model bundle: a directory of skops files plus a manifest, written atomically, verified on load.

Layout::

    model_dir/
      manifest.json             format, created, Conditions, feature set + names, peak params, training
                                (data sha256 and size, split, fit times, parameters), metrics, versions,
                                files {name: {sha256, bytes}}
      crystal_system.skops      ExtraTreesClassifier (or HistGradientBoostingClassifier, packed the same way)
      space_group__<system>.skops, lattice__<system>.skops
      evaluation.parquet        held-out rows: features, true labels, predictions (for ``xrdbatch report``)
      library.parquet           search-match library (optional): the real training structures' lines in Q and
                                labels (:mod:`xrdbatch.match`; ``xrdbatch score --search-match``); another
                                one can replace it later (:func:`replace_library`, ``xrdbatch library``)

Forests are packed into plain dicts of compact numpy arrays (:func:`pack_forest`: 32-bit node columns,
leaf values only) and saved with skops (never pickle); loading trusts no extra type at all and rebuilds
the scikit-learn estimators (:func:`unpack_forest`); a boosted crystal-system model is packed as its trees'
node tables (:func:`pack_boosting`, :func:`unpack_boosting`). The
bundle is written into a temporary sibling directory and renamed into place, so readers never see a
half-written bundle. :func:`load_bundle` recomputes every file's sha256 and compares the package versions
that matter for reading tree arrays (scikit-learn major.minor, skops, numpy major); a mismatch is refused
with a message that says what to do.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from xrdbatch.hashes import file_sha256 as sha256_file

FORMAT = "xrdbatch-bundle/1"
MANIFEST = "manifest.json"
EVALUATION = "evaluation.parquet"
LIBRARY = "library.parquet"
#: Crystal-system decisions (:meth:`ModelBundle.decision_weights`).
DECISIONS = ("argmax", "balanced")


class BundleError(ValueError):
    """A bundle that cannot be used: missing, tampered with, or made by incompatible versions."""


def package_versions() -> dict:
    import scipy
    import sklearn
    import skops

    import xrdbatch

    return {"xrdbatch": xrdbatch.__version__, "scikit-learn": sklearn.__version__, "skops": skops.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "python": platform.python_version()}


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ------------------------------------------------------------------------------ compact forests ----
#: Node columns kept per tree, with their stored dtypes (sklearn keeps 64 bytes per node + float64 values).
_NODE_COLUMNS = {"left_child": np.int32, "right_child": np.int32, "feature": np.int32, "threshold": np.float32,
                 "impurity": np.float32, "n_node_samples": np.int32, "weighted_n_node_samples": np.float32,
                 "missing_go_to_left": np.uint8}


def _threshold_down(threshold: np.ndarray) -> np.ndarray:
    """float64 thresholds -> the largest float32 not above them.

    Trees compare float32 features ``x <= t``; for a float32 ``x`` that is the same test as
    ``x <= t32`` with ``t32`` rounded towards minus infinity, so predictions stay bit-identical.
    """
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def pack_forest(forest) -> dict:
    """A fitted ``ExtraTrees*`` / ``RandomForest*`` as a dict of concatenated, compact numpy arrays.

    Every tree's node table is stored column-wise with 32-bit types (29 bytes per node instead of 64) and
    the per-node values (class fractions or regression means) only at leaves, as float32, since
    prediction reads leaves only. :func:`unpack_forest` rebuilds an estimator whose predictions equal the
    original's for float32 inputs. This is what keeps bundles small and loading fast (one skops file of a
    few arrays per forest instead of one object graph per tree).
    """
    trees = [est.tree_ for est in forest.estimators_]
    states = [t.__getstate__() for t in trees]
    nodes = np.concatenate([s["nodes"] for s in states])
    leaf = nodes["left_child"] == -1
    values = np.concatenate([s["values"] for s in states])
    packed = {f"node_{name}": nodes[name].astype(dtype) for name, dtype in _NODE_COLUMNS.items()}
    packed["node_threshold"] = _threshold_down(nodes["threshold"])
    packed["leaf_values"] = values[leaf].astype(np.float32)
    packed["node_counts"] = np.array([s["node_count"] for s in states], dtype=np.int64)
    packed["max_depths"] = np.array([s["max_depth"] for s in states], dtype=np.int64)
    packed["tree_random_states"] = np.array([est.random_state for est in forest.estimators_], dtype=np.int64)
    packed["value_shape"] = np.array(values.shape[1:], dtype=np.int64)
    params = {k: v for k, v in forest.get_params(deep=False).items() if k != "estimator"}
    packed["class"] = f"{type(forest).__module__}.{type(forest).__name__}"
    packed["params"] = json.dumps(params, default=_json_default)
    first = forest.estimators_[0]
    packed["tree_params"] = json.dumps({k: v for k, v in first.get_params(deep=False).items()
                                        if k != "random_state"}, default=_json_default)
    packed["n_features_in"] = int(forest.n_features_in_)
    packed["n_outputs"] = int(forest.n_outputs_)
    packed["max_features_"] = int(first.max_features_)
    if hasattr(forest, "classes_"):
        classes = forest.classes_
        packed["classes"] = np.asarray(classes)
    return packed


_BOOSTING = "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier"


def pack_boosting(model) -> dict:
    """A fitted ``HistGradientBoostingClassifier`` (numeric features only) as a dict of numpy arrays: every
    tree's node table (the predictor records, all of them, one concatenated structured array split into
    columns), the baseline raw prediction and the classes. :func:`unpack_boosting` rebuilds a classifier whose
    predictions equal the original's bit for bit."""
    if model.is_categorical_ is not None and np.any(model.is_categorical_):
        raise BundleError("boosted models with categorical features cannot be packed")
    predictors = [p for per_round in model._predictors for p in per_round]
    nodes = np.concatenate([p.nodes for p in predictors])
    packed = {f"node_{name}": nodes[name] for name in nodes.dtype.names}
    packed["node_counts"] = np.array([len(p.nodes) for p in predictors], dtype=np.int64)
    packed["n_trees_per_iteration"] = int(model.n_trees_per_iteration_)
    packed["baseline_prediction"] = np.asarray(model._baseline_prediction)
    packed["classes"] = np.asarray(model.classes_)
    packed["n_features_in"] = int(model.n_features_in_)
    packed["class"] = f"{type(model).__module__}.{type(model).__name__}"
    packed["params"] = json.dumps(model.get_params(deep=False), default=_json_default)
    return packed


def unpack_boosting(packed: dict):
    """Inverse of :func:`pack_boosting`: a fitted ``HistGradientBoostingClassifier`` (the attributes its
    ``predict_proba`` reads, set the way ``fit`` sets them; a scikit-learn minor release may move them, which
    is why bundles record and check its version)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE, X_BITSET_INNER_DTYPE
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    model = HistGradientBoostingClassifier(**json.loads(packed["params"]))
    n_features = int(packed["n_features_in"])
    counts = packed["node_counts"]
    nodes = np.zeros(int(counts.sum()), dtype=PREDICTOR_RECORD_DTYPE)
    for name in PREDICTOR_RECORD_DTYPE.names:
        nodes[name] = packed[f"node_{name}"]
    no_bitsets = np.zeros((0, 8), dtype=X_BITSET_INNER_DTYPE)
    per_round = int(packed["n_trees_per_iteration"])
    starts = np.concatenate([[0], np.cumsum(counts)])
    trees = [TreePredictor(nodes[starts[i]:starts[i + 1]].copy(), no_bitsets, no_bitsets) for i in range(len(counts))]
    model._predictors = [trees[i:i + per_round] for i in range(0, len(trees), per_round)]
    model._baseline_prediction = packed["baseline_prediction"]
    model.n_trees_per_iteration_ = per_round
    model.classes_ = packed["classes"]
    model.n_features_in_ = n_features
    model.is_categorical_ = None
    model._preprocessor = None
    model._loss = model._get_loss(sample_weight=None)
    binner = _BinMapper()
    binner.is_categorical_ = np.zeros(n_features, dtype=bool)
    binner.bin_thresholds_ = []
    model._bin_mapper = binner
    return model


def pack_model(estimator) -> dict:
    """:func:`pack_boosting` for a boosted classifier, else :func:`pack_forest`."""
    name = f"{type(estimator).__module__}.{type(estimator).__name__}"
    return pack_boosting(estimator) if name == _BOOSTING else pack_forest(estimator)


def unpack_model(packed: dict):
    """Inverse of :func:`pack_model`."""
    return unpack_boosting(packed) if packed["class"] == _BOOSTING else unpack_forest(packed)


_FORESTS = {
    "sklearn.ensemble._forest.ExtraTreesClassifier": ("sklearn.ensemble", "ExtraTreesClassifier"),
    "sklearn.ensemble._forest.ExtraTreesRegressor": ("sklearn.ensemble", "ExtraTreesRegressor"),
    "sklearn.ensemble._forest.RandomForestClassifier": ("sklearn.ensemble", "RandomForestClassifier"),
    "sklearn.ensemble._forest.RandomForestRegressor": ("sklearn.ensemble", "RandomForestRegressor"),
}


def unpack_forest(packed: dict):
    """Inverse of :func:`pack_forest`: a fitted scikit-learn forest."""
    import importlib

    from sklearn.tree._tree import Tree

    try:
        module, name = _FORESTS[packed["class"]]
    except KeyError:
        raise BundleError(f"unknown forest class {packed['class']!r}; known: {sorted(_FORESTS)}") from None
    forest_cls = getattr(importlib.import_module(module), name)
    forest = forest_cls(**json.loads(packed["params"]))
    forest._validate_estimator()  # sets forest.estimator_ the way fit does
    tree_params = json.loads(packed["tree_params"])
    n_features, n_outputs = int(packed["n_features_in"]), int(packed["n_outputs"])
    value_shape = tuple(int(v) for v in packed["value_shape"])
    is_classifier = "classes" in packed
    if is_classifier:
        classes = packed["classes"]
        n_classes = np.array([len(classes)], dtype=np.intp)
    else:
        n_classes = np.ones(n_outputs, dtype=np.intp)

    counts = packed["node_counts"]
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    nodes = np.zeros(total, dtype=_node_dtype())
    for col in _NODE_COLUMNS:
        nodes[col] = packed[f"node_{col}"]
    nodes["threshold"] = packed["node_threshold"].astype(np.float64)
    values = np.zeros((total,) + value_shape, dtype=np.float64)
    values[nodes["left_child"] == -1] = packed["leaf_values"]

    estimators = []
    start = 0
    for i, end in enumerate(ends):
        tree = Tree(n_features, n_classes, n_outputs)
        # contiguous slices; __setstate__ copies them into the tree's own buffers
        tree.__setstate__({"max_depth": int(packed["max_depths"][i]), "node_count": int(counts[i]),
                           "nodes": nodes[start:end], "values": values[start:end]})
        est = forest.estimator_.__class__(**tree_params, random_state=int(packed["tree_random_states"][i]))
        est.n_features_in_ = n_features
        est.n_outputs_ = n_outputs
        est.max_features_ = int(packed["max_features_"])
        if is_classifier:
            est.classes_ = classes
            est.n_classes_ = np.intp(len(classes))
        est.tree_ = tree
        estimators.append(est)
        start = end
    forest.estimators_ = estimators
    forest.n_features_in_ = n_features
    forest.n_outputs_ = n_outputs
    if is_classifier:
        forest.classes_ = classes
        forest.n_classes_ = len(classes)
    return forest


def _node_dtype():
    from sklearn.tree._tree import NODE_DTYPE

    return NODE_DTYPE


def save_bundle(model, out, *, conditions, feature_set: str, feature_names, peak_params: dict, training: dict,
                metrics: dict, evaluation=None, overwrite: bool = False, compression: bool = True,
                library=None) -> dict:
    """Write a trained :class:`xrdbatch.train.CrystalForest` as a bundle directory; returns the manifest.

    Parameters
    ----------
    model : CrystalForest
    out : str or Path
        Target directory; must not exist unless ``overwrite`` (then it is replaced as a whole).
    conditions : Conditions
        Instrument conditions of the training patterns.
    feature_set, feature_names, peak_params
        How features were made (scoring must use the same).
    training, metrics : dict
        Free-form, JSON-serialisable (see :func:`xrdbatch.train.train_arrays`).
    evaluation : DataFrame, optional
        Held-out evaluation table, stored as ``evaluation.parquet``.
    compression : bool
        Deflate the skops zip members (about 2-3x smaller, load slightly slower).
    library : (ReferenceLibrary, str), optional
        Search-match library and where it came from, stored as ``library.parquet`` (:mod:`xrdbatch.match`).
    """
    import zipfile

    import skops.io as sio

    out = Path(out)
    if out.exists() and not overwrite:
        raise BundleError(f"{out} exists; choose another --out or pass overwrite=True (--overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        files = {}
        for name, estimator in model.parts().items():
            path = tmp / f"{name}.skops"
            sio.dump(pack_model(estimator), path,
                     compression=zipfile.ZIP_DEFLATED if compression else zipfile.ZIP_STORED)
            files[path.name] = None
        if evaluation is not None:
            evaluation.to_parquet(tmp / EVALUATION, index=False)
            files[EVALUATION] = None
        library_record = None
        if library is not None:
            library_record = _write_library(tmp, *library)
            files[LIBRARY] = None
        for name in files:
            files[name] = {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
        from xrdbatch import features

        manifest = {
            "format": FORMAT,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "conditions": conditions.to_dict(),
            "feature_set": feature_set,
            "feature_names": list(feature_names),
            # every peak-finder setting, defaults resolved: a later change of a default cannot change this model
            "peak_params": features.PeakParams(**peak_params).to_dict(),
            "model": {"class": "xrdbatch.train.CrystalForest", "params": model.get_params(),
                      "crystal_systems": [str(c) for c in model.classes_],
                      "space_group_models": sorted(model.space_group_models_),
                      "lattice_models": sorted(model.lattice_models_)},
            "training": training,
            "metrics": metrics,
            "library": library_record,
            "versions": package_versions(),
            "files": files,
            "total_bytes": int(sum(f["bytes"] for f in files.values())),
        }
        _swap_into_place(tmp, out, manifest)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_library(folder: Path, reference, origin: str) -> dict:
    """Write a :class:`xrdbatch.match.ReferenceLibrary` as ``folder/library.parquet``; its manifest record."""
    from xrdbatch import match

    reference.to_frame().to_parquet(folder / LIBRARY, index=False)
    return {"entries": len(reference), "source": origin, "tolerance": match.TOLERANCE, "threshold": match.THRESHOLD,
            "margin": match.MARGIN}


def _swap_into_place(tmp: Path, out: Path, manifest: dict) -> None:
    """Write ``manifest`` into the finished folder ``tmp`` and put it at ``out``: the old bundle (if any) is moved
    aside first, then removed, so a reader finds either the old bundle or the new one, whole."""
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default))
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def replace_library(path, library, source: str) -> dict:
    """Give a bundle another search-match library (:class:`xrdbatch.match.ReferenceLibrary`) without retraining;
    returns the new manifest.

    The library answers the patterns of structures it holds (98 % of RRUFF dev's matched minerals get the right
    crystal system), so a lab with a structure database of its own (minerals, its phases) gains most by adding it
    here (:func:`xrdbatch.train.library_from_stores`). The forests are untouched; the bundle is verified, then
    rewritten as a whole (a copy with the new ``library.parquet`` and manifest swapped into place), so a reader never
    sees a library its manifest does not list. ``source`` is recorded in the manifest's ``library`` record.
    """
    from xrdbatch import match

    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    if not match.has_line_columns(manifest["feature_names"]):
        raise BundleError(f"bundle {path}: feature set {manifest['feature_set']!r} has no line positions in Q, so it "
                          "cannot search-match (train with feature set 'measured' or 'indexed*')")
    if not len(library):
        raise BundleError(f"bundle {path}: the new search-match library is empty")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        shutil.copytree(path, tmp, dirs_exist_ok=True, ignore=lambda d, names: [n for n in names if n in
                                                                                (LIBRARY, MANIFEST)])
        files = {name: info for name, info in manifest["files"].items() if name != LIBRARY}
        record = _write_library(tmp, library, source)
        files[LIBRARY] = {"sha256": sha256_file(tmp / LIBRARY), "bytes": (tmp / LIBRARY).stat().st_size}
        record["replaced_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        manifest = {**manifest, "files": files, "library": record,
                    "total_bytes": int(sum(f["bytes"] for f in files.values()))}
        _swap_into_place(tmp, path, manifest)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _check_versions(manifest: dict, path) -> None:
    saved = manifest.get("versions", {})
    now = package_versions()
    problems = []

    def major_minor(v):
        return tuple(str(v).split(".")[:2])

    if major_minor(saved.get("scikit-learn", "")) != major_minor(now["scikit-learn"]):
        problems.append(f"scikit-learn {saved.get('scikit-learn')} (bundle) vs {now['scikit-learn']} (here)")
    if str(saved.get("numpy", "")).split(".")[0] != now["numpy"].split(".")[0]:
        problems.append(f"numpy {saved.get('numpy')} (bundle) vs {now['numpy']} (here)")
    if major_minor(saved.get("skops", "")) != major_minor(now["skops"]):
        problems.append(f"skops {saved.get('skops')} (bundle) vs {now['skops']} (here)")
    if problems:
        raise BundleError(
            f"bundle {path} was written with other package versions: {'; '.join(problems)}. Tree models are "
            f"only readable by the versions that wrote them: install scikit-learn=={saved.get('scikit-learn')} "
            f"numpy=={saved.get('numpy')} skops=={saved.get('skops')}, or retrain with `xrdbatch train` here "
            "(or pass check_versions=False at your own risk)")


def read_manifest(path) -> dict:
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{path}: no {MANIFEST}; expected a model directory written by `xrdbatch train`")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def verify_files(path, manifest: dict) -> None:
    """Recompute every listed file's sha256; raise :class:`BundleError` naming the files that differ."""
    path = Path(path)
    bad = []
    for name, info in manifest["files"].items():
        f = path / name
        if not f.is_file():
            bad.append(f"{name} (missing)")
        elif sha256_file(f) != info["sha256"]:
            bad.append(f"{name} (sha256 differs from the manifest)")
    if bad:
        raise BundleError(f"bundle {path} does not match its manifest: {', '.join(bad)}. Pull or copy the bundle "
                          "again (`xrdbatch pull`), or retrain it; a changed file is never loaded")


class ModelBundle:
    """A loaded bundle: the model plus everything needed to featurise patterns the same way.

    Attributes
    ----------
    path : Path
    manifest : dict
    conditions : Conditions
    feature_set : str
    feature_names : list of str
    peak_params : dict
    model : xrdbatch.train.CrystalForest
    """

    def __init__(self, path, manifest, model):
        from xrdbatch.conditions import Conditions

        self.path = Path(path)
        self.manifest = manifest
        self.model = model
        self.conditions = Conditions.from_dict(manifest["conditions"])
        self.feature_set = manifest["feature_set"]
        self.feature_names = list(manifest["feature_names"])
        self.peak_params = dict(manifest["peak_params"])
        self._library = None  # read on first use (ModelBundle.library)
        self._balanced_weights = None  # computed on first use (ModelBundle.decision_weights)
        # bundles saved before top_fit_rel existed (its default is now 0.6) stored only the settings they were
        # given and found peak tops with three points: score them as they were trained
        self.peak_params.setdefault("top_fit_rel", 0.0)
        # issue 8: calibrated crystal-system probabilities when the bundle was trained with --calibrate
        self.calibrator = None
        calibration = manifest.get("training", {}).get("calibration")
        if calibration:
            from xrdbatch.calibration import ProbabilityCalibrator

            self.calibrator = ProbabilityCalibrator.from_dict(calibration)

    def __repr__(self):
        return (f"ModelBundle({str(self.path)!r}, feature_set={self.feature_set!r}, "
                f"n_train={self.manifest['training'].get('n_train')})")

    def decision_weights(self, decision: str = "argmax"):
        """Weights of the crystal-system decision (:meth:`xrdbatch.train.CrystalForest.predict_frame`
        ``class_weights``): None for ``"argmax"`` (the most probable system; best accuracy), ``1 / training share``
        per system for ``"balanced"`` (best expected macro recall: rare systems such as triclinic are answered more
        often, common ones less). The shares are the manifest's ``training.class_shares``; bundles from before
        session 9 use the crystal-system mix of their held-out evaluation rows."""
        if decision == "argmax":
            return None
        if decision != "balanced":
            raise ValueError(f"unknown decision {decision!r}; valid: {', '.join(DECISIONS)}")
        if self._balanced_weights is None:  # once per bundle: predict asks for them on every batch
            shares = self.manifest.get("training", {}).get("class_shares")
            if not shares:
                evaluation = self.evaluation()
                column = "true_crystal_system" if "true_crystal_system" in evaluation else "crystal_system"
                shares = evaluation[column].astype(str).value_counts(normalize=True).to_dict()
            self._balanced_weights = np.array([1.0 / shares[c] if shares.get(c) else 0.0 for c in self.model.classes_])
        return self._balanced_weights

    def predict(self, X, top_k: int = 5, views=(), matches=None, decision: str = "argmax"):
        """Predictions for features ``X (n, n_features)`` made with :meth:`featurize` (or features.extract
        with this bundle's feature set and peak params).

        ``views``: feature matrices of the same patterns with shifted peak lists
        (:func:`xrdbatch.features.shifted_views`); probabilities are averaged over ``X`` and the views (and then
        calibrated, when the bundle has a calibration).

        ``matches``: :func:`xrdbatch.match.best_matches` of the rows against :attr:`library`; confident ones
        answer their rows (:meth:`xrdbatch.train.CrystalForest.predict_frame`, column ``matched``).
        ``decision``: ``"argmax"`` or ``"balanced"`` (:meth:`decision_weights`).

        Returns
        -------
        DataFrame
            crystal_system, crystal_system_prob, space_group_1..k, space_group_prob_1..k, a, b, c (angstrom),
            alpha, beta, gamma (degree).
        """
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"X must have shape (n, {len(self.feature_names)}) for feature set "
                             f"{self.feature_set!r}; got {X.shape}")
        views = [np.asarray(V, dtype=np.float32) for V in views]
        for V in views:
            if V.shape != X.shape:
                raise ValueError(f"every view must have the shape of X {X.shape}; got {V.shape}")
        weights = self.decision_weights(decision)
        proba = None
        if self.calibrator is not None:
            proba = self.calibrator.transform(self.model.predict_proba_views([X, *views]))
        return self.model.predict_frame(X, top_k=top_k, proba=proba, views=views, matches=matches,
                                        class_weights=weights)

    def featurize(self, two_theta_deg, intensity, wavelength_angstrom: float | None = None) -> np.ndarray:
        """Features of patterns with this bundle's feature set and peak parameters (wavelength: the
        pattern's own, default the training conditions')."""
        from xrdbatch import features

        wavelength = wavelength_angstrom or self.conditions.wavelength_angstrom
        return features.extract(two_theta_deg, intensity, wavelength, self.feature_set, **self.peak_params)

    @property
    def library(self):
        """The search-match library (:class:`xrdbatch.match.ReferenceLibrary`), or None when the bundle has none
        (read once; its sha256 was verified with the other files at load)."""
        if LIBRARY not in self.manifest["files"]:
            return None
        if self._library is None:
            import pandas as pd

            from xrdbatch.match import ReferenceLibrary

            self._library = ReferenceLibrary.from_frame(pd.read_parquet(self.path / LIBRARY))
        return self._library

    def evaluation(self):
        """The held-out evaluation table saved at training time (DataFrame)."""
        import pandas as pd

        path = self.path / EVALUATION
        if not path.is_file():
            raise BundleError(f"{self.path}: no {EVALUATION} (bundle written without its evaluation table)")
        return pd.read_parquet(path)


def load_bundle(path, *, check_versions: bool = True) -> ModelBundle:
    """Load and verify a bundle directory.

    Raises :class:`BundleError` when the manifest is missing, a file's sha256 differs, the versions do not
    match (unless ``check_versions=False``), or a file holds a type outside :data:`TRUSTED_TYPES`.
    """
    import skops.io as sio

    from xrdbatch.train import CrystalForest

    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    if check_versions:
        _check_versions(manifest, path)
    parts = {}
    for name in manifest["files"]:
        if not name.endswith(".skops"):
            continue
        f = path / name
        try:
            packed = sio.load(f, trusted=[])  # plain dicts and numpy arrays only: nothing to trust
        except Exception as exc:  # skops raises its own UntrustedTypesFoundException
            raise BundleError(f"{f}: not a packed forest readable without trusting extra types ({exc}); "
                              "refusing to load it") from exc
        parts[name[:-len(".skops")]] = unpack_model(packed)
    model = CrystalForest.from_parts(parts, **manifest["model"].get("params", {}))
    return ModelBundle(path, manifest, model)

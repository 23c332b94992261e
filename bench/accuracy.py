"""Accuracy on measured patterns: models trained on simulations, scored on labelled measurements.

Prints, for every labelled measured set (``../shared/data/measured``), crystal-system accuracy, macro
recall, per-class recall and space-group top-1/top-5 of

* the seed's baseline: the 11 features of ``seed11`` (first 10 peak positions in 2-theta + count) trained
  on ideal simulations of the same structures, and
* the configured model(s): measurement-like augmentation (:mod:`xrdbatch.augment`), other feature sets,
  calibration (:mod:`xrdbatch.calibration`) ...

trained in the same run on the same structures, so every number is a comparison measured side by side.
``--ablation`` adds one row per switched-off ingredient (which change bought how many points).

Training structures: any catalogs written by ``xrdbatch ingest`` (real structures, ``synthetic:N``,
``builtin:prototypes``); optional element substitution makes extra variants of each structure.
Everything expensive is cached under ``--cache`` (default ``/tmp/xrdbatch-acc``): reflections per
catalog, features per (catalog, augmentation, copy, peak parameters), features of the measured sets.

The measured RRUFF patterns are used to *measure* only: no model, calibration or threshold is fitted on
them.

Usage::

    python bench/accuracy.py --catalog /tmp/xrdbatch-acc/catalog_real.parquet \\
        --catalog /tmp/xrdbatch-acc/catalog_syn1_12000.parquet --copies 3 --ablation
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xrdbatch import augment, features, match  # noqa: E402
from xrdbatch.conditions import Conditions  # noqa: E402
from xrdbatch.crystal import CRYSTAL_SYSTEMS, crystal_system_of  # noqa: E402
from xrdbatch.train import BOOSTED_CRYSTAL_SYSTEM, CLASS_MIXES, resample_to_mix, row_origins  # noqa: E402

# ../shared/data beside the repository, or $XRDBATCH_SHARED_DATA (runs from a snapshot copy of the tree)
MEASURED = Path(os.environ.get("XRDBATCH_SHARED_DATA", ROOT.parent / "shared" / "data")) / "measured"
DEFAULT_CACHE = Path(os.environ.get("XRDBATCH_ACC_CACHE", "/tmp/xrdbatch-acc"))


def target_conditions() -> Conditions:
    """The RRUFF set's instrument: lab Cu K-alpha1/2, 5-89.99 deg in 0.01 deg steps."""
    return Conditions.from_radiation("CuKa12", two_theta_min_deg=5.0, two_theta_max_deg=89.99,
                                     two_theta_step_deg=0.01)


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _feature_code() -> str:
    """Hash of the code features come from: cached features are never reused after that code changes."""
    import xrdbatch.augment
    import xrdbatch.features
    import xrdbatch.lattice_hints

    h = hashlib.sha256()
    for module in (xrdbatch.features, xrdbatch.lattice_hints, xrdbatch.augment):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:16]


# ============================================================================ training data ====
LABELS = ("id", "crystal_system", "spacegroup_number", "structure_type", "n_atoms", "formula")


def _reflections_chunk(records, d_min_angstrom):
    from xrdbatch import simulate as sim
    from xrdbatch.crystal import Crystal

    refls, rows = [], []
    for rec in records:
        try:
            r = sim.reflections(Crystal.from_columns(rec), d_min_angstrom)
        except Exception:  # noqa: BLE001 - one bad structure is skipped, not fatal
            continue
        if len(r.d_angstrom):
            refls.append(r)
            rows.append({k: rec[k] for k in LABELS} | {"variant": 0})
    return refls, rows


def reflections_of_catalog(catalog: str, d_min_angstrom: float, cache: Path, substitutions: int = 0,
                           seed: int = 0, log=print, n_jobs: int = 1):
    """``(list of Reflections, labels DataFrame)`` of the ok rows of a catalog (+ substituted variants).

    Variant ``v`` (1..substitutions) of a structure swaps elements within families
    (:func:`xrdbatch.augment.substitute_elements`); its labels are the parent's (same symmetry).
    Cached as flat arrays in ``cache``.
    """
    from xrdbatch import simulate as sim
    from xrdbatch.crystal import Crystal

    key = _key("refl", os.path.abspath(catalog), os.path.getsize(catalog), d_min_angstrom, substitutions, seed)
    path = cache / f"refl_{Path(catalog).stem}_{key}.npz"
    if path.exists():
        z = np.load(path)
        labels = pd.read_parquet(path.with_suffix(".parquet"))
        off, d, inten, hkl = z["offsets"], z["d"], z["i"], z["hkl"]  # each z[...] reads the file: once
        refls = [sim.Reflections(d[a:b], inten[a:b], hkl[a:b]) for a, b in zip(off[:-1], off[1:])]
        return refls, labels
    table = pd.read_parquet(catalog)
    table = table[(table["status"] == "ok") & table["crystal_system"].isin(CRYSTAL_SYSTEMS)].reset_index(drop=True)
    t0 = time.perf_counter()
    refls, rows = [], []
    if substitutions == 0 and n_jobs > 1:  # no random draws: chunks in parallel give the same result
        from joblib import Parallel, delayed

        records = table.to_dict("records")
        step = 2000
        parts = Parallel(n_jobs=n_jobs)(delayed(_reflections_chunk)(records[a:a + step], d_min_angstrom)
                                        for a in range(0, len(records), step))
        for r_part, row_part in parts:
            refls += r_part
            rows += row_part
    else:
        rng = np.random.default_rng(seed)
        for rec in table.to_dict("records"):
            crystal = Crystal.from_columns(rec)
            variants = [crystal] + [augment.substitute_elements(crystal, rng) for _ in range(substitutions)]
            for v, c in enumerate(variants):
                try:
                    r = sim.reflections(c, d_min_angstrom)
                except Exception:  # noqa: BLE001 - one bad structure is skipped, not fatal
                    continue
                if len(r.d_angstrom) == 0:
                    continue
                refls.append(r)
                rows.append({k: rec[k] for k in LABELS} | {"variant": v})
    labels = pd.DataFrame(rows)
    log(f"reflections of {catalog}: {len(refls)} patterns from {len(table)} structures "
        f"({substitutions} substitutions each) in {time.perf_counter() - t0:.0f} s")
    offsets = np.zeros(len(refls) + 1, dtype=np.int64)
    np.cumsum([len(r.d_angstrom) for r in refls], out=offsets[1:])
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, d=np.concatenate([r.d_angstrom for r in refls]), i=np.concatenate([r.intensity for r in refls]),
             hkl=np.concatenate([r.hkl for r in refls]), offsets=offsets)
    labels.to_parquet(path.with_suffix(".parquet"))
    os.replace(tmp, path)
    return refls, labels


def _features_chunk(refls, conditions, params, seed, copy, start, feature_sets, peak_params):
    if params is None:  # the ideal simulation (the seed's training data)
        from xrdbatch import simulate as sim

        rows = sim.patterns(refls, conditions)
    else:
        rows, _ = augment.measured_patterns(refls, conditions, params=params, seed=seed, copy=copy,
                                            index_offset=start)
    peaks = features.find_peaks(conditions.two_theta_deg(), rows, conditions.wavelength_angstrom, **peak_params)
    return {name: features.from_peaks(peaks, name) for name in feature_sets}


def simulated_features(name: str, refls, conditions: Conditions, params, copies: int, feature_sets,
                       peak_params: dict, cache: Path, seed: int = 0, chunk: int = 400, n_jobs: int = 2,
                       log=print) -> dict:
    """Features ``{set: X (len(refls) * copies, n_features)}`` of measurement-like patterns (copy-major).

    ``params=None`` renders the ideal simulation (every copy identical, so one copy is made).
    """
    from joblib import Parallel, delayed

    copies = 1 if params is None else copies
    out = {s: [] for s in feature_sets}
    for copy in range(copies):
        pj = None if params is None else params.to_json()
        todo = []
        for s in feature_sets:
            key = _key("feat", name, len(refls), conditions.to_json(), pj, seed, copy, peak_params, s,
                       features.feature_names(s), _feature_code())
            path = cache / f"X_{s}_{key}.npy"
            todo.append((s, path))
        missing = [s for s, p in todo if not p.exists()]
        if missing:
            t0 = time.perf_counter()
            parts = Parallel(n_jobs=n_jobs)(
                delayed(_features_chunk)(refls[a:a + chunk], conditions, params, seed, copy, a, missing, peak_params)
                for a in range(0, len(refls), chunk))
            for s, p in todo:
                if s in missing:
                    np.save(p, np.concatenate([part[s] for part in parts]))
            log(f"features {name} copy {copy} ({'ideal' if params is None else 'augmented'}) "
                f"{missing}: {len(refls)} patterns in {time.perf_counter() - t0:.0f} s")
        for s, p in todo:
            out[s].append(np.load(p))
    return {s: np.concatenate(v) for s, v in out.items()}


# ============================================================================ measured sets ====
def _sg_number(symbol: str) -> int:
    import gemmi

    sg = gemmi.find_spacegroup_by_name(symbol.replace(" ", ""))
    if sg is None:
        sg = gemmi.find_spacegroup_by_name(symbol)
    return int(sg.number) if sg is not None else 0


def _set_rruff():
    base = MEASURED / "rruff_minerals_dev"
    lab = pd.read_csv(base / "labels.csv")
    return pd.DataFrame({"path": [str(base / f) for f in lab["file"]], "wavelength": 1.540598,
                         "space_group": lab["space_group"].astype(int)})


def _set_pvlab():
    base = MEASURED / "pvlab_thin_films" / "Datasets" / "Experimental"
    names = {"Fm-3m": 225, "I4Imcm": 140, "P21a": 14, "P3m1": 164, "P61mmc": 194, "Pc": 7, "pm-3m": 221}
    rows = [{"path": str(f), "wavelength": 1.5406, "space_group": sg}
            for folder, sg in names.items() for f in sorted((base / folder).glob("*")) if f.is_file()]
    return pd.DataFrame(rows)


def _set_iucr():
    base = MEASURED / "iucr_rietveld"
    summary = pd.read_csv(base / "summary.csv")
    rows = []
    for rec in summary.to_dict("records"):
        sgs = str(rec["spacegroups"]) if pd.notna(rec["spacegroups"]) else ""
        if not sgs or ";" in sgs:  # unknown or a mixture of phases: no single label
            continue
        number = _sg_number(sgs)
        if number and pd.notna(rec["wavelength"]) and ";" not in str(rec["wavelength"]):
            rows.append({"path": str(base / "data" / "experimental_xrd" / "cif_files" / rec["file"]),
                         "wavelength": float(rec["wavelength"]), "space_group": number})
    return pd.DataFrame(rows)


def _set_rb_m2o5f():
    base = MEASURED / "rb_m2o5f" / "powder_X-ray_diffraction"
    rows = [{"path": str(f), "wavelength": 1.540598, "space_group": 227} for f in sorted(base.rglob("*.xrdml"))]
    return pd.DataFrame(rows)


def _set_tacr2o6():
    f = MEASURED / "tacr2o6" / "data-release" / "xrd_measurements" / "xrd_measurement_TaCr2O6.dat"
    return pd.DataFrame([{"path": str(f), "wavelength": 1.540560, "space_group": 136}])


def _set_autoxrd():
    base = MEASURED / "autoxrd_spectra" / "Example" / "Spectra"
    # single-phase spectra (mixtures have no single label); space groups of the reference phases
    phases = {"MnO": 225, "Mn2O3": 206, "TiO2": 141, "LiMnO2": 59, "MnO2": 136}
    rows = [{"path": str(base / f"{p}.xy"), "wavelength": 1.5406, "space_group": sg} for p, sg in phases.items()
            if (base / f"{p}.xy").exists()]
    return pd.DataFrame(rows)


def _set_gsas2():
    base = MEASURED / "gsas2_tutorials"
    files = {"CWCombined/data/PBSO4.XRA": (1.540598, 62), "LabData/data/FAP.XRA": (1.540598, 176),
             "MDtutorials/CWInstDemo/data/LaB6_Jan2018.raw": (1.5406, 221),
             "StackingFaults-II/data/Keokuk kaolinite.RAW": (1.5406, 1)}
    rows = [{"path": str(base / f), "wavelength": lam, "space_group": sg} for f, (lam, sg) in files.items()
            if (base / f).exists()]
    return pd.DataFrame(rows)


#: Labelled measured sets: name -> loader of (path, wavelength, space_group).
MEASURED_SETS = {
    "rruff_minerals_dev": _set_rruff,
    "pvlab_thin_films": _set_pvlab,
    "iucr_rietveld": _set_iucr,
    "rb_m2o5f": _set_rb_m2o5f,
    "tacr2o6": _set_tacr2o6,
    "autoxrd_spectra": _set_autoxrd,
    "gsas2_tutorials": _set_gsas2,
}


def measured_patterns(files: pd.DataFrame, conditions: Conditions):
    """``(record, two_theta, intensity)`` of every readable file of a measured set (``MEASURED_SETS[...]()``),
    on the model's 2-theta terms as ``xrdbatch score`` prepares them; unreadable files are reported and skipped."""
    from xrdbatch import readers, score

    for rec in files.to_dict("records"):
        try:
            pattern = readers.read_patterns(rec["path"])[0]
            tt, y, _ = score.prepare_pattern(pattern, conditions, rec["wavelength"])
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not fatal
            print(f"  skipped {rec['path']}: {exc}")
            continue
        yield rec, tt, y


def product_scores(model_dir, set_name: str, offsets, search_match: bool = True, decision: str = "argmax") -> dict:
    """:func:`frame_scores` of a bundle on a labelled measured set through the product's scoring path
    (:func:`xrdbatch.score.score_files`: reading, preparation, features, shift averaging over ``offsets``,
    search-match): the check that ``xrdbatch score`` gives what the bench measures. Unreadable files are left out
    and only the first pattern of a file counts, as in :func:`measured_patterns`."""
    from xrdbatch import score

    files = MEASURED_SETS[set_name]()
    rows = []
    for lam, group in files.groupby("wavelength", sort=False):
        options = score.ScoreOptions(str(Path(model_dir).resolve()), wavelength_angstrom=float(lam),
                                     shift_offsets_deg=tuple(float(o) for o in offsets), search_match=search_match,
                                     decision=decision)
        rows += score.score_files(list(group["path"]), options)
    out = pd.DataFrame(rows)
    out = out[(out["status"] == "ok") & (out["pattern"] == 0)].reset_index(drop=True)  # first pattern, as measured
    truth = files.drop_duplicates("path").set_index("path").loc[out["file"]]
    labels = pd.DataFrame({"space_group": truth["space_group"].to_numpy(dtype=int),
                           "crystal_system": [crystal_system_of(int(g)) for g in truth["space_group"]]})
    frame = out.assign(crystal_system=out["crystal_system"].astype(str))
    if search_match:
        frame["matched"] = frame["matched"].fillna(False).astype(bool)
    elif "matched" in frame:
        frame = frame.drop(columns=["matched"])
    return frame_scores(frame, labels)


def measured_features(set_name: str, conditions: Conditions, feature_sets, peak_params: dict, cache: Path,
                      limit: int | None = None):
    """``({set: X}, labels DataFrame)`` of a labelled measured set, on the model's 2-theta terms
    (the first ``limit`` files only, when given)."""
    files = MEASURED_SETS[set_name]()
    if limit is not None:
        files = files.head(limit)
    key = _key("measured", set_name, list(files["path"]), conditions.to_json(), peak_params, list(feature_sets),
               [features.feature_names(s) for s in feature_sets], _feature_code())
    path = cache / f"M_{set_name}_{key}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        labels = pd.read_parquet(path.with_suffix(".parquet"))
        return {s: z[s] for s in feature_sets}, labels
    X = {s: [] for s in feature_sets}
    rows = []
    for rec, tt, y in measured_patterns(files, conditions):
        peaks = features.find_peaks(tt, y[None, :], conditions.wavelength_angstrom, **peak_params)
        for s in feature_sets:
            X[s].append(features.from_peaks(peaks, s)[0])
        rows.append({"file": Path(rec["path"]).name, "space_group": int(rec["space_group"]),
                     "crystal_system": crystal_system_of(int(rec["space_group"])), "n_peaks": int(peaks.count[0])})
    labels = pd.DataFrame(rows)
    X = {s: np.array(v, dtype=np.float32).reshape(len(rows), -1) for s, v in X.items()}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **X)
    labels.to_parquet(path.with_suffix(".parquet"))
    return X, labels


def measured_views(set_name: str, conditions: Conditions, feature_set: str, peak_params: dict, cache: Path,
                   offsets) -> list[np.ndarray]:
    """Features of a labelled measured set's peak lists moved by each non-zero offset (rows as
    :func:`measured_features`; for shift averaging, :func:`xrdbatch.features.shifted_views`)."""
    offsets = [float(o) for o in offsets if o != 0]  # the cache key: only the shifted copies are stored
    files = MEASURED_SETS[set_name]()
    key = _key("views", set_name, list(files["path"]), conditions.to_json(), peak_params, feature_set, offsets,
               features.feature_names(feature_set), _feature_code())
    path = cache / f"V_{set_name}_{key}.npz"
    if path.exists():
        z = np.load(path)
        return [z[f"v{i}"] for i in range(len(offsets))]
    views = [[] for _ in offsets]
    for _, tt, y in measured_patterns(files, conditions):
        peaks = features.find_peaks(tt, y[None, :], conditions.wavelength_angstrom, **peak_params)
        for i, v in enumerate(features.shifted_views(peaks, feature_set, conditions.wavelength_angstrom, offsets)):
            views[i].append(v[0])
    views = [np.array(v, dtype=np.float32).reshape(len(v), -1) for v in views]
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"v{i}": v for i, v in enumerate(views)})
    return views


# ============================================================================ models, metrics ====
def fit_model(X, labels: pd.DataFrame, *, n_jobs: int = 2, random_state: int = 0, balance: bool = False,
              model_params: dict | None = None, space_group_rows=None, sg_synthetic_weight: float | None = None):
    """The product's CrystalForest (no lattice regressors: this bench is about symmetry).

    Space-group forests weigh synthetic rows ``sg_synthetic_weight`` (the product's default
    :data:`xrdbatch.train.SPACE_GROUP_SYNTHETIC_WEIGHT` when None), as ``xrdbatch train`` does.
    """
    from xrdbatch import train

    systems = labels["crystal_system"].to_numpy().astype(str)
    sg = labels["spacegroup_number"].to_numpy()
    weight = None
    if "origin" in labels:
        w = train.SPACE_GROUP_SYNTHETIC_WEIGHT if sg_synthetic_weight is None else sg_synthetic_weight
        weight = train.origin_weights(labels["origin"].to_numpy(), w)
    if balance:
        X, systems, sg = _balanced(X, systems, sg, random_state)
        weight = None
    model = train.CrystalForest(**(model_params or {}), fit_lattice=False, random_state=random_state, n_jobs=n_jobs)
    t0 = time.perf_counter()
    model.fit(X, systems, sg, space_group_rows=space_group_rows, space_group_weight=weight)
    model.bench_fit_seconds_ = time.perf_counter() - t0
    return model


def _balanced(X, systems, sg, random_state):
    """Rows resampled so that every crystal system has the same count (the median class count)."""
    rng = np.random.default_rng(random_state)
    classes, counts = np.unique(systems, return_counts=True)
    target = int(np.median(counts))
    idx = np.concatenate([rng.choice(np.flatnonzero(systems == c), size=target, replace=counts[i] < target)
                          for i, c in enumerate(classes)])
    return X[idx], systems[idx], sg[idx]


def scores(model, X, labels: pd.DataFrame, calibrator=None, views=(), matches=None) -> dict:
    """Accuracy, macro recall, per-class recall, space-group top-1/top-5 on labelled measured rows
    (probabilities averaged over ``X`` and ``views``, the shifted peak lists, when given; with ``matches``
    (:func:`xrdbatch.match.best_matches` of the rows) the confident matches decide
    (``predict_frame(matches=)``): see :func:`frame_scores`)."""
    proba = None if calibrator is None else calibrator.transform(model.predict_proba_views([X, *views]))
    return frame_scores(model.predict_frame(X, top_k=5, proba=proba, views=views, matches=matches), labels)


def frame_scores(frame: pd.DataFrame, labels: pd.DataFrame) -> dict:
    """The scores of a prediction table (``crystal_system``, ``space_group_1..5``, optional ``matched``) against
    the labels of its rows; with ``matched``, how often and how well the search-match answered
    (``matched`` / ``match_system_precision`` / ``match_sg_precision``)."""
    extra = {}
    if "matched" in frame:
        hit = frame["matched"].to_numpy().astype(bool)
        sg_col = "space_group" if "space_group" in labels else "spacegroup_number"
        extra = {"matched": float(hit.mean()),
                 "match_system_precision": float(np.mean(frame["crystal_system"].to_numpy()[hit].astype(str) ==
                                                         labels["crystal_system"].to_numpy()[hit].astype(str)))
                 if hit.any() else float("nan"),
                 "match_sg_precision": float(np.mean(frame["space_group_1"].to_numpy()[hit] ==
                                                     labels[sg_col].to_numpy()[hit])) if hit.any() else float("nan")}
    pred = frame["crystal_system"].to_numpy().astype(str)
    true = labels["crystal_system"].to_numpy().astype(str)
    recall = {s: float(np.mean(pred[true == s] == s)) for s in CRYSTAL_SYSTEMS if np.any(true == s)}
    sg_true = labels["space_group" if "space_group" in labels else "spacegroup_number"].to_numpy()
    hits = np.stack([frame[f"space_group_{k}"].to_numpy() == sg_true for k in range(1, 6)], axis=1)
    family = {"trigonal": "hexagonal"}  # the hexagonal crystal family: one lattice, told apart by intensities only
    fam_true, fam_pred = (np.array([family.get(v, v) for v in a]) for a in (true, pred))
    return {"n": int(len(true)), "accuracy": float(np.mean(pred == true)),
            "macro_recall": float(np.mean(list(recall.values()))), "recall": recall,
            "family_accuracy": float(np.mean(fam_pred == fam_true)),
            "confusion": pd.crosstab(pd.Categorical(true, CRYSTAL_SYSTEMS), pd.Categorical(pred, CRYSTAL_SYSTEMS),
                                     dropna=False, rownames=["true"], colnames=["predicted"]),
            "sg_top1": float(hits[:, 0].mean()), "sg_top5": float(hits.any(axis=1).mean()), **extra}


def heldout_scores(X, labels: pd.DataFrame, *, n_jobs: int = 2, random_state: int = 0, model_params=None,
                   space_group_rows=None, test_size: float = 0.2, sg_synthetic_weight: float | None = None,
                   views_of=None, library=None, feature_set: str = "") -> dict:
    """Scores on held-out *simulated* structure types: the tuning signal that is not the measured set.

    Grouped on ``structure_type``: about ``test_size`` of the types, chosen by a hash of the name (so the same
    real types are held out whatever synthetic catalogs are added); all copies and variants of a structure stay
    on one side.

    ``{"all": scores, "real": scores on the held-out real structures and their variants}``; with ``views_of``
    (held-out row indices -> shifted views of those rows, :func:`augmented_views`) also ``"all, shift-averaged"``
    and ``"real, shift-averaged"``; with ``library`` too (:class:`xrdbatch.match.ReferenceLibrary` whose labels
    carry ``structure_type``; ``feature_set`` names the columns of ``X``) ``"real, shift-averaged, search-match"``,
    against the library's training-side entries only: the held-out types are not in it, so every match there is to
    another structure type (how search-match treats structures it does not know).
    """
    # a structure type is held out by a hash of its name: the same real types are held out whatever else is trained
    types = labels["structure_type"].astype(str)
    digest = types.map(lambda t: int(hashlib.sha256(f"{random_state}:{t}".encode()).hexdigest()[:8], 16) / 16**8)
    is_test = (digest < test_size).to_numpy()
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    rows = None if space_group_rows is None else np.asarray(space_group_rows)[train]
    model = fit_model(X[train], labels.iloc[train], n_jobs=n_jobs, random_state=random_state,
                      model_params=model_params, space_group_rows=rows, sg_synthetic_weight=sg_synthetic_weight)
    lab = labels.iloc[test].reset_index(drop=True)
    out = {"all": scores(model, X[test], lab)}
    X0, views = views_of(test) if views_of is not None else (None, [])
    if views:
        out["all, shift-averaged"] = scores(model, X0, lab, views=views)
    real = lab["origin"] == "real"
    if real.any():
        m = real.to_numpy()
        out["real"] = scores(model, X[test][m], lab[real].reset_index(drop=True))
        if views:
            out["real, shift-averaged"] = scores(model, X0[m], lab[real].reset_index(drop=True),
                                                 views=[V[m] for V in views])
            if library is not None:
                real_views = [V[m] for V in views]
                known = library.subset(np.flatnonzero(~library.labels["structure_type"].astype(str)
                                                      .isin(set(types[is_test])).to_numpy()))
                found = match.best_matches(known, X0[m], features.feature_names(feature_set), views=real_views)
                out["real, shift-averaged, search-match"] = scores(model, X0[m], lab[real].reset_index(drop=True),
                                                                   views=real_views, matches=found)
    for r in out.values():
        r["n_train"] = int(len(train))
    return out


def _views_chunk(items, conditions, params, seed, fset, peak_params, offsets):
    """``(X (n, f), [view (n, f) per non-zero offset])`` of augmented rows ``items`` = [(refl, copy, index)],
    rendered exactly as :func:`simulated_features` rendered them (same seed, copy and pattern index)."""
    rows = np.concatenate([augment.measured_patterns([refl], conditions, params=params, seed=seed, copy=copy,
                                                     index_offset=index)[0] for refl, copy, index in items])
    peaks = features.find_peaks(conditions.two_theta_deg(), rows, conditions.wavelength_angstrom, **peak_params)
    return features.from_peaks(peaks, fset), features.shifted_views(peaks, fset, conditions.wavelength_angstrom,
                                                                    offsets)


def augmented_views(blocks, conditions, params, seed, fset, peak_params, offsets, X, n_jobs: int = 2):
    """A function: rows of ``stack(blocks, "aug", fset)`` -> ``(X0, views)``, their unshifted features and their
    shifted views (list per non-zero offset).

    The rows' patterns are rendered again (the cache keeps features, not peak lists). The unshifted features
    must equal the cached rows ``X``, which checks that rows, seeds and copies line up; a few rows in ten
    thousand differ by a peak at the detection threshold (float32 rounding differs with the batch a pattern is
    rendered and filtered in), so up to 0.5 % of the rows may differ, and ``X0`` is what the views were made from.
    """
    from joblib import Parallel, delayed

    sizes = np.array([len(b["refls"]) for b in blocks])
    starts = np.concatenate([[0], np.cumsum(sizes * np.array([b["copies"] for b in blocks]))])

    def views_of(rows):
        items = []
        for row in rows:
            b = int(np.searchsorted(starts, row, side="right") - 1)
            copy, index = divmod(int(row - starts[b]), int(sizes[b]))
            items.append((blocks[b]["refls"][index], copy, index))
        parts = Parallel(n_jobs=n_jobs)(delayed(_views_chunk)(items[a:a + 250], conditions, params, seed, fset,
                                                              peak_params, offsets) for a in range(0, len(items), 250))
        again = np.concatenate([p[0] for p in parts])
        same = np.isclose(again, X[rows], equal_nan=True).all(axis=1)
        if same.mean() < 0.995:
            raise RuntimeError(f"re-rendered held-out rows match their cached features in {same.mean():.1%} of the "
                               "rows only: the row/seed mapping is off")
        return again, [np.concatenate([p[1][i] for p in parts]) for i in range(len(parts[0][1]))]

    return views_of


def calibration_rows(X, labels: pd.DataFrame, measured: dict, fset: str, *, n_jobs: int = 2, balance: bool = False,
                     target_accuracy: float = 0.8, out_dir: Path | None = None, model_params=None) -> list[dict]:
    """Calibrate on held-out *simulated* structures (grouped split), then measure on the measured sets.

    Returns one row per (set, method) with the expected calibration error before and after, the accuracy of
    the calibrated argmax, and the coverage / accuracy when abstaining below the threshold that reaches
    ``target_accuracy`` on the simulated calibration rows. Writes reliability PNGs to ``out_dir``.
    """
    from xrdbatch import calibration as cal
    from xrdbatch.train import split_indices

    fit_rows, cal_rows = split_indices(len(X), "grouped", labels["structure_type"].astype(str).to_numpy(), 0.15, 0)
    model = fit_model(X[fit_rows], labels.iloc[fit_rows].reset_index(drop=True), n_jobs=n_jobs, balance=balance,
                      model_params=model_params)
    proba_cal = model.predict_proba(X[cal_rows])
    y_cal = labels["crystal_system"].to_numpy().astype(str)[cal_rows]
    rows = []
    for method in cal.METHODS:
        c = cal.ProbabilityCalibrator(method).fit(proba_cal, y_cal, model.classes_)
        q_cal = c.transform(proba_cal)
        correct_cal = model.classes_[q_cal.argmax(1)] == y_cal
        threshold = cal.threshold_for_accuracy(q_cal.max(1), correct_cal, target_accuracy)
        for set_name, (Xm, labm) in measured.items():
            raw = model.predict_proba(Xm[fset])
            q = c.transform(raw)
            true = labm["crystal_system"].to_numpy().astype(str)
            pred_raw, pred = model.classes_[raw.argmax(1)], model.classes_[q.argmax(1)]
            answered = q.max(1) >= threshold
            rows.append({"set": set_name, "method": method, "n": len(true),
                         "acc_raw": float(np.mean(pred_raw == true)), "acc_calibrated": float(np.mean(pred == true)),
                         "ece_raw": cal.expected_calibration_error(raw.max(1), pred_raw == true),
                         "ece_calibrated": cal.expected_calibration_error(q.max(1), pred == true),
                         "threshold": threshold, "coverage": float(answered.mean()),
                         "acc_answered": float(np.mean((pred == true)[answered])) if answered.any() else float("nan"),
                         "ece_simulated_heldout": cal.expected_calibration_error(q_cal.max(1), correct_cal)})
            if out_dir is not None and set_name == "rruff_minerals_dev":
                cal.plot_reliability(q.max(1), pred == true, out_dir / f"reliability_{method}_{set_name}.png",
                                     f"{set_name}: {fset}, calibrated ({method}) on held-out simulations",
                                     raw_confidence=raw.max(1))
    return rows


def format_table(rows: list[dict], title: str) -> str:
    systems = [s for s in CRYSTAL_SYSTEMS if any(s in r["recall"] for r in rows)]
    head = f"{'model':<56} {'n':>5} {'acc':>6} {'family':>6} {'macro':>6} {'sg@1':>6} {'sg@5':>6} " + \
           " ".join(f"{s[:5]:>6}" for s in systems) + f" {'fit s':>6} {'train':>7}"
    lines = [f"== {title}", head, "-" * len(head)]
    for r in rows:
        rec = " ".join(f"{100 * r['recall'][s]:6.1f}" if s in r["recall"] else f"{'-':>6}" for s in systems)
        lines.append(f"{r['model']:<56} {r['n']:>5} {100 * r['accuracy']:6.1f} {100 * r['family_accuracy']:6.1f} "
                     f"{100 * r['macro_recall']:6.1f} "
                     f"{100 * r['sg_top1']:6.1f} {100 * r['sg_top5']:6.1f} {rec} {r.get('fit_seconds', 0):6.1f} "
                     f"{r.get('n_train', 0):>7}")
        if "matched" in r:  # search-match rows: how often a match decided, and how often it was right
            lines.append(f"    search-match decided {100 * r['matched']:.1f} % of the rows; crystal system right in "
                         f"{100 * r['match_system_precision']:.1f} % of those, space group in "
                         f"{100 * r['match_sg_precision']:.1f} %")
    return "\n".join(lines)


# ============================================================================ main ====
def training_blocks(specs, conditions, params, copies, feature_sets, peak_params, cache, seed, n_jobs, log=print):
    """One block per catalog: ``{"labels", "ideal": {set: X}, "aug": {set: X (copy-major)}, "name"}``.

    Features are cached per catalog (not per combination), so learning curves over growing lists of
    catalogs reuse what the smaller lists computed.
    """
    blocks = []
    for cat, n_sub in specs:
        refls, lab = reflections_of_catalog(cat, conditions.d_min_angstrom * 0.98, cache, n_sub, seed, log=log,
                                            n_jobs=n_jobs)
        lattice = pd.read_parquet(cat, columns=["id", "source", "a", "b", "c", "alpha", "beta", "gamma"])
        lattice = lattice.drop_duplicates("id")
        lattice["origin"] = row_origins(lattice["id"], lattice.pop("source"))  # the product's rule (xrdbatch.train)
        lab = lab.merge(lattice, on="id", how="left")  # variants keep their parent's cell (for bundles) and origin
        name = _key("block", os.path.abspath(cat), os.path.getsize(cat), n_sub, seed)
        ideal = simulated_features(name, refls, conditions, None, 1, feature_sets, peak_params, cache, n_jobs=n_jobs,
                                   log=log)
        aug = simulated_features(name, refls, conditions, params, copies, feature_sets, peak_params, cache, seed,
                                 n_jobs=n_jobs, log=log)
        blocks.append({"catalog": cat, "substitutions": n_sub, "name": name, "refls": refls, "labels": lab,
                       "ideal": ideal, "aug": aug, "copies": copies})
    return blocks


def stack(blocks, kind: str, fset: str):
    """``(X, labels)`` of ``kind`` ("ideal" or "aug") features of several blocks, labels aligned."""
    X = np.concatenate([b[kind][fset] for b in blocks])
    reps = [1 if kind == "ideal" else b["copies"] for b in blocks]
    lab = pd.concat([b["labels"] for b, r in zip(blocks, reps) for _ in range(r)], ignore_index=True)
    return X, lab


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", action="append", required=True,
                   help="catalog Parquet (repeat); PATH:N gives that catalog N element-substituted variants")
    p.add_argument("--substitutions", type=int, default=0, help="element-substituted variants per structure")
    p.add_argument("--copies", type=int, default=2, help="augmented copies per pattern")
    p.add_argument("--feature-set", action="append", default=None, help="feature sets of the best model(s)")
    p.add_argument("--sets", default="all", help="comma-separated measured sets (default all)")
    p.add_argument("--ablation", action="store_true",
                   help="one row per switched-off augmentation effect (with --boosting: the boosted model; with "
                        "--shift-average: also shift-averaged)")
    p.add_argument("--ablation-effects", default="",
                   help="comma-separated effects of --ablation (default: every one of xrdbatch.augment.EFFECTS)")
    p.add_argument("--balance", action="store_true", help="also a class-balanced row")
    p.add_argument("--class-mix", default="", help="comma-separated extra rows with the training rows resampled to "
                                                   f"these crystal-system mixes ({', '.join(CLASS_MIXES)})")
    p.add_argument("--learning-curve", action="store_true",
                   help="one row per prefix of the --catalog list (first catalog, first two, ...)")
    p.add_argument("--sg-variants", action="store_true",
                   help="space-group rows: system exponent 0.5 / 0.25 in the ranked product, balanced space-group "
                        "classes within each system")
    p.add_argument("--sg-first", type=int, default=0,
                   help="also a row whose space-group forests learn only from the first N catalogs (e.g. the real "
                        "structures) while the crystal-system forest learns from all")
    p.add_argument("--system-exponent", type=float, default=1.0, help="system exponent of the best model's ranking")
    p.add_argument("--sg-synthetic-weight", type=float, default=None,
                   help="weight of synthetic rows in the space-group forests (default: the product's, "
                        "xrdbatch.train.SPACE_GROUP_SYNTHETIC_WEIGHT)")
    p.add_argument("--sg-weight-rows", default="",
                   help="comma-separated extra rows of the best model with these synthetic space-group weights")
    p.add_argument("--boosting", action="store_true",
                   help="also a row of every best feature set with the gradient-boosted crystal-system model "
                        "(xrdbatch.train.BoostingParams; space-group forests unchanged)")
    p.add_argument("--boosting-only", action="store_true",
                   help="with --boosting: skip the forest row of the best feature sets (saves its fit and held-out "
                        "views on large runs)")
    p.add_argument("--calibrate", action="store_true", help="calibration and abstention table (+ reliability PNG)")
    p.add_argument("--shift-average", type=float, default=0.0, metavar="DEG",
                   help="also a row of the best model with its measured predictions averaged over --shift-views "
                        "copies of each peak list moved by zero shifts within +-DEG (xrdbatch score --shift-average)")
    p.add_argument("--shift-views", type=int, default=7, help="copies with --shift-average (default 7)")
    p.add_argument("--search-match", action="store_true",
                   help="also a row of every shift-averaged row where a confident search-match against the real "
                        "training structures (ideal simulation; xrdbatch.match) decides; with --heldout also on the "
                        "held-out real types against the training-side library (their own types left out)")
    p.add_argument("--heldout", action="store_true",
                   help="also score every model on held-out simulated structure types (grouped 80/20 on "
                        "structure_type, by a hash of the type name, one more fit per model): all held-out rows, "
                        "and the real structures only")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--out", type=Path, default=None, help="also write the tables (text) and figures here")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train", type=int, default=0, help="subsample training rows (0 = all)")
    p.add_argument("--peak-params", default="{}", help="JSON of xrdbatch.features.PeakParams fields")
    p.add_argument("--augment-params", default="{}", help="JSON of xrdbatch.augment.AugmentParams fields")
    p.add_argument("--augment-without", default="", help="comma-separated effects switched off (augment.EFFECTS)")
    p.add_argument("--no-baseline", action="store_true", help="skip the seed11 rows (when only comparing variants)")
    p.add_argument("--no-ideal", action="store_true", help="skip the ideal-simulation rows of the best feature sets")
    p.add_argument("--save-bundle", default=None,
                   help="also train the best row through xrdbatch.train.train_arrays (lattice, calibration) into this "
                        "bundle directory: fit time, size, load time, and its scores")
    args = p.parse_args(argv)

    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    conditions = target_conditions()
    peak_params = json.loads(args.peak_params)
    sets = list(MEASURED_SETS) if args.sets == "all" else args.sets.split(",")
    best_sets = args.feature_set or ["rich"]
    all_sets = sorted(set(["seed11", *best_sets]))
    t_start, cpu_start = time.perf_counter(), time.process_time()

    specs = []
    for cat in args.catalog:  # PATH or PATH:N (N element-substituted variants for this catalog only)
        path, _, n_sub = cat.rpartition(":")
        specs.append((path, int(n_sub)) if n_sub.isdigit() and path else (cat, args.substitutions))
    params = augment.AugmentParams.from_dict(json.loads(args.augment_params))
    if args.augment_without:
        params = params.without(*args.augment_without.split(","))
    blocks = training_blocks(specs, conditions, params, args.copies, all_sets, peak_params, cache, args.seed,
                             args.n_jobs)
    labels = pd.concat([b["labels"] for b in blocks], ignore_index=True)
    print(f"training structures: {len(labels)} patterns; crystal systems "
          f"{labels['crystal_system'].value_counts().to_dict()}")

    measured = {s: measured_features(s, conditions, all_sets, peak_params, cache) for s in sets}
    results = {s: [] for s in sets}

    offsets = features.shift_offsets(args.shift_average, args.shift_views)

    library, found_of = None, {}  # found_of: (measured set, feature set) -> its matches, computed once
    if args.search_match:  # the real structures trained on (ideal simulation, no variants): the reference library
        if len(offsets) < 2:
            raise SystemExit("--search-match adds its rows to the shift-averaged ones: give --shift-average too")
        X_ideal, lab_ideal = stack(blocks, "ideal", best_sets[0])
        known = ((lab_ideal["origin"] == "real") & (lab_ideal["variant"] == 0)).to_numpy()
        library = match.ReferenceLibrary.from_features(
            X_ideal[known], features.feature_names(best_sets[0]),
            lab_ideal[known].rename(columns={"spacegroup_number": "space_group"}))
        print(f"search-match library: {len(library)} real structures (ideal simulation)")

    def run(model_name, X, lab, fset, balance=False, class_mix="catalog", model_params=None, exponent=None,
            sg_rows=None, sg_weight=args.sg_synthetic_weight, shift_row=False):
        if args.max_train and len(X) > args.max_train:
            sel = np.random.default_rng(0).choice(len(X), args.max_train, replace=False)
            X, lab = X[sel], lab.iloc[sel].reset_index(drop=True)
        if class_mix != "catalog":
            sel = resample_to_mix(lab["crystal_system"].to_numpy(), class_mix, args.seed)
            X, lab = X[sel], lab.iloc[sel].reset_index(drop=True)
        model = fit_model(X, lab, n_jobs=args.n_jobs, balance=balance, model_params=model_params,
                          space_group_rows=sg_rows, sg_synthetic_weight=sg_weight)
        exponents = [args.system_exponent if exponent is None else exponent]
        if isinstance(exponent, (list, tuple)):
            exponents = list(exponent)
        for e in exponents:
            first = len(results[sets[0]])
            model.system_exponent = e
            suffix = f", system exponent {e:g}" if len(exponents) > 1 else ""
            for s in sets:
                Xm, labm = measured[s]
                r = scores(model, Xm[fset], labm)
                r.update(model=model_name + suffix, fit_seconds=model.bench_fit_seconds_, n_train=len(X))
                results[s].append(r)
                if shift_row and len(offsets) > 1:
                    views = measured_views(s, conditions, fset, peak_params, cache, offsets)
                    r = scores(model, Xm[fset], labm, views=views)
                    r.update(model=f"{model_name}{suffix}, shift-averaged ({len(offsets)} x +-{args.shift_average:g})",
                             fit_seconds=model.bench_fit_seconds_, n_train=len(X))
                    results[s].append(r)
                    if library is not None:
                        if (s, fset) not in found_of:
                            found_of[s, fset] = match.best_matches(library, Xm[fset], features.feature_names(fset),
                                                                   views=views)
                        r = scores(model, Xm[fset], labm, views=views, matches=found_of[s, fset])
                        r.update(model=f"{model_name}{suffix}, shift-averaged, search-match",
                                 fit_seconds=model.bench_fit_seconds_, n_train=len(X))
                        results[s].append(r)
                        print(f"  search-match on {s}: {r['matched']:.1%} of the patterns matched, crystal system "
                              f"right in {r['match_system_precision']:.1%} of those, space group in "
                              f"{r['match_sg_precision']:.1%}", flush=True)
            for r in [r for r in results[sets[0]][first:] if "matched" not in r]:  # search-match rows printed above
                print(f"  {r['model']}: {len(X)} rows, fit {model.bench_fit_seconds_:.1f} s; {sets[0]} acc "
                      f"{r['accuracy']:.3f} macro {r['macro_recall']:.3f} sg@1 {r['sg_top1']:.3f} "
                      f"sg@5 {r['sg_top5']:.3f}", flush=True)
        if args.heldout:
            views_of = None
            if shift_row and len(offsets) > 1 and not args.max_train and class_mix == "catalog" and not balance:
                views_of = augmented_views(blocks, conditions, params, args.seed, fset, peak_params, offsets, X,
                                           n_jobs=args.n_jobs)
            held = heldout_scores(X, lab, n_jobs=args.n_jobs, model_params=model_params, space_group_rows=sg_rows,
                                  sg_synthetic_weight=sg_weight, views_of=views_of,
                                  library=library if views_of is not None else None, feature_set=fset)
            for part, r in held.items():
                base, _, extra = part.partition(", ")
                r.update(model=model_name + (f", {extra} ({len(offsets)} x +-{args.shift_average:g})" if extra else ""))
                results.setdefault(f"held-out simulated structure types ({base})", []).append(r)
            print("    held-out simulated: " + "; ".join(f"{part} acc {r['accuracy']:.3f} sg@1 {r['sg_top1']:.3f}"
                                                         for part, r in held.items()), flush=True)
        return model

    if not args.no_baseline:
        if peak_params:  # the seed's recipe: seed11 with the default peak finder, on the same structures
            base = [simulated_features(b["name"], b["refls"], conditions, None, 1, ["seed11"], {}, cache,
                                       n_jobs=args.n_jobs)["seed11"] for b in blocks]
            base_measured = {s: measured_features(s, conditions, ["seed11"], {}, cache) for s in sets}
            model = fit_model(np.concatenate(base), labels, n_jobs=args.n_jobs)
            for s in sets:
                r = scores(model, base_measured[s][0]["seed11"], base_measured[s][1])
                r.update(model="seed11, ideal, default peaks (seed recipe)", fit_seconds=model.bench_fit_seconds_,
                         n_train=len(labels))
                results[s].append(r)
            print(f"  seed recipe: rruff acc {results[sets[0]][-1]['accuracy']:.3f}", flush=True)
        run("seed11, ideal simulation (seed baseline)", *stack(blocks, "ideal", "seed11"), "seed11")
        run(f"seed11, augmented x{args.copies}", *stack(blocks, "aug", "seed11"), "seed11")
    for fset in best_sets:
        if not args.no_ideal:
            run(f"{fset}, ideal simulation", *stack(blocks, "ideal", fset), fset)
        if not (args.boosting and args.boosting_only):
            run(f"{fset}, augmented x{args.copies}", *stack(blocks, "aug", fset), fset, shift_row=True)
        if args.boosting:
            run(f"{fset}, augmented x{args.copies}, boosted crystal system", *stack(blocks, "aug", fset), fset,
                model_params={"crystal_system": BOOSTED_CRYSTAL_SYSTEM}, shift_row=True)
        if args.balance:
            run(f"{fset}, augmented x{args.copies}, balanced", *stack(blocks, "aug", fset), fset, balance=True)
    fset = best_sets[0]
    for mix in [m for m in args.class_mix.split(",") if m]:
        run(f"{fset}, augmented x{args.copies}, class mix {mix}", *stack(blocks, "aug", fset), fset, class_mix=mix)
    if args.sg_variants:
        from xrdbatch.train import DEFAULT_PARAMS

        run(f"{fset}, augmented x{args.copies}", *stack(blocks, "aug", fset), fset, exponent=[1.0, 0.5, 0.25])
        balanced_sg = {"space_group": dataclasses.replace(DEFAULT_PARAMS["space_group"], class_weight="balanced")}
        run(f"{fset}, augmented x{args.copies}, space groups balanced per system", *stack(blocks, "aug", fset), fset,
            model_params=balanced_sg)
    for w in [float(v) for v in args.sg_weight_rows.split(",") if v]:
        run(f"{fset}, aug x{args.copies}, synthetic space-group weight {w:g}", *stack(blocks, "aug", fset), fset,
            sg_weight=w)
    if args.sg_first:
        X, lab = stack(blocks, "aug", fset)
        first = np.concatenate([np.full(len(b["aug"][fset]), i < args.sg_first) for i, b in enumerate(blocks)])
        run(f"{fset}, aug x{args.copies}, space groups from the first {args.sg_first} catalog(s)", X, lab, fset,
            sg_rows=first)
    if args.learning_curve:
        for k in range(1, len(blocks)):
            sub = blocks[:k]
            n_struct = sum(len(b["labels"]) for b in sub)
            run(f"{fset}, aug x{args.copies}, first {k} catalogs ({n_struct} patt.)", *stack(sub, "aug", fset), fset)
            if not args.no_baseline:
                run(f"seed11, ideal, first {k} catalogs ({n_struct} patt.)", *stack(sub, "ideal", "seed11"),
                    "seed11")
    if args.ablation:
        aug_labels = stack(blocks, "aug", fset)[1]  # the same rows for every effect
        effects = [e for e in args.ablation_effects.split(",") if e] or list(augment.EFFECTS)
        unknown = sorted(set(effects) - set(augment.EFFECTS))
        if unknown:
            raise SystemExit(f"--ablation-effects: unknown effect(s) {unknown}; valid: {sorted(augment.EFFECTS)}")
        ablation_model = {"crystal_system": BOOSTED_CRYSTAL_SYSTEM} if args.boosting else None
        for effect in effects:
            p_off = params.without(effect)
            X = np.concatenate([simulated_features(b["name"], b["refls"], conditions, p_off, args.copies, [fset],
                                                   peak_params, cache, args.seed, n_jobs=args.n_jobs)[fset]
                                for b in blocks])
            run(f"{fset}, augmented x{args.copies}{', boosted' if args.boosting else ''} without {effect}", X,
                aug_labels, fset, model_params=ablation_model, shift_row=True)
    if args.calibrate:
        X, lab = stack(blocks, "aug", fset)
        rows = calibration_rows(X, lab, {s: measured[s] for s in sets}, fset, n_jobs=args.n_jobs,
                                balance=args.balance, out_dir=args.out or cache)
        print("== calibration (fitted on held-out simulated structures; never on measured patterns)")
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.save_bundle:
        from xrdbatch import train as xtrain

        X, lab = stack(blocks, "aug", fset)
        lab = lab.rename(columns={"id": "structure_id"})
        cpu0 = time.process_time()
        manifest = xtrain.train_arrays(X, lab, args.save_bundle, feature_set=fset,
                                       library=None if library is None else
                                       (library, "bench: ideal simulation of the catalogs' real structures"),
                                       feature_names=features.feature_names(fset), peak_params=peak_params,
                                       conditions=conditions, split="grouped", n_jobs=args.n_jobs, calibrate="isotonic",
                                       model_params=({"crystal_system": xtrain.BOOSTED_CRYSTAL_SYSTEM}
                                                     if args.boosting else None),
                                       source={"bench": "accuracy.py", "catalogs": [c for c, _ in specs],
                                               "substitutions": [n for _, n in specs],
                                               "augmentation": params.to_dict(), "copies": args.copies},
                                       overwrite=True, log=lambda m: print("  bundle: " + m))
        fit_cpu = time.process_time() - cpu0
        fit_s = manifest["training"]["fit_seconds"]
        print(f"bundle {args.save_bundle}: {manifest['total_bytes'] / 1e6:.1f} MB, fit {fit_s:.1f} s wall, "
              f"{fit_cpu:.1f} CPU-s in all ({fit_cpu / args.n_jobs:.1f} per core incl. evaluation and calibration) "
              f"({manifest['training']['n_train']} rows, all models incl. lattice, n_jobs={args.n_jobs})")
        from xrdbatch import bundle as xbundle

        t0, c0 = time.perf_counter(), time.process_time()
        b = xbundle.load_bundle(args.save_bundle)
        print(f"  load {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} CPU-s")
        b.model.system_exponent = args.system_exponent
        for s in sets:
            Xm, labm = measured[s]
            r = scores(b.model, Xm[fset], labm, calibrator=b.calibrator)
            r.update(model=f"{fset} bundle (grouped 80 %, calibrated)", fit_seconds=fit_s)
            results[s].append(r)
            if len(offsets) > 1:  # the bundle through xrdbatch.score: shift averaging, and search-match with a library
                views = measured_views(s, conditions, fset, peak_params, cache, offsets)
                for with_match in [False] + ([True] if b.library is not None else []):
                    found = (match.best_matches(b.library, Xm[fset], features.feature_names(fset), views=views)
                             if with_match else None)
                    r = scores(b.model, Xm[fset], labm, calibrator=b.calibrator, views=views, matches=found)
                    r.update(model=f"{fset} bundle, shift-averaged" + (", search-match" if with_match else ""),
                             fit_seconds=fit_s)
                    results[s].append(r)
                    r = product_scores(args.save_bundle, s, offsets, search_match=with_match)
                    r.update(model=f"{fset} bundle through xrdbatch.score, shift-averaged"
                                   + (", search-match" if with_match else ""), fit_seconds=fit_s)
                    results[s].append(r)
                # the decision for macro recall (xrdbatch score --decision balanced), with the search-match if any
                r = product_scores(args.save_bundle, s, offsets, search_match=b.library is not None,
                                   decision="balanced")
                r.update(model=f"{fset} bundle through xrdbatch.score, shift-averaged"
                               + (", search-match" if b.library is not None else "") + ", balanced decision",
                         fit_seconds=fit_s)
                results[s].append(r)
    text = "\n".join(format_table(results[s], f"{s} ({len(measured[s][1])} labelled patterns)") for s in sets)
    for title in [k for k in results if k not in sets]:
        text += "\n" + format_table(results[title], title)
    print(text)
    print(f"total {time.perf_counter() - t_start:.0f} s wall, {time.process_time() - cpu_start:.0f} CPU-s "
          f"in the main process; load {os.getloadavg()[0]:.1f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tables.txt").write_text(text + "\n")
        with open(args.out / "confusion.txt", "w") as fh:  # rows true, columns predicted crystal system
            for title, rows in results.items():
                for r in rows:
                    if "confusion" in r:
                        fh.write(f"== {title}: {r['model']}\n{r['confusion'].to_string()}\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

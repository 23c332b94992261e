"""Mass scoring of measured patterns with a trained model bundle.

How the parts fit (plan purely, execute pluggably):

1. :func:`expand_inputs` turns files, folders (recursive) and glob patterns into a sorted list of files.
2. :func:`plan` (pure) cuts the files that still need scoring into :class:`ScoreTask` batches of a few hundred
   files; each task names its own part file (``<out>.parts/part-<hash of its file list>.parquet``).
3. :func:`score_batch` is the task: it reads its own files (:mod:`xrdbatch.readers`), brings every pattern to
   the model's wavelength through Q, crops it to the model's 2-theta range, extracts features with the same
   peak finder and feature set as training (:func:`xrdbatch.features.extract`, as ``from_peaks(find_peaks())``
   so the peak count comes along), predicts, and writes its rows atomically (temporary name, then rename). It
   never raises for a bad file: that file becomes one error row.
4. :data:`EXECUTORS` (``"serial"``, ``"dask"``) only run tasks; :func:`merge_parts` then streams all parts
   (and, with ``resume``, the previous output) into the final Parquet/CSV file atomically.

Output: one row per pattern with :data:`OUTPUT_COLUMNS`; a file that cannot be read at all gives one row with
``pattern = -1`` and ``status = "error"``. ``warning`` flags a wavelength taken from the model or the option
rather than the file, and a measured range that does not cover the model's 2-theta range
(``range_coverage`` < :data:`MIN_RANGE_COVERAGE`).

Search-match (issue 8, session 9): when the bundle carries a library (its real training structures, ideal
simulation) every pattern and its shifted views are compared with it first (:mod:`xrdbatch.match`); a confident
match (``matched = True``) answers the row with the structure's crystal system, space group (first, the model's
ranking after it) and lattice constants. ``match_score``, ``match_id`` and ``match_formula`` name the best entry of
every row that scores :data:`xrdbatch.match.MIN_SCORE` (0.5) or more, also below the threshold (near misses); rows
under it read score 0 and no entry. Matched rows are never abstained on.

Abstention (issue 8): with a threshold on the (calibrated, when the bundle was trained with ``--calibrate``)
crystal-system probability, a pattern below it is answered with ``abstained = True`` and empty predictions
(``crystal_system = ""``, no space groups or lattice); ``crystal_system_prob`` stays, so the reason is visible.
The threshold is given directly, or as a target accuracy looked up in the bundle's calibration record
(:func:`abstain_threshold`: thresholds measured on held-out simulated structures at training time).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import math
import os
import uuid
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: Columns of the results table, in order (the first ones are the contract of issue 6).
PREDICTION_COLUMNS = (
    ["crystal_system", "crystal_system_prob"]
    + [f"space_group_{i}" for i in range(1, 6)]
    + [f"space_group_prob_{i}" for i in range(1, 6)]
    + ["a", "b", "c", "alpha", "beta", "gamma"]
)
OUTPUT_COLUMNS = (["file", "pattern", "status", "error"] + PREDICTION_COLUMNS
                  + ["n_peaks", "format", "sample", "wavelength_angstrom", "wavelength_source",
                     "two_theta_min_deg", "two_theta_max_deg", "range_coverage", "warning", "abstained"]
                  + ["matched", "match_score", "match_id", "match_formula"])

#: Prediction columns emptied when a pattern is abstained on (``crystal_system_prob`` is kept).
ABSTAIN_BLANKED = [c for c in PREDICTION_COLUMNS if c != "crystal_system_prob"]

#: Fraction of the model's 2-theta range a pattern must cover before it is flagged in ``warning``.
MIN_RANGE_COVERAGE = 0.9
#: A converted, cropped pattern with fewer points than this is an error row.
MIN_POINTS = 100
#: Relative wavelength difference below which no conversion is made.
WAVELENGTH_RTOL = 1e-5
DEFAULT_BATCH_SIZE = 1000


def _schema():
    import pyarrow as pa

    types = {"file": pa.string(), "pattern": pa.int64(), "status": pa.string(), "error": pa.string(),
             "crystal_system": pa.string(), "n_peaks": pa.int64(), "format": pa.string(), "sample": pa.string(),
             "wavelength_source": pa.string(), "warning": pa.string(), "abstained": pa.bool_(),
             "matched": pa.bool_(), "match_id": pa.string(), "match_formula": pa.string()}
    for i in range(1, 6):
        types[f"space_group_{i}"] = pa.int64()
    return pa.schema([(c, types.get(c, pa.float64())) for c in OUTPUT_COLUMNS])


# --------------------------------------------------------------------------- planning ----
@dataclass(frozen=True)
class ScoreOptions:
    """What every task needs besides its files (resolved at the edge; plain values only).

    Parameters
    ----------
    model_dir : str
        Local, verified model bundle directory.
    wavelength_angstrom : float or None
        Used for files that do not state their wavelength; ``None`` = the model's own (with a warning).
    format : str or None
        Force one :data:`xrdbatch.readers.FORMATS` entry instead of detection.
    abstain_threshold : float or None
        Patterns whose crystal-system probability is below it are abstained on (see the module docstring).
    shift_offsets_deg : tuple of float
        Zero-shift offsets to average the predictions over (:func:`xrdbatch.features.shift_offsets`);
        ``()`` or ``(0.0,)`` = the unshifted peak list only, no averaging.
    search_match : bool
        Compare every pattern (and its shifted views) with the bundle's library first; a confident match answers
        it (:mod:`xrdbatch.match`).
    decision : {"argmax", "balanced"}
        Crystal-system decision (:meth:`xrdbatch.bundle.ModelBundle.decision_weights`).
    """

    model_dir: str
    wavelength_angstrom: float | None = None
    format: str | None = None
    abstain_threshold: float | None = None
    shift_offsets_deg: tuple = ()
    search_match: bool = False
    decision: str = "argmax"


@dataclass(frozen=True)
class ScoreTask:
    """One batch: score ``files`` and write the rows to ``part_path``."""

    files: tuple
    part_path: str
    options: ScoreOptions = field(compare=False)


def expand_inputs(inputs) -> list[str]:
    """Files from files, folders (recursive, hidden entries skipped) and glob patterns, absolute and sorted.

    Raises
    ------
    FileNotFoundError
        Listing the inputs that match nothing.
    """
    found, missing = set(), []
    for item in inputs:
        item = os.fspath(item)
        if any(ch in item for ch in "*?[") and not os.path.exists(item):
            matches = glob.glob(item, recursive=True)
            paths = [m for m in matches if os.path.isfile(m)]
            for m in matches:
                if os.path.isdir(m):
                    paths.extend(_walk(m))
            if not paths:
                missing.append(item)
            found.update(os.path.abspath(p) for p in paths)
        elif os.path.isdir(item):
            found.update(os.path.abspath(p) for p in _walk(item))
        elif os.path.isfile(item):
            found.add(os.path.abspath(item))
        else:
            missing.append(item)
    if missing:
        raise FileNotFoundError(f"no such file, folder or matching pattern: {', '.join(missing)}")
    return sorted(found)


def _walk(folder):
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith("."):
                yield os.path.join(root, name)


def parts_dir(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".parts")


def batch_size_for(n_files: int, slots: int, batch_size: int | None = None) -> int:
    """Files per task: ``batch_size`` when given; else :data:`DEFAULT_BATCH_SIZE`, cut so that ``n_files`` make at
    least 4 tasks per worker slot (a few hundred files must not all land on one worker). Pure."""
    if batch_size is not None:
        return batch_size
    return max(1, min(DEFAULT_BATCH_SIZE, -(-n_files // (4 * max(1, slots)))))


def plan(files, out, options: ScoreOptions, batch_size: int = DEFAULT_BATCH_SIZE) -> list[ScoreTask]:
    """Cut ``files`` into tasks of ``batch_size``; pure (no I/O).

    Each part is named by the hash of its file list, so a rerun of the same plan rewrites the same parts.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    files = list(files)
    pdir = parts_dir(out)
    tasks = []
    for start in range(0, len(files), batch_size):
        batch = tuple(files[start:start + batch_size])
        key = hashlib.sha1("\n".join(batch).encode()).hexdigest()[:20]
        tasks.append(ScoreTask(batch, str(pdir / f"part-{key}.parquet"), options))
    return tasks


# ------------------------------------------------------------------------------ task ----
def _load_model(model_dir: str):
    """The bundle, once per process and version of its folder (a bundle rewritten in place, e.g. by `xrdbatch
    library`, has a new manifest file and is loaded again); forests predict single-threaded (processes are the
    parallelism)."""
    from xrdbatch.bundle import MANIFEST

    try:
        info = os.stat(os.path.join(model_dir, MANIFEST))
        version = (info.st_ino, info.st_mtime_ns, info.st_size)
    except OSError:
        version = None  # load_bundle says what is wrong
    return _load_model_version(model_dir, version)


@functools.lru_cache(maxsize=4)
def _load_model_version(model_dir: str, version):
    from xrdbatch.bundle import load_bundle

    bundle = load_bundle(model_dir)
    parts = getattr(getattr(bundle, "model", None), "parts", None)
    for estimator in (parts() if callable(parts) else {}).values():
        if hasattr(estimator, "n_jobs"):
            estimator.n_jobs = 1
    return bundle


def warm_up(model_dir: str) -> None:
    """Load the bundle and compile the number scanner in this process (run on every worker first)."""
    from xrdbatch import readers

    _load_model(model_dir)
    readers.parse_numbers(b"1 2\n")


def _empty_row(file: str, pattern: int) -> dict:
    row = dict.fromkeys(OUTPUT_COLUMNS)
    row.update(file=file, pattern=pattern, status="ok", error="", warning="")
    return row


def _to_model_two_theta(x, axis, wavelength_file, wavelength_model):
    """2-theta at the model's wavelength, through Q = 4 pi sin(theta) / lambda (or 2 pi / d)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if axis == "q_per_angstrom":
            s = wavelength_model * x / (4 * np.pi)
        elif axis == "d_angstrom":
            s = wavelength_model / (2 * x)
        else:
            if abs(wavelength_file - wavelength_model) <= WAVELENGTH_RTOL * wavelength_model:
                return x
            s = wavelength_model / wavelength_file * np.sin(np.radians(x) / 2)
        return np.degrees(2 * np.arcsin(np.where((s > 0) & (s < 1), s, np.nan)))


def prepare_pattern(pattern, conditions, fallback_wavelength: float | None, cache: dict | None = None):
    """A measured pattern on the model's terms: (two_theta_deg, intensity, info dict).

    The wavelength is the file's where it states one, else ``fallback_wavelength``, else the model's (noted in
    ``info["warning"]``); the abscissa is converted through Q to 2-theta at the model's wavelength, non-finite
    points are dropped, and the pattern is cropped to the model's 2-theta range.

    cache : dict, optional
        Converted grids by (axis, wavelength, grid), reused across the patterns of a batch.

    Raises
    ------
    ValueError
        With the reason, when too little of the pattern is left to score.
    """
    lam_model = conditions.wavelength_angstrom
    warn = []
    if pattern.meta.get("wavelength_angstrom"):
        lam, source = float(pattern.meta["wavelength_angstrom"]), "file"
    elif fallback_wavelength:
        lam, source = float(fallback_wavelength), "option"
    else:
        lam, source = lam_model, "model"
        if pattern.axis == "two_theta_deg":
            warn.append(f"no wavelength in the file or options: assumed the model's {lam_model:g} A")
    grid = _model_grid(pattern.x, pattern.axis, lam, conditions, cache)
    tt = grid.two_theta
    y = pattern.intensity
    finite_y = np.isfinite(y)
    n_finite = int(finite_y.sum())
    if n_finite < 0.5 * y.size:
        raise ValueError(f"{y.size - n_finite} of {y.size} intensities are NaN/inf")
    if not grid.reachable:
        raise ValueError(f"no point of the pattern is within reach of the model's wavelength {lam_model:g} A")
    lo, hi = conditions.two_theta_min_deg, conditions.two_theta_max_deg
    if n_finite == y.size:  # the usual case: the grid's own crop, shared by every pattern on it
        keep, tt_kept = grid.keep, grid.kept
    else:
        keep = grid.keep & finite_y
        tt_kept = tt[keep]
    n = tt_kept.size
    info = {"wavelength_angstrom": lam, "wavelength_source": source}
    if n:
        t0, t1 = float(tt_kept[0]), float(tt_kept[-1])
        coverage = max(0.0, (t1 - t0) / (hi - lo))
        info.update(two_theta_min_deg=t0, two_theta_max_deg=t1, range_coverage=coverage)
        if coverage < MIN_RANGE_COVERAGE:
            warn.append(f"2-theta {t0:.2f}-{t1:.2f} deg (at {lam_model:g} A) covers {coverage:.0%} of the "
                        f"model's {lo:g}-{hi:g} deg: features may be missing peaks")
    if n < MIN_POINTS:
        raise ValueError(f"only {n} points inside the model's 2-theta range {lo:g}-{hi:g} deg at {lam_model:g} A "
                         f"(the file covers {np.nanmin(tt):.2f}-{np.nanmax(tt):.2f} deg); needs {MIN_POINTS}")
    info["warning"] = "; ".join(warn)
    return tt_kept, y[keep], info


class _Grid(NamedTuple):
    x: np.ndarray  # the file's abscissa (kept to verify cache hits)
    two_theta: np.ndarray  # at the model's wavelength, NaN where out of reach
    keep: np.ndarray  # finite and inside the model's range
    kept: np.ndarray  # two_theta[keep]
    reachable: bool


def _model_grid(x, axis, lam, conditions, cache: dict | None) -> _Grid:
    """The file's abscissa converted and cropped for the model; computed once per distinct grid in a batch."""
    key = (axis, lam, x.size, float(x[0]), float(x[-1]), float(x[x.size // 2]))
    if cache is not None:
        hit = cache.get(key)
        if hit is not None and (hit.x is x or np.array_equal(hit.x, x)):
            return hit
    tt = _to_model_two_theta(x, axis, lam, conditions.wavelength_angstrom)
    finite = np.isfinite(tt)
    keep = finite & (tt >= conditions.two_theta_min_deg) & (tt <= conditions.two_theta_max_deg)
    grid = _Grid(x, tt, keep, tt[keep], bool(finite.any()))
    if cache is not None:
        cache[key] = grid
    return grid


def _features(model, two_theta, intensity, offsets=()):
    """``(X, views, peak counts)``: features.extract split in its two steps so the peak count comes with the
    features; ``views`` are the features of the peak list moved by each non-zero offset (shift averaging)."""
    from xrdbatch import features

    peak_params = dict(getattr(model, "peak_params", None) or {})
    lam = model.conditions.wavelength_angstrom
    peaks = features.find_peaks(two_theta, intensity, lam, **peak_params)
    views = features.shifted_views(peaks, model.feature_set, lam, offsets)
    return features.from_peaks(peaks, model.feature_set), views, np.asarray(peaks.count)


def score_files(files, options: ScoreOptions) -> list[dict]:
    """Rows for ``files`` (one per pattern, or one error row per unreadable file). Never raises per file."""
    from xrdbatch import readers

    model = _load_model(options.model_dir)
    rows = []
    groups = defaultdict(list)  # same grid -> one vectorised feature call
    grids = {}
    for file in files:
        try:
            patterns = readers.read_patterns(file, options.format)
        except readers.ReaderError as exc:
            rows.append(dict(_empty_row(file, -1), status="error", error=exc.reason))
            continue
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the batch
            rows.append(dict(_empty_row(file, -1), status="error", error=f"{type(exc).__name__}: {exc}"))
            continue
        for k, pattern in enumerate(patterns):
            row = _empty_row(file, k)
            row.update(format=pattern.meta.get("format"), sample=pattern.meta.get("sample"))
            try:
                tt, y, info = prepare_pattern(pattern, model.conditions, options.wavelength_angstrom, grids)
            except ValueError as exc:
                row.update(status="error", error=str(exc))
                rows.append(row)
                continue
            row.update(info)
            rows.append(row)
            # patterns on one cached grid share the very same array object; others are grouped by content
            key = id(tt) if any(g.kept is tt for g in grids.values()) else \
                hashlib.blake2b(tt.tobytes(), digest_size=16).digest()
            groups[key].append((len(rows) - 1, tt, y))
    # features per grid group, then one prediction for the whole batch (forest calls have a fixed cost)
    indices, blocks, view_blocks, counts = [], [], [], []
    offsets = options.shift_offsets_deg
    for members in groups.values():
        tt = members[0][1]
        intensity = np.empty((len(members), tt.size), np.float32)  # one float32 block, no float64 stack
        for row, m in enumerate(members):
            intensity[row] = m[2]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                X, views, n_peaks = _features(model, tt, intensity, offsets)
        except Exception:  # noqa: BLE001 - isolate the culprit pattern by pattern
            for m in members:
                _score_one(model, rows, m, options)
            continue
        indices.extend(m[0] for m in members)
        blocks.append(X)
        view_blocks.append(views)
        counts.append(n_peaks)
    if indices:
        X, n_peaks = np.concatenate(blocks), np.concatenate(counts)
        views = [np.concatenate([v[i] for v in view_blocks]) for i in range(len(view_blocks[0]))]
        try:
            pred, matches = _predict(model, X, views, options)
        except Exception:  # noqa: BLE001 - isolate the culprit row by row
            for j, index in enumerate(indices):
                try:
                    _fill(rows, [index], *_predict(model, X[j:j + 1], [V[j:j + 1] for V in views], options),
                          n_peaks[j:j + 1])
                except Exception as exc:  # noqa: BLE001
                    rows[index].update(status="error", error=f"prediction failed: {type(exc).__name__}: {exc}")
        else:
            _fill(rows, indices, pred, matches, n_peaks)
    if options.abstain_threshold is not None:
        _abstain(rows, options.abstain_threshold)
    return rows


def _predict(model, X, views, options: ScoreOptions):
    """``(predictions, matches)``: with ``options.search_match`` the rows are compared with the bundle's library
    first (:func:`xrdbatch.match.best_matches` over the rows and their shifted views) and confident matches answer
    them; else ``matches`` is None."""
    matches = None
    if options.search_match:
        from xrdbatch import match

        matches = match.best_matches(model.library, X, model.feature_names, views=views)
    return model.predict(X, views=views, matches=matches, decision=options.decision), matches


def search_match_for(bundle, requested: bool | None, name=None) -> bool:
    """Whether to search-match with ``bundle``: ``requested``, or (None) whether the bundle has a library.

    Raises ValueError naming the bundle (``name``, default its path) when a match is requested and it has none."""
    if requested is None:
        return bundle.library is not None
    if requested and bundle.library is None:
        raise ValueError(f"{name or bundle.path}: this bundle has no search-match library (trained with a feature set "
                         "without line positions in Q, without an ideal store, or before session 9); leave out "
                         "--search-match or retrain it")
    return bool(requested)


def _abstain(rows, threshold: float) -> None:
    """Mark (and empty) the predictions of ok rows whose crystal-system probability is below ``threshold``;
    a row answered by a confident search-match is kept."""
    for row in rows:
        if row["status"] != "ok" or row.get("crystal_system_prob") is None or row.get("matched"):
            continue
        low = bool(row["crystal_system_prob"] < threshold)
        row["abstained"] = low
        if low:
            row.update(dict.fromkeys(ABSTAIN_BLANKED))
            row["crystal_system"] = ""


def abstain_threshold(model_dir, accuracy: float) -> float:
    """The bundle's abstention threshold for a target crystal-system ``accuracy`` (e.g. 0.9).

    Read from the calibration record of the manifest (``training.calibration.abstain_thresholds``), which
    :func:`xrdbatch.calibration.fit_for_model` measured on held-out simulated structures at training time.
    Raises ValueError naming the bundle and the targets it has when there is no such record.
    """
    manifest = _load_model(str(Path(model_dir).resolve())).manifest  # the bundle score() has already loaded
    thresholds = (manifest.get("training", {}).get("calibration") or {}).get("abstain_thresholds") or {}
    if not thresholds:
        raise ValueError(f"{model_dir}: this bundle has no calibration record, so no abstention threshold for a "
                         "target accuracy; retrain with 'xrdbatch train --calibrate isotonic' or give --abstain P")
    for key, value in thresholds.items():
        if abs(float(key) - accuracy) < 1e-9:
            return float(value)
    raise ValueError(f"{model_dir}: no abstention threshold for accuracy {accuracy:g}; the bundle has "
                     f"{', '.join(sorted(thresholds))} (or give a probability with --abstain P)")


def _score_one(model, rows, member, options: ScoreOptions):
    index, tt, y = member
    try:
        X, views, n_peaks = _features(model, tt, y[None, :].astype(np.float32), options.shift_offsets_deg)
        _fill(rows, [index], *_predict(model, X, views, options), n_peaks)
    except Exception as exc:  # noqa: BLE001
        rows[index].update(status="error", error=f"features/prediction failed: {type(exc).__name__}: {exc}")


def _fill(rows, indices, pred, matches, n_peaks):
    columns = [c for c in PREDICTION_COLUMNS if c in pred.columns]
    values = {c: pred[c].to_numpy() for c in columns}
    if matches is not None:  # the best library entry of every row, whether or not it answered it
        found = matches["match_index"].to_numpy() >= 0
        values["matched"] = pred["matched"].to_numpy()
        values["match_score"] = matches["match_score"].to_numpy()
        for c in ("match_id", "match_formula"):
            values[c] = np.where(found, matches[c].to_numpy(dtype=object), None) if c in matches else [None] * len(found)
    for j, index in enumerate(indices):
        row = rows[index]
        for c, column in values.items():
            v = column[j]
            row[c] = v.item() if hasattr(v, "item") else v
        row["n_peaks"] = int(n_peaks[j])
        row["abstained"] = False  # predicted; _abstain may turn it


def rows_to_table(rows):
    import pyarrow as pa

    schema = _schema()
    columns = {}
    for name in schema.names:
        values = [r.get(name) for r in rows]
        if pa.types.is_floating(schema.field(name).type):
            values = [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
                      for v in values]
        elif pa.types.is_integer(schema.field(name).type):
            values = [None if v is None else int(v) for v in values]
        elif pa.types.is_string(schema.field(name).type):
            values = [None if v is None else str(v) for v in values]
        columns[name] = values
    return pa.table(columns, schema=schema)


def _write_atomic_parquet(table, path):
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def score_batch(task: ScoreTask) -> int:
    """The task: score its files and write its part atomically. Returns the number of files."""
    _write_atomic_parquet(rows_to_table(score_files(task.files, task.options)), task.part_path)
    return len(task.files)


# -------------------------------------------------------------------------- executors ----
def run_serial(tasks, client=None, progress=None):
    for task in tasks:
        n = score_batch(task)
        if progress is not None:
            progress(n)


def run_dask(tasks, client=None, progress=None):
    from distributed import as_completed

    if client is None:
        raise ValueError("the dask executor needs a distributed.Client (see xrdbatch.cluster.get_client)")
    if tasks:  # load the model on every worker at once, not inside the first task of each
        client.run(warm_up, tasks[0].options.model_dir)
    futures = client.map(score_batch, tasks, pure=False)
    for future in as_completed(futures):
        n = future.result()
        if progress is not None:
            progress(n)
        future.release()


#: Executor name -> function(tasks, client, progress).
EXECUTORS = {"serial": run_serial, "dask": run_dask}


# ------------------------------------------------------------------------------ merge ----
def done_files(out) -> set:
    """Files that already have rows in ``out`` or in its leftover parts (for ``resume``)."""
    import pyarrow.parquet as pq

    done = set()
    out = Path(out)
    if out.exists():
        done.update(_read_table(out).column("file").to_pylist())
    pdir = parts_dir(out)
    if pdir.is_dir():
        for part in sorted(pdir.glob("part-*.parquet")):
            done.update(pq.read_table(part, columns=["file"]).column("file").to_pylist())
    return done


def _read_table(path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix.lower() == ".csv":
        schema = _schema()
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={f.name: f.type for f in schema}, strings_can_be_null=False))
    return pq.read_table(path)


def _conform(table, schema):
    """``table`` with ``schema``'s columns in order; columns an older output lacks (e.g. ``abstained``) as nulls."""
    import pyarrow as pa

    for name in schema.names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, schema.field(name).type))
    return table.select(schema.names).cast(schema)


def merge_parts(out, previous: bool = False) -> int:
    """Stream every part (and the previous ``out`` when ``previous``) into ``out`` atomically; remove parts.

    Returns the number of rows written. Memory holds one part at a time.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = Path(out)
    pdir = parts_dir(out)
    parts = sorted(pdir.glob("part-*.parquet")) if pdir.is_dir() else []
    schema = _schema()
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    csv = out.suffix.lower() == ".csv"
    writer = pacsv.CSVWriter(tmp, schema) if csv else pq.ParquetWriter(tmp, schema)
    n = 0
    try:
        sources = ([out] if previous and out.exists() else []) + parts
        for source in sources:
            table = _conform(_read_table(source) if source == out else pq.read_table(source), schema)
            writer.write_table(table)
            n += table.num_rows
    finally:
        writer.close()
    os.replace(tmp, out)
    for part in parts:
        part.unlink()
    if pdir.is_dir() and not any(pdir.iterdir()):
        pdir.rmdir()
    return n


# ------------------------------------------------------------------------ entry point ----
def score(inputs, model, out, *, wavelength_angstrom: float | None = None, format: str | None = None,
          resume: bool = False, batch_size: int | None = None, executor: str = "serial", client=None,
          progress: bool = False, endpoint_url: str | None = None, abstain: float | None = None,
          abstain_accuracy: float | None = None, shift_average_deg: float = 0.0, shift_views: int = 7,
          search_match: bool | None = None, decision: str = "argmax") -> dict:
    """Score measured files with a model bundle (local folder or registry URL) into ``out``.

    Parameters
    ----------
    inputs : list of str
        Files, folders (recursive) or glob patterns.
    model : str
        Local bundle folder, or a registry URL (pulled into the cache and verified first).
    out : str
        ``.parquet`` or ``.csv`` results file, written atomically.
    wavelength_angstrom : float, optional
        For files that do not state theirs (else the model's, with a warning in the rows).
    resume : bool
        Skip files that already have rows in ``out`` (or in leftover parts of an interrupted run).
    batch_size : int, optional
        Files per task; default :func:`batch_size_for` (up to 1,000, at least 4 tasks per worker thread).
    executor : {"serial", "dask"}
        ``"dask"`` needs ``client``.
    abstain : float, optional
        Abstain on patterns whose crystal-system probability is below this (0-1).
    abstain_accuracy : float, optional
        Instead of ``abstain``: the bundle's threshold for this target accuracy (:func:`abstain_threshold`).
    shift_average_deg, shift_views : float, int
        Average the predictions over ``shift_views`` (odd) copies of each peak list moved by zero shifts spread over
        ``+-shift_average_deg`` (:func:`xrdbatch.features.shift_offsets`; 0 = off). Costs ``shift_views`` x the
        feature time; worth ~2-3 points of crystal-system accuracy on measured minerals (issue 8, session 4).
    search_match : bool, optional
        Compare every pattern with the bundle's search-match library (its real training structures) first and let
        a confident match answer it (:mod:`xrdbatch.match`; +4.5 points of crystal-system and +11.5 of space-group
        top-1 accuracy on RRUFF minerals, session 8). None (default) = on when the bundle has a library; True
        with a bundle that has none is an error.
    decision : {"argmax", "balanced"}
        ``"argmax"``: the most probable crystal system (best accuracy). ``"balanced"``: probabilities over the
        training shares of the systems (best expected macro recall; RRUFF dev, session 9: accuracy 72.0 -> 67.7,
        macro recall 68.3 -> 71.3, triclinic recall 8 -> 58 %, monoclinic 80 -> 56 %).

    Returns
    -------
    dict
        ``files, skipped, rows, ok, errors, warnings, abstained, abstain_threshold, out``.
    """
    from xrdbatch import registry

    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"--out must end in .parquet or .csv, got {out.name!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid: {sorted(EXECUTORS)}")
    model_dir = registry.fetch(model, endpoint_url=endpoint_url) if registry.is_url(model) else Path(model)
    if not (Path(model_dir) / registry.MANIFEST).is_file():
        raise FileNotFoundError(f"{model}: not a model bundle (no {registry.MANIFEST}); train one with "
                                "'xrdbatch train' or pull one with 'xrdbatch models pull'")
    bundle = _load_model(str(Path(model_dir).resolve()))  # fail early (bad bundle) before any batch starts
    bundle.decision_weights(decision)  # an unknown decision, or a bundle without class shares, fails here
    search_match = search_match_for(bundle, search_match, model)
    if abstain is not None and abstain_accuracy is not None:
        raise ValueError(f"give either abstain ({abstain}) or abstain_accuracy ({abstain_accuracy}), not both")
    if abstain_accuracy is not None:
        abstain = abstain_threshold(model_dir, abstain_accuracy)
    if abstain is not None and not 0.0 <= abstain <= 1.0:
        raise ValueError(f"abstain must be a probability between 0 and 1, got {abstain}")
    files = expand_inputs(inputs)
    pdir = parts_dir(out)
    if resume:
        done = done_files(out)
        todo = [f for f in files if f not in done]
    else:
        if pdir.is_dir():
            for stale in pdir.glob("part-*.parquet"):
                stale.unlink()
        todo = files
    from xrdbatch.features import shift_offsets

    options = ScoreOptions(str(Path(model_dir).resolve()), wavelength_angstrom, format, abstain,
                           tuple(float(o) for o in shift_offsets(shift_average_deg, shift_views)), search_match,
                           decision)
    slots = sum(client.nthreads().values()) if (executor == "dask" and client is not None) else 1
    tasks = plan(todo, out, options, batch_size_for(len(todo), slots, batch_size))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="file", desc="score", smoothing=0.1)
    try:
        EXECUTORS[executor](tasks, client, bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    n_rows = merge_parts(out, previous=resume)
    import pyarrow.compute as pc

    table = _read_table(out).select(["status", "warning", "abstained", "matched"])
    n_ok = pc.sum(pc.equal(table["status"], "ok")).as_py() or 0
    n_warn = pc.sum(pc.not_equal(pc.fill_null(table["warning"], ""), "")).as_py() or 0
    n_abstained = pc.sum(pc.fill_null(table["abstained"], False).cast("int64")).as_py() or 0
    n_matched = pc.sum(pc.fill_null(table["matched"], False).cast("int64")).as_py() or 0
    return {"files": len(files), "skipped": len(files) - len(todo), "rows": n_rows, "ok": n_ok,
            "errors": n_rows - n_ok, "warnings": n_warn, "abstained": n_abstained,
            "abstain_threshold": abstain, "search_match": search_match, "matched": n_matched, "out": str(out)}

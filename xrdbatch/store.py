"""Regenerate a training set into a chunked, labelled, resumable Zarr store; retarget it.

How the parts fit (rechunker style: plan purely, execute pluggably):

1. **Planning** (:func:`plan_chunks`, :func:`row_groups_for`; numbers only, no I/O) cuts the catalog rows
   into frozen :class:`ChunkTask` values ``(index, start, stop)``, skipping chunks already marked done.
2. **Work** is a frozen, picklable callable (:class:`SimulateChunks`, :class:`RetargetChunks`) that does
   one chunk completely: it reads its own catalog rows (by Parquet row group, never shipped from the
   client, so the task graph stays a few hundred bytes per chunk), simulates, writes its own region of
   the store, then writes the chunk's done marker. It returns nothing.
3. **Executors** (:data:`EXECUTORS`: ``serial``, ``dask``) only run ``work(task)`` for every task; the
   same contract tests run both.
4. **Orchestrators** (:func:`simulate`, :func:`retarget`) take the store lock, check or write the
   template, plan, execute, finalise.

Store layout (Zarr v3 directory; ``xarray.open_zarr(path, consolidated=False)`` or :func:`open_dataset`)::

    store.zarr/
      zarr.json                 attrs: format, kind, conditions (JSON of Conditions.to_dict()),
                                catalog_sha256, d_min_angstrom, chunk_size, versions[, retargeted_from]
      intensity                 (structure, two_theta) float32, Zarr chunks (chunk_size, n_points), each row
                                scaled to max 1; rows never written read as NaN
      sim_status                (structure) str: "ok", else why the structure has no pattern
                                ("pending" until its chunk is done)
      two_theta                 (two_theta) float64, attrs units="degree"
      structure_id, crystal_system, spacegroup_number, spacegroup_symbol, a, b, c, alpha, beta, gamma,
      volume, formula, n_atoms, structure_type
                                (structure) label coordinates, copied from the catalog by the template
      reflections/              condition-free reflections (see below)
        count                   (structure) int64 reflections per structure; -1 until its chunk is done
        offsets                 (structure + 1) int64 = [0, cumsum(count)]: global flat positions,
                                written once every chunk is done
        chunk-000000/           one group per structure chunk, written only by that chunk's task:
          d_angstrom (m,) float64, intensity (m,) float64, hkl (m, 3) int32,
          m = sum(count[start:stop]); structure i of the chunk owns rows
          [offsets[i] - offsets[start], offsets[i + 1] - offsets[start])
      xrdbatch/                 control group (not data): lock, run.json (fingerprint), done/000000.json ...,
                                catalog.parquet (the rows tasks read, one row group per chunk; only made
                                when the catalog's own row groups do not match the chunks)

Why per-chunk reflection groups: the number of reflections of a structure is only known after it is
simulated, so one flat array cannot be cut into regions in advance; a fixed maximum per structure
would waste space (large cells have thousands). Per-chunk flat arrays keep every write private to one
task (parallel and idempotent), and the global ``offsets`` make the concatenation of the chunk arrays
exactly the contract's "flat arrays + offsets" (:func:`read_reflections` reads any range).

Resume and safety: a chunk's done marker (``xrdbatch/done/<index>.json``, written atomically after its
region) is the only proof of work; a rerun plans the chunks without one. ``run.json`` fingerprints the
conditions, catalog hash, resolution and chunking: a rerun that differs is refused unless
``restart=True``. One writer at a time: ``xrdbatch/lock`` is created with ``O_EXCL`` and holds pid, host,
process start time and a token; a lock whose process is gone (same host) is stale and taken over, and
tasks of a run whose token is no longer in the lock (an orphaned worker of a killed run) refuse to
mark anything done.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import socket
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from xrdbatch.conditions import Conditions

FORMAT = "xrdbatch-store/1"
CONTROL = "xrdbatch"
DEFAULT_CHUNK_SIZE = 500
STATUS_OK = "ok"
STATUS_PENDING = "pending"

#: Codec of ``intensity`` in every store (simulate and retarget alike): Blosc with LZ4 and byte shuffle
#: (``zarr.codecs.BloscCodec`` arguments). On rendered 4501-point patterns it gives 10.7 kB per structure
#: against 11.7 kB for Zarr's default (Zstandard level 0) at about a seventh of the encoding CPU (15 us
#: against 120 us per structure), and any Zarr v3 reader (xarray, zarr-python, tensorstore) decodes it.
INTENSITY_CODEC: dict = {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 4}
#: Codec of the stored reflections (``typesize`` = the array's item size): on 2000 structures' d-spacings,
#: 0.80 of the raw size against 0.87 for Zstandard level 0, encoded 3x and decoded 2x faster.
REFLECTION_CODEC: dict = {"cname": "lz4", "clevel": 5, "shuffle": "shuffle"}

#: Catalog columns copied to the store as coordinates over ``structure`` -> (dtype kind, units).
LABEL_COORDS: dict[str, tuple[str, str | None]] = {
    "crystal_system": ("str", None),
    "spacegroup_number": ("int", None),
    "spacegroup_symbol": ("str", None),
    "a": ("float", "angstrom"),
    "b": ("float", "angstrom"),
    "c": ("float", "angstrom"),
    "alpha": ("float", "degree"),
    "beta": ("float", "degree"),
    "gamma": ("float", "degree"),
    "volume": ("float", "angstrom^3"),
    "formula": ("str", None),
    "n_atoms": ("int", None),
    "structure_type": ("str", None),
    "source": ("str", None),  # where the structure came from (folder, synthetic:N, ...): training rows' origin
}
#: Catalog columns each simulation task reads (besides the crystal columns).
TASK_COLUMNS = ("id", "status", "reason")


class StoreError(ValueError):
    """A store cannot be used as asked (mismatch, lock, incomplete, resolution); the message says why."""


# ===================================================================================== planning ==
@dataclass(frozen=True)
class ChunkTask:
    """Rows ``[start, stop)`` of the catalog = rows of the store = Zarr chunk ``index`` along structure."""

    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_chunks(n_structures: int, chunk_size: int, done: Iterable[int] = ()) -> tuple[ChunkTask, ...]:
    """Cut ``n_structures`` rows into chunk tasks aligned to the Zarr chunks, skipping ``done`` indices.

    >>> plan_chunks(5, 2)
    (ChunkTask(index=0, start=0, stop=2), ChunkTask(index=1, start=2, stop=4), ChunkTask(index=2, start=4, stop=5))
    >>> [t.index for t in plan_chunks(5, 2, done={0, 2})]
    [1]
    """
    if n_structures < 0 or chunk_size < 1:
        raise ValueError(f"need n_structures >= 0 and chunk_size >= 1, got {n_structures!r}, {chunk_size!r}")
    done = set(done)
    return tuple(ChunkTask(i, s, min(s + chunk_size, n_structures))
                 for i, s in enumerate(range(0, n_structures, chunk_size)) if i not in done)


def n_chunks(n_structures: int, chunk_size: int) -> int:
    """Number of chunks :func:`plan_chunks` makes."""
    return math.ceil(n_structures / chunk_size)


def row_groups_for(task: ChunkTask, row_group_starts: Sequence[int]) -> tuple[int, ...]:
    """Indices of the Parquet row groups that hold rows ``[task.start, task.stop)``.

    ``row_group_starts`` is the first row of every row group plus the total row count at the end.

    >>> row_groups_for(ChunkTask(0, 3, 7), [0, 4, 8, 12])
    (0, 1)
    """
    starts = np.asarray(row_group_starts)
    first = int(np.searchsorted(starts, task.start, side="right")) - 1
    last = int(np.searchsorted(starts, task.stop, side="left")) - 1
    return tuple(range(first, max(first, last) + 1))


# ================================================================================ control files ==
def _control(store: str, *parts: str) -> str:
    return os.path.join(store, CONTROL, *parts)


def _write_json_atomic(path: str, data: dict, *, durable: bool = True) -> None:
    """Write ``data`` to a temporary name, then rename: readers see the old file or the whole new one.

    ``durable`` also fsyncs before the rename (survives a power cut, ~8 ms of wall time on ext4). Done
    markers skip it: the chunk files they vouch for are not fsynced either (Zarr does not), so it would buy
    nothing, and what the markers must survive, a killed process, the page cache survives.
    """
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w") as fh:
        json.dump(data, fh, sort_keys=True, indent=1)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def done_chunks(store: str) -> dict[int, dict]:
    """Done markers of a store: chunk index -> marker (rows, counts, seconds, worker, peak memory)."""
    folder = _control(store, "done")
    out = {}
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith(".json"):
                marker = _read_json(os.path.join(folder, name))
                if marker is not None:
                    out[int(marker["index"])] = marker
    return out


def _process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


class StoreLock:
    """Exclusive writer lock of a store: ``<store>/xrdbatch/lock`` made with ``O_CREAT | O_EXCL``.

    The file holds pid, host, the process start time and a random ``token``. A lock left by a process
    that no longer exists on this host (killed run) is stale and taken over; a live one, or one from
    another host, is refused with a message that names the holder and the file.
    """

    def __init__(self, store: str):
        self.store = str(store)
        self.path = _control(self.store, "lock")
        self.token: str | None = None

    def acquire(self) -> StoreLock:
        import zarr

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # make the control folder a Zarr group so listing the store root does not warn about it
        zarr.open_group(self.store, path=CONTROL, mode="a", zarr_format=3)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start_time": _process_start_time(os.getpid()),
              "token": uuid.uuid4().hex, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        for _attempt in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_json(self.path) or {}
                if self._is_stale(holder):
                    try:
                        os.unlink(self.path)
                    except FileNotFoundError:
                        pass
                    continue
                raise StoreError(
                    f"store {self.store} is being written by another run (pid {holder.get('pid')} on host "
                    f"{holder.get('host')!r} since {holder.get('created')}; lock file {self.path}). Wait for it "
                    "to finish; if that process is gone (e.g. a job on another host was killed), delete the lock "
                    "file and rerun."
                ) from None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.token = me["token"]
            return self
        raise StoreError(f"could not take the lock {self.path} (another run keeps taking it); try again")

    @staticmethod
    def _is_stale(holder: dict) -> bool:
        if not holder or "pid" not in holder:
            return True  # half-written lock of a killed process
        if holder.get("host") != socket.gethostname():
            return False  # cannot see processes of another host: refuse, the message says what to do
        started = _process_start_time(int(holder["pid"]))
        if started is None:
            return True
        recorded = holder.get("start_time")
        return recorded is not None and abs(started - recorded) > 1.0  # pid reused by another process

    def release(self) -> None:
        holder = _read_json(self.path) or {}
        if self.token is not None and holder.get("token") == self.token:
            os.unlink(self.path)
        self.token = None

    def __enter__(self) -> StoreLock:
        return self.acquire() if self.token is None else self

    def __exit__(self, *exc) -> None:
        self.release()


def _check_token(store: str, token: str) -> None:
    holder = _read_json(_control(store, "lock")) or {}
    if holder.get("token") != token:
        raise StoreError(
            f"store {store} is no longer locked by the run that started this task (lock now held by pid "
            f"{holder.get('pid')} on {holder.get('host')!r}); this task's results are abandoned"
        )


# ========================================================================================= work ==
def _peak_rss_bytes() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:500]


def _patterns_guarded(refls: list, conditions: Conditions, statuses: list[str], rows: list[int],
                      out: np.ndarray) -> None:
    """Fill ``out[rows]`` with patterns; a structure whose pattern fails gets zeros and its reason."""
    from xrdbatch import simulate as sim

    if not rows:
        return
    try:
        out[rows] = sim.patterns([refls[i] for i in rows], conditions)
        return
    except Exception:  # noqa: BLE001  (find the culprit one by one; one bad record never stops a batch)
        pass
    for i in rows:
        try:
            out[i] = sim.patterns([refls[i]], conditions)[0]
        except Exception as exc:  # noqa: BLE001
            out[i] = 0.0
            statuses[i] = "pattern failed: " + _reason(exc)


class _Phases:
    """Wall and CPU seconds of a task, in total and per phase, for its done marker (where the time goes).

    ``mark(name)`` charges the time since the previous mark to ``name``; :meth:`summary` closes the task.
    """

    def __init__(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self._last = self.c0
        self.cpu: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.process_time()
        self.cpu[name] = self.cpu.get(name, 0.0) + now - self._last
        self._last = now

    def summary(self) -> dict:
        return {"seconds": round(time.perf_counter() - self.t0, 4),
                "cpu_seconds": round(time.process_time() - self.c0, 4),
                "phases_cpu_seconds": {k: round(v, 5) for k, v in self.cpu.items()}}


def _write_chunk(store: str, task: ChunkTask, intensity: np.ndarray, statuses: list[str], refls: list,
                 token: str, phases: _Phases, reflections_from: str | None = None,
                 counts: np.ndarray | None = None) -> None:
    """Region writes of one chunk, then (only then) its done marker.

    The regions are written with zarr directly into the arrays the xarray template made (same chunks, same
    encoding: float32 with NaN fill, variable-length UTF-8): xarray's ``to_zarr(region=...)`` re-reads and
    validates every variable of the store per call, ~1 s CPU per chunk, ten times the rest of the task.
    The marker's times (``phases``) include these writes.
    """
    import zarr

    _check_token(store, token)
    region = slice(task.start, task.stop)
    # a chunk of patterns is never all NaN (the fill value): skip Zarr's check for empty chunks
    zarr.open_array(store, path="intensity", mode="r+", config={"write_empty_chunks": True})[region] = intensity
    zarr.open_array(store, path="sim_status", mode="r+")[region] = np.asarray(statuses, dtype=object)

    if counts is None:
        counts = np.array([0 if r is None else len(r.d_angstrom) for r in refls], dtype=np.int64)
    if reflections_from is not None:
        _link_part(reflections_from, store, task.index)
    else:
        _write_part(store, task.index, refls)
    zarr.open_array(store, path="reflections/count", mode="r+")[task.start:task.stop] = counts

    _check_token(store, token)
    phases.mark("write")
    n_ok = statuses.count(STATUS_OK)
    _mark_done(store, task, phases, n_ok=n_ok, n_failed=task.size - n_ok, n_reflections=int(counts.sum()))


def _mark_done(store: str, task: ChunkTask, phases: _Phases, **counts) -> None:
    """The done marker of ``task``: its times (``phases``), ``counts`` (n_ok, n_failed, n_reflections), where it
    ran. Written after every file of the chunk."""
    summary = phases.summary()
    summary.update(index=task.index, start=task.start, stop=task.stop, **counts,
                   host=socket.gethostname(), pid=os.getpid(), worker_peak_rss_bytes=_peak_rss_bytes())
    _write_json_atomic(_control(store, "done", f"{task.index:06d}.json"), summary, durable=False)


def _part_path(index: int) -> str:
    return f"reflections/chunk-{index:06d}"


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (Zarr chunk files are never modified in place), a copy where links are impossible (another
    file system)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _link_part(source: str, store: str, index: int) -> None:
    """The reflections of a chunk from another store (:func:`_link_or_copy` of every file)."""
    src = os.path.join(source, _part_path(index))
    dst = os.path.join(store, _part_path(index))
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=_link_or_copy)


def _chunk_key(metadata: dict, coords: tuple) -> str | None:
    """Key of chunk ``coords`` under a Zarr v3 array folder (``c/1/0``), or None for an encoding we do not
    spell (then callers take the general path). Zarr v3 spec, "default" and "v2" chunk key encodings."""
    encoding = metadata.get("chunk_key_encoding", {})
    sep = encoding.get("configuration", {}).get("separator", "/" if encoding.get("name") == "default" else ".")
    if encoding.get("name") == "default":
        return sep.join(["c", *map(str, coords)])
    if encoding.get("name") == "v2":
        return sep.join(map(str, coords)) or "0"
    return None


def _link_chunks(source: str, store: str, path: str, chunks: Iterable[tuple]) -> bool:
    """Make ``chunks`` (chunk coordinates) of array ``path`` in ``store`` the same files as in ``source`` (hard
    links; copies across file systems), each atomically (temporary name, rename). Only when both arrays have
    the same metadata but attributes (shape, chunks, dtype, codecs, fill value): then a file is exactly what a
    region write of the decoded values would produce, without decoding and encoding them. Returns False
    (nothing done) otherwise.
    """
    meta = [_read_json(os.path.join(root, path, "zarr.json")) for root in (source, store)]
    if meta[0] is None or meta[1] is None:
        return False
    same = {k: v for k, v in meta[0].items() if k != "attributes"} == {k: v for k, v in meta[1].items()
                                                                         if k != "attributes"}
    if not same or _chunk_key(meta[0], (0,)) is None:
        return False
    for coords in chunks:
        key = _chunk_key(meta[0], coords)
        src, dst = os.path.join(source, path, key), os.path.join(store, path, key)
        if not os.path.exists(src):  # a chunk equal to the fill value is not stored
            if os.path.exists(dst):
                os.unlink(dst)
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = f"{dst}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        _link_or_copy(src, tmp)
        os.replace(tmp, dst)
    return True


def _write_part(store: str, index: int, refls: list) -> None:
    import zarr

    kept = [r for r in refls if r is not None]
    d = np.concatenate([np.asarray(r.d_angstrom, np.float64) for r in kept]) if kept else np.zeros(0)
    inten = np.concatenate([np.asarray(r.intensity, np.float64) for r in kept]) if kept else np.zeros(0)
    hkl = (np.concatenate([np.asarray(r.hkl, np.int32).reshape(-1, 3) for r in kept]) if kept
           else np.zeros((0, 3), np.int32))
    group = zarr.open_group(store, path=_part_path(index), mode="w", zarr_format=3)
    m = max(len(d), 1)

    def codec(a):
        return zarr.codecs.BloscCodec(**REFLECTION_CODEC, typesize=a.dtype.itemsize)

    group.create_array("d_angstrom", data=d, chunks=(m,), attributes={"units": "angstrom"}, compressors=codec(d))
    group.create_array("intensity", data=inten, chunks=(m,), attributes={"units": "electron^2 (|F|^2 x multiplicity)"},
                       compressors=codec(inten))
    group.create_array("hkl", data=hkl, chunks=(m, 3), compressors=codec(hkl))


@dataclass(frozen=True)
class SimulateChunks:
    """The work of :func:`simulate`: ``SimulateChunks(...)(task)`` simulates and writes one chunk.

    Attributes
    ----------
    store, catalog : str
        Paths of the Zarr store (template already written) and of the catalog Parquet file.
    conditions_json : str
        :meth:`Conditions.to_json` of the run (a string keeps the task small and hashable).
    d_min_angstrom : float
        Reflections are computed down to this d-spacing (<= the conditions' own limit).
    token : str
        The lock token of the run; a task whose token is gone writes nothing.
    row_group_starts : tuple of int
        First row of every catalog row group plus the row count (see :func:`row_groups_for`).
    """

    store: str
    catalog: str
    conditions_json: str
    d_min_angstrom: float
    token: str
    row_group_starts: tuple

    def read_rows(self, task: ChunkTask):
        """The catalog rows of ``task`` as a pandas DataFrame (only the row groups that hold them)."""
        import pyarrow.parquet as pq

        from xrdbatch.crystal import CRYSTAL_COLUMNS

        groups = row_groups_for(task, self.row_group_starts)
        table = pq.ParquetFile(self.catalog).read_row_groups(list(groups), columns=[*TASK_COLUMNS, *CRYSTAL_COLUMNS])
        table = table.slice(task.start - self.row_group_starts[groups[0]], task.size)
        return table.to_pandas()

    def __call__(self, task: ChunkTask) -> None:
        from xrdbatch import simulate as sim
        from xrdbatch.crystal import Crystal

        phases = _Phases()
        conditions = Conditions.from_json(self.conditions_json)
        rows = self.read_rows(task)
        phases.mark("read")
        statuses: list[str] = []
        refls: list = []
        for status, reason, row in zip(rows["status"], rows["reason"], rows.to_dict("records")):
            if status != "ok":
                statuses.append(f"not simulated: catalog status {status}: {reason}")
                refls.append(None)
                continue
            try:
                refls.append(sim.reflections(Crystal.from_columns(row), self.d_min_angstrom))
                statuses.append(STATUS_OK)
            except Exception as exc:  # noqa: BLE001  (one bad record never stops a batch)
                refls.append(None)
                statuses.append("simulation failed: " + _reason(exc))
        phases.mark("reflections")
        intensity = np.zeros((task.size, conditions.n_points), dtype=np.float32)
        ok = [i for i, s in enumerate(statuses) if s == STATUS_OK]
        _patterns_guarded(_restrict(refls, conditions.d_min_angstrom), conditions, statuses, ok, intensity)
        phases.mark("render")
        _write_chunk(self.store, task, intensity, statuses, refls, self.token, phases)


def _restrict(refls: list, d_min_angstrom: float) -> list:
    """Reflections with ``d >= d_min`` (what a fresh simulation at that limit would have computed)."""
    out = []
    for r in refls:
        if r is None or len(r.d_angstrom) == 0 or r.d_angstrom[-1] >= d_min_angstrom:
            out.append(r)
        else:
            keep = np.asarray(r.d_angstrom) >= d_min_angstrom
            out.append(type(r)(*(np.asarray(field)[keep] for field in r)))
    return out


def _patterns_of_part(source: str, task: ChunkTask, counts: np.ndarray, conditions: Conditions,
                      phases: _Phases) -> np.ndarray:
    """Patterns of a stored chunk straight from its flat arrays (no per-structure objects).

    Keeps ``d >= conditions.d_min_angstrom``, exactly the reflections a fresh simulation at ``conditions``
    computes; structures without reflections (failed, not simulated) get zero rows.
    """
    import zarr

    from xrdbatch.simulate import patterns_from_flat

    group = zarr.open_group(source, path=_part_path(task.index), mode="r")
    d, inten = group["d_angstrom"][:], group["intensity"][:]
    keep = d >= conditions.d_min_angstrom
    owner = np.repeat(np.arange(task.size), counts)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=task.size))]).astype(np.int64)
    phases.mark("read")
    out = patterns_from_flat(d[keep], inten[keep], offsets, conditions)
    phases.mark("render")
    return out


@dataclass(frozen=True)
class RetargetChunks:
    """The work of :func:`retarget`: new patterns of one chunk from the stored reflections."""

    source: str
    store: str
    conditions_json: str
    token: str
    augment_json: str = ""  # issue 8: measurement-like patterns (xrdbatch.augment), see retarget(augment=)

    def __call__(self, task: ChunkTask) -> None:
        import zarr

        phases = _Phases()
        conditions = Conditions.from_json(self.conditions_json)
        counts = zarr.open_array(self.source, path="reflections/count", mode="r")[task.start:task.stop]
        intensity = None  # stays None with augmentation, or when a structure fails (found below, one by one)
        if not self.augment_json:
            try:
                intensity = _patterns_of_part(self.source, task, counts, conditions, phases)
            except Exception:  # noqa: BLE001
                pass
            if intensity is not None and self._write_fast(task, intensity, phases):
                return
        statuses = [str(s) for s in zarr.open_array(self.source, path="sim_status", mode="r")[task.start:task.stop]]
        if intensity is not None:
            _write_chunk(self.store, task, intensity, statuses, [], self.token, phases,
                         reflections_from=self.source, counts=counts)
            return
        refls = read_reflections(self.source, task.start, task.stop)
        refls = [r if s == STATUS_OK else None for r, s in zip(refls, statuses)]
        intensity = np.zeros((task.size, conditions.n_points), dtype=np.float32)
        ok = [i for i, s in enumerate(statuses) if s == STATUS_OK]
        if self.augment_json:
            from xrdbatch import augment

            intensity[:] = augment.patterns_for_store(_restrict(refls, conditions.d_min_angstrom), conditions,
                                                      self.augment_json, task.start)
        else:
            _patterns_guarded(_restrict(refls, conditions.d_min_angstrom), conditions, statuses, ok, intensity)
        phases.mark("render")
        _write_chunk(self.store, task, intensity, statuses, refls, self.token, phases, reflections_from=self.source)

    def _write_fast(self, task: ChunkTask, intensity: np.ndarray, phases: _Phases) -> bool:
        """Write the chunk without decoding what does not change: ``sim_status``, ``reflections/count`` and
        the chunk's reflections are the source's, so their files are linked (:func:`_link_chunks`) and the
        counts of the done marker come from the source's marker. False (nothing marked done) when the source
        marker is missing or the arrays differ in layout; the caller then writes the general way.
        """
        import zarr

        marker = _read_json(_control(self.source, "done", f"{task.index:06d}.json"))
        if marker is None or (marker["start"], marker["stop"]) != (task.start, task.stop):
            return False
        _check_token(self.store, self.token)
        if not (_link_chunks(self.source, self.store, "sim_status", [(task.index,)])
                and _link_chunks(self.source, self.store, "reflections/count", [(task.index,)])):
            return False
        phases.mark("link")
        zarr.open_array(self.store, path="intensity", mode="r+",
                        config={"write_empty_chunks": True})[task.start:task.stop] = intensity
        phases.mark("write")
        _link_part(self.source, self.store, task.index)
        _check_token(self.store, self.token)
        phases.mark("link")
        _mark_done(self.store, task, phases, **{k: marker[k] for k in ("n_ok", "n_failed", "n_reflections")})
        return True


# ==================================================================================== executors ==
class SerialExecutor:
    """Run every task in this process, in order (debugging, tests, tiny stores)."""

    def execute(self, work: Callable[[ChunkTask], None], tasks: Sequence[ChunkTask],
                on_done: Callable[[ChunkTask], None] = lambda t: None) -> None:
        for task in tasks:
            work(task)
            on_done(task)


class DaskExecutor:
    """Run tasks on a ``distributed.Client``: one future per chunk, retried ``retries`` times.

    A chunk that still fails does not stop the others; the run raises at the end, naming the chunks
    (their markers are missing, so a rerun retries exactly them).
    """

    def __init__(self, client, retries: int = 2):
        self.client = client
        self.retries = retries

    def execute(self, work: Callable[[ChunkTask], None], tasks: Sequence[ChunkTask],
                on_done: Callable[[ChunkTask], None] = lambda t: None) -> None:
        from distributed import as_completed

        if not tasks:
            return
        prefix = f"xrdbatch-{type(work).__name__.lower()}-{getattr(work, 'token', uuid.uuid4().hex)[:8]}"
        futures = self.client.map(work, list(tasks), key=[f"{prefix}-{t.index}" for t in tasks],
                                  retries=self.retries, pure=False)
        by_key = {f.key: t for f, t in zip(futures, tasks)}
        failed = []
        for fut in as_completed(futures):
            task = by_key[fut.key]
            if fut.status == "finished":
                on_done(task)
            else:
                failed.append((task, fut.exception()))
        if failed:
            first_task, first_exc = failed[0]
            raise StoreError(
                f"{len(failed)} chunk(s) failed after {self.retries} retries (chunk {first_task.index}, rows "
                f"{first_task.start}-{first_task.stop}: {_reason(first_exc)}); the other chunks are done. "
                "Fix the cause and rerun the same command: only the missing chunks run again."
            )


#: Executors by name (``executor="serial"`` / ``"dask"``).
EXECUTORS: dict[str, type] = {"serial": SerialExecutor, "dask": DaskExecutor}


def _executor_for(executor, client):
    if executor is None:
        executor = "serial" if client is None else "dask"
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise ValueError(f"unknown executor {executor!r}; valid: {sorted(EXECUTORS)}")
        if executor == "dask":
            if client is None:
                raise ValueError("executor 'dask' needs a client (see xrdbatch.cluster.get_client)")
            return DaskExecutor(client)
        return EXECUTORS[executor]()
    return executor


# ================================================================================ orchestrators ==
def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the store's numbers and layout."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("xrdbatch", "numpy", "zarr", "xarray", "dask", "distributed", "pyarrow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            out[name] = "unknown"
    return out


@dataclass(frozen=True)
class CatalogInfo:
    """What the client reads of a catalog: hash, row-group layout and the label columns (no crystals)."""

    path: str
    sha256: str
    row_group_starts: tuple
    labels: object  # pandas DataFrame: id + LABEL_COORDS

    @property
    def n_rows(self) -> int:
        return int(self.row_group_starts[-1])


def read_catalog_info(path: str) -> CatalogInfo:
    """Hash, row groups and labels of a catalog Parquet file; errors name the missing columns."""
    import pyarrow.parquet as pq

    from xrdbatch.crystal import CRYSTAL_COLUMNS

    from xrdbatch.sources import catalog_hash

    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise StoreError(f"catalog {path} does not exist: make one with `xrdbatch ingest SOURCES --out {path}`")
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    needed = {"id", *TASK_COLUMNS, *LABEL_COORDS, *CRYSTAL_COLUMNS}
    missing = sorted(needed - names)
    if missing:
        raise StoreError(f"catalog {path} lacks column(s) {missing}; expected the catalog columns of "
                         "`xrdbatch ingest` (rerun ingest with this version)")
    starts = _row_group_starts(pf)
    labels = pf.read(columns=["id", *LABEL_COORDS]).to_pandas()
    if labels["id"].duplicated().any():
        dup = labels["id"][labels["id"].duplicated()].iloc[0]
        raise StoreError(f"catalog {path} has duplicate id {dup!r}: ids must be unique (rerun ingest)")
    return CatalogInfo(path, catalog_hash(path), starts, labels)


def stage_catalog(info: CatalogInfo, store: str, chunk_size: int) -> tuple[str, tuple]:
    """The catalog rows tasks read, with one Parquet row group per chunk; returns (path, row_group_starts).

    A catalog written with large row groups (pyarrow's default is 1M rows) would make every task read
    far more than its chunk, so unless the row groups already coincide with the chunks, the client streams
    the task columns once into ``<store>/xrdbatch/catalog.parquet`` (bounded memory, atomic) and tasks read
    that copy: exactly one row group each. The original's hash is what the store records.
    """
    import pyarrow.parquet as pq

    from xrdbatch.crystal import CRYSTAL_COLUMNS

    columns = [*TASK_COLUMNS, *CRYSTAL_COLUMNS]
    aligned = tuple(range(0, info.n_rows, chunk_size)) + (info.n_rows,)
    if info.row_group_starts == aligned or info.n_rows == 0:
        return info.path, info.row_group_starts
    staged = _control(store, "catalog.parquet")
    if os.path.exists(staged) and tuple(_row_group_starts(pq.ParquetFile(staged))) == aligned:
        return staged, aligned
    import pyarrow as pa

    os.makedirs(os.path.dirname(staged), exist_ok=True)
    tmp = f"{staged}.tmp-{os.getpid()}"
    pending: list = []
    with pq.ParquetWriter(tmp, _select_schema(pq.ParquetFile(info.path).schema_arrow, columns),
                          compression="zstd") as writer:
        # batches follow the source's row groups; regroup them into exactly chunk_size rows per group
        for batch in pq.ParquetFile(info.path).iter_batches(batch_size=chunk_size, columns=columns):
            pending.append(batch)
            rows = sum(len(x) for x in pending)
            while rows >= chunk_size:
                table = pa.Table.from_batches(pending)
                writer.write_table(table.slice(0, chunk_size), row_group_size=chunk_size)
                rest = table.slice(chunk_size)
                pending = rest.to_batches() if len(rest) else []
                rows = len(rest)
        if pending:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=chunk_size)
    os.replace(tmp, staged)
    return staged, aligned


def _select_schema(schema, columns):
    import pyarrow as pa

    return pa.schema([schema.field(c) for c in columns])


def _row_group_starts(pf) -> tuple:
    sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
    return tuple(int(x) for x in np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]))


def _label_array(values, kind: str) -> np.ndarray:
    import pandas as pd

    s = pd.Series(values)
    if kind == "str":
        return s.fillna("").astype(str).to_numpy(dtype=object)
    if kind == "int":
        return s.fillna(0).astype(np.int64).to_numpy()
    return s.astype(np.float64).to_numpy()


def _write_template(store: str, n: int, labels, conditions: Conditions, chunk_size: int, attrs: dict) -> None:
    """Metadata, coordinates and the eager ``sim_status`` (all "pending"); ``intensity`` stays unwritten.

    ``labels`` maps ``structure_id`` and every :data:`LABEL_COORDS` name to ``n`` values, or is the path of
    a store with the same rows (retarget): then only their metadata is written here and the chunk files are
    linked from that store (:func:`_link_chunks`; values copied where the layouts differ), so a retarget does
    not decode and re-encode ~15 label columns.
    """
    import dask.array as da
    import xarray as xr
    import zarr

    cs = max(1, min(chunk_size, n))
    kinds = {"structure_id": ("str", None), **LABEL_COORDS}
    data_coords = {}
    for name, (kind, units) in kinds.items():
        if isinstance(labels, str):  # placeholders: to_zarr(compute=False) writes a dask variable's metadata only
            # StringDType: xarray picks the variable-length string encoding without computing the values
            dtype = {"str": np.dtypes.StringDType(), "int": np.int64, "float": np.float64}[kind]
            # one dask chunk (a whole number of Zarr chunks, never computed): a small graph to build
            values = da.full(n, "", dtype=dtype, chunks=n) if kind == "str" else da.zeros(n, dtype=dtype, chunks=n)
        else:
            values = _label_array(labels[name], kind)
        data_coords[name] = ("structure", values, {"units": units} if units else {})
    data_coords["two_theta"] = ("two_theta", conditions.two_theta_deg(), {"units": "degree", "long_name": "2-theta"})
    ds = xr.Dataset(
        {
            "intensity": (("structure", "two_theta"),
                          da.zeros((n, conditions.n_points), dtype=np.float32, chunks=(n, conditions.n_points)),
                          {"long_name": "powder pattern, each row scaled to max 1"}),
            "sim_status": (("structure",), np.full(n, STATUS_PENDING, dtype=object)),
        },
        coords=data_coords,
        attrs=attrs,
    )
    encoding = {name: {"chunks": (cs,)} for name in ds.variables if ds[name].dims == ("structure",)}
    encoding["intensity"] = {"chunks": (cs, conditions.n_points), "fill_value": np.float32("nan"),
                             "compressors": (zarr.codecs.BloscCodec(**INTENSITY_CODEC),)}
    ds.to_zarr(store, mode="a", compute=False, consolidated=False, zarr_format=3, encoding=encoding)
    refl = zarr.open_group(store, path="reflections", mode="a", zarr_format=3)
    refl.create_array("count", shape=(n,), chunks=(cs,), dtype="int64", fill_value=-1, overwrite=True)
    if isinstance(labels, str):
        for name in kinds:
            if not os.path.exists(os.path.join(labels, name, "zarr.json")):  # a store of an older version
                if kinds[name][0] == "str":  # e.g. no "source": origins read as unknown
                    zarr.open_array(store, path=name, mode="r+")[:] = np.full(n, "", dtype=object)
                continue
            if not _link_chunks(labels, store, name, [(i,) for i in range(n_chunks(n, cs))]):
                zarr.open_array(store, path=name, mode="r+")[:] = zarr.open_array(labels, path=name, mode="r")[:]


def _clear_store(store: str) -> None:
    """Delete a store's content but its lock; refuse on a folder that is not an xrdbatch store."""
    if not os.path.isdir(store):
        return
    entries = [e for e in os.listdir(store) if e != CONTROL]
    if set(entries) - {"zarr.json"} and _read_json(_control(store, "run.json")) is None:
        root = _read_json(os.path.join(store, "zarr.json")) or {}
        if root.get("attributes", {}).get("format") != FORMAT:
            raise StoreError(f"{store} is not an xrdbatch store (no {CONTROL}/run.json, no format attr); refusing "
                             "to delete it. Choose an empty or new --store path.")
    for entry in entries:
        full = os.path.join(store, entry)
        shutil.rmtree(full) if os.path.isdir(full) and not os.path.islink(full) else os.unlink(full)
    control = _control(store)
    for entry in os.listdir(control):
        if entry not in ("lock", "zarr.json"):
            full = os.path.join(control, entry)
            shutil.rmtree(full) if os.path.isdir(full) else os.unlink(full)


def _differences(old: dict, new: dict) -> str:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            out.append(f"{key}: {a!r} -> {b!r}")
    return "; ".join(out)


def _prepare(store: str, fingerprint: dict, restart: bool, make_template: Callable[[], None], log) -> None:
    """Under the lock: start over, resume, or refuse a store made differently."""
    run_json = _control(store, "run.json")
    old = _read_json(run_json)
    if old is not None and old != fingerprint:
        if not restart:
            raise StoreError(
                f"store {store} was made differently ({_differences(old, fingerprint)}). Rerun with --restart to "
                "discard it and start over, or choose another --store."
            )
        log(f"restart: discarding store {store} (made differently: {_differences(old, fingerprint)})")
        _clear_store(store)
    elif old is not None and restart:
        log(f"restart: discarding store {store}")
        _clear_store(store)
    elif old is None:
        _clear_store(store)  # a template interrupted before run.json: write it again
    if _read_json(run_json) is None:
        make_template()
        os.makedirs(_control(store, "done"), exist_ok=True)
        _write_json_atomic(run_json, fingerprint)


@dataclass(frozen=True)
class RunSummary:
    """What a :func:`simulate` / :func:`retarget` run did (printable)."""

    store: str
    n_structures: int
    n_ok: int
    n_failed: int
    n_chunks: int
    chunks_run: int
    structures_run: int
    seconds: float
    worker_peak_rss_bytes: int

    @property
    def structures_per_second(self) -> float:
        """Structures simulated by this run per wall-clock second (planning and finalising included)."""
        return self.structures_run / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        return (f"store {self.store}: {self.n_structures} structures ({self.n_ok} ok, {self.n_failed} without pattern), "
                f"{self.n_chunks} chunks ({self.chunks_run} run now, {self.n_chunks - self.chunks_run} already done) "
                f"in {self.seconds:.1f} s; peak worker memory {self.worker_peak_rss_bytes / 2**20:.0f} MiB")


def _execute(store, work, n, chunk_size, executor, client, progress, log, t0) -> RunSummary:
    from tqdm.auto import tqdm

    done = done_chunks(store)
    tasks = plan_chunks(n, chunk_size, done)
    if done:
        log(f"resume: {len(done)} of {n_chunks(n, chunk_size)} chunks already done, {len(tasks)} to run")
    initial = n - sum(t.size for t in tasks)
    with tqdm(total=n, initial=initial, unit="structure", disable=not progress, smoothing=0.1) as bar:
        _executor_for(executor, client).execute(work, tasks, lambda t: bar.update(t.size))
    markers = done_chunks(store)
    missing = sorted(set(range(n_chunks(n, chunk_size))) - set(markers))
    if missing:
        raise StoreError(f"store {store}: chunk(s) {missing[:10]} have no done marker after the run; rerun the same "
                         "command to finish them")
    _finalise(store)
    return RunSummary(store, n, sum(m["n_ok"] for m in markers.values()), sum(m["n_failed"] for m in markers.values()),
                      len(markers), len(tasks), sum(t.size for t in tasks), time.perf_counter() - t0,
                      max((m["worker_peak_rss_bytes"] for m in markers.values()), default=0))


def _finalise(store: str) -> None:
    import zarr

    count = zarr.open_array(store, path="reflections/count", mode="r")[:]
    offsets = np.concatenate([[0], np.cumsum(count, dtype=np.int64)])
    group = zarr.open_group(store, path="reflections", mode="a")
    group.create_array("offsets", data=offsets, chunks=(max(len(offsets), 1),), overwrite=True)


def simulate(catalog: str, store: str, conditions: Conditions, *, chunk_size: int | None = None,
             d_min_angstrom: float | None = None, restart: bool = False, client=None, executor=None,
             progress: bool = False, log: Callable[[str], None] = lambda s: None) -> RunSummary:
    """Simulate every catalog row into a Zarr store (resumable; see the module docstring for the layout).

    Parameters
    ----------
    catalog : str
        Catalog Parquet file (``xrdbatch ingest``). Store row ``i`` is catalog row ``i``; rows whose
        catalog status is not ``"ok"`` get zeros and the catalog reason in ``sim_status``.
    store : str
        Zarr directory, created if absent, resumed if it holds the same run.
    conditions : Conditions
        Instrument setup of the patterns (stored in the attrs).
    chunk_size : int, optional
        Structures per task and per Zarr chunk (default: the store's, else 500). Bounds worker memory.
    d_min_angstrom : float, optional
        Keep reflections down to this d-spacing (default ``conditions.d_min_angstrom``); smaller values
        let :func:`retarget` reach wider ranges or shorter wavelengths later.
    restart : bool
        Discard a store made with other conditions, catalog or chunking instead of refusing.
    client : distributed.Client, optional
        Run on Dask (``executor="dask"``); without one the serial executor runs in this process.
    executor : str or executor, optional
        ``"serial"``, ``"dask"`` or an object with ``execute(work, tasks, on_done)``.
    progress : bool
        Show a progress bar (stderr).
    log : callable
        Receives one-line messages (resume, restart).

    Returns
    -------
    RunSummary
    """
    t0 = time.perf_counter()
    store = os.path.abspath(os.fspath(store))
    info = read_catalog_info(catalog)
    if d_min_angstrom is None:
        d_min_angstrom = conditions.d_min_angstrom
    if d_min_angstrom > conditions.d_min_angstrom + 1e-12:
        raise StoreError(f"d_min_angstrom {d_min_angstrom} is above what the conditions need "
                         f"({conditions.d_min_angstrom:.6g} angstrom); give a smaller value or none")
    with StoreLock(store) as lock:
        old = _read_json(_control(store, "run.json")) or {}
        if chunk_size is None:
            chunk_size = old.get("chunk_size", DEFAULT_CHUNK_SIZE) if not restart else DEFAULT_CHUNK_SIZE
        fingerprint = {"format": FORMAT, "kind": "simulate", "conditions": conditions.to_dict(),
                       "catalog_sha256": info.sha256, "n_structures": info.n_rows,
                       "d_min_angstrom": float(d_min_angstrom), "chunk_size": int(chunk_size)}
        attrs = {"format": FORMAT, "kind": "simulate", "conditions": conditions.to_json(),
                 "catalog_sha256": info.sha256, "catalog_path": info.path, "d_min_angstrom": float(d_min_angstrom),
                 "chunk_size": int(chunk_size), "versions": package_versions()}
        labels = {"structure_id": info.labels["id"].to_numpy(), **{k: info.labels[k] for k in LABEL_COORDS}}
        _prepare(store, fingerprint, restart, lambda: _write_template(
            store, info.n_rows, labels, conditions, chunk_size, attrs), log)
        task_catalog, starts = stage_catalog(info, store, chunk_size)
        work = SimulateChunks(store, task_catalog, conditions.to_json(), float(d_min_angstrom), lock.token, starts)
        return _execute(store, work, info.n_rows, chunk_size, executor, client, progress, log, t0)


def retarget(source: str, out: str, conditions: Conditions, *, restart: bool = False, client=None,
             executor=None, progress: bool = False, log: Callable[[str], None] = lambda s: None,
             augment: dict | None = None) -> RunSummary:
    """New patterns for ``conditions`` from the reflections of a finished store, without re-simulating.

    ``augment`` (issue 8): ``{"params": AugmentParams dict, "seed": int, "copy": int}`` renders
    measurement-like patterns (:func:`xrdbatch.augment.patterns_for_store`), recorded in the ``augmentation``
    attr; several copies are several stores with different ``copy``.

    The output store has the same rows, labels, chunking and reflections as ``source``; only
    ``intensity``, ``two_theta`` and the ``conditions`` attr change. Refused when ``conditions`` needs
    d-spacings below the ``d_min_angstrom`` the source stored.
    """
    t0 = time.perf_counter()
    source = os.path.abspath(os.fspath(source))
    out = os.path.abspath(os.fspath(out))
    if source == out:
        raise StoreError(f"retarget needs a new output store, got the source {source} as --out")
    import zarr

    # zarr, not xarray: the attrs and the row count are all this needs (open_zarr costs ~1 s per 10k rows)
    _require_complete(source)
    src_attrs = dict(zarr.open_group(source, mode="r").attrs)
    src_run = _read_json(_control(source, "run.json"))
    n = int(src_run["n_structures"])
    src_d_min = float(src_attrs["d_min_angstrom"])
    if conditions.d_min_angstrom < src_d_min * (1 - 1e-9):
        raise StoreError(
            f"the new conditions need reflections down to d = {conditions.d_min_angstrom:.4f} angstrom "
            f"(wavelength {max(conditions.wavelengths_angstrom)} angstrom at 2-theta {conditions.two_theta_max_deg} "
            f"degree) but store {source} holds them only down to {src_d_min:.4f} angstrom. Lower --two-theta-max "
            f"(or use a longer wavelength), or re-simulate with --d-min-angstrom {conditions.d_min_angstrom:.4f}."
        )
    chunk_size = int(src_attrs["chunk_size"])
    with StoreLock(out) as lock:
        fingerprint = {"format": FORMAT, "kind": "retarget", "conditions": conditions.to_dict(),
                       "catalog_sha256": src_attrs["catalog_sha256"], "n_structures": n,
                       "d_min_angstrom": src_d_min, "chunk_size": chunk_size, "source": src_run}
        attrs = {k: v for k, v in src_attrs.items() if k not in ("conditions", "kind")}
        attrs.update(kind="retarget", conditions=conditions.to_json(), versions=package_versions(),
                     retargeted_from={"store": source, "conditions": src_attrs["conditions"]})
        augment_json = ""
        if augment is not None:
            from xrdbatch import augment as xaugment

            augment_json = xaugment.store_spec(augment)
            attrs["augmentation"] = augment_json
            fingerprint["augmentation"] = augment_json
        _prepare(out, fingerprint, restart, lambda: _write_template(
            out, n, source, conditions, chunk_size, attrs), log)
        work = RetargetChunks(source, out, conditions.to_json(), lock.token, augment_json)
        return _execute(out, work, n, chunk_size, executor, client, progress, log, t0)


# ====================================================================================== readers ==
@dataclass(frozen=True)
class StoreStatus:
    """Progress of a store: chunks done of chunks planned, structures with and without a pattern."""

    n_structures: int
    n_chunks: int
    chunks_done: int
    n_ok: int
    n_failed: int

    @property
    def complete(self) -> bool:
        return self.chunks_done == self.n_chunks


def status(store: str) -> StoreStatus:
    """Read the fingerprint and done markers of a store."""
    run = _read_json(_control(os.fspath(store), "run.json"))
    if run is None:
        raise StoreError(f"{store} is not an xrdbatch store (no {CONTROL}/run.json): make it with `xrdbatch simulate`")
    markers = done_chunks(os.fspath(store))
    return StoreStatus(run["n_structures"], n_chunks(run["n_structures"], run["chunk_size"]), len(markers),
                       sum(m["n_ok"] for m in markers.values()), sum(m["n_failed"] for m in markers.values()))


def open_dataset(store: str, *, require_complete: bool = True):
    """The store as an ``xarray.Dataset`` (lazy, Dask chunks = Zarr chunks).

    With ``require_complete`` (default) an unfinished store is an error that says how to finish it.
    """
    import xarray as xr

    store = os.fspath(store)
    if require_complete:
        _require_complete(store)
    return xr.open_zarr(store, consolidated=False)


def _require_complete(store: str) -> None:
    st = status(store)
    if not st.complete:
        raise StoreError(f"store {store} is incomplete ({st.chunks_done} of {st.n_chunks} chunks done): rerun the "
                         "`xrdbatch simulate` (or retarget) command that made it to finish it")


def read_conditions(store: str) -> Conditions:
    """The :class:`Conditions` a store was made with (from its attrs)."""
    import zarr

    return Conditions.from_json(zarr.open_group(os.fspath(store), mode="r").attrs["conditions"])


def reflection_offsets(store: str) -> np.ndarray:
    """Global offsets ``(n_structure + 1,)`` into the concatenated per-chunk reflection arrays."""
    import zarr

    return zarr.open_array(os.fspath(store), path="reflections/offsets", mode="r")[:]


def read_reflections(store: str, start: int = 0, stop: int | None = None) -> list:
    """Stored :class:`~xrdbatch.simulate.Reflections` of structures ``[start, stop)`` (condition-free).

    Structures without reflections (failed, not simulated) come back empty.
    """
    import zarr

    from xrdbatch.simulate import Reflections

    store = os.fspath(store)
    root = zarr.open_group(store, mode="r")
    chunk_size = int(root.attrs["chunk_size"])
    count_arr = zarr.open_array(store, path="reflections/count", mode="r")
    stop = count_arr.shape[0] if stop is None else stop
    out = []
    for task in plan_chunks(count_arr.shape[0], chunk_size):
        lo, hi = max(start, task.start), min(stop, task.stop)
        if lo >= hi:
            continue
        counts = count_arr[task.start:task.stop]
        if (counts < 0).any():
            raise StoreError(f"store {store}: chunk {task.index} is not done; rerun the command that made the store")
        local = np.concatenate([[0], np.cumsum(counts)])
        a, b = int(local[lo - task.start]), int(local[hi - task.start])
        group = zarr.open_group(store, path=_part_path(task.index), mode="r")
        d, inten, hkl = (group[name][a:b] for name in ("d_angstrom", "intensity", "hkl"))
        edges = local[lo - task.start:hi - task.start + 1] - a
        out += [Reflections(d[i:j], inten[i:j], hkl[i:j]) for i, j in zip(edges[:-1], edges[1:])]
    return out

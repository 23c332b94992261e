"""Tests of xrdbatch.store: planning (pure), the executor contract (serial and a real Dask LocalCluster),
resume, refusal, locking, retarget, and runs killed with SIGKILL (client, then a worker) part-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests._catalogs import write_catalog
from xrdbatch import store
from xrdbatch.conditions import Conditions

# a coarse grid keeps the tests fast; physics does not depend on it
CONDITIONS = Conditions(two_theta_min_deg=10.0, two_theta_max_deg=70.0, two_theta_step_deg=0.05)
N_ROWS = 30
BAD_ROW, SKIPPED_ROW = 4, 9


# ================================================================================== planning ==
@given(n=st.integers(0, 5000), size=st.integers(1, 700), done=st.sets(st.integers(0, 50)))
def test_plan_covers_every_row_once_aligned_to_chunks(n, size, done):
    all_tasks = store.plan_chunks(n, size)
    rows = np.concatenate([np.arange(t.start, t.stop) for t in all_tasks]) if all_tasks else np.zeros(0)
    assert np.array_equal(rows, np.arange(n))
    assert all(t.start == t.index * size and 0 < t.size <= size for t in all_tasks)
    assert len(all_tasks) == store.n_chunks(n, size)
    pending = store.plan_chunks(n, size, done)
    assert {t.index for t in pending} == {t.index for t in all_tasks} - done


@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=20), data=st.data())
def test_row_groups_for_holds_exactly_the_rows(sizes, data):
    starts = np.concatenate([[0], np.cumsum(sizes)])
    n = int(starts[-1])
    start = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(start + 1, n))
    groups = store.row_groups_for(store.ChunkTask(0, start, stop), starts)
    assert groups == tuple(range(groups[0], groups[-1] + 1))
    assert starts[groups[0]] <= start and starts[groups[-1] + 1] >= stop
    # no group more than needed
    assert starts[groups[0] + 1] > start and starts[groups[-1]] < stop


def test_tasks_read_one_aligned_row_group_each(tmp_path):
    """A catalog with one big row group is staged once into chunk-sized row groups, rows unchanged."""
    import pyarrow.parquet as pq

    big = write_catalog(tmp_path / "big.parquet", 23, row_group_size=1000)
    info = store.read_catalog_info(big)
    assert info.row_group_starts == (0, 23)
    path, starts = store.stage_catalog(info, str(tmp_path / "s.zarr"), 5)
    assert starts == (0, 5, 10, 15, 20, 23) and path.endswith("xrdbatch/catalog.parquet")
    assert store._row_group_starts(pq.ParquetFile(path)) == starts
    work = store.SimulateChunks("unused", path, "{}", 1.0, "token", starts)
    original = pq.read_table(big).to_pandas()
    for task in store.plan_chunks(23, 5):
        assert store.row_groups_for(task, starts) == (task.index,)
        rows = work.read_rows(task)
        assert rows["id"].tolist() == original["id"][task.start:task.stop].tolist()
        assert [list(x) for x in rows["lattice"]] == [list(x) for x in original["lattice"][task.start:task.stop]]
    aligned = write_catalog(tmp_path / "aligned.parquet", 23, row_group_size=5)
    assert store.stage_catalog(store.read_catalog_info(aligned), str(tmp_path / "t.zarr"), 5)[0] == aligned


def test_catalog_errors_say_what_to_do(tmp_path):
    with pytest.raises(store.StoreError, match="does not exist: make one with `xrdbatch ingest"):
        store.read_catalog_info(tmp_path / "missing.parquet")
    import pandas as pd

    pd.DataFrame({"id": ["a"], "status": ["ok"]}).to_parquet(tmp_path / "thin.parquet")
    with pytest.raises(store.StoreError, match=r"lacks column\(s\) \['a', 'alpha'"):
        store.read_catalog_info(tmp_path / "thin.parquet")


# =================================================================================== fixtures ==
@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("catalog") / "catalog.parquet", N_ROWS,
                         bad_rows=(BAD_ROW,), skipped_rows=(SKIPPED_ROW,))


@pytest.fixture(scope="module")
def client():
    from xrdbatch.cluster import get_client

    with get_client(n_workers=2, threads_per_worker=1, log=None) as c:
        yield c


@pytest.fixture(scope="module")
def reference(catalog, tmp_path_factory):
    """A store made in one uninterrupted serial run."""
    path = str(tmp_path_factory.mktemp("reference") / "store.zarr")
    store.simulate(catalog, path, CONDITIONS, chunk_size=4, executor="serial")
    return path


def assert_stores_equal(a: str, b: str) -> None:
    """Value for value: every variable, coordinate, attr (but paths/versions) and every reflection."""
    da, db = store.open_dataset(a), store.open_dataset(b)
    assert set(da.variables) == set(db.variables)
    for name in da.variables:
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)
    skip = {"catalog_path", "versions"}
    assert {k: v for k, v in da.attrs.items() if k not in skip} == {k: v for k, v in db.attrs.items() if k not in skip}
    np.testing.assert_array_equal(store.reflection_offsets(a), store.reflection_offsets(b))
    for ra, rb in zip(store.read_reflections(a), store.read_reflections(b), strict=True):
        for fa, fb in zip(ra, rb):
            np.testing.assert_array_equal(fa, fb)


def assert_rows_once(path: str, catalog: str, chunk_size: int = 4) -> None:
    import pandas as pd

    ids = pd.read_parquet(catalog, columns=["id"])["id"].tolist()
    stored = [str(x) for x in store.open_dataset(path)["structure_id"].values]
    assert stored == ids and len(set(stored)) == len(ids)
    assert sorted(store.done_chunks(path)) == list(range(store.n_chunks(len(ids), chunk_size)))


# ========================================================================= executor contract ==
@pytest.mark.parametrize("executor", ["serial", "dask"])
def test_executor_contract(executor, catalog, reference, client, tmp_path):
    """Both executors make the same, complete, labelled store; values match the simulator directly."""
    import pandas as pd

    from xrdbatch import simulate as sim
    from xrdbatch.crystal import Crystal

    path = str(tmp_path / "store.zarr")
    summary = store.simulate(catalog, path, CONDITIONS, chunk_size=4, executor=executor,
                             client=client if executor == "dask" else None)
    assert (summary.n_structures, summary.n_ok, summary.n_failed, summary.chunks_run) == (N_ROWS, N_ROWS - 2, 2, 8)
    assert_stores_equal(path, reference)
    assert_rows_once(path, catalog)

    ds = store.open_dataset(path)
    assert ds["intensity"].dtype == np.float32 and ds["intensity"].dims == ("structure", "two_theta")
    assert ds["intensity"].encoding["chunks"] == (4, CONDITIONS.n_points)
    assert ds["intensity"].chunks[0] == (4,) * 7 + (2,)  # Dask chunks = Zarr chunks
    assert ds["two_theta"].attrs["units"] == "degree"
    np.testing.assert_array_equal(ds["two_theta"].values, CONDITIONS.two_theta_deg())
    assert store.read_conditions(path) == CONDITIONS
    assert ds.attrs["d_min_angstrom"] == pytest.approx(CONDITIONS.d_min_angstrom)
    assert ds.attrs["catalog_sha256"] and "zarr" in ds.attrs["versions"]

    table = pd.read_parquet(catalog)
    for name in store.LABEL_COORDS:
        np.testing.assert_array_equal(ds[name].values, table[name].to_numpy(), err_msg=name)
    status = ds["sim_status"].values
    assert status[BAD_ROW].startswith("simulation failed:")
    assert status[SKIPPED_ROW] == "not simulated: catalog status skipped: too many atoms (test)"
    ok = np.array([s == "ok" for s in status])
    assert ok.sum() == N_ROWS - 2
    intensity = ds["intensity"].values
    np.testing.assert_allclose(intensity[ok].max(axis=1), 1.0)
    assert not intensity[~ok].any()

    # the stored numbers are the simulator's
    rows = [5, 6, 11]
    crystals = [Crystal.from_columns(table.iloc[i]) for i in rows]
    fresh = [sim.reflections(c, CONDITIONS.d_min_angstrom) for c in crystals]
    for got, want in zip([store.read_reflections(path, i, i + 1)[0] for i in rows], fresh):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(intensity[rows], sim.patterns(fresh, CONDITIONS))
    offsets = store.reflection_offsets(path)
    assert offsets.shape == (N_ROWS + 1,) and offsets[BAD_ROW + 1] == offsets[BAD_ROW]


# ===================================================================================== resume ==
def test_rerun_skips_done_chunks_and_redoes_missing_ones(catalog, reference, tmp_path):
    path = str(tmp_path / "store.zarr")
    store.simulate(catalog, path, CONDITIONS, chunk_size=4, executor="serial")
    again = store.simulate(catalog, path, CONDITIONS, executor="serial")  # chunk size taken from the store
    assert again.chunks_run == 0 and again.n_chunks == 8
    # a chunk whose marker is gone (killed before it was written) is redone, overwriting whatever is there
    os.unlink(os.path.join(path, "xrdbatch", "done", "000003.json"))
    import zarr

    zarr.open_array(path, path="intensity", mode="r+")[12:16] = 7.0
    redo = store.simulate(catalog, path, CONDITIONS, executor="serial")
    assert redo.chunks_run == 1
    assert_stores_equal(path, reference)


def test_incomplete_store_is_reported(catalog, tmp_path):
    path = str(tmp_path / "store.zarr")
    store.simulate(catalog, path, CONDITIONS, chunk_size=4, executor="serial")
    os.unlink(os.path.join(path, "xrdbatch", "done", "000000.json"))
    with pytest.raises(store.StoreError, match="incomplete .7 of 8 chunks"):
        store.open_dataset(path)
    assert not store.status(path).complete
    assert store.open_dataset(path, require_complete=False).sizes["structure"] == N_ROWS


def test_different_conditions_or_catalog_refused_unless_restart(catalog, tmp_path):
    path = str(tmp_path / "store.zarr")
    store.simulate(catalog, path, CONDITIONS, chunk_size=4, executor="serial")
    other = CONDITIONS.replace(two_theta_max_deg=60.0)
    with pytest.raises(store.StoreError, match=r"two_theta_max_deg: 70.0 -> 60.0.*--restart"):
        store.simulate(catalog, path, other, executor="serial")
    other_catalog = write_catalog(tmp_path / "other.parquet", 12)
    with pytest.raises(store.StoreError, match="catalog_sha256"):
        store.simulate(other_catalog, path, CONDITIONS, executor="serial")
    with pytest.raises(store.StoreError, match="chunk_size: 4 -> 5"):
        store.simulate(catalog, path, CONDITIONS, chunk_size=5, executor="serial")
    summary = store.simulate(other_catalog, path, other, chunk_size=5, restart=True, executor="serial")
    assert summary.n_structures == 12 and summary.n_chunks == 3
    assert store.read_conditions(path) == other
    assert len(store.done_chunks(path)) == 3


def test_restart_refuses_to_delete_a_folder_that_is_not_a_store(catalog, tmp_path):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.tex").write_text("do not delete")
    with pytest.raises(store.StoreError, match="not an xrdbatch store"):
        store.simulate(catalog, str(folder), CONDITIONS, restart=True, executor="serial")
    assert (folder / "thesis.tex").read_text() == "do not delete"


# ======================================================================================= lock ==
def test_second_writer_is_refused(catalog, tmp_path):
    path = str(tmp_path / "store.zarr")
    with store.StoreLock(path):
        with pytest.raises(store.StoreError, match=f"being written by another run .pid {os.getpid()}"):
            store.simulate(catalog, path, CONDITIONS, chunk_size=4, executor="serial")
    store.simulate(catalog, path, CONDITIONS, chunk_size=4, executor="serial")  # lock released
    assert not os.path.exists(os.path.join(path, "xrdbatch", "lock"))


def test_stale_lock_of_a_dead_process_is_taken_over(catalog, tmp_path):
    import socket

    path = str(tmp_path / "store.zarr")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.makedirs(os.path.join(path, "xrdbatch"))
    with open(os.path.join(path, "xrdbatch", "lock"), "w") as fh:
        json.dump({"pid": dead.pid, "host": socket.gethostname(), "start_time": 1.0, "token": "old"}, fh)
    assert store.simulate(catalog, path, CONDITIONS, chunk_size=4, executor="serial").n_chunks == 8


def test_task_of_a_run_that_lost_the_lock_writes_no_marker(catalog, tmp_path):
    path = str(tmp_path / "store.zarr")
    store.simulate(catalog, path, CONDITIONS, chunk_size=4, executor="serial")
    info = store.read_catalog_info(catalog)
    os.unlink(os.path.join(path, "xrdbatch", "done", "000001.json"))
    orphan = store.SimulateChunks(path, info.path, CONDITIONS.to_json(), CONDITIONS.d_min_angstrom, "gone-token",
                                  info.row_group_starts)
    with pytest.raises(store.StoreError, match="no longer locked by the run"):
        orphan(store.ChunkTask(1, 4, 8))
    assert 1 not in store.done_chunks(path)


# =================================================================================== retarget ==
def test_retarget_equals_a_fresh_simulation(catalog, reference, tmp_path):
    new = Conditions.from_radiation("CoKa", two_theta_min_deg=15.0, two_theta_max_deg=60.0, two_theta_step_deg=0.04,
                                    fwhm_deg=0.15)
    out = str(tmp_path / "retarget.zarr")
    fresh = str(tmp_path / "fresh.zarr")
    store.retarget(reference, out, new, executor="serial")
    store.simulate(catalog, fresh, new, chunk_size=4, d_min_angstrom=CONDITIONS.d_min_angstrom, executor="serial")
    a, b = store.open_dataset(out), store.open_dataset(fresh)
    np.testing.assert_allclose(a["intensity"].values, b["intensity"].values, rtol=0, atol=2e-7)
    np.testing.assert_array_equal(a["sim_status"].values, b["sim_status"].values)
    np.testing.assert_array_equal(a["structure_id"].values, b["structure_id"].values)
    assert store.read_conditions(out) == new
    assert a.attrs["retargeted_from"]["store"] == reference
    # the retargeted store keeps the reflections, so it can be retargeted again
    np.testing.assert_array_equal(store.reflection_offsets(out), store.reflection_offsets(reference))


def test_retarget_links_what_does_not_change_and_writes_patterns_with_the_store_codec(reference, tmp_path):
    import zarr

    new = CONDITIONS.replace(two_theta_min_deg=20.0, fwhm_deg=0.2)
    out = str(tmp_path / "retarget.zarr")
    store.retarget(reference, out, new, executor="serial")
    # labels, statuses, counts and reflections are the source's files (hard links), not re-encoded copies
    for path in ("structure_id/c/0", "formula/c/1", "a/c/2", "sim_status/c/3", "reflections/count/c/0"):
        assert os.path.samefile(os.path.join(reference, path), os.path.join(out, path)), path
    assert {m["n_ok"] for m in store.done_chunks(out).values()} == {m["n_ok"] for m in store.done_chunks(reference).values()}
    codecs = zarr.open_array(out, path="intensity", mode="r").metadata.to_dict()["codecs"]
    assert codecs[-1]["name"] == "blosc" and codecs[-1]["configuration"]["cname"] == store.INTENSITY_CODEC["cname"]
    assert_same_but_intensity(reference, out)


def assert_same_but_intensity(a: str, b: str) -> None:
    da, db = store.open_dataset(a), store.open_dataset(b)
    for name in ["sim_status", *[v for v in da.coords if v != "two_theta"]]:
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)
    np.testing.assert_array_equal(store.reflection_offsets(a), store.reflection_offsets(b))


def test_retarget_of_a_store_with_another_layout_copies_values(reference, tmp_path):
    """Where the source's arrays are encoded differently (an older writer), nothing is linked: values are
    decoded and written again, and the result is the same as from a store of the current layout."""
    import shutil

    import zarr

    source = str(tmp_path / "older.zarr")
    shutil.copytree(reference, source)
    for name in ("formula", "sim_status", "reflections/count"):
        values = zarr.open_array(source, path=name, mode="r")[:]
        meta = zarr.open_array(source, path=name, mode="r").metadata
        shutil.rmtree(os.path.join(source, name))
        zarr.create_array(source, name=name, data=values, chunks=meta.chunks, compressors=None,
                          fill_value=meta.fill_value, attributes=dict(meta.attributes),
                          dimension_names=meta.dimension_names)
    new = CONDITIONS.replace(two_theta_min_deg=20.0, fwhm_deg=0.2)
    a, b = str(tmp_path / "from_older.zarr"), str(tmp_path / "from_current.zarr")
    store.retarget(source, a, new, executor="serial")
    store.retarget(reference, b, new, executor="serial")
    assert not os.path.samefile(os.path.join(source, "formula/c/0"), os.path.join(a, "formula/c/0"))
    np.testing.assert_array_equal(store.open_dataset(a)["intensity"].values, store.open_dataset(b)["intensity"].values)
    assert_same_but_intensity(a, b)
    assert_same_but_intensity(reference, a)


def test_retarget_of_a_store_without_a_source_coordinate(reference, tmp_path):
    """Stores written before ``source`` became a label coordinate retarget fine; their rows' source is empty
    (training reads their origin as unknown) and the other coordinates are the source store's."""
    import shutil

    older = str(tmp_path / "older.zarr")
    shutil.copytree(reference, older)
    shutil.rmtree(os.path.join(older, "source"))
    out = str(tmp_path / "retarget.zarr")
    store.retarget(older, out, CONDITIONS.replace(two_theta_min_deg=20.0), executor="serial")
    ds, ref = store.open_dataset(out), store.open_dataset(reference)
    assert {str(v) for v in ds["source"].values} == {""}
    assert {str(v) for v in ref["source"].values} != {""}
    np.testing.assert_array_equal(ds["formula"].values, ref["formula"].values)


def test_chunk_keys_follow_the_zarr_v3_encodings():
    assert store._chunk_key({"chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}}},
                            (3, 0)) == "c/3/0"
    assert store._chunk_key({"chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}}},
                            (3,)) == "c.3"
    assert store._chunk_key({"chunk_key_encoding": {"name": "v2"}}, (3, 0)) == "3.0"
    assert store._chunk_key({"chunk_key_encoding": {"name": "custom"}}, (3,)) is None


def test_retarget_refuses_beyond_the_stored_resolution(reference, tmp_path):
    wider = CONDITIONS.replace(two_theta_max_deg=100.0)
    with pytest.raises(store.StoreError, match=r"down to d = 1.0064 angstrom .* only down to 1.3"):
        store.retarget(reference, str(tmp_path / "out.zarr"), wider, executor="serial")


# ================================================================================ kill -9 runs ==
KILL_ROWS, KILL_CHUNK = 240, 4  # 60 chunks: enough work that a kill after the first marker is part-way


@pytest.fixture(scope="module")
def kill_catalog(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("kill") / "catalog.parquet", KILL_ROWS, seed=1,
                         bad_rows=(17,), row_group_size=50)


@pytest.fixture(scope="module")
def kill_reference(kill_catalog, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("kill-reference") / "store.zarr")
    store.simulate(kill_catalog, path, CONDITIONS, chunk_size=KILL_CHUNK, executor="serial")
    return path


def _wait_for_markers(path: str, at_least: int, timeout: float = 300.0) -> int:
    t0 = time.time()
    while time.time() - t0 < timeout:
        n = len(store.done_chunks(path))
        if n >= at_least:
            return n
        time.sleep(0.05)
    raise AssertionError(f"no {at_least} done markers in {path} after {timeout} s")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_client_part_way_then_rerun_equals_uninterrupted(kill_catalog, kill_reference, tmp_path):
    path = str(tmp_path / "store.zarr")
    n_chunks = store.n_chunks(KILL_ROWS, KILL_CHUNK)
    cmd = [sys.executable, "-m", "xrdbatch.cli", "simulate", "--catalog", kill_catalog, "--store", path,
           "--chunk-size", str(KILL_CHUNK), "--n-workers", "2", "--threads-per-worker", "1",
           "--radiation", "CuKa", "--two-theta-min", "10", "--two-theta-max", "70", "--two-theta-step", "0.05"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_markers(path, 1)
        os.kill(proc.pid, signal.SIGKILL)  # the client (and its scheduler) only; workers are orphaned
        proc.wait()
        done_at_kill = len(store.done_chunks(path))
        assert 0 < done_at_kill < n_chunks, "the run was not killed part-way"
        assert os.path.exists(os.path.join(path, "xrdbatch", "lock"))  # left behind, stale
        rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=500)
        assert rerun.returncode == 0, rerun.stderr
        assert "resume:" in rerun.stdout
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # orphaned workers of the killed run, if any are left
        except ProcessLookupError:
            pass
    assert_stores_equal(path, kill_reference)
    assert_rows_once(path, kill_catalog, KILL_CHUNK)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_worker_part_way_then_rerun_equals_uninterrupted(kill_catalog, kill_reference, tmp_path):
    from xrdbatch.cluster import get_client

    path = str(tmp_path / "store.zarr")
    n_chunks = store.n_chunks(KILL_ROWS, KILL_CHUNK)
    with get_client(n_workers=2, threads_per_worker=1, log=None) as client:
        victim = next(iter(client.run(os.getpid).values()))
        killed = threading.Event()
        done_at_kill = []

        def kill_when_part_way():
            _wait_for_markers(path, 1)
            os.kill(victim, signal.SIGKILL)
            done_at_kill.append(len(store.done_chunks(path)))
            killed.set()

        killer = threading.Thread(target=kill_when_part_way, daemon=True)
        killer.start()
        try:
            store.simulate(kill_catalog, path, CONDITIONS, chunk_size=KILL_CHUNK, client=client)
        except store.StoreError:
            pass  # a chunk may exhaust its retries with the worker; the rerun below finishes it
        killer.join(timeout=60)
        assert killed.is_set() and 0 < done_at_kill[0] < n_chunks, "the worker was not killed part-way"
        rerun = store.simulate(kill_catalog, path, CONDITIONS, client=client)
        assert rerun.n_chunks == n_chunks
    assert_stores_equal(path, kill_reference)
    assert_rows_once(path, kill_catalog, KILL_CHUNK)

"""Scoring: planning and wavelength handling (pure), then end to end with a real trained bundle: the fuzz folder,
resume, serial vs Dask executors, the CLI, and a model URL from the registry."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import given, settings
from hypothesis import strategies as st

from xrdbatch import score
from xrdbatch.conditions import Conditions
from xrdbatch.readers import Pattern

CU = Conditions()  # CuKa 1.54184, 5-90 deg


def two_theta_of(d, lam):
    return np.degrees(2 * np.arcsin(lam / (2 * np.asarray(d))))


def peaks_pattern(two_theta, centres, heights, width=0.05):
    return (np.asarray(heights)[:, None] * np.exp(-0.5 * ((two_theta - np.asarray(centres)[:, None]) / width) ** 2)
            ).sum(0)


# ------------------------------------------------------------------------------ pure parts ----
def test_plan_is_pure_and_stable(tmp_path):
    files = [f"/x/f{i}.xy" for i in range(1001)]
    opts = score.ScoreOptions("/m")
    tasks = score.plan(files, tmp_path / "r.parquet", opts, batch_size=400)
    assert [len(t.files) for t in tasks] == [400, 400, 201]
    assert tasks == score.plan(files, tmp_path / "r.parquet", opts, batch_size=400)
    assert len({t.part_path for t in tasks}) == 3
    assert all(os.path.dirname(t.part_path).endswith("r.parquet.parts") for t in tasks)
    assert not (tmp_path / "r.parquet.parts").exists()  # planning does no I/O


def test_default_batches_give_every_worker_work():
    """A few hundred files on 2 workers: at least 4 tasks per worker slot, not one batch of up to 1,000 on one
    worker; millions of files: batches of 1,000; an explicit batch size wins."""
    assert score.batch_size_for(506, 2) == 64 and -(-506 // 64) >= 8
    assert score.batch_size_for(3, 2) == 1
    assert score.batch_size_for(2_000_000, 64) == score.DEFAULT_BATCH_SIZE
    assert score.batch_size_for(506, 2, 500) == 500
    assert score.batch_size_for(0, 1) == 1


def test_expand_inputs(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("a/1.xy", "a/b/2.xrdml", "a/.hidden.xy", "c.xy"):
        (tmp_path / p).write_text("1 2\n")
    got = score.expand_inputs([tmp_path / "a", str(tmp_path / "*.xy")])
    assert [os.path.relpath(g, tmp_path) for g in got] == ["a/1.xy", "a/b/2.xrdml", "c.xy"]
    with pytest.raises(FileNotFoundError, match="nope"):
        score.expand_inputs([tmp_path / "nope", str(tmp_path / "*.zz")])


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([0.70930, 1.54056, 1.78896, 2.28970]),
       st.lists(st.floats(1.2, 6.0), min_size=3, max_size=8, unique=True).filter(
           lambda v: np.min(np.diff(np.sort(v)) / np.sort(v)[:-1]) > 0.03))
def test_other_wavelengths_are_converted_through_q(lam_file, d_values):
    """Bragg: a reflection at d appears at 2 asin(lambda / 2d) whatever the wavelength it was measured with."""
    d = np.sort(np.asarray(d_values))[::-1]
    grid = np.arange(2.0, 150.0, 0.01)
    p = Pattern(grid, peaks_pattern(grid, two_theta_of(d, lam_file), np.ones(d.size)), "two_theta_deg",
                {"format": "xy", "wavelength_angstrom": lam_file})
    tt, y, info = score.prepare_pattern(p, CU, None)
    assert info["wavelength_source"] == "file"
    expected = two_theta_of(d, CU.wavelength_angstrom)
    inside = (expected > CU.two_theta_min_deg + 0.5) & (expected < CU.two_theta_max_deg - 0.5)
    for t in expected[inside]:  # the converted maxima sit where the model expects them
        window = np.abs(tt - t) < 0.3
        assert abs(tt[window][np.argmax(y[window])] - t) < 0.03
    assert tt.min() >= CU.two_theta_min_deg and tt.max() <= CU.two_theta_max_deg


def test_q_and_d_axes_need_no_wavelength():
    q = np.linspace(0.5, 5.5, 3000)
    p = Pattern(q, np.ones_like(q), "q_per_angstrom", {"format": "nexus"})
    tt, _, info = score.prepare_pattern(p, CU, None)
    expected = np.degrees(2 * np.arcsin(CU.wavelength_angstrom * q / (4 * np.pi)))
    expected = expected[(expected >= CU.two_theta_min_deg) & (expected <= CU.two_theta_max_deg)]
    np.testing.assert_allclose(tt, expected, rtol=1e-12)
    assert info["warning"] == "" and info["wavelength_source"] == "model"
    d = np.linspace(1.1, 15, 3000)
    tt_d, _, _ = score.prepare_pattern(Pattern(d, np.ones_like(d), "d_angstrom", {"format": "x"}), CU, None)
    assert tt_d.min() >= CU.two_theta_min_deg and tt_d.size > 1000


def test_wavelength_fallbacks_and_range_flag():
    grid = np.arange(20.0, 50.0, 0.02)
    p = Pattern(grid, np.ones_like(grid), "two_theta_deg", {"format": "xy"})
    _, _, info = score.prepare_pattern(p, CU, None)
    assert info["wavelength_source"] == "model" and "assumed the model's" in info["warning"]
    assert "covers 35%" in info["warning"] and info["range_coverage"] == pytest.approx(30 / 85, abs=0.01)
    _, _, info = score.prepare_pattern(p, CU, 1.54056)
    assert info["wavelength_source"] == "option" and "assumed" not in info["warning"]
    nan = Pattern(grid, np.full_like(grid, np.nan), "two_theta_deg", {"format": "xy"})
    with pytest.raises(ValueError, match="intensities are NaN"):
        score.prepare_pattern(nan, CU, None)
    far = Pattern(np.arange(100.0, 140.0, 0.02), np.ones(2000), "two_theta_deg", {"format": "xy"})
    with pytest.raises(ValueError, match="only 0 points inside"):
        score.prepare_pattern(far, CU, None)


# --------------------------------------------------------------------- with a real bundle ----
def small_bundle(out, n_rows: int = 3000, n_estimators: int = 15, calibrate: str | None = None):
    """A real (small) bundle from the project's train stage: ICSD-like synthetic seed11 features, CuKa 5-90."""
    from xrdbatch import features, train

    X, labels = train.synthetic_lattice_features(n_rows, "seed11", wavelength_angstrom=CU.wavelength_angstrom)
    params = {k: train.ForestParams(n_estimators=n_estimators, min_samples_leaf=2) for k in
              ("crystal_system", "space_group", "lattice")}
    train.train_arrays(X, labels, out, feature_set="seed11", feature_names=features.feature_names("seed11"),
                       peak_params={}, conditions=CU, model_params=params, n_jobs=1, log=lambda *a: None,
                       calibrate=calibrate)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A real model bundle trained by the project's own train stage (xrdbatch.train, xrdbatch.bundle)."""
    return small_bundle(tmp_path_factory.mktemp("model") / "cs-model")


def write_xy(path, tt, counts, header=""):
    body = "\n".join(f"{a:.4f} {b:.0f}" for a, b in zip(tt, counts))
    path.write_text(header + body + "\n")


def write_xrdml(path, tt, counts, wavelength=1.540598):
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/2.0">'
        f'<sample><name>{path.stem}</name></sample><xrdMeasurement><usedWavelength intended="K-Alpha 1">'
        f'<kAlpha1 unit="Angstrom">{wavelength}</kAlpha1></usedWavelength><scan scanAxis="Gonio"><dataPoints>'
        f'<positions axis="2Theta" unit="deg"><startPosition>{tt[0]}</startPosition><endPosition>{tt[-1]}'
        '</endPosition></positions><intensities unit="counts">' + " ".join(str(int(c)) for c in counts)
        + "</intensities></dataPoints></scan></xrdMeasurement></xrdMeasurements>\n")


def good_counts(rng, tt):
    centres = rng.uniform(10, 85, 12)
    clean = peaks_pattern(tt, centres, rng.uniform(0.1, 1, 12))
    return rng.poisson(5000 * clean / clean.max() + 100 + 50 * np.exp(-tt / 20)).astype(float)


def make_fuzz_folder(root):
    """Good files plus every kind of bad one. Returns {relative name: expected kind}."""
    rng = np.random.default_rng(7)
    tt = CU.two_theta_deg()
    root.mkdir(parents=True, exist_ok=True)
    kinds = {}
    for i in range(6):
        write_xy(root / f"good_{i}.xy", tt, good_counts(rng, tt), header="# 2theta counts\n")
        kinds[f"good_{i}.xy"] = "ok"
        write_xrdml(root / f"good_{i}.xrdml", tt, good_counts(rng, tt))
        kinds[f"good_{i}.xrdml"] = "ok"
    (root / "sub").mkdir()
    write_xy(root / "sub" / "latin1.xy", tt, good_counts(rng, tt))
    (root / "sub" / "latin1.xy").write_bytes("# échantillon Å\n".encode("latin-1")
                                              + (root / "sub" / "latin1.xy").read_bytes())
    kinds["sub/latin1.xy"] = "ok"
    utf16 = "\n".join(f"{a:.3f} {b:.0f}" for a, b in zip(tt, good_counts(rng, tt)))
    (root / "utf16_bom.xy").write_bytes(utf16.encode("utf-16"))
    kinds["utf16_bom.xy"] = "ok"
    write_xrdml(root / "xrdml_named.xy", tt, good_counts(rng, tt))  # mislabelled, readable by content
    kinds["xrdml_named.xy"] = "ok"
    write_xy(root / "xy_named.xrdml", tt, good_counts(rng, tt))
    kinds["xy_named.xrdml"] = "ok"
    # bad ones
    (root / "empty.xy").write_bytes(b"")
    kinds["empty.xy"] = "error"
    full = (root / "good_0.xrdml").read_bytes()
    (root / "truncated.xrdml").write_bytes(full[: len(full) // 2])
    kinds["truncated.xrdml"] = "error"
    (root / "garbage.xy").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    kinds["garbage.xy"] = "error"
    (root / "garbage.raw").write_bytes(b"RAW1.01\0" + rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    kinds["garbage.raw"] = "error"
    (root / "utf16_nobom.xy").write_bytes(utf16.encode("utf-16-le"))
    kinds["utf16_nobom.xy"] = "error"
    (root / "nan.xy").write_text("\n".join(f"{a:.3f} nan" for a in tt))
    kinds["nan.xy"] = "error"
    (root / "png_named.xrdml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    kinds["png_named.xrdml"] = "error"
    (root / "peaklist.csv").write_text("2theta,I\n" + "\n".join(f"{20 + i},{i}" for i in range(10)))
    kinds["peaklist.csv"] = "error"
    return kinds


def _check_rows(df, root, kinds):
    assert set(df["file"]) == {os.path.join(str(root), k) for k in kinds}
    assert not df.duplicated(["file", "pattern"]).any()
    for rel, kind in kinds.items():
        rows = df[df["file"] == os.path.join(str(root), rel)]
        if kind == "ok":
            assert (rows["status"] == "ok").all(), (rel, rows["error"].tolist())
            assert rows["pattern"].tolist() == list(range(len(rows)))
            assert rows["crystal_system"].notna().all() and (rows["n_peaks"] > 0).all()
            assert rows["space_group_1"].between(1, 230).all()
            assert np.allclose(rows["crystal_system_prob"].between(0, 1), True)
        else:
            assert len(rows) == 1 and rows["status"].iloc[0] == "error", (rel, rows.to_dict("records"))
            assert rows["pattern"].iloc[0] in (-1, 0) and rows["error"].iloc[0]


@pytest.mark.slow
def test_fuzz_folder_every_file_gets_its_rows(model_dir, tmp_path):
    kinds = make_fuzz_folder(tmp_path / "in")
    out = tmp_path / "results.parquet"
    summary = score.score([tmp_path / "in"], str(model_dir), out, batch_size=5)
    df = pd.read_parquet(out)
    _check_rows(df, tmp_path / "in", kinds)
    assert summary["rows"] == len(df) and summary["files"] == len(kinds)
    assert not (tmp_path / "results.parquet.parts").exists()
    assert list(df.columns[:4]) == ["file", "pattern", "status", "error"]
    assert set(score.PREDICTION_COLUMNS + ["n_peaks"]) <= set(df.columns)


@pytest.mark.slow
def test_resume_and_executors_agree(model_dir, tmp_path):
    kinds = make_fuzz_folder(tmp_path / "in")
    files = score.expand_inputs([tmp_path / "in"])
    out = tmp_path / "r.csv"
    first = score.score(files[:7], str(model_dir), out, batch_size=3)
    assert first["files"] == 7
    # an interrupted run leaves parts behind: resume keeps them and does the rest
    opts = score.ScoreOptions(str(model_dir.resolve()))
    [task] = score.plan(files[7:9], out, opts, batch_size=10)
    score.score_batch(task)
    again = score.score([tmp_path / "in"], str(model_dir), out, resume=True, batch_size=4)
    assert again["skipped"] == 9 and again["files"] == len(kinds)
    serial = pd.read_csv(out, keep_default_na=False, na_values=[""])
    _check_rows(serial, tmp_path / "in", kinds)

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        score.score([tmp_path / "in"], str(model_dir), tmp_path / "d.parquet", executor="dask", client=client,
                    batch_size=4)
    dask_df = pd.read_parquet(tmp_path / "d.parquet")
    key = ["file", "pattern"]
    a = serial.sort_values(key).reset_index(drop=True)
    b = dask_df.sort_values(key).reset_index(drop=True)
    assert a["status"].tolist() == b["status"].tolist()
    assert a["crystal_system"].fillna("").tolist() == b["crystal_system"].fillna("").tolist()
    np.testing.assert_allclose(a["a"].to_numpy(float), b["a"].to_numpy(float), equal_nan=True)


def test_bundles_from_before_origin_weights_still_score(model_dir, tmp_path):
    """A bundle whose manifest predates the space-group origin weights scores files like the new one."""
    import json
    import shutil

    old = tmp_path / "old-model"
    shutil.copytree(model_dir, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for key in ("space_group_synthetic_weight", "origins", "space_group_fallback"):
        manifest["training"].pop(key)
    (old / "manifest.json").write_text(json.dumps(manifest))
    rng = np.random.default_rng(3)
    (tmp_path / "in").mkdir()
    for i in range(3):
        write_xy(tmp_path / "in" / f"p{i}.xy", CU.two_theta_deg(), good_counts(rng, CU.two_theta_deg()))
    score.score([tmp_path / "in"], str(old), tmp_path / "old.csv")
    score.score([tmp_path / "in"], str(model_dir), tmp_path / "new.csv")
    a, b = pd.read_csv(tmp_path / "old.csv"), pd.read_csv(tmp_path / "new.csv")
    assert (a["status"] == "ok").all() and len(a) == 3
    pd.testing.assert_frame_equal(a, b)


def test_shift_averaging_averages_the_views(model_dir, tmp_path, capsys):
    """--shift-average: the rows' probabilities are the mean over the shifted peak lists (computed here by hand
    from the bundle), the same files stay ok, and 0 is the plain scoring."""
    from xrdbatch import bundle, cli, features

    rng = np.random.default_rng(5)
    tt = CU.two_theta_deg()
    (tmp_path / "in").mkdir()
    counts = [good_counts(rng, tt) for _ in range(4)]
    for i, c in enumerate(counts):
        write_xy(tmp_path / "in" / f"p{i}.xy", tt, c)
    score.score([tmp_path / "in"], str(model_dir), tmp_path / "plain.csv")
    score.score([tmp_path / "in"], str(model_dir), tmp_path / "zero.csv", shift_average_deg=0.0)
    summary = score.score([tmp_path / "in"], str(model_dir), tmp_path / "avg.csv", shift_average_deg=0.06,
                          shift_views=7)
    plain, zero, avg = (pd.read_csv(tmp_path / f) for f in ("plain.csv", "zero.csv", "avg.csv"))
    pd.testing.assert_frame_equal(plain, zero)
    assert summary["ok"] == 4 and (avg["status"] == "ok").all()

    b = bundle.load_bundle(model_dir)
    grid = [score.prepare_pattern(Pattern(tt, c, "two_theta_deg", {"format": "xy"}), b.conditions, None)
            for c in counts]
    peaks = features.find_peaks(grid[0][0], np.stack([g[1] for g in grid]), b.conditions.wavelength_angstrom,
                                **b.peak_params)
    offsets = features.shift_offsets(0.06, 7)
    views = features.shifted_views(peaks, b.feature_set, b.conditions.wavelength_angstrom, offsets)
    assert len(views) == 6  # the non-zero offsets; the unshifted features are from_peaks' own
    views.append(features.from_peaks(peaks, b.feature_set))
    mean = np.mean([b.model.predict_proba(V) for V in views], axis=0)
    by_file = avg.set_index(avg["file"].map(lambda f: os.path.basename(f)))
    for i in range(4):
        row = by_file.loc[f"p{i}.xy"]
        j = int(np.argmax(mean[i]))
        assert row["crystal_system"] == b.model.classes_[j]
        assert row["crystal_system_prob"] == pytest.approx(mean[i, j], rel=1e-5)
    # the view at an offset is what a pattern measured with that zero error gives
    moved = features.find_peaks(tt + 0.04, np.stack(counts).astype(np.float32), b.conditions.wavelength_angstrom,
                                **b.peak_params)
    again = features.find_peaks(tt, np.stack(counts).astype(np.float32), b.conditions.wavelength_angstrom,
                                **b.peak_params)
    shifted = features.shift_peaks(again, 0.04, b.conditions.wavelength_angstrom)
    np.testing.assert_allclose(shifted.two_theta_deg, moved.two_theta_deg, atol=1e-9)
    np.testing.assert_allclose(shifted.q_per_angstrom, moved.q_per_angstrom, atol=1e-9)
    assert cli.main(["score", str(tmp_path / "in"), "--model", str(model_dir), "--out", str(tmp_path / "c.csv"),
                     "--executor", "serial", "--shift-average", "0.04", "--shift-views", "3"]) == 0
    for bad in ({"shift_average_deg": -1}, {"shift_average_deg": 0.04, "shift_views": 4}):
        with pytest.raises(ValueError, match="shift averaging"):
            score.score([tmp_path / "in"], str(model_dir), tmp_path / "bad.csv", **bad)


@pytest.mark.slow
def test_measured_samples_score(model_dir, tmp_path):
    files = [shared_path("measured", "rruff_minerals_dev", "rruff_133.xy"),
             shared_path("measured", "rb_m2o5f", "powder_X-ray_diffraction", "RbNb2O5F", "raw_data",
                         "RbNb2O5F.xrdml"),
             shared_path("measured", "format_samples", "samples", "BT86.raw"),
             shared_path("measured", "iucr_rietveld", "data", "experimental_xrd", "cif_files",
                         "wh5012phaseIIsup2.rtv.combined.cif"),
             shared_path("measured", "tacr2o6", "data-release", "xrd_measurements", "xrd_measurement_TaCr2O6.dat")]
    out = tmp_path / "m.parquet"
    score.score([str(f) for f in files], str(model_dir), out, wavelength_angstrom=1.5406)
    df = pd.read_parquet(out).set_index("file")
    assert (df["status"] == "ok").all(), df["error"].to_dict()
    assert df.loc[str(files[1]), "wavelength_source"] == "file"
    assert df.loc[str(files[0]), "wavelength_source"] == "option"
    # MoKa data (5-19 deg at 0.71 A) covers only a part of a CuKa 5-90 deg model: flagged
    assert "covers" in df.loc[str(files[3]), "warning"]
    assert df.loc[str(files[3]), "wavelength_angstrom"] == pytest.approx(0.71073)


@pytest.mark.slow
def test_cli_score_with_a_registry_url(model_dir, tmp_path, monkeypatch, capsys):
    from xrdbatch import cli

    monkeypatch.setenv("XRDBATCH_CACHE_DIR", str(tmp_path / "cache"))
    reg = tmp_path / "registry"
    assert cli.main(["models", "push", str(model_dir), str(reg), "--name", "cs"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.endswith("/cs/1")
    assert cli.main(["models", "list", str(reg)]) == 0
    assert "cs\t1\t" in capsys.readouterr().out
    make_fuzz_folder(tmp_path / "in")
    out = tmp_path / "cli.csv"
    # a file:// URL goes through the registry (pulled into the cache and verified)
    rc = cli.main(["score", "--model", "file://" + url, str(tmp_path / "in" / "good_*.xy"), "--out", str(out),
                   "--executor", "serial", "--radiation", "CuKa1"])
    assert rc == 0 and "scored 6 files" in capsys.readouterr().out
    df = pd.read_csv(out)
    assert (df["status"] == "ok").all() and (df["wavelength_source"] == "option").all()
    assert (tmp_path / "cache" / "models").is_dir()
    # a tampered cache entry is re-pulled, never used
    cached = next((tmp_path / "cache" / "models").iterdir())
    victim = next(p for p in cached.iterdir() if p.name != "manifest.json" and p.is_file())
    victim.write_bytes(b"tampered")
    assert cli.main(["score", "--model", "file://" + url, str(tmp_path / "in" / "good_0.xy"), "--out",
                     str(tmp_path / "c2.parquet"), "--executor", "serial"]) == 0
    assert hashlib.sha256(victim.read_bytes()).hexdigest() != hashlib.sha256(b"tampered").hexdigest()
    assert cli.main(["score", "--model", str(tmp_path / "nope"), str(tmp_path / "in"), "--out",
                     str(tmp_path / "x.csv"), "--executor", "serial"]) == 2


@pytest.mark.slow
def test_abstention_threshold_and_target_accuracy(model_dir, tmp_path, capsys):
    """--abstain P empties the answer below P (probability kept); --abstain-accuracy reads the bundle's
    held-out threshold; a bundle without calibration gets a clear error; old outputs merge on --resume."""
    from xrdbatch import cli

    kinds = make_fuzz_folder(tmp_path / "in")
    plain = tmp_path / "plain.parquet"
    score.score([tmp_path / "in"], str(model_dir), plain)
    base = pd.read_parquet(plain)
    ok = base["status"] == "ok"
    assert (base.loc[ok, "abstained"] == False).all() and base.loc[~ok, "abstained"].isna().all()  # noqa: E712
    threshold = float(base.loc[ok, "crystal_system_prob"].median())
    out = tmp_path / "abstain.parquet"
    summary = score.score([tmp_path / "in"], str(model_dir), out, abstain=threshold)
    df = pd.read_parquet(out).set_index(["file", "pattern"]).loc[base.set_index(["file", "pattern"]).index]
    low = (base["crystal_system_prob"] < threshold).to_numpy() & ok.to_numpy()
    assert 0 < low.sum() < ok.sum() and summary["abstained"] == low.sum()
    assert (df["abstained"].to_numpy()[low]).all() and not df["abstained"].to_numpy()[ok.to_numpy() & ~low].any()
    assert (df["crystal_system"].to_numpy()[low] == "").all()
    assert df["space_group_1"].isna().to_numpy()[low].all() and df["a"].isna().to_numpy()[low].all()
    np.testing.assert_allclose(df["crystal_system_prob"].to_numpy(float), base["crystal_system_prob"].to_numpy(float))
    kept = ok.to_numpy() & ~low
    assert df["crystal_system"].to_numpy()[kept].tolist() == base["crystal_system"].to_numpy()[kept].tolist()

    # no calibration record: a clear error before any work, naming the bundle and the way out
    with pytest.raises(ValueError, match="no calibration record.*--calibrate"):
        score.score([tmp_path / "in"], str(model_dir), tmp_path / "x.parquet", abstain_accuracy=0.9)
    calibrated = small_bundle(tmp_path / "calibrated", calibrate="isotonic")
    thresholds = __import__("json").loads((calibrated / "manifest.json").read_text())["training"]["calibration"][
        "abstain_thresholds"]
    assert score.abstain_threshold(calibrated, 0.9) == pytest.approx(thresholds["0.9"])
    with pytest.raises(ValueError, match="no abstention threshold for accuracy 0.7.*0.8, 0.9, 0.95"):
        score.abstain_threshold(calibrated, 0.7)
    rc = cli.main(["score", "--model", str(calibrated), str(tmp_path / "in"), "--out", str(tmp_path / "c.csv"),
                   "--executor", "serial", "--abstain-accuracy", "0.8"])
    assert rc == 0 and "abstained (crystal-system probability <" in capsys.readouterr().out
    csv = pd.read_csv(tmp_path / "c.csv")
    assert csv.loc[csv["status"] == "ok", "abstained"].isin([True, False]).all()
    assert cli.main(["score", "--model", str(calibrated), str(tmp_path / "in"), "--out", str(tmp_path / "d.csv"),
                     "--executor", "serial", "--abstain", "1.5"]) == 2

    # an output written before the abstained column existed still merges on --resume
    old = pd.read_parquet(plain).drop(columns=["abstained"])
    old = old[old["file"] != old["file"].iloc[0]]
    old.to_parquet(plain)
    again = score.score([tmp_path / "in"], str(model_dir), plain, resume=True)
    merged = pd.read_parquet(plain)
    assert again["files"] == len(kinds) and len(merged) == len(base)
    assert merged["abstained"].isna().sum() >= len(old)


def test_rows_answered_by_a_search_match_are_not_abstained_on():
    """Abstention looks at the model's probability; a confident search-match answer is kept whatever it is."""
    base = {"status": "ok", "crystal_system": "cubic", "crystal_system_prob": 0.2, "space_group_1": 225}
    rows = [dict(base, matched=True), dict(base, matched=False), dict(base, matched=None)]
    score._abstain(rows, 0.5)
    assert [r.get("abstained") for r in rows] == [None, True, True]
    assert rows[0]["crystal_system"] == "cubic" and rows[0]["space_group_1"] == 225
    assert rows[1]["crystal_system"] == "" and rows[1]["space_group_1"] is None


def test_balanced_decision_answers_over_the_training_shares(model_dir, tmp_path):
    """--decision balanced: argmax of P / training share (from the manifest, or from the held-out rows of an older
    bundle); the probability shown is P of the system answered; rare systems are answered more often."""
    import json
    import shutil

    from xrdbatch import cli
    from xrdbatch.bundle import load_bundle

    b = load_bundle(model_dir)
    shares = b.manifest["training"]["class_shares"]
    assert set(shares) == set(b.model.classes_) and sum(shares.values()) == pytest.approx(1.0)
    weights = b.decision_weights("balanced")
    np.testing.assert_allclose(weights, [1 / shares[c] for c in b.model.classes_])
    assert b.decision_weights("argmax") is None
    with pytest.raises(ValueError, match="unknown decision"):
        b.decision_weights("mineral")
    X = b.evaluation()[[f"x_{n}" for n in b.feature_names]].to_numpy(dtype=np.float32)
    plain, balanced = b.predict(X), b.predict(X, decision="balanced")
    proba = b.model.predict_proba(X)
    classes = list(b.model.classes_)
    expected = np.array(classes)[(proba * weights).argmax(1)]
    assert (balanced["crystal_system"].to_numpy() == expected).all()
    assert not (balanced["crystal_system"] == plain["crystal_system"]).all()
    rare = min(shares, key=shares.get)
    assert (balanced["crystal_system"] == rare).sum() > (plain["crystal_system"] == rare).sum()
    got = proba[np.arange(len(X)), [classes.index(c) for c in balanced["crystal_system"]]]
    np.testing.assert_allclose(balanced["crystal_system_prob"], got)
    # a bundle from before the shares were recorded takes them from its held-out rows
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["training"].pop("class_shares")
    (old / "manifest.json").write_text(json.dumps(manifest))
    held = b.evaluation()["true_crystal_system"].value_counts(normalize=True)
    np.testing.assert_allclose(load_bundle(old).decision_weights("balanced"), [1 / held[c] for c in classes])
    # through the CLI
    rng = np.random.default_rng(4)
    (tmp_path / "in").mkdir()
    for i in range(4):
        write_xy(tmp_path / "in" / f"p{i}.xy", CU.two_theta_deg(), good_counts(rng, CU.two_theta_deg()))
    assert cli.main(["score", str(tmp_path / "in"), "--model", str(model_dir), "--out", str(tmp_path / "b.csv"),
                     "--executor", "serial", "--decision", "balanced"]) == 0
    assert (pd.read_csv(tmp_path / "b.csv")["status"] == "ok").all()
    with pytest.raises(ValueError, match="unknown decision"):
        score.score([tmp_path / "in"], str(model_dir), tmp_path / "x.csv", decision="mineral")

"""Tests of xrdbatch.bundle: compact forest packing, atomic save, verified load."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from xrdbatch import bundle, features, train
from xrdbatch.conditions import Conditions

SMALL = train.ForestParams(n_estimators=6, min_samples_leaf=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    X, labels = train.synthetic_lattice_features(800, "q11", seed=5)
    out = tmp_path_factory.mktemp("b") / "model"
    manifest = train.train_arrays(X, labels, out, feature_set="q11", feature_names=features.feature_names("q11"),
                                  peak_params=features.PeakParams().to_dict(), conditions=Conditions(),
                                  split="random", model_params={"crystal_system": SMALL, "space_group": SMALL,
                                                                "lattice": SMALL}, log=lambda *_: None)
    return X, labels, out, manifest


@given(x=arrays(np.float32, 50, elements=st.floats(-1e3, 1e3, width=32)),
       t=arrays(np.float64, 50, elements=st.floats(-1e3, 1e3)))
def test_threshold_rounding_keeps_every_float32_comparison(x, t):
    t32 = bundle._threshold_down(t)
    assert np.array_equal(x[:, None] <= t[None, :], x[:, None] <= t32[None, :])


@pytest.mark.parametrize("kind", ["classifier", "regressor", "regressor2"])
def test_pack_unpack_predicts_the_same(kind):
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    rng = np.random.default_rng(0)
    X = rng.random((600, 7)).astype(np.float32)
    if kind == "classifier":
        est = ExtraTreesClassifier(5, random_state=0).fit(X, rng.choice(["a", "b", "c"], 600))
        out = lambda m: m.predict_proba(X)  # noqa: E731
    else:
        y = rng.random((600, 2)) if kind == "regressor2" else rng.random(600)
        est = ExtraTreesRegressor(5, random_state=0, min_samples_leaf=3).fit(X, y)
        out = lambda m: m.predict(X)  # noqa: E731
    again = bundle.unpack_forest(bundle.pack_forest(est))
    np.testing.assert_allclose(out(again), out(est), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(again.apply(X), est.apply(X))
    np.testing.assert_allclose(again.feature_importances_, est.feature_importances_, atol=1e-5)


def test_boosted_crystal_system_model_round_trips_bit_for_bit(tmp_path):
    X, labels = train.synthetic_lattice_features(600, "q11", seed=7)
    X[::9, 4] = np.nan  # missing values take the learnt side in the rebuilt trees too
    boosted = train.BoostingParams(max_iter=15, max_leaf_nodes=7, min_samples_leaf=5)
    model = train.CrystalForest(boosted, SMALL, fit_lattice=False, random_state=0).fit(
        X, labels["crystal_system"], labels["spacegroup_number"])
    assert type(model.crystal_system_model_).__name__ == "HistGradientBoostingClassifier"
    again = bundle.unpack_model(bundle.pack_model(model.crystal_system_model_))
    np.testing.assert_array_equal(again.predict_proba(X), model.crystal_system_model_.predict_proba(X))
    imp = model.feature_importances()
    assert imp.shape == (X.shape[1],) and abs(imp.sum() - 1) < 1e-9 and (imp >= 0).all()

    manifest = train.train_arrays(X, labels, tmp_path / "m", feature_set="q11",
                                  feature_names=features.feature_names("q11"),
                                  peak_params=features.PeakParams().to_dict(), conditions=Conditions(), split="random",
                                  model_params={"crystal_system": boosted, "space_group": SMALL, "lattice": SMALL},
                                  log=lambda *_: None)
    assert manifest["training"]["model_params"]["crystal_system"] == {"model": "boosting", **boosted.__dict__}
    b = bundle.load_bundle(tmp_path / "m")
    assert type(b.model.crystal_system_model_).__name__ == "HistGradientBoostingClassifier"
    pred = b.predict(X[:30])
    assert pred["crystal_system"].isin(train.CRYSTAL_SYSTEMS).all() and "space_group_5" in pred
    from xrdbatch import report

    html = report.write_report(tmp_path / "m", tmp_path / "report")  # importances and the surrogate tree too
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert html.exists() and len(metrics["feature_importances"]) == X.shape[1]


def test_roundtrip_and_manifest(trained):
    X, labels, out, manifest = trained
    b = bundle.load_bundle(out)
    assert b.feature_set == "q11" and b.conditions == Conditions()
    assert b.peak_params == features.PeakParams().to_dict()
    on_disk = json.loads((out / "manifest.json").read_text())
    assert set(on_disk["files"]) == {p.name for p in out.iterdir()} - {"manifest.json"}
    for key in ("conditions", "feature_set", "peak_params", "training", "metrics", "versions", "files"):
        assert key in on_disk
    assert on_disk["training"]["data_sha256"] and on_disk["training"]["n_rows"] == len(X)
    pred = b.predict(X[:20])
    assert list(pred.columns[:2]) == ["crystal_system", "crystal_system_prob"]
    assert "space_group_5" in pred and "gamma" in pred
    with pytest.raises(ValueError, match="shape"):
        b.predict(X[:, :5])
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_tampered_file_is_refused(trained, tmp_path):
    import shutil

    _, _, out, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    target = copy / "crystal_system.skops"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(bundle.BundleError, match="crystal_system.skops"):
        bundle.load_bundle(copy)


def test_other_versions_are_refused(trained, tmp_path):
    import shutil

    _, _, out, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["versions"]["scikit-learn"] = "0.24.2"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle.BundleError, match="scikit-learn 0.24.2"):
        bundle.load_bundle(copy)
    assert bundle.load_bundle(copy, check_versions=False).feature_set == "q11"


def test_foreign_types_are_refused(trained, tmp_path):
    """A skops file holding an arbitrary estimator (even with a matching hash) is never loaded."""
    import shutil

    import skops.io as sio
    from sklearn.ensemble import ExtraTreesClassifier

    _, _, out, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    est = ExtraTreesClassifier(2).fit(np.random.rand(20, 3), np.arange(20) % 2)
    sio.dump(est, copy / "crystal_system.skops", compression=zipfile.ZIP_DEFLATED)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["crystal_system.skops"]["sha256"] = bundle.sha256_file(copy / "crystal_system.skops")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle.BundleError, match="refusing"):
        bundle.load_bundle(copy)


def test_existing_target_needs_overwrite(trained):
    X, labels, out, _ = trained
    model = bundle.load_bundle(out).model
    kw = dict(conditions=Conditions(), feature_set="q11", feature_names=features.feature_names("q11"),
              peak_params={}, training={}, metrics={})
    with pytest.raises(bundle.BundleError, match="exists"):
        bundle.save_bundle(model, out, **kw)
    bundle.save_bundle(model, out, overwrite=True, evaluation=None, **kw)
    assert bundle.load_bundle(out).manifest["training"] == {}


def test_missing_manifest_says_what_to_do(tmp_path):
    with pytest.raises(bundle.BundleError, match="xrdbatch train"):
        bundle.load_bundle(tmp_path)


def test_bundles_from_before_origin_weights_load_and_predict_the_same(trained, tmp_path):
    """Bundles written before the space-group origin weights (no training.space_group_synthetic_weight,
    origins, space_group_fallback in the manifest) load and predict as before."""
    import shutil

    X, _, out, manifest = trained
    assert manifest["training"]["space_group_synthetic_weight"] == train.SPACE_GROUP_SYNTHETIC_WEIGHT
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    on_disk = json.loads((copy / "manifest.json").read_text())
    for key in ("space_group_synthetic_weight", "origins", "space_group_fallback"):
        on_disk["training"].pop(key, None)  # (another test may have rewritten the training record already)
    (copy / "manifest.json").write_text(json.dumps(on_disk))
    old = bundle.load_bundle(copy)
    assert "space_group_synthetic_weight" not in old.manifest["training"]
    assert old.predict(X[:30]).equals(bundle.load_bundle(out).predict(X[:30]))


def test_peak_settings_are_stored_resolved_and_old_bundles_keep_three_point_tops(trained, tmp_path):
    """A bundle stores every peak-finder setting (a later change of a default cannot change how it scores);
    a bundle from before ``top_fit_rel`` existed scores with the three-point tops it was trained with."""
    import shutil

    _, _, out, _ = trained
    stored = bundle.load_bundle(out).manifest["peak_params"]
    assert stored == features.PeakParams().to_dict() and stored["top_fit_rel"] == features.PeakParams().top_fit_rel
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    on_disk = json.loads((copy / "manifest.json").read_text())
    on_disk["peak_params"] = {"height_rel": 0.04}  # what the previous version wrote: only the given settings
    (copy / "manifest.json").write_text(json.dumps(on_disk))
    old = bundle.load_bundle(copy)
    assert old.peak_params == {"height_rel": 0.04, "top_fit_rel": 0.0}
    tt = np.arange(5.0, 90.0, 0.02)
    centres = np.array([20.013, 31.27, 44.9])
    y = np.exp(-0.5 * ((tt[:, None] - centres[None, :]) / 0.05) ** 2).sum(axis=1)[None, :]
    y = y + np.random.default_rng(0).normal(0, 0.01, y.shape)
    x_old = old.featurize(tt, y)
    assert np.array_equal(x_old, features.extract(tt, y, old.conditions.wavelength_angstrom, old.feature_set,
                                                  height_rel=0.04, top_fit_rel=0.0))

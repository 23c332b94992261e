"""Tests of xrdbatch.train: lattice completion, splits, the composite forest, training into a bundle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xrdbatch import features, train
from xrdbatch.conditions import Conditions
from xrdbatch.crystal import CRYSTAL_SYSTEMS

SMALL = train.ForestParams(n_estimators=8, min_samples_leaf=2)


@pytest.fixture(scope="module")
def data():
    return train.synthetic_lattice_features(1500, "rich", seed=3)


@given(system=st.sampled_from(CRYSTAL_SYSTEMS), values=st.lists(st.floats(2, 30), min_size=6, max_size=6))
def test_complete_lattice_fills_the_fixed_parameters(system, values):
    free = np.array(values[: len(train.LATTICE_FREE[system])])[None, :]
    a, b, c, alpha, beta, gamma = train.complete_lattice(system, free)[0]
    if system in ("cubic", "tetragonal", "hexagonal", "trigonal"):
        assert a == b
    if system == "cubic":
        assert a == c
    if system in ("hexagonal", "trigonal"):
        assert (alpha, beta, gamma) == (90, 90, 120)
    if system in ("orthorhombic", "tetragonal", "cubic"):
        assert (alpha, beta, gamma) == (90, 90, 90)
    if system == "monoclinic":
        assert alpha == gamma == 90


@settings(max_examples=25, deadline=None)
@given(groups=st.lists(st.integers(0, 30), min_size=10, max_size=200), seed=st.integers(0, 100))
def test_grouped_split_never_shares_a_group(groups, seed):
    groups = np.array([f"type{g}" for g in groups])
    if len(set(groups)) < 2:
        return
    tr, te = train.split_indices(len(groups), "grouped", groups, 0.3, seed)
    assert set(groups[tr]).isdisjoint(groups[te])
    assert len(tr) + len(te) == len(groups) and len(np.intersect1d(tr, te)) == 0


def test_unknown_split_lists_the_valid_ones():
    with pytest.raises(ValueError, match="random"):
        train.split_indices(10, "stratified")


@pytest.mark.parametrize("hierarchical", [True, False])
def test_forest_predicts_the_contract_table(data, hierarchical):
    X, labels = data
    model = train.CrystalForest(SMALL, SMALL, SMALL, hierarchical_space_group=hierarchical, random_state=0,
                                scale_column=features.feature_names("rich").index("q_1"), scale_kind="q")
    model.fit(X[:1200], labels.crystal_system[:1200], labels.spacegroup_number[:1200],
              labels[list(train.LATTICE_NAMES)].to_numpy()[:1200])
    pred = model.predict_frame(X[1200:], top_k=5)
    expected = (["crystal_system", "crystal_system_prob"] + [f"space_group_{i}" for i in range(1, 6)]
                + [f"space_group_prob_{i}" for i in range(1, 6)] + list(train.LATTICE_NAMES))
    assert set(expected) <= set(pred.columns) and len(pred) == 300
    probs = pred[[f"space_group_prob_{i}" for i in range(1, 6)]].to_numpy()
    assert np.all(np.diff(probs, axis=1) <= 1e-12) and np.all(probs.sum(axis=1) <= 1 + 1e-9)
    assert pred["crystal_system"].isin(CRYSTAL_SYSTEMS).all()
    cubic = pred[pred.crystal_system == "cubic"]
    assert np.allclose(cubic.a, cubic.c) and np.allclose(cubic[["alpha", "beta", "gamma"]], 90)
    # ranked groups belong to known space groups and beat chance by a wide margin on these data
    hit5 = (pred[[f"space_group_{i}" for i in range(1, 6)]].to_numpy()
            == labels.spacegroup_number[1200:].to_numpy()[:, None]).any(axis=1).mean()
    assert hit5 > 0.3
    assert (pred.crystal_system.to_numpy() == labels.crystal_system[1200:].to_numpy()).mean() > 0.5


def test_hierarchical_probabilities_are_a_distribution(data):
    X, labels = data
    model = train.CrystalForest(SMALL, SMALL, fit_lattice=False).fit(X, labels.crystal_system,
                                                                      labels.spacegroup_number)
    groups, proba = model.space_group_proba(X[:50])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert len(set(groups)) == len(groups)


def test_train_arrays_writes_a_bundle_with_its_evaluation(data, tmp_path):
    from xrdbatch import bundle

    X, labels = data
    params = {"crystal_system": SMALL, "space_group": SMALL, "lattice": SMALL}
    manifest = train.train_arrays(X, labels, tmp_path / "model", feature_set="rich",
                                  feature_names=features.feature_names("rich"), peak_params={},
                                  conditions=Conditions(), split="grouped", model_params=params, log=lambda *_: None)
    assert manifest["training"]["split"] == "grouped"
    assert manifest["training"]["n_train"] + manifest["training"]["n_test"] == len(X)
    cs = manifest["metrics"]["crystal_system"]
    assert 0 <= cs["macro_accuracy"] <= 1 and set(cs["recall"]) <= set(CRYSTAL_SYSTEMS)
    b = bundle.load_bundle(tmp_path / "model")
    table = b.evaluation()
    assert len(table) == manifest["training"]["n_test"]
    test_types = set(table.structure_type)
    assert test_types.isdisjoint(set(labels.structure_type) - test_types) or True
    assert train.data_hash(X, labels) == manifest["training"]["data_sha256"]


@pytest.mark.slow
def test_dask_backend_fits_the_same_shapes(data):
    import joblib
    from distributed import Client, LocalCluster

    X, labels = data
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster):
        model = train.CrystalForest(SMALL, SMALL, fit_lattice=False)
        train._fit(model, X[:500], labels.iloc[:500].assign(**{n: 1.0 for n in train.LATTICE_NAMES}), "dask")
    assert len(model.crystal_system_model_.estimators_) == SMALL.n_estimators
    assert joblib.parallel_config is not None


@pytest.mark.slow
def test_store_to_bundle_end_to_end(shared, tmp_path, capsys):
    """Real structures -> catalog -> store -> features -> train -> bundle, through the library calls."""
    from xrdbatch import bundle, sources, store

    folder = shared("structures", "autoxrd_references")
    catalog = tmp_path / "catalog.parquet"
    sources.ingest_to_parquet([str(folder), "builtin:prototypes"], catalog)
    st_path = str(tmp_path / "store.zarr")
    store.simulate(str(catalog), st_path, Conditions(two_theta_step_deg=0.04), executor="serial", log=lambda *_: None)
    summary = features.features_to_store(st_path, ["seed11", "q11", "measured"], {"height_rel": 0.04})
    assert summary["n_structures"] > 100
    X, labels, names, peak_params, conditions, source = train.read_training_data(st_path, "q11")
    assert X.shape[1] == 11 and names == features.feature_names("q11") and len(labels) == len(X)
    train.train_from_store(st_path, tmp_path / "model", feature_set="q11",
                           model_params={"crystal_system": SMALL, "space_group": SMALL, "lattice": SMALL},
                           log=lambda *_: None)
    b = bundle.load_bundle(tmp_path / "model")
    assert b.feature_set == "q11" and b.conditions == conditions
    ds = store.open_dataset(st_path)
    x_store = ds["features_q11"].values[:5]
    x_again = features.extract(ds.two_theta.values, ds.intensity.values[:5], conditions.wavelength_angstrom,
                               "q11", **b.peak_params)
    np.testing.assert_array_equal(x_store, x_again)
    assert isinstance(b.predict(x_again), pd.DataFrame)
    # the CLI flag reaches the manifest; the origins come from the store's own source coordinate
    from xrdbatch import cli

    assert cli.main(["train", "--store", st_path, "--out", str(tmp_path / "cli-model"), "--feature-set", "q11",
                     "--sg-synthetic-weight", "0.5", "--n-jobs", "1", "--crystal-system-model", "boosting"]) == 0
    training = bundle.load_bundle(tmp_path / "cli-model").manifest["training"]
    assert training["space_group_synthetic_weight"] == 0.5 and set(training["origins"]) == {"real"}
    assert training["source"]["origin_from"] == "store"
    assert training["model_params"]["crystal_system"] == {"model": "boosting", **train.BOOSTED_CRYSTAL_SYSTEM.__dict__}
    assert cli.main(["train", "--store", st_path, "--out", str(tmp_path / "x"), "--crystal-system-model", "boosting",
                     "--recipe", "seed"]) == 2
    assert "does not go with --recipe seed" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert cli.main(["train", "--store", st_path, "--out", str(tmp_path / "x"), "--crystal-system-model", "boosting",
                     "--class-weight", "balanced_subsample"]) == 2
    assert "takes 'balanced'" in capsys.readouterr().err and not (tmp_path / "x").exists()
    # class-balanced boosting (session 7: RRUFF macro recall +3.6, accuracy -1.4) reaches the model and the manifest
    assert cli.main(["train", "--store", st_path, "--out", str(tmp_path / "cli-balanced"), "--feature-set", "q11",
                     "--n-jobs", "1", "--crystal-system-model", "boosting", "--class-weight", "balanced"]) == 0
    b = bundle.load_bundle(tmp_path / "cli-balanced")
    assert b.manifest["training"]["model_params"]["crystal_system"]["class_weight"] == "balanced"
    assert b.model.crystal_system_model_.class_weight == "balanced"
    sources_in_store = {str(v) for v in store.open_dataset(st_path)["source"].values}
    assert sources_in_store == {str(folder), "builtin:prototypes"}
    assert bundle.load_bundle(tmp_path / "cli-balanced").library is None  # q11: no line positions in Q

    # search-match (issue 8, session 9): the real structures of the (ideal) training store become the library
    assert train.default_library_store(st_path)[0] == st_path
    lib = train.reference_library(st_path, {"height_rel": 0.04})
    ok = (np.asarray(ds["sim_status"].values.tolist()) == "ok")
    assert len(lib) == ok.sum() and {"id", "formula", "crystal_system", "space_group", "a", "gamma"} <= set(lib.labels)
    first_ok = np.flatnonzero(ok)[:5]
    x = features.extract(ds.two_theta.values, ds.intensity.values[first_ok], conditions.wavelength_angstrom,
                         "measured", height_rel=0.04)
    from xrdbatch import match

    assert (match.best_matches(lib, x, features.feature_names("measured"))["match_score"] == 1.0).all()
    np.testing.assert_array_equal(lib.lines[:5], match.ReferenceLibrary.from_features(
        x, features.feature_names("measured"), lib.labels.iloc[:5]).lines)
    # the library's rows are found in parallel blocks (Dask): any block size gives the same library
    again = train.reference_library(st_path, {"height_rel": 0.04}, chunk=3)
    np.testing.assert_array_equal(again.lines, lib.lines)
    pd.testing.assert_frame_equal(again.labels, lib.labels)
    assert cli.main(["train", "--store", st_path, "--out", str(tmp_path / "matching"), "--feature-set", "measured",
                     "--n-jobs", "1"]) == 0
    assert f"search-match library of {len(lib)} real structures" in capsys.readouterr().out
    b = bundle.load_bundle(tmp_path / "matching")
    assert len(b.library) == len(lib) and b.manifest["library"]["source"] == st_path
    assert "library.parquet" in b.manifest["files"]  # sha256-verified like the forests
    assert cli.main(["train", "--store", st_path, "--out", str(tmp_path / "no-lib"), "--feature-set", "measured",
                     "--n-jobs", "1", "--no-library"]) == 0
    assert bundle.load_bundle(tmp_path / "no-lib").library is None
    # measured single-phase patterns of reference structures (AutoXRD examples) are answered by their structure
    from xrdbatch import score

    spectra = shared("measured", "autoxrd_spectra", "Example", "Spectra")
    out = tmp_path / "scores.parquet"
    summary = score.score([str(spectra / f"{name}.xy") for name in ("Mn2O3", "MnO")], str(tmp_path / "matching"),
                          str(out), shift_average_deg=0.06)
    rows = pd.read_parquet(out).set_index(pd.read_parquet(out)["file"].map(lambda f: f.rsplit("/", 1)[-1]))
    assert summary["search_match"] and summary["matched"] == 2, rows[["match_score", "match_formula"]]
    assert rows.loc["Mn2O3.xy", ["crystal_system", "space_group_1", "match_formula"]].tolist() == ["cubic", 206, "Mn2O3"]
    assert rows.loc["MnO.xy", ["crystal_system", "space_group_1", "match_formula"]].tolist() == ["cubic", 225, "MnO"]
    plain = score.score([str(spectra / "MnO.xy")], str(tmp_path / "matching"), str(tmp_path / "plain.parquet"),
                        search_match=False)
    assert not plain["search_match"] and pd.read_parquet(tmp_path / "plain.parquet")["matched"].isna().all()
    with pytest.raises(ValueError, match="no search-match library"):
        score.score([str(spectra / "MnO.xy")], str(tmp_path / "no-lib"), str(tmp_path / "x.parquet"), search_match=True)
    # a bundle takes another library without retraining (`xrdbatch library`): the builtin prototypes only ...
    proto_catalog, proto_store = tmp_path / "proto.parquet", str(tmp_path / "proto.zarr")
    sources.ingest_to_parquet(["builtin:prototypes"], proto_catalog)
    # (`simulate --like-model`: at the model's conditions, whatever they are)
    assert cli.main(["simulate", "--catalog", str(proto_catalog), "--store", proto_store, "--executor", "serial",
                     "--like-model", str(tmp_path / "matching")]) == 0
    assert store.read_conditions(proto_store) == bundle.load_bundle(tmp_path / "matching").conditions
    forests = {n: i for n, i in bundle.read_manifest(tmp_path / "matching")["files"].items() if n.endswith(".skops")}
    assert cli.main(["library", str(tmp_path / "matching"), "--store", proto_store]) == 0
    n_proto = len(train.reference_library(proto_store, {"height_rel": 0.04}))
    assert f"search-match library of {n_proto} real structures" in capsys.readouterr().out
    b = bundle.load_bundle(tmp_path / "matching")  # sha256-verified: the manifest lists the new library
    assert len(b.library) == n_proto < len(lib) and b.manifest["library"]["source"] == proto_store
    assert {n: i for n, i in b.manifest["files"].items() if n.endswith(".skops")} == forests  # forests untouched
    mn2o3 = [str(spectra / "Mn2O3.xy")]
    score.score(mn2o3, str(tmp_path / "matching"), str(tmp_path / "scores_proto.parquet"), shift_average_deg=0.06)
    assert pd.read_parquet(tmp_path / "scores_proto.parquet")["match_formula"].iloc[0] != "Mn2O3"  # not a prototype
    # ... then the training store's structures added again: Mn2O3 is found, nothing is listed twice
    assert cli.main(["library", str(tmp_path / "matching"), "--store", st_path, "--add"]) == 0
    b = bundle.load_bundle(tmp_path / "matching")
    assert b.library.labels["id"].is_unique and len(b.library) == len(set(lib.labels["id"]) | set(
        train.reference_library(proto_store, {"height_rel": 0.04}).labels["id"]))
    assert b.manifest["library"]["source"] == f"{proto_store}; {st_path}"
    score.score(mn2o3, str(tmp_path / "matching"), str(tmp_path / "added.parquet"), shift_average_deg=0.06)
    assert pd.read_parquet(tmp_path / "added.parquet")["match_formula"].iloc[0] == "Mn2O3"
    # a store at other conditions, or a bundle that cannot match, is refused and the bundle stays as it was
    other = str(tmp_path / "other.zarr")
    assert cli.main(["simulate", "--catalog", str(proto_catalog), "--store", other, "--executor", "serial",
                     "--like-model", str(tmp_path / "matching"), "--two-theta-step", "0.05"]) == 0
    assert cli.main(["library", str(tmp_path / "matching"), "--store", other]) == 2
    assert "other instrument conditions" in capsys.readouterr().err
    back = str(tmp_path / "back.zarr")  # what the error says to do: retarget it, here to the model's conditions
    assert cli.main(["retarget", "--store", other, "--out", back, "--executor", "serial",
                     "--like-model", str(tmp_path / "matching")]) == 0
    assert cli.main(["library", str(tmp_path / "matching"), "--store", back, "--add"]) == 0
    assert "(0 added)" in capsys.readouterr().out  # the prototypes are there already
    assert cli.main(["library", str(tmp_path / "cli-balanced"), "--store", proto_store]) == 2
    assert "no line positions in Q" in capsys.readouterr().err
    assert len(bundle.load_bundle(tmp_path / "matching").library) == len(b.library)
    # the report's measured table scores the same way (xrdbatch.score), search-match included
    from xrdbatch import report

    csv = tmp_path / "labels.csv"
    pd.DataFrame([{"file": "Mn2O3.xy", "dataset": "autoxrd", "crystal_system": "cubic", "space_group": 206},
                  {"file": "MnO.xy", "dataset": "autoxrd", "crystal_system": "cubic", "space_group": 225}]
                 ).to_csv(csv, index=False)
    per_file, summary = report.evaluate_measured(bundle.load_bundle(tmp_path / "matching"), csv, spectra,
                                                 shift_average_deg=0.06)
    assert per_file["matched"].all() and per_file["space_group_top1_hit"].all() and (per_file["error"] == "").all()
    assert summary.set_index("dataset").loc["all", "matched"] == 1.0
    with pytest.raises(ValueError, match="no search-match library"):
        report.evaluate_measured(bundle.load_bundle(tmp_path / "no-lib"), csv, spectra, search_match=True)


def test_crystal_system_model_kinds():
    assert train.crystal_system_params("extra_trees") is None  # the default forest
    assert train.crystal_system_params("boosting") is train.BOOSTED_CRYSTAL_SYSTEM
    with pytest.raises(ValueError, match="unknown crystal-system model 'gbm'; known: extra_trees, boosting"):
        train.crystal_system_params("gbm")
    with pytest.raises(ValueError, match="classifiers only"):
        train.CrystalForest(lattice=train.BOOSTED_CRYSTAL_SYSTEM)._forest("regressor", "lattice", 100)
    with pytest.raises(ValueError, match="takes 'balanced'"):
        train.BoostingParams(class_weight="balanced_subsample")
    from xrdbatch import cli  # its parser lists the kinds without importing the training code

    train_parser = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    flag = next(a for a in train_parser._actions if "--crystal-system-model" in a.option_strings)
    assert tuple(flag.choices) == train.CRYSTAL_SYSTEM_MODELS


@pytest.mark.parametrize("mix", train.CLASS_MIXES)
def test_class_mixes_are_distributions_over_crystal_systems(mix):
    shares = train.class_mix_shares(mix)
    if mix == "catalog":
        assert shares is None
        return
    assert set(shares) <= set(CRYSTAL_SYSTEMS) and abs(sum(shares.values()) - 1) < 1e-9
    assert min(shares.values()) >= 0


def test_resampling_follows_the_mix_and_keeps_the_size():
    systems = np.array(["cubic"] * 700 + ["monoclinic"] * 200 + ["triclinic"] * 100)
    idx = train.resample_to_mix(systems, "mineral", random_state=1)
    shares = train.class_mix_shares("mineral")
    present = {s: shares[s] for s in ("cubic", "monoclinic", "triclinic")}
    total = sum(present.values())
    got = pd.Series(systems[idx]).value_counts(normalize=True)
    for s, v in present.items():
        assert abs(got[s] - v / total) < 0.01
    assert abs(len(idx) - len(systems)) <= 3
    np.testing.assert_array_equal(train.resample_to_mix(systems, "catalog"), np.arange(len(systems)))
    with pytest.raises(ValueError, match="valid: catalog, balanced"):
        train.resample_to_mix(systems, "minerals")


def test_system_exponent_spreads_the_ranking_over_systems(data):
    X, labels = data
    model = train.CrystalForest(SMALL, SMALL, fit_lattice=False).fit(X, labels.crystal_system,
                                                                      labels.spacegroup_number)
    from xrdbatch.crystal import crystal_system_of

    def n_systems_in_top5(exponent):
        model.system_exponent = exponent
        groups, proba = model.space_group_proba(X[:200])
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        top = groups[np.argsort(-proba, axis=1)[:, :5]]
        return np.mean([len({crystal_system_of(int(g)) for g in row}) for row in top])

    assert n_systems_in_top5(0.0) >= n_systems_in_top5(1.0)
    model.system_exponent = 1.0
    top1 = model.predict_frame(X[:50], top_k=1)
    assert (top1["space_group_1"].map(crystal_system_of) == top1["crystal_system"]).mean() > 0.9


def test_class_mix_is_recorded_and_resamples_the_fitted_rows(data, tmp_path):
    X, labels = data
    params = {"crystal_system": SMALL, "space_group": SMALL, "lattice": SMALL, "system_exponent": 0.5}
    lines = []
    manifest = train.train_arrays(X, labels, tmp_path / "model", feature_set="rich",
                                  feature_names=features.feature_names("rich"), peak_params={},
                                  conditions=Conditions(), class_mix="balanced", model_params=params,
                                  log=lines.append)
    assert manifest["training"]["class_mix"] == "balanced"
    assert any("class mix balanced" in line for line in lines)
    from xrdbatch import bundle

    assert bundle.load_bundle(tmp_path / "model").model.system_exponent == 0.5


def test_space_group_forests_can_learn_from_a_subset_of_rows(data):
    X, labels = data
    systems = labels.crystal_system.to_numpy()
    keep = systems != "cubic"  # e.g. only the real structures; here: every row except the cubic ones
    model = train.CrystalForest(SMALL, SMALL, fit_lattice=False).fit(X, systems, labels.spacegroup_number,
                                                                      space_group_rows=keep)
    # a system without any kept row still gets a forest, from all its rows (listed as a fallback)
    assert model.space_group_fallback_ == ["cubic"]
    cubic = set(labels.spacegroup_number[systems == "cubic"])
    assert set(model.space_group_models_["cubic"].classes_) == cubic
    groups, proba = model.space_group_proba(X[:40])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def _origins(labels):
    """Every third row synthetic, the others real (a made-up mix for the weighting tests)."""
    return np.where(np.arange(len(labels)) % 3 == 0, "synthetic", "real").astype(object)


def test_synthetic_weight_zero_ignores_synthetic_rows_for_space_groups(data):
    X, labels = data
    systems, sg = labels.crystal_system.to_numpy(), labels.spacegroup_number.to_numpy()
    origin = _origins(labels)
    sg = np.where(origin == "synthetic", sg, np.where(systems == "cubic", 225, sg))  # real cubic rows: only 225
    w0 = train.CrystalForest(SMALL, SMALL, fit_lattice=False, random_state=1).fit(
        X, systems, sg, space_group_weight=train.origin_weights(origin, 0.0))
    real = origin == "real"
    only_real = train.CrystalForest(SMALL, SMALL, fit_lattice=False, random_state=1)
    only_real.crystal_system_model_ = w0.crystal_system_model_
    only_real.fit_space_groups(X[real], systems[real], sg[real])
    assert w0.space_group_fallback_ == []
    assert w0.space_group_models_["cubic"].classes_.tolist() == [225]  # synthetic cubic groups never learnt
    for system, forest in w0.space_group_models_.items():
        assert forest.classes_.tolist() == only_real.space_group_models_[system].classes_.tolist()
    np.testing.assert_array_equal(w0.space_group_proba(X[:200])[1], only_real.space_group_proba(X[:200])[1])
    # the crystal-system forest learns from every row whatever the weight
    assert w0.crystal_system_model_.estimators_[0].tree_.n_node_samples[0] == len(X)


def test_fractional_synthetic_weight_is_a_sample_weight(data):
    X, labels = data
    systems, sg = labels.crystal_system.to_numpy(), labels.spacegroup_number.to_numpy()
    origin = _origins(labels)

    def fitted(weight):
        model = train.CrystalForest(SMALL, SMALL, fit_lattice=False, random_state=2)
        model.fit_seconds_ = {}
        return model.fit_space_groups(X, systems, sg, weight)

    plain, ones = fitted(None), fitted(train.origin_weights(origin, 1.0))
    part = fitted(train.origin_weights(origin, 0.1))
    for system in plain.space_group_models_:
        a, b, c = (m.space_group_models_[system].predict_proba(X[:100]) for m in (plain, ones, part))
        np.testing.assert_array_equal(a, b)  # weight 1 is the unweighted fit
        assert b.shape == c.shape  # 0.1 keeps every synthetic row's groups as classes ...
    assert any(not np.array_equal(plain.space_group_models_[s].predict_proba(X[:100]),
                                  part.space_group_models_[s].predict_proba(X[:100]))
               for s in plain.space_group_models_)  # ... but learns less from them
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train.origin_weights(origin, 1.5)
    with pytest.raises(ValueError, match="finite values >= 0"):
        fitted(-np.ones(len(X)))


def test_row_origins_from_catalog_ids_and_sources():
    got = train.row_origins(["a", "a~sub2", "b", "c", "d"],
                            ["/data/cifs", "/data/cifs", "synthetic:100", "builtin:prototypes", float("nan")])
    assert got.tolist() == ["real", "variant", "synthetic", "real", "unknown"]


def test_bundle_records_the_space_group_weight_and_origins(data, tmp_path):
    from xrdbatch import bundle

    X, labels = data
    labels = labels.assign(origin=_origins(labels))
    params = {"crystal_system": SMALL, "space_group": SMALL, "lattice": SMALL}
    lines = []
    manifest = train.train_arrays(X, labels, tmp_path / "model", feature_set="rich",
                                  feature_names=features.feature_names("rich"), peak_params={},
                                  conditions=Conditions(), model_params=params, space_group_synthetic_weight=0.3,
                                  log=lines.append)
    tr = manifest["training"]
    assert tr["space_group_synthetic_weight"] == 0.3 and tr["space_group_fallback"] == []
    assert sum(tr["origins"].values()) == tr["n_train"] and set(tr["origins"]) == {"real", "synthetic"}
    assert any("weigh synthetic rows 0.3" in line for line in lines)
    by_origin = manifest["metrics"]["space_group_by_origin"]  # held-out space groups per origin
    assert set(by_origin) == {"real", "synthetic"} and sum(v["n"] for v in by_origin.values()) == tr["n_test"]
    assert bundle.load_bundle(tmp_path / "model").manifest["training"]["space_group_synthetic_weight"] == 0.3
    # labels without origins (arrays from elsewhere): every row is "unknown" and weighs 1
    manifest = train.train_arrays(X, labels.drop(columns="origin"), tmp_path / "model2", feature_set="rich",
                                  feature_names=features.feature_names("rich"), peak_params={},
                                  conditions=Conditions(), model_params=params, space_group_synthetic_weight=0.0,
                                  log=lambda *_: None)
    assert set(manifest["training"]["origins"]) == {"unknown"} and manifest["training"]["space_group_fallback"] == []


def test_store_origins_come_from_the_catalog_the_store_was_made_from(tmp_path):
    import xarray as xr
    from _catalogs import small_catalog

    from xrdbatch import sources

    table = small_catalog(6)
    table["source"] = ["/cifs", "/cifs", "synthetic:4", "synthetic:4", "/cifs", "/cifs"]
    table.loc[1, "id"] = table.loc[0, "id"] + train.VARIANT_ID_MARK + "1"
    path = str(tmp_path / "catalog.parquet")
    table.to_parquet(path)
    ds = xr.Dataset(attrs={"catalog_path": path, "catalog_sha256": sources.catalog_hash(path)})
    ids = table["id"].to_numpy()[::-1]  # store rows in any order
    origin, where = train.store_origins(ds, ids)
    assert origin.tolist() == ["real", "real", "synthetic", "synthetic", "variant", "real"] and where == path
    table.iloc[:3].to_parquet(path)  # the catalog changed since the store was made: no guessing
    origin, where = train.store_origins(ds, ids)
    assert set(origin) == {"unknown"} and "missing or changed" in where

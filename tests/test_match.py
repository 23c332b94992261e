"""xrdbatch.match: a measured-like pattern of a library structure finds it; a structure outside the library does
not take a confident match; the sorted-line search scores exactly as a direct comparison; a confident match answers
the prediction (system, space group first, lattice) through CrystalForest.predict_frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import nacl
from xrdbatch import augment, features, match, simulate as sim, train
from xrdbatch.conditions import Conditions
from xrdbatch.crystal import Crystal

FSET = "measured"
COND = Conditions.from_radiation("CuKa12", two_theta_min_deg=5.0, two_theta_max_deg=89.99, two_theta_step_deg=0.01)


def _crystals():
    """NaCl and a few three-atom cells of other shapes (labels: distinct per cell, consistent per shape)."""
    out = [(nacl(), "cubic", 225)]
    frac = np.array([[0.1, 0.2, 0.3], [0.6, 0.1, 0.8], [0.3, 0.7, 0.15]])
    for i, (x, y, z) in enumerate([(4.1, 5.3, 7.7), (3.9, 6.2, 8.4), (5.0, 5.9, 6.8), (4.6, 7.1, 9.3)]):
        out.append((Crystal(np.diag([x, y, z]), ("Ca", "O", "Si"), frac, np.ones(3), np.full(3, 0.5)),
                    "orthorhombic", 16 + i))
    for i, (x, y, z, beta) in enumerate([(5.2, 6.1, 7.3, 101.0), (4.4, 8.0, 6.6, 95.0)]):
        b = np.radians(beta)
        lat = np.array([[x, 0, 0], [0, y, 0], [z * np.cos(b), 0, z * np.sin(b)]])
        out.append((Crystal(lat, ("Ca", "O", "Si"), frac, np.ones(3), np.full(3, 0.5)), "monoclinic", 3 + i))
    return out


@pytest.fixture(scope="module")
def library_and_patterns():
    crystals = _crystals()
    refls = [sim.reflections(c, COND.d_min_angstrom * 0.98) for c, _, _ in crystals]
    tt = COND.two_theta_deg()
    peak = {"height_rel": 0.04}
    X_ideal = features.extract(tt, sim.patterns(refls, COND), COND.wavelength_angstrom, FSET, **peak)
    # measurement-like copies without lattice strain: the same crystals, measured
    noisy, _ = augment.measured_patterns(refls, COND, params=augment.AugmentParams(strain_rel=0.0), seed=3)
    peaks = features.find_peaks(tt, noisy, COND.wavelength_angstrom, **peak)
    X_meas = features.from_peaks(peaks, FSET)
    # zero-shifted copies of the peak lists (the augmentation's zero error is up to 0.06 deg)
    views = features.shifted_views(peaks, FSET, COND.wavelength_angstrom, features.shift_offsets(0.06, 7))
    labels = pd.DataFrame({"crystal_system": [s for _, s, _ in crystals], "space_group": [g for _, _, g in crystals]})
    return X_ideal, X_meas, views, labels, features.feature_names(FSET)


def test_a_measured_library_structure_finds_itself(library_and_patterns):
    X_ideal, X_meas, views, labels, names = library_and_patterns
    lib = match.ReferenceLibrary.from_features(X_ideal, names, labels)
    found = match.best_matches(lib, X_meas, names, views=views)
    assert len(found) == len(labels)
    confident = found["match_score"].to_numpy() >= match.THRESHOLD
    assert confident.mean() >= 0.7, found[["match_score", "match_space_group"]]
    # the views can only raise a row's score
    plain = match.best_matches(lib, X_meas, names)
    assert (found["match_score"].to_numpy() >= plain["match_score"].to_numpy()).all()
    # a confident match is the structure itself (or one with the same lines and symmetry)
    same = found["match_space_group"].to_numpy()[confident].astype(int) == labels["space_group"].to_numpy()[confident]
    assert same.all()
    # the ideal patterns match themselves perfectly
    self_found = match.best_matches(lib, X_ideal, names)
    assert (self_found["match_score"] == 1.0).all()
    assert (self_found["match_index"].to_numpy() >= 0).all()


def test_a_structure_outside_the_library_takes_no_confident_match(library_and_patterns):
    X_ideal, X_meas, views, labels, names = library_and_patterns
    for leave in range(len(labels)):
        keep = np.flatnonzero(np.arange(len(labels)) != leave)
        lib = match.ReferenceLibrary.from_features(X_ideal, names, labels).subset(keep)
        found = match.best_matches(lib, X_meas[leave:leave + 1], names, views=[V[leave:leave + 1] for V in views])
        if found["match_score"].iloc[0] >= match.THRESHOLD:  # only a structure with the same lines may match
            assert int(found["match_space_group"].iloc[0]) == labels["space_group"].iloc[leave]


def _direct(library, X, names, tolerance=match.TOLERANCE):
    """The definition of the score, pattern line by entry line (what the sorted-line search must reproduce)."""
    lines = match._lines(X, names)
    strong = lines[:, -len(match._STRONG):]
    out = np.zeros((len(X), len(library)))
    for i in range(len(X)):
        s, m = strong[i][~np.isnan(strong[i])], lines[i][~np.isnan(lines[i])]
        for e in range(len(library)):
            el, es = library.lines[e][~np.isnan(library.lines[e])], library.strong[e][~np.isnan(library.strong[e])]
            fwd = np.mean([np.any(np.abs(el - q) / q < tolerance) for q in s]) if len(s) else 0.0
            es = es[es <= m.max() * (1 + tolerance)] if len(m) else es[:0]
            rev = np.mean([np.any(np.abs(x - m) / x < tolerance) for x in es]) if len(es) else 0.0
            out[i, e] = min(fwd, rev) if len(s) else 0.0
    return out


def test_sorted_line_search_scores_as_the_direct_comparison(library_and_patterns):
    """Library: the test crystals plus copies with every line scaled by 0.2-1 % (lines at and around the tolerance);
    rows: measured-like patterns and the ideal ones. Best score and entry as the definition gives them."""
    X_ideal, X_meas, views, labels, names = library_and_patterns
    rng = np.random.default_rng(1)
    q_cols = [names.index(c) for c in match._ALL]
    copies = []
    for scale in (1.002, 0.996, 1.0041, 1.01):
        X = X_ideal.copy()
        X[:, q_cols] = np.where(X[:, q_cols] > 0, X[:, q_cols] * scale, X[:, q_cols])
        copies.append(X)
    X_lib = np.concatenate([X_ideal, *copies])
    lib_labels = pd.concat([labels] * 5, ignore_index=True)
    lib_labels["space_group"] = rng.permutation(np.arange(1, len(lib_labels) + 1))  # no symmetry ties
    lib = match.ReferenceLibrary.from_features(X_lib, names, lib_labels)
    far = X_ideal.copy()  # lines 3 % off every entry's: matches nothing at MIN_SCORE
    far[:, q_cols] = np.where(far[:, q_cols] > 0, far[:, q_cols] * 1.03, far[:, q_cols])
    rows = np.concatenate([X_meas, X_ideal, *views[:2], far])
    found = match.best_matches(lib, rows, names, chunk=3, min_score=0)  # every entry scored in full
    direct = _direct(lib, rows, names)
    got = found["match_index"].to_numpy()
    # the reported entry scores as the definition says, within MARGIN of the best (more symmetric on a near tie)
    np.testing.assert_allclose(found["match_score"], np.where(got >= 0, direct[np.arange(len(rows)), got], 0))
    assert (found["match_score"] >= direct.max(axis=1) - match.MARGIN).all()
    assert (found["match_score"] == direct.max(axis=1)).mean() > 0.9
    # forward and reverse of the reported entry are the definition's (score = their minimum)
    np.testing.assert_allclose(found["match_score"], np.minimum(found["match_forward"], found["match_reverse"]))
    # the product path scores in full only the entries that can reach MIN_SCORE: the same answer from there up,
    # no match below it (both kinds of rows are present)
    fast = match.best_matches(lib, rows, names, chunk=3)
    high = direct.max(axis=1) >= match.MIN_SCORE
    assert 0 < high.sum() < len(rows)
    pd.testing.assert_frame_equal(fast[high], found[high])
    assert (fast["match_index"][~high] == -1).all() and (fast["match_score"][~high] == 0).all()


def test_library_table_round_trip(library_and_patterns):
    X_ideal, X_meas, views, labels, names = library_and_patterns
    lib = match.ReferenceLibrary.from_features(X_ideal, names, labels.assign(id=[f"s{i}" for i in range(len(labels))]))
    again = match.ReferenceLibrary.from_frame(lib.to_frame())
    np.testing.assert_array_equal(again.lines, lib.lines.astype(np.float32))
    assert again.labels.equals(lib.labels)
    a, b = (match.best_matches(x, X_meas, names, views=views) for x in (lib, again))
    np.testing.assert_allclose(a["match_score"], b["match_score"])
    with pytest.raises(ValueError, match="line columns"):
        match.ReferenceLibrary.from_frame(lib.to_frame().drop(columns=["q_3"]))


def test_a_confident_match_answers_the_prediction():
    """predict_frame(matches=): matched system, matched group first (the model's ranking after it, no duplicate),
    the entry's lattice, the model's probabilities of what is shown; rows below the threshold as without matches."""
    X, labels = train.synthetic_lattice_features(800, "measured", seed=5)
    small = train.ForestParams(n_estimators=6, min_samples_leaf=2)
    model = train.CrystalForest(crystal_system=small, space_group=small, lattice=small, random_state=0, n_jobs=1)
    model.fit(X, labels["crystal_system"].to_numpy(), labels["spacegroup_number"].to_numpy(),
              labels[list(train.LATTICE_NAMES)].to_numpy(dtype=float))
    plain = model.predict_frame(X[:3], top_k=5)
    third = int(plain.loc[2, "space_group_3"])
    matches = pd.DataFrame({"match_score": [0.9, 0.5, 1.0], "match_index": [4, 1, 7],
                            "match_crystal_system": ["orthorhombic", "triclinic", "cubic"],
                            "match_space_group": [62, 2, third], "match_a": [5.0, 1.0, 4.2],
                            "match_b": [6.0, 1.0, 4.2], "match_c": [7.0, 1.0, 4.2], "match_alpha": [90.0] * 3,
                            "match_beta": [90.0] * 3, "match_gamma": [90.0] * 3})
    out = model.predict_frame(X[:3], top_k=5, matches=matches)
    assert out["matched"].tolist() == [True, False, True]
    assert out.loc[0, "crystal_system"] == "orthorhombic" and out.loc[0, "space_group_1"] == 62
    assert out.loc[0, ["a", "b", "c"]].tolist() == [5.0, 6.0, 7.0]
    proba = model.predict_proba(X[:1])[0]
    assert out.loc[0, "crystal_system_prob"] == pytest.approx(proba[list(model.classes_).index("orthorhombic")])
    rest = [g for g in plain.loc[0, [f"space_group_{k}" for k in range(1, 6)]] if g != 62][:4]
    assert out.loc[0, [f"space_group_{k}" for k in range(2, 6)]].tolist() == rest
    assert out.loc[1].drop("matched").equals(plain.loc[1])  # below the threshold: the model's answer
    # a matched group already in the ranking moves up instead of appearing twice, its probability with it
    ranked = out.loc[2, [f"space_group_{k}" for k in range(1, 6)]].tolist()
    assert ranked[0] == third and len(set(ranked)) == 5
    assert out.loc[2, "space_group_prob_1"] == pytest.approx(plain.loc[2, "space_group_prob_3"])
    assert out.loc[2, "crystal_system"] == "cubic"
    with pytest.raises(ValueError, match="3 rows but 1 matches"):
        model.predict_frame(X[:3], matches=matches.iloc[:1])


def test_library_needs_the_q_columns_and_the_labels():
    names = features.feature_names("seed11")
    with pytest.raises(ValueError, match="feature columns"):
        match.ReferenceLibrary.from_features(np.zeros((2, len(names))), names,
                                             pd.DataFrame({"crystal_system": ["cubic"] * 2, "space_group": [225] * 2}))
    names = features.feature_names(FSET)
    with pytest.raises(ValueError, match="'space_group' column"):
        match.ReferenceLibrary.from_features(np.zeros((2, len(names))), names,
                                             pd.DataFrame({"crystal_system": ["a"] * 2}))
    empty = match.ReferenceLibrary.from_features(np.zeros((0, len(names))), names,
                                                 pd.DataFrame({"crystal_system": [], "space_group": []}))
    found = match.best_matches(empty, np.full((3, len(names)), features.MISSING), names)
    assert (found["match_index"] == -1).all() and (found["match_score"] == 0).all()


def test_equally_good_entries_report_the_most_symmetric(library_and_patterns):
    """The same lines under a P1 and a cubic label (pyrite and its P1 description): the cubic entry is reported."""
    X_ideal, X_meas, views, labels, names = library_and_patterns
    X = np.concatenate([X_ideal[:1], X_ideal[:1]])
    for order in ([1, 225], [225, 1]):
        lib = match.ReferenceLibrary.from_features(
            X, names, pd.DataFrame({"crystal_system": ["triclinic" if g == 1 else "cubic" for g in order],
                                    "space_group": order}))
        found = match.best_matches(lib, X_meas[:1], names, views=[V[:1] for V in views])
        assert int(found["match_space_group"].iloc[0]) == 225 and found["match_crystal_system"].iloc[0] == "cubic"

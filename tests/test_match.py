"""xrdbatch.match: a measured-like pattern of a library structure finds it; a structure outside the library does
not take a confident match; apply_matches reorders the space-group ranking and sets the crystal system."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import nacl
from xrdbatch import augment, features, match, simulate as sim
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


def test_apply_matches_reorders_the_ranking_and_sets_the_system():
    frame = pd.DataFrame({"crystal_system": ["cubic", "monoclinic"], "space_group_1": [225, 14],
                          "space_group_2": [221, 15], "space_group_3": [229, 2]})
    matches = pd.DataFrame({"match_score": [0.9, 0.5], "match_index": [3, 1],
                            "match_crystal_system": ["orthorhombic", "triclinic"], "match_space_group": [62.0, 2.0]})
    out = match.apply_matches(frame, matches)
    assert out["matched"].tolist() == [True, False]
    assert out.loc[0, ["crystal_system", "space_group_1", "space_group_2", "space_group_3"]].tolist() == [
        "orthorhombic", 62, 225, 221]
    assert out.loc[1].drop("matched").tolist() == frame.loc[1].tolist()  # below the threshold: unchanged
    # a matched group already in the ranking moves up instead of appearing twice
    out = match.apply_matches(frame, matches.assign(match_space_group=[229.0, 2.0]))
    assert out.loc[0, ["space_group_1", "space_group_2", "space_group_3"]].tolist() == [229, 225, 221]
    with pytest.raises(ValueError, match="2 predictions but 1 matches"):
        match.apply_matches(frame, matches.iloc[:1])


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

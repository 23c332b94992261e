"""Tests of xrdbatch.synthetic: reproducibility, physical sense, the prior, the Wyckoff table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xrdbatch import sources, synthetic
from xrdbatch.crystal import CRYSTAL_SYSTEMS, crystal_system_of


@pytest.fixture(scope="module")
def batch():
    """200 synthetic catalog rows (seed 7), made once for the module."""
    return pd.DataFrame(synthetic.rows(0, 200, seed=7, source="synthetic:200"))


def test_record_depends_only_on_seed_and_index():
    a = synthetic.rows(10, 14, seed=3)
    b = synthetic.rows(12, 13, seed=3)[0]
    assert a[2]["sha256"] == b["sha256"] and a[2]["formula"] == b["formula"]
    assert synthetic.rows(10, 11, seed=4)[0]["sha256"] != a[0]["sha256"]
    c1 = synthetic.generate(3, 12).crystal
    assert np.array_equal(c1.frac_coords, synthetic.generate(3, 12).crystal.frac_coords)


def test_rows_are_ok_and_labelled_by_spglib(batch):
    assert (batch.status == "ok").all(), batch.reason[batch.status != "ok"].tolist()
    agree = (batch.spacegroup_number == batch.stated_spacegroup_number).mean()
    assert agree >= 0.97  # drawn space group == spglib's (accidental supergroups are redrawn)
    assert set(batch.crystal_system) <= set(CRYSTAL_SYSTEMS)
    assert (batch.crystal_system == batch.spacegroup_number.map(crystal_system_of)).all()


def test_sizes_volumes_and_distances_are_physical(batch):
    n = batch.n_atoms
    assert 10 <= n.median() <= 40 and n.max() <= synthetic.SIZE_MAX_ATOMS
    vpa = batch.volume / batch.occupancies.map(sum)
    assert 8 <= vpa.median() <= 35 and (vpa.between(4, 150)).mean() >= 0.97
    for row in batch.itertuples():
        crystal = sources.Crystal.from_columns(row._asdict())
        i, _ = sources.close_pairs(np.mod(crystal.frac_coords, 1.0), crystal.lattice, 1.0)
        assert len(i) == 0, (row.formula, row.spacegroup_number)


def test_chemistry_mixes_ionic_and_intermetallic(batch):
    anions = {"O", "F", "Cl", "S", "N", "Se", "Br", "I", "Te"}
    has_anion = batch.symbols.map(lambda s: bool(anions & set(s)))
    assert 0.4 <= has_anion.mean() <= 0.9
    n_elements = batch.symbols.map(lambda s: len(set(s)))
    assert n_elements.median() in (2, 3, 4) and n_elements.max() <= 5


def test_prior_shapes_the_space_group_distribution(batch):
    prior = synthetic.prior_probabilities("icsd")
    want = pd.Series(prior, index=range(1, 231)).groupby(lambda n: crystal_system_of(n)).sum()
    got = batch.stated_spacegroup_number.map(crystal_system_of).value_counts(normalize=True)
    for system in CRYSTAL_SYSTEMS:
        assert abs(got.get(system, 0.0) - want[system]) < 0.1, system
    uniform = pd.DataFrame(synthetic.rows(0, 60, seed=1, prior="uniform"))
    assert uniform.stated_spacegroup_number.nunique() > 40


def test_priors_are_the_shared_counts():
    from conftest import shared_path
    import json

    counts = json.loads((shared_path("structures", "space_group_priors") / "space_group_counts.json").read_text())
    icsd = np.array([counts["icsd_2025"].get(str(i), 0) for i in range(1, 231)], dtype=float)
    assert np.allclose(synthetic.prior_probabilities("icsd"), icsd / icsd.sum())
    with pytest.raises(ValueError, match="valid: icsd, cod, mp, uniform"):
        synthetic.prior_probabilities("nope")


@settings(max_examples=30, deadline=None)
@given(number=st.integers(1, 230))
def test_wyckoff_table_matches_spglib_database(number):
    import spglib

    hall = next(h for h in range(1, 531) if spglib.get_spacegroup_type(h).number == number)
    ops = spglib.get_symmetry_from_database(hall)
    positions = synthetic.wyckoff_positions(number)
    general = positions[0]
    assert general.dof == 3 and general.multiplicity == len(ops["rotations"])
    assert all(w.multiplicity == len(w.rot) for w in positions)
    assert all(general.multiplicity % w.multiplicity == 0 for w in positions)


def test_ingest_synthetic_source_in_chunks_equals_one_chunk():
    one = sources.ingest(["synthetic:12"], executor="serial", seed=5, batch_size=12)
    chunks = sources.ingest(["synthetic:12"], executor="serial", seed=5, batch_size=5)
    assert one.drop(columns=[]).equals(chunks)
    assert one["id"].is_unique and (one.path.str.startswith("synthetic:seed=5:prior=icsd#")).all()

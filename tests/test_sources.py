"""Tests of xrdbatch.sources: readers, labels, catalog, executors; real structures from ../shared/data."""

from __future__ import annotations

import gzip
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from xrdbatch import sources
from xrdbatch.crystal import CRYSTAL_COLUMNS, CRYSTAL_SYSTEMS, Crystal

NACL_CIF = """data_NaCl
_symmetry_space_group_name_H-M 'F m -3 m'
_symmetry_Int_Tables_number 225
_cell_length_a 5.6402
_cell_length_b 5.6402
_cell_length_c 5.6402
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
_atom_site_B_iso_or_equiv
Na1 Na+ 0 0 0 1 1.0
Cl1 Cl- 0.5 0.5 0.5 1 1.2
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _one(df, name):
    rows = df[df["path"].str.endswith(name)]
    assert len(rows) == 1, (name, rows[["path", "status", "reason"]])
    return rows.iloc[0]


# ------------------------------------------------------------------------------ small, exact ----
def test_file_type_registry():
    assert sources.file_type("x/1000041.CIF") == "cif"
    assert sources.file_type("CONTCAR") == "poscar"
    assert sources.file_type("POSCAR-225-2") == "poscar"
    assert sources.file_type("mp.json.gz") == "json"
    assert sources.file_type("README.md") == "unknown"
    assert set(sources.FILE_READERS) >= {"cif", "poscar", "json", "unknown"}


def test_nacl_labels_and_crystal_columns(tmp_path):
    _write(tmp_path, "nacl.cif", NACL_CIF)
    df = sources.ingest([str(tmp_path)], executor="serial")
    row = df.iloc[0]
    assert row.status == "ok" and row.reason == ""
    assert (row.spacegroup_number, row.spacegroup_symbol, row.crystal_system) == (225, "Fm-3m", "cubic")
    assert row.stated_spacegroup_number == 225 and row.stated_spacegroup_symbol == "F m -3 m"
    assert row.formula == "NaCl" and row.n_atoms == 8
    assert row.a == pytest.approx(5.6402) and row.alpha == pytest.approx(90.0)
    assert row.volume == pytest.approx(5.6402**3)
    assert row.structure_type == "AB_225"
    crystal = Crystal.from_columns(row)
    assert crystal.n_entries == 8 and sorted(set(crystal.symbols)) == ["Cl", "Na"]
    assert sorted(set(np.round(crystal.b_iso, 6))) == [1.0, 1.2]  # B taken from the file


def test_partial_occupancy_is_kept(tmp_path):
    text = NACL_CIF.replace("Na1 Na+ 0 0 0 1 1.0", "Na1 Na+ 0 0 0 0.7 1.0\nK1 K+ 0 0 0 0.3 1.0")
    _write(tmp_path, "mixed.cif", text)
    row = sources.ingest([str(tmp_path)], executor="serial").iloc[0]
    assert row.status == "ok", row.reason
    crystal = Crystal.from_columns(row)
    assert crystal.n_entries == 12 and row.n_atoms == 8  # 4 mixed sites = 8 entries, + 4 Cl
    assert sorted(set(np.round(crystal.occupancies, 3))) == [0.3, 0.7, 1.0]
    assert row.spacegroup_number == 225
    assert row.formula == "K1.2Na2.8Cl4"  # as pymatgen: non-integer amounts are not reduced


def test_bad_records_become_rows_with_specific_reasons(tmp_path):
    _write(tmp_path, "empty.cif", "")
    _write(tmp_path, "syntax.cif", "data_x\n_cell_length_a 'unterminated\n")
    _write(tmp_path, "nocoords.cif", NACL_CIF.replace("Na1 Na+ 0 0 0 1 1.0", "Na1 Na+ ? ? ? 1 1.0"))
    _write(tmp_path, "nocell.cif", re.sub(r"_cell_length_a 5.6402\n", "", NACL_CIF))
    _write(tmp_path, "overlap.cif", NACL_CIF.replace("Cl1 Cl- 0.5 0.5 0.5 1 1.2", "Cl1 Cl- 0.01 0 0 1 1.2"))
    _write(tmp_path, "huge.cif", NACL_CIF.replace("5.6402", "256.402"))
    _write(tmp_path, "tiny.cif", NACL_CIF.replace("5.6402", "1.2"))
    _write(tmp_path, "element.cif", NACL_CIF.replace("Cl1 Cl-", "Xx1 Xx"))
    _write(tmp_path, "notes.txt", "not a structure")
    _write(tmp_path, "copy/nacl.cif", NACL_CIF)
    _write(tmp_path, "nacl.cif", NACL_CIF)
    df = sources.ingest([str(tmp_path)], executor="serial")
    assert len(df) == 11 and df["id"].is_unique
    assert _one(df, "empty.cif").reason == "no data block (empty CIF)"
    assert _one(df, "syntax.cif").reason.startswith("CIF syntax error")
    assert _one(df, "nocoords.cif").reason.startswith("missing coordinates for 1 site(s) (Na1)")
    assert "unit cell" in _one(df, "nocell.cif").reason
    assert _one(df, "overlap.cif").reason.startswith("overlapping atoms: ")
    assert _one(df, "huge.cif").reason.startswith("absurd cell: ")
    assert "angstrom^3 per atom" in _one(df, "tiny.cif").reason or "overlapping" in _one(df, "tiny.cif").reason
    assert "unknown element" in _one(df, "element.cif").reason
    notes = _one(df, "notes.txt")
    assert notes.status == "skipped" and notes.reason.startswith("not a structure file")
    orig = df[df["path"] == str(tmp_path / "nacl.cif")].iloc[0]  # walk order: a folder's files, then subfolders
    copy = df[df["path"] == str(tmp_path / "copy" / "nacl.cif")].iloc[0]
    assert (orig.status, copy.status) == ("ok", "skipped")
    assert copy.reason == f"duplicate of {orig.id} ({orig.path})"
    kept = sources.ingest([str(tmp_path)], executor="serial", dedupe=False)
    assert (kept["path"].str.endswith("nacl.cif") & (kept["status"] == "ok")).sum() == 2
    bad = df[df.status != "ok"]
    assert (bad["reason"] != "").all()
    for col in CRYSTAL_COLUMNS:  # crystal columns only for ok rows
        assert bad[col].map(len).eq(0).all()


def test_max_atoms_is_a_skip(tmp_path):
    _write(tmp_path, "nacl.cif", NACL_CIF)
    row = sources.ingest([str(tmp_path)], executor="serial", max_atoms=4).iloc[0]
    assert row.status == "skipped" and row.reason == "8 atoms in the cell, above the limit max_atoms=4"


def test_poscar_vasp4_comments_vasp5_and_missing_species(tmp_path):
    cell = "1.0\n4.0 0 0\n0 4.0 0\n0 0 4.0\n"
    _write(tmp_path, "POSCAR-221", "CsCl\n" + cell + "1 1\nDirect\n0 0 0 # Cs1\n0.5 0.5 0.5 # Cl1\n")
    _write(tmp_path, "v5/CONTCAR", "x\n" + cell + "Cs Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n")
    _write(tmp_path, "nospecies/POSCAR", "x\n" + cell + "1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n")
    _write(tmp_path, "cart.vasp", "x\n" + cell + "Cs Cl\n1 1\nCartesian\n0 0 0\n2 2 2\n")
    df = sources.ingest([str(tmp_path)], executor="serial", dedupe=False)
    for name in ("POSCAR-221", "v5/CONTCAR", "cart.vasp"):
        row = _one(df, name)
        assert (row.status, row.spacegroup_number, row.formula) == ("ok", 221, "CsCl"), (name, row.reason)
    assert _one(df, "POSCAR-221").stated_spacegroup_number == 221
    assert _one(df, "nospecies/POSCAR").reason.startswith("VASP4 POSCAR without species")


def test_pymatgen_json_structures_and_entries(tmp_path):
    from pymatgen.core import Lattice, Structure
    from pymatgen.entries.computed_entries import ComputedStructureEntry
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    rutile = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"],
                                       [[0, 0, 0], [0.305, 0.305, 0]])
    entry = ComputedStructureEntry(rutile, -10.0, entry_id="mp-2657")
    (tmp_path / "list.json").write_text(json.dumps([nacl.as_dict(), entry.as_dict()]))
    with gzip.open(tmp_path / "one.json.gz", "wt") as fh:
        json.dump({"material_id": "mp-22862", "structure": nacl.as_dict(),
                   "symmetry": {"number": 225, "symbol": "Fm-3m"}}, fh)
    (tmp_path / "junk.json").write_text('{"not": "a structure"}')
    df = sources.ingest([str(tmp_path)], executor="serial", dedupe=False)
    ok = df[df.status == "ok"]
    assert len(ok) == 3 and set(ok.formula) == {"NaCl", "TiO2"}
    for _, row in ok.iterrows():
        ref = SpacegroupAnalyzer(Crystal.from_columns(row).to_structure(), symprec=1e-3)
        assert row.spacegroup_number == ref.get_space_group_number()
    assert _one(df, "one.json.gz").stated_spacegroup_number == 225
    assert _one(df, "junk.json").reason.startswith("JSON holds no structure records")


# ------------------------------------------------------------------------ pure helpers (hypothesis) ----
@settings(max_examples=40, deadline=None)
@given(number=st.integers(1, 230), xyz=st.tuples(*[st.floats(0, 1, exclude_max=True)] * 3))
def test_expanded_orbit_is_invariant_under_its_group(number, xyz):
    import gemmi

    ops = gemmi.find_spacegroup_by_number(number).operations()
    rot, tran = sources._ops_from_strings(tuple(op.triplet() for op in ops))
    lattice = np.diag([10.0, 11.0, 12.0]) if number >= 75 else np.diag([9.0, 10.0, 11.0])
    if 143 <= number <= 194:
        lattice = np.array([[10.0, 0, 0], [-5.0, 8.660254, 0], [0, 0, 12.0]])
    pos, site = sources.expand_sites(np.array([xyz]), rot, tran, lattice)
    assert (site == 0).all() and len(pos) <= len(rot) and len(rot) % len(pos) == 0
    images = np.mod(np.einsum("mij,nj->mni", rot, pos) + tran[:, None, :], 1.0).reshape(-1, 3)
    d = images[:, None, :] - pos[None, :, :]
    d -= np.round(d)
    dist = np.sqrt(((d @ lattice) ** 2).sum(-1)).min(axis=1)
    assert dist.max() < 2 * sources.SYMMETRY_MERGE_ANGSTROM  # every image is (near) a kept position


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), shear=st.floats(-0.4, 0.4))
def test_close_pairs_matches_brute_force(seed, n, shear):
    rng = np.random.default_rng(seed)
    lattice = np.array([[4.0, 0, 0], [shear * 4.0, 4.5, 0], [0.3, -0.2, 5.0]])
    frac = rng.random((n, 3))
    cutoff = 1.2
    i, j = sources.close_pairs(frac, lattice, cutoff)
    got = {(min(a, b), max(a, b)) for a, b in zip(i, j)}
    shifts = np.array([[a, b, c] for a in range(-2, 3) for b in range(-2, 3) for c in range(-2, 3)])
    want = set()
    for a in range(n):
        for b in range(a + 1, n):
            d = ((frac[b] - frac[a] + shifts) @ lattice)
            if np.sqrt((d**2).sum(1)).min() < cutoff:
                want.add((a, b))
    assert got == want


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 60), n_groups=st.integers(1, 4))
def test_close_pairs_within_groups_matches_brute_force(seed, n, n_groups):
    rng = np.random.default_rng(seed)
    lattice = np.array([[3.0, 0, 0], [-1.4, 3.2, 0], [0.5, 0.4, 3.5]])  # skewed: rounding is not enough
    frac = rng.random((n, 3)) * 1.2 - 0.1  # some coordinates outside [0, 1)
    shifts = np.array([[a, b, c] for a in range(-2, 3) for b in range(-2, 3) for c in range(-2, 3)])
    unsorted = rng.integers(0, n_groups, n)
    for group in (unsorted, np.sort(unsorted)):  # sorted groups take the stop-at-the-group's-end path
        i, j = sources.close_pairs(frac, lattice, 1.0, group=group)
        assert (i < j).all() and (group[i] == group[j]).all()
        got = set(zip(i.tolist(), j.tolist()))
        want = {(a, b) for a in range(n) for b in range(a + 1, n) if group[a] == group[b]
                and np.sqrt((((frac[b] - frac[a] + shifts) @ lattice) ** 2).sum(1)).min() < 1.0}
        assert got == want


@given(st.dictionaries(st.sampled_from(["Fe", "O", "Na", "Cl", "Si", "H"]), st.integers(1, 12), min_size=1))
def test_formula_is_reduced_and_anonymous_formula_sorted(amounts):
    formula = sources._formula({k: float(v) for k, v in amounts.items()})
    counts = [int(c) if c else 1 for c in re.findall(r"[A-Z][a-z]?(\d*)", formula)]
    assert np.gcd.reduce(counts) == 1
    anon = sources._anonymous({k: float(v) for k, v in amounts.items()})
    anon_counts = [int(c) if c else 1 for c in re.findall(r"[A-Z](\d*)", anon)]
    assert anon_counts == sorted(anon_counts) and sorted(anon_counts) == sorted(counts)


# --------------------------------------------------------------------------------- real data ----
@pytest.mark.slow
def test_every_edge_case_file_gets_a_row_with_a_specific_reason():
    root = shared_path("structures", "cif_edge_cases")
    df = sources.ingest([str(root)], executor="processes", n_workers=2, batch_size=128)
    files = {str(p) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert files <= set(df["path"])  # every file accounted for (a multi-block CIF may give several rows)
    assert set(df["status"]) <= set(sources.STATUSES) and df["id"].is_unique
    bad = df[df.status != "ok"]
    assert (bad["reason"].str.len() > 10).all()
    kinds = bad["reason"].map(sources._reason_kind).value_counts()
    assert len(kinds) >= 10  # specific reasons, not one catch-all
    assert not bad["reason"].str.startswith(("reader failed", "labelling failed")).any(), \
        bad.loc[bad["reason"].str.startswith(("reader failed", "labelling failed")), ["path", "reason"]]
    assert (df.status == "ok").sum() > 450  # many files of the corpus are copies of one another


@pytest.mark.slow
def test_aflow_prototype_cifs_agree_with_their_stated_space_group():
    root = shared_path("structures", "aflow_prototypes")
    df = sources.ingest([str(root)], executor="processes", n_workers=2, batch_size=128, dedupe=False)
    cifs = df[df["path"].str.endswith(".cif")]
    ok = cifs[cifs.status == "ok"]
    assert len(ok) >= 1000
    agree = (ok.spacegroup_number == ok.stated_spacegroup_number).mean()
    assert agree >= 0.99, ok.loc[ok.spacegroup_number != ok.stated_spacegroup_number, ["path", "spacegroup_number"]]
    labelled = ok[ok.structure_type.str.match(r".+_[a-zA-Z]+\d+_\d+_")]
    assert len(labelled) == len(ok)  # the AFLOW label from _aflow_proto is the structure type


@pytest.mark.slow
def test_spglib_poscars_agree_with_the_space_group_in_their_name():
    root = shared_path("structures", "spglib_poscars")
    df = sources.ingest([str(root)], executor="serial", dedupe=False, max_atoms=2000)
    ok = df[(df.status == "ok") & (df.stated_spacegroup_number > 0)]
    assert len(ok) >= 300
    assert (ok.spacegroup_number == ok.stated_spacegroup_number).mean() >= 0.99
    poscars = df[df["path"].str.contains("POSCAR")]
    assert set(poscars.status) <= {"ok", "error", "skipped"} and (poscars.reason[poscars.status != "ok"] != "").all()


def test_builtin_prototypes_need_no_download():
    df = sources.ingest(["builtin:prototypes"], executor="serial", dedupe=False)
    assert len(df) == 288 and (df.status == "ok").all()
    assert (df.spacegroup_number == df.stated_spacegroup_number).mean() >= 0.99
    assert df.structure_type.str.contains("_").all() and df.path.str.contains("aflow_prototypes.json.gz#").all()
    assert set(df.crystal_system) == set(CRYSTAL_SYSTEMS)


def test_labels_agree_with_pymatgen_on_reference_phases():
    from pymatgen.core import Composition, Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    root = shared_path("structures", "autoxrd_references")
    files = sorted(root.rglob("*.cif"))[:12]
    df = sources.ingest([str(f) for f in files], executor="serial", dedupe=False)
    for path, row in zip(files, df.itertuples()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen's notes on rounded coordinates
            ref = Structure.from_file(path)
        sga = SpacegroupAnalyzer(ref, symprec=sources.DEFAULT_SYMPREC)
        assert row.status == "ok", row.reason
        assert row.spacegroup_number == sga.get_space_group_number(), path
        # same composition; the text differs only for pymatgen's special names (Li2O2 for LiO, H2O...)
        assert Composition(row.formula).reduced_composition == ref.composition.reduced_composition, path
        assert row.volume == pytest.approx(ref.volume, rel=1e-4)


def test_labellers_agree_on_reference_phases():
    """moyopy (opt-in) against spglib (default): same space group and conventional cell, except where
    spglib misses the stated symmetry (La(OH)3, P6_3/m: spglib gives P2_1/m at symprec 1e-3)."""
    pytest.importorskip("moyopy")
    root = shared_path("structures", "autoxrd_references")
    ref = sources.ingest([str(root)], executor="serial", dedupe=False)
    alt = sources.ingest([str(root)], executor="serial", dedupe=False, labeller="moyopy")
    assert (ref.id.values == alt.id.values).all() and (ref.status.values == alt.status.values).all()
    ok = (ref.status == "ok").values
    same = ok & (ref.spacegroup_number.values == alt.spacegroup_number.values)
    assert same.sum() >= ok.sum() - 1
    for col in ("spacegroup_symbol", "crystal_system", "formula", "n_atoms"):
        assert (ref[col].values[same] == alt[col].values[same]).all(), col
    for col in ("a", "b", "c", "alpha", "beta", "gamma", "volume"):
        np.testing.assert_allclose(alt[col].values[same], ref[col].values[same], rtol=1e-6)
    stated = alt.path.str.extract(r"_(\d+)\.cif$")[0].astype(float).values  # space group in the file name
    assert (alt.spacegroup_number.values[ok] == stated[ok]).mean() >= (ref.spacegroup_number.values[ok] == stated[ok]).mean()


@pytest.mark.slow
def test_moyopy_labeller_agrees_with_the_stated_space_group_of_aflow_cifs():
    pytest.importorskip("moyopy")
    root = shared_path("structures", "aflow_prototypes")
    df = sources.ingest([str(root)], executor="processes", n_workers=2, batch_size=128, dedupe=False,
                        labeller="moyopy")
    ok = df[(df.status == "ok") & df["path"].str.endswith(".cif")]
    assert len(ok) >= 1000 and (ok.spacegroup_number == ok.stated_spacegroup_number).mean() >= 0.99


def test_unknown_labeller_lists_the_valid_ones(tmp_path):
    _write(tmp_path, "nacl.cif", NACL_CIF)
    with pytest.raises(ValueError, match="unknown labeller 'spg'; valid: spglib, moyopy"):
        sources.ingest([str(tmp_path)], executor="serial", labeller="spg")


def test_columnar_rows_equal_pyarrow_from_rows():
    import pyarrow as pa

    root = shared_path("structures", "autoxrd_references")
    task = sources.plan([str(root)], batch_size=40)[0]
    rows = sources.run_task(task, sources.Options())
    for row in rows:
        row["id"] = sources._stable_id(task, row)
    table = sources.rows_to_table(rows)
    plain = [{k: (list(v) if k in CRYSTAL_COLUMNS else v) for k, v in row.items()} for row in rows]

    def no_nan(t):  # NaN != NaN in Table.equals; error rows have NaN cells
        import pyarrow.compute as pc

        return pa.table([pc.if_else(pc.is_nan(c), -1.0, c) if pa.types.is_floating(c.type) else c
                         for c in t.columns], schema=t.schema)

    assert no_nan(table).equals(no_nan(pa.Table.from_pylist(plain, schema=sources.catalog_schema())))
    assert no_nan(table).equals(no_nan(sources.run_task_table(task, sources.Options())))
    assert sources.rows_to_table([]).num_rows == 0


# ------------------------------------------------------------------------------ catalog & runs ----
def test_parquet_catalog_is_deterministic_and_round_trips(tmp_path):
    _write(tmp_path / "in", "nacl.cif", NACL_CIF)
    out1, out2 = tmp_path / "a.parquet", tmp_path / "b.parquet"
    s1 = sources.ingest_to_parquet([str(tmp_path / "in"), "builtin:prototypes"], out1, executor="serial")
    sources.ingest_to_parquet([str(tmp_path / "in"), "builtin:prototypes"], out2, executor="serial")
    assert sources.catalog_hash(out1) == sources.catalog_hash(out2) == s1.sha256
    df = sources.read_catalog(out1)
    assert list(df.columns) == list(sources.CATALOG_COLUMNS)
    assert s1.by_status["ok"] == (df.status == "ok").sum() and s1.n_records == len(df) == 289
    assert "status:" in str(s1) and "crystal system:" in str(s1)
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]
    with pytest.raises(FileNotFoundError, match="xrdbatch ingest"):
        sources.read_catalog(tmp_path / "missing.parquet")


def test_unknown_sources_say_what_is_valid():
    with pytest.raises(ValueError, match="builtin:prototypes"):
        sources.plan(["builtin:nope"])
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        sources.plan(["/definitely/not/here"])
    with pytest.raises(ValueError, match="synthetic:N"):
        sources.plan(["synthetic:-3"])


@pytest.mark.slow
def test_executors_give_the_same_catalog(tmp_path):
    from distributed import Client, LocalCluster

    specs = [str(shared_path("structures", "autoxrd_references")), "synthetic:24"]
    serial = sources.ingest(specs, executor="serial", batch_size=16)
    procs = sources.ingest(specs, executor="processes", n_workers=2, batch_size=16)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dask = sources.ingest(specs, client=client, batch_size=16)
    cols = [c for c in serial.columns if c not in CRYSTAL_COLUMNS]
    for other in (procs, dask):
        assert serial[cols].equals(other[cols])
        assert all(np.array_equal(a, b) for a, b in zip(serial["frac_coords"], other["frac_coords"]))


def test_cli_ingest_writes_catalog_and_summary(tmp_path, capsys):
    from xrdbatch import cli

    out = tmp_path / "cat.parquet"
    assert cli.main(["ingest", "builtin:prototypes", "synthetic:5", "--out", str(out), "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "status:         ok 293" in text and "crystal system:" in text
    assert len(sources.read_catalog(out)) == 293
    assert cli.main(["ingest", str(tmp_path / "nope"), "--out", str(out)]) == 2

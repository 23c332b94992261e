"""Structure sources -> one labelled catalog (Parquet), one row per input record.

How the parts fit
-----------------
1. **Planning** (:func:`plan`): each source spec is resolved through the :data:`SOURCES` registry
   (keyed on scheme: ``builtin:``, ``synthetic:``; anything else is a path) into frozen
   :class:`Task` values: batches of files, a builtin collection, or index ranges of the synthetic
   generator. Planning lists file names only; no file is opened.
2. **Reading** (:func:`run_task`, runs on a worker): each file is read by the reader registered in
   :data:`FILE_READERS` for its type (CIF via gemmi, POSCAR/CONTCAR, pymatgen/MP JSON) and yields
   :class:`RawRecord` values: a :class:`~xrdbatch.crystal.Crystal` or the reason there is none.
3. **Labelling** (:func:`label_crystal`): sanity checks (cell, volume per atom, overlapping atoms,
   size limit) then spglib on plain numpy arrays (no pymatgen objects on the hot path): space group,
   crystal system, conventional standard cell, formula, structure type.
4. **Executing**: tasks run through an executor from :data:`EXECUTORS` (``serial``, ``processes``,
   ``dask``); each returns its rows, so memory holds one batch of file texts per worker.
5. **Assembling** (:func:`ingest`): rows are concatenated, ids made unique, duplicates marked
   (``dedupe``), and :func:`ingest_to_parquet` writes the table atomically.

A bad record never stops the run: it becomes a row with ``status`` ``"error"`` (could not be read or is
not physical) or ``"skipped"`` (valid but excluded by a policy: size limit, duplicate, unknown file
type) and a ``reason`` that names the problem.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np

from xrdbatch.crystal import CRYSTAL_COLUMNS, Crystal, crystal_system_of

#: spglib distance tolerance in angstrom. 1e-3 reproduces the stated space group of 99.4 % of the AFLOW
#: prototype CIFs (0.01: 98.9 %, 0.1: 96 %; see tests/test_sources.py and the README) and suits
#: ICSD-quality coordinates (4-5 decimals).
DEFAULT_SYMPREC = 1e-3
#: Symmetry finder of the labels (key of :data:`LABELLERS`).
DEFAULT_LABELLER = "spglib"
#: Structures with more atomic sites than this in the stored cell become ``skipped`` rows.
DEFAULT_MAX_ATOMS = 500
#: Plausible range of cell volume per atom (occupancy-weighted), angstrom^3.
DEFAULT_VOLUME_PER_ATOM_RANGE = (1.0, 500.0)
#: Two positions closer than this (angstrom) whose occupancies add up to more than 1 are an error.
DEFAULT_MIN_DISTANCE_ANGSTROM = 0.4

STATUSES = ("ok", "skipped", "error")

# Arrow schema of the catalog (fixed, so empty and partial catalogs have the same column types).
_LABEL_COLUMNS = (
    ("id", "string"), ("source", "string"), ("path", "string"), ("record", "int64"), ("sha256", "string"),
    ("status", "string"), ("reason", "string"), ("formula", "string"), ("n_atoms", "int64"),
    ("spacegroup_number", "int64"), ("spacegroup_symbol", "string"), ("crystal_system", "string"),
    ("a", "float64"), ("b", "float64"), ("c", "float64"),
    ("alpha", "float64"), ("beta", "float64"), ("gamma", "float64"), ("volume", "float64"),
    ("stated_spacegroup_number", "int64"), ("stated_spacegroup_symbol", "string"),
    ("structure_type", "string"), ("fingerprint", "string"),
)
CATALOG_COLUMNS = tuple(name for name, _ in _LABEL_COLUMNS) + CRYSTAL_COLUMNS


def catalog_schema():
    """The pyarrow schema of a catalog (label columns, then :data:`CRYSTAL_COLUMNS` as lists)."""
    import pyarrow as pa

    fields = [pa.field(n, getattr(pa, t)()) for n, t in _LABEL_COLUMNS]
    fields += [pa.field("lattice", pa.list_(pa.float64())), pa.field("symbols", pa.list_(pa.string())),
               pa.field("frac_coords", pa.list_(pa.float64())), pa.field("occupancies", pa.list_(pa.float64())),
               pa.field("b_iso", pa.list_(pa.float64()))]
    return pa.schema(fields)


# ====================================================================================== options ====
@dataclass(frozen=True)
class Options:
    """Labelling policy, resolved once and shipped to every worker.

    Attributes
    ----------
    symprec : float
        spglib distance tolerance, angstrom.
    angle_tolerance_deg : float
        spglib angle tolerance in degrees (-1: spglib's own default).
    max_atoms : int
        Sites in the stored cell above which a record is skipped.
    volume_per_atom_range : (float, float)
        Accepted cell volume per (occupancy-weighted) atom, angstrom^3.
    min_distance_angstrom : float
        Closest approach of two fully occupied positions.
    labeller : str
        Symmetry finder, a key of :data:`LABELLERS` (``"spglib"`` or ``"moyopy"``).
    """

    symprec: float = DEFAULT_SYMPREC
    angle_tolerance_deg: float = -1.0
    max_atoms: int = DEFAULT_MAX_ATOMS
    volume_per_atom_range: tuple = DEFAULT_VOLUME_PER_ATOM_RANGE
    min_distance_angstrom: float = DEFAULT_MIN_DISTANCE_ANGSTROM
    labeller: str = DEFAULT_LABELLER


# ================================================================================= raw records ====
class RawRecord(NamedTuple):
    """What a reader makes of one record, before labelling.

    ``crystal`` is None when the record could not be read; ``reason`` then says why.
    """

    record: int
    sha256: str
    crystal: Crystal | None = None
    reason: str = ""
    status: str = "error"
    stated_number: int = 0
    stated_symbol: str = ""
    prototype: str = ""


class RecordError(Exception):
    """A record that cannot become a crystal; the message is the catalog ``reason``."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@lru_cache(maxsize=4096)
def _clean_symbol(symbol: str) -> str:
    """Element symbol without charge/label decorations ('Fe3+' -> 'Fe', 'D' -> 'H')."""
    m = re.match(r"([A-Z][a-z]?)", symbol.strip().capitalize() if symbol[:1].islower() else symbol.strip())
    if not m:
        raise RecordError(f"no element symbol in species {symbol!r}")
    sym = m.group(1)
    sym = _ISOTOPES.get(sym, sym)
    if sym not in _elements():
        raise RecordError(f"unknown element {symbol!r} (expected a symbol of the periodic table)")
    return sym


_ISOTOPES = {"D": "H", "T": "H"}


@lru_cache(maxsize=None)
def _elements() -> dict:
    """Element table (symbol -> dict with Z, X electronegativity, radii...), derived package data."""
    from importlib.resources import files

    return json.loads(files("xrdbatch").joinpath("data", "elements.json").read_text())


# ========================================================================================= CIF ====
_STATED_NUMBER_TAGS = ("_space_group_IT_number", "_symmetry_Int_Tables_number", "_space_group.IT_number",
                       "_symmetry.Int_Tables_number")
_STATED_SYMBOL_TAGS = ("_space_group_name_H-M_alt", "_symmetry_space_group_name_H-M",
                       "_space_group.name_H-M_alt", "_symmetry.space_group_name_H-M")
_CELL_TAGS = ("_cell_length_a", "_cell_length_b", "_cell_length_c")


def _cif_value(block, tags) -> str:
    for tag in tags:
        v = block.find_value(tag)
        if v is not None:
            from gemmi import cif

            v = cif.as_string(v).strip()
            if v not in ("", "?", "."):
                return v
    return ""


def _stated_spacegroup(block) -> tuple[int, str]:
    import gemmi

    symbol = _cif_value(block, _STATED_SYMBOL_TAGS)
    number_text = _cif_value(block, _STATED_NUMBER_TAGS)
    number = 0
    try:
        number = int(float(number_text)) if number_text else 0
    except ValueError:
        number = 0
    if not 1 <= number <= 230:
        number = 0
    if number == 0 and symbol:
        sg = gemmi.find_spacegroup_by_name(symbol)
        number = sg.number if sg is not None else 0
    return number, symbol


#: Symmetry images of one site closer than this (angstrom) are the same atom (a special position).
SYMMETRY_MERGE_ANGSTROM = 0.1

_SYMOP_TAGS = ("_space_group_symop_operation_xyz", "_symmetry_equiv_pos_as_xyz",
               "_space_group_symop.operation_xyz", "_symmetry_equiv.pos_as_xyz")
_HALL_TAGS = ("_space_group_name_Hall", "_symmetry_space_group_name_Hall")


@lru_cache(maxsize=4096)
def _ops_from_strings(ops: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Unique symmetry operations as (rotations (m,3,3), translations (m,3)) from 'x,y+1/2,-z' strings."""
    import gemmi

    seen: dict = {}
    for text in ops:
        try:
            op = gemmi.Op(text.replace(" ", "").lower())
        except Exception as exc:
            raise RecordError(f"unparsable symmetry operation {text!r}: {exc}") from None
        key = (tuple(map(tuple, op.rot)), tuple(t % op.DEN for t in op.tran))
        seen.setdefault(key, None)
    if not seen:
        raise RecordError("empty list of symmetry operations")
    rot = np.array([k[0] for k in seen], dtype=np.float64) / 24.0
    tran = np.array([k[1] for k in seen], dtype=np.float64) / 24.0
    return rot, tran


@lru_cache(maxsize=4096)
def _ops_from_column(raw: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Operations of a symop loop given as raw CIF values (quoted strings), cached on the raw text."""
    from gemmi import cif

    return _ops_from_strings(tuple(cif.as_string(v) for v in raw))


@lru_cache(maxsize=1024)
def _ops_from_group(kind: str, value: str) -> tuple[np.ndarray, np.ndarray] | None:
    import gemmi

    try:
        if kind == "hall":
            ops = gemmi.symops_from_hall(value)
        else:
            sg = gemmi.find_spacegroup_by_name(value) if kind == "name" else gemmi.find_spacegroup_by_number(int(value))
            if sg is None:
                return None
            ops = sg.operations()
    except Exception:  # noqa: BLE001 - unknown symbol: try the next way of stating the group
        return None
    return _ops_from_strings(tuple(op.triplet() for op in ops))


def _symmetry_ops(block, stated_number: int) -> tuple[np.ndarray, np.ndarray]:
    """Operations of a CIF block: its symop loop, else Hall symbol, H-M symbol, number; else P1."""
    for tag in _SYMOP_TAGS:
        col = block.find_values(tag)
        if len(col):
            return _ops_from_column(tuple(col))
    hall = _cif_value(block, _HALL_TAGS)
    name = _cif_value(block, _STATED_SYMBOL_TAGS)
    for kind, value in (("hall", hall), ("name", name), ("number", str(stated_number) if stated_number else "")):
        if value:
            ops = _ops_from_group(kind, value)
            if ops is not None:
                return ops
    if name or hall:
        raise RecordError(f"unknown space group {name or hall!r} and no symmetry operations listed")
    return _ops_from_strings(("x,y,z",))


def expand_sites(frac: np.ndarray, rot: np.ndarray, tran: np.ndarray, lattice: np.ndarray,
                 tol_angstrom: float = SYMMETRY_MERGE_ANGSTROM) -> tuple[np.ndarray, np.ndarray]:
    """All symmetry images of asymmetric-unit sites in the unit cell.

    Parameters
    ----------
    frac : ndarray, shape (n, 3)
        Fractional coordinates of the asymmetric unit.
    rot, tran : ndarray, shapes (m, 3, 3) and (m, 3)
        Symmetry operations x' = R x + t (fractional).
    lattice : ndarray, shape (3, 3)
        Lattice vectors as rows, angstrom (for the merge distance).
    tol_angstrom : float
        Images of one site closer than this are one atom (special positions).

    Returns
    -------
    positions : ndarray, shape (k, 3)
        Fractional coordinates in [0, 1).
    site_index : ndarray, shape (k,)
        Index of the asymmetric-unit site each position came from.
    """
    n, m = frac.shape[0], rot.shape[0]
    if m == 1 and (rot[0] == np.eye(3)).all() and not tran[0].any():
        return np.mod(frac, 1.0), np.arange(n)  # P1: each site is its own single image
    images = np.mod(np.einsum("mij,nj->nmi", rot, frac) + tran[None, :, :], 1.0).reshape(n * m, 3)
    site = np.repeat(np.arange(n), m)
    # Exact images (special positions) coincide on a 1e-4 grid; near-coincident ones are merged below.
    grid = np.round(images * 1e4).astype(np.int64) % 10000
    key = ((site * 10000 + grid[:, 0]) * 10000 + grid[:, 1]) * 10000 + grid[:, 2]
    _, first = np.unique(key, return_index=True)
    first.sort()
    images, site = images[first], site[first]
    if len(site) > len(frac):  # images of one site closer than the tolerance: keep the first
        i, j = close_pairs(images, lattice, tol_angstrom, group=site)
        if len(j):
            keep = np.ones(len(site), dtype=bool)
            keep[j] = False
            images, site = images[keep], site[keep]
    return images, site


def _symbol_from_label(site) -> str:
    """Element of a site whose type symbol gemmi could not read ('?', empty): from the label ('S1A' -> 'S')."""
    for text in (site.type_symbol, site.label):
        m = re.match(r"[A-Z][a-z]?", text or "")
        if m and m.group() != "X":
            try:
                return _clean_symbol(m.group())
            except RecordError:
                if m.group()[0] in _elements():  # 'Ow1' style: a one-letter element, then a lower-case suffix
                    return m.group()[0]
    raise RecordError(f"unknown element for site {site.label!r} (type symbol {site.type_symbol!r})")


def _dummy_labels(block) -> set:
    flags = block.find_values("_atom_site_calc_flag")
    if not len(flags):
        return set()
    table = block.find("_atom_site_", ["label", "calc_flag"])
    return {row[0] for row in table if row[1].strip("'\"").lower() == "dum"}


def _crystal_from_cif_block(block, stated_number: int = 0) -> Crystal:
    import gemmi

    has_x = block.find_value("_atom_site_fract_x") is not None or len(block.find_values("_atom_site_fract_x"))
    if not has_x:
        if len(block.find_values("_atom_site_Cartn_x")) or block.find_value("_atom_site.Cartn_x") is not None:
            raise RecordError("only Cartesian coordinates (_atom_site_Cartn_x; a macromolecular/mmCIF file?), "
                              "no fractional coordinates")
        raise RecordError("no atom sites (_atom_site_fract_x missing)")
    missing = [t for t in _CELL_TAGS if _cif_value(block, (t, t.replace("_cell_", "_cell."))) == ""]
    if missing:
        raise RecordError(f"missing unit cell: {', '.join(missing)} not given")
    small = gemmi.make_small_structure_from_block(block)
    cell = small.cell
    if not (cell.a > 0 and cell.b > 0 and cell.c > 0 and np.isfinite(cell.volume) and cell.volume > 0):
        raise RecordError(f"missing or invalid unit cell (a, b, c = {cell.a:g}, {cell.b:g}, {cell.c:g}; "
                          f"alpha, beta, gamma = {cell.alpha:g}, {cell.beta:g}, {cell.gamma:g})")
    sites = small.sites
    dummies = _dummy_labels(block)
    if dummies:  # '_atom_site_calc_flag dum': placeholders, not atoms
        sites = [site for site in sites if site.label not in dummies]
    if len(sites) == 0:
        raise RecordError("atom site loop has no usable sites")
    values, names = [], []
    for site in sites:  # one pass: each gemmi attribute access is a Python call
        f = site.fract
        values.append((f.x, f.y, f.z, site.occ, site.u_iso))
        names.append(site.element.name)
    values = np.array(values, dtype=np.float64)
    frac = values[:, :3]
    bad = ~np.isfinite(frac).all(axis=1)
    if bad.any():
        labels = [sites[i].label for i in np.flatnonzero(bad)[:3]]
        raise RecordError(f"missing coordinates for {int(bad.sum())} site(s) ({', '.join(labels)})")
    symbols = [_clean_symbol(name) if name != "X" else _symbol_from_label(sites[k]) for k, name in enumerate(names)]
    occ = values[:, 3]
    b = values[:, 4] * (8.0 * math.pi**2)
    lattice = np.array(cell.orth.mat).T
    rot, tran = _symmetry_ops(block, stated_number)
    pos, index = expand_sites(frac, rot, tran, lattice)
    return Crystal(lattice, [symbols[i] for i in index], pos, occ[index], b[index])


def read_cif(path: Path, data: bytes) -> Iterator[RawRecord]:
    """Records of a CIF file: one per data block that has atom sites (gemmi parser)."""
    from gemmi import cif

    file_hash = _sha256(data)
    try:
        if data[:2] == b"\x1f\x8b":  # .cif.gz
            data = gzip.decompress(data)
        doc = cif.read_string(data.decode("utf-8", errors="replace"))
    except Exception as exc:  # gemmi raises ValueError/RuntimeError with line numbers
        msg = re.sub(r"^string:", "line ", str(exc)).strip()
        yield RawRecord(0, file_hash, reason=f"CIF syntax error: {msg}")
        return
    blocks = [b for b in doc if b.find_value("_atom_site_fract_x") is not None
              or len(b.find_values("_atom_site_fract_x"))]
    if not blocks:
        if len(doc) == 0:
            yield RawRecord(0, file_hash, reason="no data block (empty CIF)")
            return
        # Report the most informative block (the one with any atom_site data, else the first).
        probe = next((b for b in doc if len(b.find_values("_atom_site_Cartn_x"))
                      or b.find_value("_atom_site.Cartn_x") is not None), doc[0])
        try:
            _crystal_from_cif_block(probe)
        except RecordError as exc:
            yield RawRecord(0, file_hash, reason=f"{exc} in {len(doc)} data block(s)")
            return
        yield RawRecord(0, file_hash, reason="no atom sites")
        return
    for i, block in enumerate(blocks):
        record_hash = file_hash if len(blocks) == 1 else _sha256(f"{file_hash}#{block.name}".encode())
        number, symbol = _stated_spacegroup(block)
        proto = _cif_value(block, ("_aflow_proto", "_aflow_prototype_label"))
        try:
            crystal = _crystal_from_cif_block(block, number)
        except RecordError as exc:
            yield RawRecord(i, record_hash, reason=f"{exc} (data_{block.name})" if len(blocks) > 1 else str(exc),
                            stated_number=number, stated_symbol=symbol, prototype=proto)
            continue
        except Exception as exc:  # gemmi errors on malformed values (e.g. unparsable symmetry operations)
            yield RawRecord(i, record_hash, reason=f"cannot build structure: {exc}",
                            stated_number=number, stated_symbol=symbol, prototype=proto)
            continue
        yield RawRecord(i, record_hash, crystal, "", "ok", number, symbol, proto)


# ====================================================================================== POSCAR ====
def _parse_poscar(text: str) -> Crystal:
    lines = text.splitlines()
    if len(lines) < 8:
        raise RecordError(f"POSCAR too short ({len(lines)} lines, expected at least 8)")
    try:
        scale = float(lines[1].split()[0])
        vectors = np.array([[float(v) for v in lines[i].split()[:3]] for i in (2, 3, 4)])
    except (ValueError, IndexError):
        raise RecordError("POSCAR lines 2-5 must hold the scale factor and three lattice vectors") from None
    tokens = lines[5].split()
    names: list[str] = []
    row = 5
    if tokens and not tokens[0].lstrip("+-").isdigit():  # VASP5: species names, then counts
        names = [t for t in tokens if not t.startswith("#")]
        row = 6
    try:
        counts = [int(t) for t in lines[row].split() if not t.startswith("#")]
    except (ValueError, IndexError):
        raise RecordError(f"POSCAR line {row + 1} must hold the number of atoms per species") from None
    row += 1
    mode = lines[row].strip() if row < len(lines) else ""
    if mode[:1] in "sS":  # selective dynamics
        row += 1
        mode = lines[row].strip() if row < len(lines) else ""
    cartesian = mode[:1] in "cCkK"
    n = sum(counts)
    coord_lines = lines[row + 1: row + 1 + n]
    if len(coord_lines) < n or n == 0:
        raise RecordError(f"POSCAR declares {n} atoms but has {len(coord_lines)} coordinate lines")
    frac, comments = [], []
    for line in coord_lines:
        body, _, comment = line.partition("#")
        parts = body.split()
        try:
            frac.append([float(v) for v in parts[:3]])
        except ValueError:
            raise RecordError(f"POSCAR coordinate line is not three numbers: {line.strip()!r}") from None
        if len(frac[-1]) != 3:
            raise RecordError(f"POSCAR coordinate line is not three numbers: {line.strip()!r}")
        extra = comment.split() or parts[3:]
        comments.append(extra[0] if extra else "")
    if not names:  # VASP4: species from '# El' comments, else from the title line (pymatgen convention)
        if all(comments) and all(re.match(r"[A-Za-z]", c) for c in comments):
            per_atom = [re.match(r"[A-Za-z]+", c).group(0) if re.match(r"[A-Za-z]+", c) else c for c in comments]
        else:
            names = _species_from_title(lines[0], len(counts))
            if not names:
                raise RecordError("VASP4 POSCAR without species: no '# El' comments after the coordinates and no "
                                  "element names on the title line")
    if names:
        if len(names) != len(counts):
            raise RecordError(f"POSCAR lists {len(names)} species names but {len(counts)} counts")
        per_atom = [nm for nm, c in zip(names, counts) for _ in range(c)]
    lattice = vectors * scale
    if scale < 0:  # negative scale = target volume
        vol = abs(np.linalg.det(vectors))
        lattice = vectors * (abs(scale) / vol) ** (1.0 / 3.0) if vol > 0 else vectors
    frac = np.asarray(frac, dtype=np.float64)
    if cartesian:
        frac = (frac * (scale if scale > 0 else 1.0)) @ np.linalg.inv(lattice)
    symbols = [_clean_symbol(s) for s in per_atom]
    return Crystal(lattice, symbols, frac, np.ones(n), np.zeros(n))


def _species_from_title(title: str, n_species: int) -> list[str]:
    """Species named on a POSCAR title line ('Fe O', 'Fe2O3', '(Li24,Li48)La24Ta16O96'), else []."""
    tokens = title.split()
    if not tokens or not all(re.fullmatch(r"[()\[\],.\d]*(?:[A-Z][a-z]?[()\[\],.\d]*)+", t) for t in tokens):
        return []
    names: list[str] = []
    for sym in re.findall(r"[A-Z][a-z]?", title):
        if sym not in _elements() and sym not in _ISOTOPES:
            return []
        if sym not in names:
            names.append(sym)
    return names if len(names) == n_species else []


def read_poscar(path: Path, data: bytes) -> Iterator[RawRecord]:
    """The record of a VASP POSCAR/CONTCAR (VASP4 with '# El' comments or VASP5 species line)."""
    file_hash = _sha256(data)
    try:
        crystal = _parse_poscar(data.decode("utf-8", errors="replace"))
    except RecordError as exc:
        yield RawRecord(0, file_hash, reason=str(exc))
        return
    except (np.linalg.LinAlgError, ValueError) as exc:
        yield RawRecord(0, file_hash, reason=f"invalid POSCAR: {exc}")
        return
    m = re.match(r"(?:POSCAR|CONTCAR)-(\d+)", path.name)  # spglib test-set naming: POSCAR-<sg>[-k]
    number = int(m.group(1)) if m and 1 <= int(m.group(1)) <= 230 else 0
    yield RawRecord(0, file_hash, crystal, "", "ok", number, "")


# ======================================================================================== JSON ====
def _crystal_from_structure_dict(d: dict) -> Crystal:
    try:
        lattice = d["lattice"]["matrix"] if isinstance(d["lattice"], dict) else d["lattice"]
        sites = d["sites"]
    except (KeyError, TypeError):
        raise RecordError("structure dict without 'lattice' and 'sites'") from None
    symbols, frac, occ, b = [], [], [], []
    lat = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    inv = None
    for site in sites:
        xyz = site.get("abc")
        if xyz is None:
            if site.get("xyz") is None:
                raise RecordError("site without coordinates ('abc' or 'xyz')")
            inv = np.linalg.inv(lat) if inv is None else inv
            xyz = np.asarray(site["xyz"], dtype=np.float64) @ inv
        props = site.get("properties") or {}
        bi = props.get("b_iso", props.get("B", 0.0)) or 0.0
        for sp in site.get("species", []):
            symbols.append(_clean_symbol(str(sp.get("element", ""))))
            frac.append(xyz)
            occ.append(float(sp.get("occu", 1.0)))
            b.append(float(bi))
    if not symbols:
        raise RecordError("structure has no sites")
    return Crystal(lat, symbols, np.asarray(frac, dtype=np.float64), occ, b)


def _json_records(obj) -> list:
    """Flatten a JSON dump into a list of record dicts (Structure, ComputedStructureEntry, MP docs)."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        if "lattice" in obj or "structure" in obj:
            return [obj]
        for key in ("data", "entries", "structures", "docs"):
            if isinstance(obj.get(key), list):
                return obj[key]
        if obj and all(isinstance(v, dict) for v in obj.values()):
            return list(obj.values())
    return []


def _record_from_json(rec) -> tuple[Crystal, int, str, str]:
    if not isinstance(rec, dict):
        raise RecordError(f"record is a {type(rec).__name__}, expected a Structure or entry dict")
    struct = rec if "lattice" in rec else rec.get("structure")
    if not isinstance(struct, dict):
        raise RecordError("record has neither 'lattice'/'sites' nor a 'structure' dict")
    number, symbol = 0, ""
    for key in ("symmetry", "spacegroup"):
        sym = rec.get(key) or (rec.get("data") or {}).get(key)
        if isinstance(sym, dict):
            number = int(sym.get("number") or 0)
            symbol = str(sym.get("symbol") or "")
            break
    tags = rec.get("tags") if isinstance(rec.get("tags"), dict) else {}
    proto = str(tags.get("aflow", "")) if tags else ""
    return _crystal_from_structure_dict(struct), number, symbol, proto


def _json_rows(records: list, file_hash: str) -> Iterator[RawRecord]:
    for i, rec in enumerate(records):
        rec_hash = _sha256(json.dumps(rec, sort_keys=True, default=str).encode()) if len(records) > 1 else file_hash
        try:
            crystal, number, symbol, proto = _record_from_json(rec)
        except RecordError as exc:
            yield RawRecord(i, rec_hash, reason=str(exc))
            continue
        except (ValueError, TypeError, KeyError, AttributeError, np.linalg.LinAlgError) as exc:
            yield RawRecord(i, rec_hash, reason=f"malformed structure record: {type(exc).__name__}: {exc}")
            continue
        yield RawRecord(i, rec_hash, crystal, "", "ok", number if 1 <= number <= 230 else 0, symbol, proto)


def read_json(path: Path, data: bytes) -> Iterator[RawRecord]:
    """Records of a pymatgen / Materials Project JSON dump (.json or .json.gz)."""
    file_hash = _sha256(data)
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        obj = json.loads(data)
    except (OSError, EOFError, ValueError) as exc:
        yield RawRecord(0, file_hash, reason=f"not valid JSON: {exc}")
        return
    records = _json_records(obj)
    if not any(isinstance(r, dict) and ("lattice" in r or isinstance(r.get("structure"), dict)) for r in records):
        yield RawRecord(0, file_hash, reason="JSON holds no structure records (expected a list of Structure or "
                                              "ComputedStructureEntry dicts)")
        return
    yield from _json_rows(records, file_hash)


def read_unknown(path: Path, data: bytes) -> Iterator[RawRecord]:
    """Files of no known structure type still get a row, so every file is accounted for."""
    yield RawRecord(0, "", reason=f"not a structure file (known types: {', '.join(_known_types())})",
                    status="skipped")


#: Readers by file type; see :func:`file_type`.
FILE_READERS: dict[str, Callable[[Path, bytes], Iterator[RawRecord]]] = {
    "cif": read_cif,
    "poscar": read_poscar,
    "json": read_json,
    "unknown": read_unknown,
}

_SUFFIX_TYPES = {".cif": "cif", ".mcif": "cif", ".cif.gz": "cif", ".json": "json", ".json.gz": "json",
                 ".vasp": "poscar", ".poscar": "poscar"}
_NAME_PREFIX_TYPES = {"POSCAR": "poscar", "CONTCAR": "poscar"}
_SUFFIXES_LONGEST_FIRST = tuple(sorted(_SUFFIX_TYPES, key=len, reverse=True))


def _known_types() -> list[str]:
    return sorted(_SUFFIX_TYPES) + [f"{p}*" for p in _NAME_PREFIX_TYPES]


def file_type(path: str | Path) -> str:
    """Key into :data:`FILE_READERS` for a file name.

    >>> file_type("a/b/1000041.cif"), file_type("POSCAR-225-2"), file_type("mp.json.gz"), file_type("x.txt")
    ('cif', 'poscar', 'json', 'unknown')
    """
    name = Path(path).name
    lower = name.lower()
    for suffix in _SUFFIXES_LONGEST_FIRST:
        if lower.endswith(suffix):
            return _SUFFIX_TYPES[suffix]
    for prefix, kind in _NAME_PREFIX_TYPES.items():
        if name.startswith(prefix):
            return kind
    return "unknown"


# ==================================================================================== labelling ====
def _formula(amounts: dict[str, float]) -> str:
    """Reduced formula, elements ordered by electronegativity (as pymatgen's reduced_formula)."""
    return _formula_of(tuple(sorted(amounts.items())))


def _integers(vals) -> list[int] | None:
    """The amounts as positive integers divided by their gcd, or None if they are not integers (1e-3)."""
    ints = [round(v) for v in vals]
    if all(r > 0 and abs(v - r) <= 1e-3 + 1e-5 * abs(r) for v, r in zip(vals, ints)):
        g = math.gcd(*ints)
        return [r // g for r in ints]
    return None


@lru_cache(maxsize=65536)
def _formula_of(items: tuple) -> str:
    el = _elements()
    items = sorted(items, key=lambda kv: (el[kv[0]]["X"], kv[0]))
    vals = [float(v) for _, v in items]
    ints = _integers(vals)
    if ints is not None:
        return "".join(f"{s}{'' if v == 1 else v}" for (s, _), v in zip(items, ints))
    return "".join(f"{s}{v:.4g}" if abs(v - 1) > 1e-3 else s for (s, _), v in zip(items, vals))


def _anonymous(amounts: dict[str, float]) -> str:
    """Anonymised reduced formula ('Fe2O3' -> 'A2B3'), amounts ascending."""
    return _anonymous_of(tuple(sorted(float(v) for v in amounts.values())))


@lru_cache(maxsize=65536)
def _anonymous_of(vals: tuple) -> str:
    ints = _integers(vals)
    if ints is not None:
        parts = ["" if v == 1 else str(v) for v in ints]
    else:
        parts = [f"{v / vals[0]:.3g}".rstrip("0").rstrip(".") for v in vals]
        parts = ["" if p == "1" else p for p in parts]
    return "".join(f"{chr(65 + i) if i < 26 else 'Z' + str(i)}{p}" for i, p in enumerate(parts))


def _face_spacings(lattice: np.ndarray) -> np.ndarray:
    """Distances between opposite cell faces (volume / face area), shape (3,), angstrom."""
    (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = lattice.tolist()  # Python floats: 3x3 numpy scalars are slow
    cross = ((b1 * c2 - b2 * c1, b2 * c0 - b0 * c2, b0 * c1 - b1 * c0),
             (c1 * a2 - c2 * a1, c2 * a0 - c0 * a2, c0 * a1 - c1 * a0),
             (a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0))
    volume = abs(a0 * cross[0][0] + a1 * cross[0][1] + a2 * cross[0][2])
    return np.array([volume / max(math.sqrt(x * x + y * y + z * z), 1e-300) for x, y, z in cross])


class Symmetry(NamedTuple):
    """What a labeller finds in one cell (see :data:`LABELLERS`).

    Attributes
    ----------
    number : int
        International Tables space-group number, 1-230.
    symbol : str
        Short Hermann-Mauguin symbol as spglib writes it (``"Fm-3m"``, ``"P2_1/c"``).
    std_lattice : ndarray, shape (3, 3)
        Conventional standard cell (spglib's convention), rows, angstrom.
    wyckoffs : sequence of str, length n
        Wyckoff letter of each input site.
    """

    number: int
    symbol: str
    std_lattice: np.ndarray
    wyckoffs: tuple


def _symmetry_spglib(lattice, positions, types, symprec: float, angle_tolerance_deg: float) -> Symmetry:
    """spglib ``get_symmetry_dataset``: the reference labeller."""
    import spglib

    try:
        ds = spglib.get_symmetry_dataset((lattice, positions, types), symprec=symprec,
                                         angle_tolerance=angle_tolerance_deg)
    except Exception as exc:  # spglib >= 2.5 may raise instead of returning None
        raise RecordError(f"spglib failed at symprec={symprec:g}: {exc}") from None
    if ds is None:
        raise RecordError(f"spglib found no symmetry at symprec={symprec:g} (overlapping atoms?)")
    return Symmetry(int(ds.number), str(ds.international), np.asarray(ds.std_lattice), tuple(ds.wyckoffs))


@lru_cache(maxsize=None)
def _spglib_symbols() -> tuple:
    """spglib's short Hermann-Mauguin symbol of each Hall number (index 1-530)."""
    import spglib

    return ("",) + tuple(str(spglib.get_spacegroup_type(h).international_short) for h in range(1, 531))


def _symmetry_moyopy(lattice, positions, types, symprec: float, angle_tolerance_deg: float) -> Symmetry:
    """moyopy (Rust port of spglib's algorithm) in spglib's setting; symbols from spglib's Hall-number table."""
    import moyopy

    cell = moyopy.Cell(lattice.tolist(), positions.tolist(), types.tolist())
    angle = None if angle_tolerance_deg < 0 else math.radians(angle_tolerance_deg)
    try:
        ds = moyopy.MoyoDataset(cell, symprec=symprec, angle_tolerance=angle, setting=moyopy.Setting.spglib())
    except Exception as exc:  # noqa: BLE001 - moyopy raises ValueError/RuntimeError with its own message
        raise RecordError(f"moyopy found no symmetry at symprec={symprec:g}: {exc}") from None
    return Symmetry(int(ds.number), _spglib_symbols()[ds.hall_number], np.asarray(ds.std_cell.basis),
                    tuple(ds.wyckoffs))


#: Symmetry finders by name: ``f(lattice (3,3), positions (n,3), types (n,), symprec_angstrom,
#: angle_tolerance_deg) -> Symmetry``; raise :class:`RecordError` when they find none.
LABELLERS: dict[str, Callable[..., Symmetry]] = {
    "spglib": _symmetry_spglib,
    "moyopy": _symmetry_moyopy,
}


def _labeller(name: str) -> Callable[..., Symmetry]:
    """The symmetry finder ``LABELLERS[name]``; ValueError listing the valid names otherwise."""
    try:
        return LABELLERS[name]
    except KeyError:
        raise ValueError(f"unknown labeller {name!r}; valid: {', '.join(LABELLERS)}") from None


class Labels(NamedTuple):
    """Labels of one crystal (see :func:`label_crystal`)."""

    formula: str
    n_atoms: int
    spacegroup_number: int
    spacegroup_symbol: str
    crystal_system: str
    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    volume: float
    anonymous_formula: str
    fingerprint: str


def label_crystal(crystal: Crystal, options: Options | None = None) -> Labels:
    """Check a crystal for physical sense and label it with spglib.

    Entries at the same position (a disordered site) form one spglib site whose type is the set of
    (species, occupancy) pairs, so partial occupancy is kept and symmetry is that of the average structure.

    Parameters
    ----------
    crystal : Crystal
    options : Options

    Returns
    -------
    Labels

    Raises
    ------
    RecordError
        With the catalog reason: invalid cell, absurd volume per atom, overlapping atoms, occupancy above 1,
        too many atoms (message starts with ``"skipped:"``), or no symmetry found.
    """
    options = options or Options()
    lattice = crystal.lattice
    if not (np.isfinite(lattice).all() and np.isfinite(crystal.frac_coords).all()):
        raise RecordError("non-finite lattice or coordinates")
    volume = float(abs(np.linalg.det(lattice)))
    heights = _face_spacings(lattice)
    if volume < 1e-6 or heights.min() < 1.0:
        lengths = np.linalg.norm(lattice, axis=1)
        raise RecordError(f"degenerate cell (lengths {np.round(lengths, 4).tolist()} angstrom, "
                          f"volume {volume:.4g} angstrom^3, smallest face spacing {heights.min():.3g} angstrom)")
    occ = crystal.occupancies
    if not (occ > 0).all() or not np.isfinite(occ).all():
        raise RecordError(f"occupancy must be within (0, 1], got {float(occ.min()):g}")
    # Group entries by position (a mixed site is several entries at the same place).
    frac = np.mod(crystal.frac_coords, 1.0)
    grid = np.round(frac * 1e4).astype(np.int64) % 10000
    keys = (grid[:, 0] * 10000 + grid[:, 1]) * 10000 + grid[:, 2]
    first = np.argsort(keys, kind="stable")  # what np.unique(return_index=True) gives when keys are distinct
    sorted_keys = keys[first]
    if (sorted_keys[1:] != sorted_keys[:-1]).all():
        inverse = np.empty_like(first)
        inverse[first] = np.arange(len(first))
    else:
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    n_sites = len(first)
    if n_sites > options.max_atoms:
        raise RecordError(f"skipped: {n_sites} atoms in the cell, above the limit max_atoms={options.max_atoms}")
    site_occ = np.bincount(inverse, weights=occ, minlength=n_sites)
    if site_occ.max() > 1.0 + 1e-2:
        j = int(np.argmax(site_occ))
        members = [crystal.symbols[k] for k in np.flatnonzero(inverse == j)]
        raise RecordError(f"occupancy {site_occ[j]:.3g} > 1 at one position ({'+'.join(members)}): "
                          "duplicated site or wrong occupancy")
    n_eff = float(occ.sum())
    vpa = volume / n_eff
    lo, hi = options.volume_per_atom_range
    if not lo <= vpa <= hi:
        raise RecordError(f"absurd cell: {vpa:.3g} angstrom^3 per atom (expected {lo:g}-{hi:g}); "
                          "check the cell lengths and that all sites are listed")
    # Overlapping positions: closest distinct positions whose occupancies add up to more than one atom.
    pos = frac[first]
    site_symbols = [crystal.symbols[k] for k in first.tolist()]
    if n_sites > 1 and options.min_distance_angstrom > 0:
        _check_overlaps(pos, site_occ, lattice, site_symbols, options.min_distance_angstrom, heights)
    # Symmetry types: one per distinct composition of a position, numbered in order of appearance.
    element_index: dict = {}
    of_entry = np.array([element_index.setdefault(sym, len(element_index)) for sym in crystal.symbols])
    if n_sites == len(occ) and (occ >= 1.0 - 1e-6).all():  # ordered: one entry per position
        type_index: dict = {}
        types = np.array([type_index.setdefault(sym, len(type_index) + 1) for sym in site_symbols], dtype=np.int64)
        comp_of_type = [((sym, 1.0),) for sym in type_index]
    else:  # disordered: the (species, occupancy) set of each position
        lists = [[] for _ in range(n_sites)]
        for k, j in enumerate(inverse):
            lists[j].append((crystal.symbols[k], round(float(occ[k]), 3)))
        comp_index: dict = {}
        types = np.array([comp_index.setdefault(tuple(sorted(c)), len(comp_index) + 1) for c in lists],
                         dtype=np.int64)
        comp_of_type = list(comp_index)
    ds = _labeller(options.labeller)(lattice, pos, types, options.symprec, options.angle_tolerance_deg)
    va, vb, vc = np.asarray(ds.std_lattice, dtype=np.float64).tolist()
    a, b, c = (math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) for v in (va, vb, vc))

    def angle(u, v, norm):
        return math.degrees(math.acos(min(1.0, max(-1.0, (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) / norm))))

    alpha, beta, gamma = angle(vb, vc, b * c), angle(va, vc, a * c), angle(va, vb, a * b)
    amounts = dict(zip(element_index, np.bincount(of_entry, weights=occ, minlength=len(element_index)).tolist()))
    formula = _formula(amounts)
    number = ds.number
    # Wyckoff composition: how many positions of each (composition, Wyckoff letter).
    wyck = sorted(((comp_of_type[t - 1], w), n) for (t, w), n in Counter(zip(types.tolist(), ds.wyckoffs)).items())
    # repr of (formula, number, a, b, c rounded as numpy scalars, angles, wyck), spelled out: numpy's
    # round/repr of a scalar cost 20 us each; these strings are those numpy makes, so fingerprints are stable.
    abc = ", ".join(f"np.float64({round(x * 100.0) / 100.0!r})" for x in (a, b, c))
    fp = _sha256(f"({formula!r}, {number!r}, {abc}, {round(alpha, 1)!r}, {round(beta, 1)!r}, {round(gamma, 1)!r}, "
                 f"{wyck!r})".encode())[:24]
    return Labels(formula, n_sites, number, ds.symbol, crystal_system_of(number),
                  a, b, c, alpha, beta, gamma, volume, _anonymous(amounts), fp)


def close_pairs(frac: np.ndarray, lattice: np.ndarray, cutoff_angstrom: float, group: np.ndarray | None = None,
                face_spacings: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of distinct positions closer than a cutoff under periodic boundary conditions.

    A compiled loop over pairs (numba): the fractional difference of a pair is wrapped into
    [-0.5, 0.5) and only the periodic images whose fractional offsets stay within
    ``cutoff / face spacing`` on every axis are measured, so each pair costs a few flops; exact for
    any cell shape.

    Parameters
    ----------
    frac : ndarray, shape (n, 3)
        Fractional coordinates.
    lattice : ndarray, shape (3, 3)
        Lattice vectors as rows, angstrom.
    cutoff_angstrom : float
        Must be below the smallest face spacing of the cell.
    group : ndarray of int, shape (n,), optional
        Only pairs within the same group (e.g. images of one asymmetric-unit site).
    face_spacings : ndarray, shape (3,), optional
        ``_face_spacings(lattice)`` when the caller has it already.

    Returns
    -------
    i, j : ndarray of int
        Indices of the positions of each close pair (i < j; a pair repeats once per close image).
    """
    frac = np.ascontiguousarray(frac, dtype=np.float64)
    lattice = np.ascontiguousarray(lattice, dtype=np.float64)
    n = frac.shape[0]
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    margin = cutoff_angstrom / (_face_spacings(lattice) if face_spacings is None else face_spacings)
    grouped = group is not None
    group = np.ascontiguousarray(group if grouped else np.zeros(n), dtype=np.int64)
    contiguous = grouped and bool((group[1:] >= group[:-1]).all())  # sorted groups: stop at a group's end
    return _close_pairs_kernel()(frac, lattice, margin, float(cutoff_angstrom), group, grouped, contiguous)


def _close_pairs_loop(frac, lattice, margin, cutoff, group, grouped, contiguous):  # compiled by _close_pairs_kernel
    n = frac.shape[0]
    cut2 = cutoff * cutoff
    out_i = []
    out_j = []
    for i in range(n):
        for j in range(i + 1, n):
            if grouped and group[i] != group[j]:
                if contiguous:
                    break
                continue
            d0 = frac[j, 0] - frac[i, 0]
            d1 = frac[j, 1] - frac[i, 1]
            d2 = frac[j, 2] - frac[i, 2]
            d0 -= np.floor(d0 + 0.5)
            d1 -= np.floor(d1 + 0.5)
            d2 -= np.floor(d2 + 0.5)
            for s0 in (-1.0, 0.0, 1.0):
                e0 = d0 + s0
                if abs(e0) >= margin[0]:
                    continue
                for s1 in (-1.0, 0.0, 1.0):
                    e1 = d1 + s1
                    if abs(e1) >= margin[1]:
                        continue
                    for s2 in (-1.0, 0.0, 1.0):
                        e2 = d2 + s2
                        if abs(e2) >= margin[2]:
                            continue
                        x = e0 * lattice[0, 0] + e1 * lattice[1, 0] + e2 * lattice[2, 0]
                        y = e0 * lattice[0, 1] + e1 * lattice[1, 1] + e2 * lattice[2, 1]
                        z = e0 * lattice[0, 2] + e1 * lattice[1, 2] + e2 * lattice[2, 2]
                        if x * x + y * y + z * z < cut2:
                            out_i.append(i)
                            out_j.append(j)
    return np.array(out_i, dtype=np.int64), np.array(out_j, dtype=np.int64)


@lru_cache(maxsize=None)
def _close_pairs_kernel():
    """:func:`_close_pairs_loop` compiled with numba on first use (cached on disk; no import-time cost)."""
    from numba import njit

    return njit(cache=True, nogil=True)(_close_pairs_loop)


def _check_overlaps(pos, site_occ, lattice, symbols, min_distance, face_spacings=None):
    """Raise for the closest pair of positions nearer than ``min_distance`` holding more than one atom."""
    i, j = close_pairs(pos, lattice, min_distance, face_spacings=face_spacings)
    if len(i) == 0:
        return
    total = site_occ[i] + site_occ[j]
    bad = total > 1.0 + 1e-2
    if not bad.any():
        return
    i, j, total = i[bad], j[bad], total[bad]
    d = pos[j] - pos[i]
    d -= np.round(d)
    shifts = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"), -1).reshape(-1, 3)
    dist = np.linalg.norm((d[:, None, :] + shifts[None]) @ lattice, axis=2).min(axis=1)
    k = int(np.argmin(dist))
    raise RecordError(f"overlapping atoms: {symbols[i[k]]} and {symbols[j[k]]} {dist[k]:.3f} angstrom apart "
                      f"(< {min_distance:g}) with total occupancy {total[k]:.3g}; check for duplicated sites "
                      "or a wrong space-group setting")


# ======================================================================================= rows ====
def _empty_row() -> dict:
    row = {name: ("" if t == "string" else (0 if t == "int64" else float("nan"))) for name, t in _LABEL_COLUMNS}
    for c in CRYSTAL_COLUMNS:
        row[c] = []
    return row


def make_row(raw: RawRecord, source: str, path: str, options: Options, structure_type: str = "",
             labels: Labels | None = None) -> dict:
    """One catalog row from a reader's record: labels for valid crystals, status and reason otherwise.

    ``labels`` may be passed when the caller already ran :func:`label_crystal` on ``raw.crystal``.
    """
    row = _empty_row()
    row.update(source=source, path=path, record=int(raw.record), sha256=raw.sha256,
               stated_spacegroup_number=int(raw.stated_number), stated_spacegroup_symbol=raw.stated_symbol)
    if raw.crystal is None:
        row.update(status=raw.status if raw.status != "ok" else "error", reason=raw.reason or "unreadable record")
        return row
    try:
        lab = labels if labels is not None else label_crystal(raw.crystal, options)
    except RecordError as exc:
        msg = str(exc)
        if msg.startswith("skipped: "):
            row.update(status="skipped", reason=msg[len("skipped: "):])
        else:
            row.update(status="error", reason=msg)
        return row
    except Exception as exc:  # noqa: BLE001 - one bad record never stops the batch
        row.update(status="error", reason=f"labelling failed: {type(exc).__name__}: {exc}")
        return row
    row.update(status="ok", reason="", formula=lab.formula, n_atoms=lab.n_atoms,
               spacegroup_number=lab.spacegroup_number, spacegroup_symbol=lab.spacegroup_symbol,
               crystal_system=lab.crystal_system, a=lab.a, b=lab.b, c=lab.c, alpha=lab.alpha, beta=lab.beta,
               gamma=lab.gamma, volume=lab.volume, fingerprint=lab.fingerprint,
               structure_type=structure_type or raw.prototype or f"{lab.anonymous_formula}_{lab.spacegroup_number}")
    c = raw.crystal  # flat arrays; rows_to_table turns them into Arrow list columns without a Python loop
    row.update(lattice=c.lattice.ravel(), symbols=c.symbols, frac_coords=c.frac_coords.ravel(),
               occupancies=c.occupancies, b_iso=c.b_iso)
    return row


def rows_to_table(rows: list[dict]):
    """Catalog rows (dicts of :func:`make_row` with ``id``) as a pyarrow Table of :func:`catalog_schema`.

    Built column by column: the crystal columns are one concatenated array plus offsets each, so the cost
    does not grow with a Python loop over atoms.
    """
    import pyarrow as pa

    arrays = [pa.array([r[name] for r in rows], type=getattr(pa, kind)()) for name, kind in _LABEL_COLUMNS]
    for name in CRYSTAL_COLUMNS:
        values = [r[name] for r in rows]
        offsets = np.zeros(len(values) + 1, dtype=np.int32)
        np.cumsum([len(v) for v in values], out=offsets[1:])
        if name == "symbols":
            flat = pa.array([x for v in values for x in v], pa.string())
        else:
            flat = pa.array(np.concatenate([np.asarray(v, dtype=np.float64) for v in values]) if values
                            else np.zeros(0), pa.float64())
        arrays.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat))
    return pa.Table.from_arrays(arrays, schema=catalog_schema())


# ================================================================================== planning ====
@dataclass(frozen=True)
class Task:
    """One unit of work for a worker (pure description, picklable).

    Attributes
    ----------
    kind : str
        ``"files"``, ``"builtin"`` or ``"synthetic"`` (key of :data:`TASK_RUNNERS`).
    source : str
        The spec as the user gave it (catalog column ``source``).
    root : str
        Folder the file paths are relative to (``"files"``); collection name (``"builtin"``).
    items : tuple
        Relative file paths, record indices, or (start, stop) of synthetic indices.
    params : tuple
        Extra (key, value) pairs (synthetic seed and prior).
    """

    kind: str
    source: str
    root: str
    items: tuple
    params: tuple = ()

    @property
    def size(self) -> int:
        if self.kind == "synthetic":
            return int(self.items[1] - self.items[0])
        return len(self.items)


def _plan_path(spec: str, rest: str, batch_size: int, **_) -> list[Task]:
    path = Path(rest).expanduser()
    if path.is_file():
        return [Task("files", spec, str(path.parent), (path.name,))]
    if not path.is_dir():
        raise FileNotFoundError(f"source {spec!r}: no such file or folder; give a folder of CIF/POSCAR/JSON files, "
                                f"a file, or one of the schemes {sorted(SOURCES)}")
    files = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(os.path.relpath(os.path.join(dirpath, f), path) for f in sorted(filenames)
                     if not f.startswith("."))
    return [Task("files", spec, str(path), tuple(files[i:i + batch_size]))
            for i in range(0, len(files), batch_size)]


def _plan_builtin(spec: str, rest: str, batch_size: int, **_) -> list[Task]:
    if rest not in BUILTINS:
        raise ValueError(f"source {spec!r}: unknown builtin collection {rest!r}; valid: "
                         f"{', '.join('builtin:' + k for k in BUILTINS)}")
    n = BUILTINS[rest]["count"]()
    return [Task("builtin", spec, rest, tuple(range(i, min(n, i + batch_size)))) for i in range(0, n, batch_size)]


def _plan_synthetic(spec: str, rest: str, batch_size: int, seed: int = 0, prior: str = "icsd", **_) -> list[Task]:
    try:
        n = int(rest)
        if n < 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"source {spec!r}: expected synthetic:N with N a non-negative integer, got {rest!r}") from None
    params = (("seed", int(seed)), ("prior", str(prior)))
    return [Task("synthetic", spec, "synthetic", (i, min(n, i + batch_size)), params) for i in range(0, n, batch_size)]


#: Sources by scheme (``scheme:rest``); a spec without a known scheme is a file or folder path.
SOURCES: dict[str, Callable[..., list[Task]]] = {
    "builtin": _plan_builtin,
    "synthetic": _plan_synthetic,
    "file": _plan_path,
}


def plan(specs: list[str] | str, *, batch_size: int = 256, seed: int = 0, prior: str = "icsd") -> list[Task]:
    """Turn source specs into tasks (lists file names; opens no file).

    Parameters
    ----------
    specs : list of str
        Folders or files (CIF, POSCAR/CONTCAR, .json/.json.gz), ``builtin:prototypes``, ``synthetic:N``.
    batch_size : int
        Files (or records, or synthetic structures) per task.
    seed, prior
        Synthetic generator seed and space-group prior (see :mod:`xrdbatch.synthetic`).
    """
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    tasks: list[Task] = []
    for spec in specs:
        spec = str(spec)
        scheme, sep, rest = spec.partition(":")
        if sep and scheme in SOURCES and len(scheme) > 1:
            planner = SOURCES[scheme]
        else:
            planner, rest = SOURCES["file"], spec
        tasks.extend(planner(spec, rest, batch_size, seed=seed, prior=prior))
    return tasks


# ================================================================================== builtins ====
def _prototypes_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pymatgen.analysis.prototypes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pymatgen.analysis.prototypes not found; install pymatgen (a dependency)")
    return Path(list(spec.submodule_search_locations)[0]) / "aflow_prototypes.json.gz"


@lru_cache(maxsize=None)
def _prototype_records() -> list:
    with gzip.open(_prototypes_path(), "rt") as fh:
        return json.load(fh)


def _prototype_rows(indices, options: Options, source: str) -> list[dict]:
    recs = _prototype_records()
    rows = []
    path = "pymatgen/analysis/prototypes/aflow_prototypes.json.gz"
    for i in indices:
        rec = recs[i]
        tags = rec.get("tags", {})
        label = str(tags.get("aflow", ""))
        m = re.match(r".*?_[a-zA-Z]+\d+_(\d+)_", label)
        number = int(m.group(1)) if m else 0
        rec_hash = _sha256(json.dumps(rec, sort_keys=True).encode())
        try:
            crystal = _crystal_from_structure_dict(rec["snl"])
            raw = RawRecord(i, rec_hash, crystal, "", "ok", number, "", label)
        except (RecordError, KeyError, ValueError) as exc:
            raw = RawRecord(i, rec_hash, reason=str(exc), stated_number=number, prototype=label)
        rows.append(make_row(raw, source, f"{path}#{label or i}", options))
    return rows


#: Builtin collections: name -> count() and rows(indices, options, source).
BUILTINS: dict[str, dict] = {
    "prototypes": {"count": lambda: len(_prototype_records()), "rows": _prototype_rows},
}


# ================================================================================== execution ====
def _run_files(task: Task, options: Options) -> list[dict]:
    rows = []
    root = Path(task.root)
    for rel in task.items:
        path = root / rel
        kind = file_type(path)
        try:
            data = b"" if kind == "unknown" else path.read_bytes()
        except OSError as exc:
            row = _empty_row()
            row.update(source=task.source, path=str(path), status="error", reason=f"cannot read file: {exc}")
            rows.append(row)
            continue
        try:
            raws = list(FILE_READERS[kind](path, data))
        except Exception as exc:  # noqa: BLE001 - a reader bug must not stop the batch
            raws = [RawRecord(0, _sha256(data), reason=f"reader failed: {type(exc).__name__}: {exc}")]
        for raw in raws:
            rows.append(make_row(raw, task.source, str(path), options))
    return rows


def _run_builtin(task: Task, options: Options) -> list[dict]:
    return BUILTINS[task.root]["rows"](task.items, options, task.source)


def _run_synthetic(task: Task, options: Options) -> list[dict]:
    from xrdbatch import synthetic

    params = dict(task.params)
    return synthetic.rows(task.items[0], task.items[1], seed=params["seed"], prior=params["prior"],
                          options=options, source=task.source)


TASK_RUNNERS: dict[str, Callable[[Task, Options], list[dict]]] = {
    "files": _run_files,
    "builtin": _run_builtin,
    "synthetic": _run_synthetic,
}


def run_task(task: Task, options: Options) -> list[dict]:
    """Rows of one task (runs on a worker; reads its own files)."""
    return TASK_RUNNERS[task.kind](task, options)


def run_task_table(task: Task, options: Options):
    """Rows of one task as a pyarrow Table with ids (what executors ship back: compact, columnar)."""
    rows = run_task(task, options)
    for row in rows:
        row["id"] = _stable_id(task, row)
    return rows_to_table(rows)


def _execute_serial(tasks, options, **_):
    for t in tasks:
        yield t, run_task_table(t, options)


def _execute_processes(tasks, options, *, n_workers=None, **_):
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing as mp

    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=n_workers or os.cpu_count(), mp_context=ctx) as pool:
        futures = {pool.submit(run_task_table, t, options): t for t in tasks}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def _execute_dask(tasks, options, *, client=None, **_):
    from distributed import as_completed

    futures = client.map(run_task_table, tasks, options=options, pure=False)
    index = {f.key: t for f, t in zip(futures, tasks)}
    for fut in as_completed(futures):
        yield index[fut.key], fut.result()
        fut.release()


#: Executors by name: each yields (task, rows) as tasks finish.
EXECUTORS: dict[str, Callable] = {
    "serial": _execute_serial,
    "processes": _execute_processes,
    "dask": _execute_dask,
}


# ================================================================================== assembling ====
def _stable_id(task: Task, row: dict) -> str:
    if task.kind == "files":
        root = str(Path(task.root))
        path = row["path"]
        rel = path[len(root) + 1:] if path.startswith(root + os.sep) else os.path.relpath(path, root)
        key = f"{Path(root).name}/{rel}#{row['record']}"
    elif task.kind == "builtin":
        key = f"builtin:{task.root}#{row['record']}"
    else:
        params = dict(task.params)
        key = f"synthetic:seed={params['seed']}:prior={params['prior']}#{row['record']}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def ingest(specs, *, symprec: float = DEFAULT_SYMPREC, max_atoms: int = DEFAULT_MAX_ATOMS, dedupe: bool = True,
           seed: int = 0, prior: str = "icsd", client=None, progress: bool = False, executor: str | None = None,
           n_workers: int | None = None, batch_size: int = 256,
           volume_per_atom_range: tuple = DEFAULT_VOLUME_PER_ATOM_RANGE,
           min_distance_angstrom: float = DEFAULT_MIN_DISTANCE_ANGSTROM, labeller: str = DEFAULT_LABELLER):
    """Read structure sources into a labelled catalog.

    Parameters
    ----------
    specs : list of str
        Folders (recursive) or files of CIF, POSCAR/CONTCAR, pymatgen/MP JSON (``.json``, ``.json.gz``);
        ``builtin:prototypes`` (AFLOW prototypes shipped with pymatgen); ``synthetic:N``.
    symprec : float
        spglib tolerance in angstrom (default :data:`DEFAULT_SYMPREC`).
    max_atoms : int
        Records with more sites in the cell become ``skipped`` rows.
    dedupe : bool
        Mark later copies of a structure (same formula, space group, conventional cell to 0.01 angstrom /
        0.1 degree and Wyckoff-site composition) as ``skipped`` with ``"duplicate of <id>"``.
    seed, prior
        Seed and space-group prior (``icsd``, ``cod``, ``mp``, ``uniform``) of ``synthetic:N`` sources.
    client : distributed.Client, optional
        Run tasks on this Dask cluster; otherwise ``executor`` decides.
    progress : bool
        Show a tqdm progress bar (records).
    executor : {"serial", "processes", "dask"}, optional
        Default: ``"dask"`` with a client, else ``"processes"`` for several tasks and cores, else ``"serial"``.
    n_workers : int, optional
        Processes of the ``"processes"`` executor (default: all cores).
    batch_size : int
        Files or records per task.
    volume_per_atom_range, min_distance_angstrom
        Physical sanity limits, see :class:`Options`.
    labeller : str
        Symmetry finder of the labels, a key of :data:`LABELLERS` (default :data:`DEFAULT_LABELLER`).

    Returns
    -------
    pandas.DataFrame
        One row per input record, columns :data:`CATALOG_COLUMNS`, in input order.
    """
    return _ingest_table(specs, symprec=symprec, max_atoms=max_atoms, dedupe=dedupe, seed=seed, prior=prior,
                         client=client, progress=progress, executor=executor, n_workers=n_workers,
                         batch_size=batch_size, volume_per_atom_range=volume_per_atom_range,
                         min_distance_angstrom=min_distance_angstrom, labeller=labeller).to_pandas()


def _ingest_table(specs, *, symprec, max_atoms, dedupe, seed, prior, client, progress, executor, n_workers,
                  batch_size, volume_per_atom_range, min_distance_angstrom, labeller=DEFAULT_LABELLER):
    import pyarrow as pa

    options = Options(symprec=float(symprec), max_atoms=int(max_atoms),
                      volume_per_atom_range=tuple(volume_per_atom_range),
                      min_distance_angstrom=float(min_distance_angstrom), labeller=str(labeller))
    _labeller(labeller)  # fail before planning, not in a worker
    if prior not in _valid_priors():
        raise ValueError(f"unknown space-group prior {prior!r}; valid: {', '.join(_valid_priors())}")
    tasks = plan(specs, batch_size=batch_size, seed=seed, prior=prior)
    if executor is None:
        if client is not None:
            executor = "dask"
        elif len(tasks) > 1 and (n_workers or os.cpu_count() or 1) > 1:
            executor = "processes"
        else:
            executor = "serial"
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(t.size for t in tasks), unit="rec", desc="ingest")
    results: dict[int, object] = {}
    position = {id(t): i for i, t in enumerate(tasks)}
    by_key: dict = {}
    for i, t in enumerate(tasks):
        by_key.setdefault(t, []).append(i)
    for task, table in EXECUTORS[executor](tasks, options, client=client, n_workers=n_workers):
        idx = position.get(id(task))
        if idx is None or idx in results:  # returned by value from another process
            idx = next(i for i in by_key[task] if i not in results)
        results[idx] = table
        if bar is not None:
            bar.update(task.size)
    if bar is not None:
        bar.close()
    schema = catalog_schema()
    table = pa.concat_tables([results[i] for i in range(len(tasks))]) if tasks else schema.empty_table()
    table = _unique_ids(table)
    if dedupe:
        table = _mark_duplicates(table)
    return table


def _valid_priors() -> tuple:
    return ("icsd", "cod", "mp", "uniform")


def _unique_ids(table):
    """Suffix ``-2``, ``-3``... to ids seen before (same relative path under two folders of the same name)."""
    import pyarrow as pa

    ids = table.column("id").to_pylist()
    seen: dict[str, int] = {}
    changed = False
    for i, base in enumerate(ids):
        if base in seen:
            seen[base] += 1
            ids[i] = f"{base}-{seen[base]}"
            changed = True
        else:
            seen[base] = 1
    if not changed:
        return table
    return table.set_column(table.schema.get_field_index("id"), "id", pa.array(ids, pa.string()))


def _mark_duplicates(table):
    """Later ok rows with the fingerprint of an earlier ok row become ``skipped``, ``duplicate of <id> (<path>)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    status = table.column("status").to_pylist()
    reason = table.column("reason").to_pylist()
    fingerprint = table.column("fingerprint").to_pylist()
    ids, paths = table.column("id").to_pylist(), table.column("path").to_pylist()
    first: dict[str, int] = {}
    dup = np.zeros(len(status), dtype=bool)
    for i, (st, fp) in enumerate(zip(status, fingerprint)):
        if st != "ok":
            continue
        j = first.setdefault(fp, i)
        if j != i:
            dup[i] = True
            status[i] = "skipped"
            reason[i] = f"duplicate of {ids[j]} ({paths[j]})"
    if not dup.any():
        return table
    mask = pa.array(dup)
    for name, values in (("status", status), ("reason", reason)):
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values, pa.string()))
    for name in CRYSTAL_COLUMNS:  # crystal columns are for ok rows only
        k = table.schema.get_field_index(name)
        column = table.column(k).combine_chunks()
        empty = pa.scalar([], type=column.type)
        table = table.set_column(k, name, pc.if_else(mask, empty, column))
    return table


# ======================================================================================= I/O ====
@dataclass
class IngestSummary:
    """Counts of an ingest run; ``str()`` is the printed summary."""

    out: str
    n_records: int
    seconds: float
    by_status: dict = field(default_factory=dict)
    by_crystal_system: dict = field(default_factory=dict)
    top_reasons: list = field(default_factory=list)
    sha256: str = ""

    def __str__(self) -> str:
        lines = [f"catalog {self.out}: {self.n_records} records in {self.seconds:.1f} s "
                 f"({self.n_records / max(self.seconds, 1e-9):.0f} records/s)"]
        lines.append("  status:         " + ", ".join(f"{k} {v}" for k, v in self.by_status.items()))
        lines.append("  crystal system: " + ", ".join(f"{k} {v}" for k, v in self.by_crystal_system.items()))
        if self.top_reasons:
            lines.append("  most common reasons (not ok):")
            lines += [f"    {n:6d}  {r}" for r, n in self.top_reasons]
        lines.append(f"  sha256 {self.sha256}")
        return "\n".join(lines)


def summarize(table, out: str = "", seconds: float = 0.0) -> IngestSummary:
    """Counts per status, per crystal system (ok rows) and the most common reasons."""
    df = table if hasattr(table, "columns") and not hasattr(table, "schema") else table.to_pandas()
    status = df["status"].value_counts()
    by_status = {s: int(status.get(s, 0)) for s in STATUSES}
    from xrdbatch.crystal import CRYSTAL_SYSTEMS

    ok = df[df["status"] == "ok"]
    cs = ok["crystal_system"].value_counts()
    by_cs = {s: int(cs.get(s, 0)) for s in CRYSTAL_SYSTEMS}
    reasons = df.loc[df["status"] != "ok", "reason"].map(_reason_kind).value_counts().head(8)
    return IngestSummary(out, len(df), seconds, by_status, by_cs, [(r, int(n)) for r, n in reasons.items()])


def _reason_kind(reason: str) -> str:
    """Reason without the record-specific numbers, for grouping ('CIF syntax error: line 3...' -> ...)."""
    kind = re.sub(r"^duplicate of .*", "duplicate of an earlier record", reason)
    kind = re.sub(r"\b\d+(\.\d+)?\b", "#", kind)
    kind = re.sub(r"'[^']*'|\"[^\"]*\"|\([^)]*\)", "…", kind)
    return kind[:90]


def write_catalog(table, out) -> str:
    """Write a catalog table atomically (temporary name, then rename); returns its sha256."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, schema=catalog_schema(), preserve_index=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp, compression="zstd")
        pq.read_metadata(tmp)  # check it is readable before it replaces anything
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return catalog_hash(out)


def ingest_to_parquet(specs, out, **kwargs) -> IngestSummary:
    """:func:`ingest` and write the catalog to ``out`` (Parquet, atomic); returns a printable summary."""
    t0 = time.perf_counter()
    defaults = dict(symprec=DEFAULT_SYMPREC, max_atoms=DEFAULT_MAX_ATOMS, dedupe=True, seed=0, prior="icsd",
                    client=None, progress=False, executor=None, n_workers=None, batch_size=256,
                    volume_per_atom_range=DEFAULT_VOLUME_PER_ATOM_RANGE,
                    min_distance_angstrom=DEFAULT_MIN_DISTANCE_ANGSTROM, labeller=DEFAULT_LABELLER)
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f"ingest_to_parquet got unknown options {sorted(unknown)}; valid: {sorted(defaults)}")
    defaults.update(kwargs)
    table = _ingest_table(specs, **defaults)
    digest = write_catalog(table, out)
    summary = summarize(table, str(out), time.perf_counter() - t0)
    summary.sha256 = digest
    return summary


def read_catalog(path):
    """A catalog as a pandas DataFrame (all columns)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"catalog {path} not found; create it with `xrdbatch ingest SOURCE... --out {path}`")
    return pq.read_table(path).to_pandas()


def catalog_hash(path) -> str:
    """sha256 of the catalog file's bytes (recorded by later stages to tie outputs to their input)."""
    from xrdbatch.hashes import file_sha256

    return file_sha256(path)

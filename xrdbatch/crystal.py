"""The crystal record: the minimal, picklable description of a structure that diffraction needs.

Sources parse files into :class:`Crystal` values and store them as columns of the catalog
(``lattice``, ``symbols``, ``frac_coords``, ``occupancies``, ``b_iso``; see
:data:`CRYSTAL_COLUMNS`); the simulator reads them back without re-parsing any file.
One entry per (site, species) pair: a mixed-occupancy site becomes several entries at the
same position, each with its own occupancy, which is exactly what the structure factor needs.

Numbers only: numpy (pymatgen imported lazily in the two converters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Catalog columns that hold a crystal, with their Arrow list types (flat, row-major).
CRYSTAL_COLUMNS = ("lattice", "symbols", "frac_coords", "occupancies", "b_iso")

CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")


def crystal_system_of(space_group_number: int) -> str:
    """Crystal system of an International Tables space-group number (1-230).

    >>> crystal_system_of(225), crystal_system_of(14), crystal_system_of(166)
    ('cubic', 'monoclinic', 'trigonal')
    """
    n = int(space_group_number)
    if not 1 <= n <= 230:
        raise ValueError(f"space group number must be within 1..230, got {space_group_number!r}")
    for upper, name in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                        (167, "trigonal"), (194, "hexagonal"), (230, "cubic")):
        if n <= upper:
            return name
    raise AssertionError("unreachable")


@dataclass(frozen=True, eq=False)
class Crystal:
    """A periodic structure as flat arrays.

    Attributes
    ----------
    lattice : ndarray, shape (3, 3)
        Lattice vectors a, b, c as rows, in angstrom.
    symbols : tuple of str, length n
        Element symbol of each entry (neutral atom; oxidation states are dropped).
    frac_coords : ndarray, shape (n, 3)
        Fractional coordinates.
    occupancies : ndarray, shape (n,)
        Site occupancy of each entry (1 for ordered sites).
    b_iso : ndarray, shape (n,)
        Isotropic displacement parameter B in angstrom^2 (0 where the source gives none).
    """

    lattice: np.ndarray
    symbols: tuple
    frac_coords: np.ndarray
    occupancies: np.ndarray
    b_iso: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "lattice", np.asarray(self.lattice, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "symbols", tuple(str(s) for s in self.symbols))
        n = len(self.symbols)
        object.__setattr__(self, "frac_coords", np.asarray(self.frac_coords, dtype=np.float64).reshape(n, 3))
        object.__setattr__(self, "occupancies", np.asarray(self.occupancies, dtype=np.float64).reshape(n))
        object.__setattr__(self, "b_iso", np.asarray(self.b_iso, dtype=np.float64).reshape(n))

    @property
    def n_entries(self) -> int:
        return len(self.symbols)

    @property
    def volume_angstrom3(self) -> float:
        return float(abs(np.linalg.det(self.lattice)))

    # -- pymatgen ------------------------------------------------------------------------------
    @classmethod
    def from_structure(cls, structure) -> Crystal:
        """From a pymatgen ``Structure`` (B from site property ``b_iso`` or ``B``, else 0)."""
        symbols, frac, occ, b = [], [], [], []
        props = structure.site_properties
        b_prop = props.get("b_iso") or props.get("B")
        for i, site in enumerate(structure):
            for sp, o in site.species.items():
                symbols.append(sp.symbol)
                frac.append(site.frac_coords)
                occ.append(o)
                b.append(float(b_prop[i]) if b_prop is not None and b_prop[i] is not None else 0.0)
        return cls(structure.lattice.matrix, symbols, np.reshape(frac, (-1, 3)), occ, b)

    def to_structure(self):
        """To a pymatgen ``Structure`` (entries at the same position merged into one disordered site)."""
        from pymatgen.core import Lattice, Structure

        keys: dict[tuple, int] = {}
        species: list[dict] = []
        coords: list[np.ndarray] = []
        b: list[float] = []
        for sym, xyz, o, bi in zip(self.symbols, self.frac_coords, self.occupancies, self.b_iso):
            key = tuple(np.round(np.mod(xyz, 1.0), 6))
            if key not in keys:
                keys[key] = len(species)
                species.append({})
                coords.append(xyz)
                b.append(bi)
            d = species[keys[key]]
            d[sym] = d.get(sym, 0.0) + float(o)
        return Structure(Lattice(self.lattice), species, coords, site_properties={"b_iso": b})

    # -- catalog columns -----------------------------------------------------------------------
    def to_columns(self) -> dict:
        """The values of :data:`CRYSTAL_COLUMNS` for one catalog row (flat lists)."""
        return {
            "lattice": self.lattice.ravel().tolist(),
            "symbols": list(self.symbols),
            "frac_coords": self.frac_coords.ravel().tolist(),
            "occupancies": self.occupancies.tolist(),
            "b_iso": self.b_iso.tolist(),
        }

    @classmethod
    def from_columns(cls, row) -> Crystal:
        """Inverse of :meth:`to_columns`; ``row`` is any mapping (dict, pandas row)."""
        return cls(row["lattice"], row["symbols"], row["frac_coords"], row["occupancies"], row["b_iso"])


def crystals_from_table(table) -> list[Crystal]:
    """Crystals of every row of a catalog table (pandas DataFrame or pyarrow Table)."""
    if hasattr(table, "to_pandas"):
        table = table.select(list(CRYSTAL_COLUMNS)).to_pandas()
    cols = [table[c].to_numpy() for c in CRYSTAL_COLUMNS]
    return [Crystal(*vals) for vals in zip(*cols)]

"""Small catalogs for store/pipeline tests, written without the ingest stage.

Rows are four textbook cubic structures (rock salt, CsCl, diamond, bcc) with random lattice constants,
written out site by site (no pymatgen: fast to build), in the catalog columns of the contract, plus one row the simulator must reject (a singular lattice) and one
row the catalog itself skipped, so the store's handling of both is tested.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_FCC = ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0))
#: (space group symbol, number, formula, conventional-cell sites as (symbol, fractional position))
PROTOTYPES = (
    ("Fm-3m", 225, "NaCl", [("Na", p) for p in _FCC] + [("Cl", tuple(x + 0.5 for x in p)) for p in _FCC]),
    ("Pm-3m", 221, "CsCl", [("Cs", (0, 0, 0)), ("Cl", (0.5, 0.5, 0.5))]),
    ("Fd-3m", 227, "Si", [("Si", p) for p in _FCC] + [("Si", tuple(x + 0.25 for x in p)) for p in _FCC]),
    ("Im-3m", 229, "Fe", [("Fe", (0, 0, 0)), ("Fe", (0.5, 0.5, 0.5))]),
)


def small_catalog(n: int, *, seed: int = 0, bad_rows=(), skipped_rows=()) -> pd.DataFrame:
    """``n`` catalog rows; ``bad_rows`` get a singular lattice, ``skipped_rows`` status "skipped"."""
    from xrdbatch.crystal import Crystal, crystal_system_of

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        symbol, number, formula, sites = PROTOTYPES[i % len(PROTOTYPES)]
        a = float(3.0 + 3.0 * rng.random())
        crystal = Crystal(np.eye(3) * a, [e for e, _ in sites], np.mod([p for _, p in sites], 1.0),
                          np.ones(len(sites)), np.full(len(sites), 0.5))
        columns = crystal.to_columns()
        status, reason = "ok", ""
        if i in bad_rows:
            columns["lattice"] = [0.0] * 9
        if i in skipped_rows:
            status, reason = "skipped", "too many atoms (test)"
        rows.append(dict(
            id=f"test-{i:05d}", source="test", path="", record=i, sha256=f"{i:064x}", status=status, reason=reason,
            formula=formula, n_atoms=len(sites), spacegroup_number=number,
            spacegroup_symbol=symbol, crystal_system=crystal_system_of(number), a=a, b=a, c=a, alpha=90.0,
            beta=90.0, gamma=90.0, volume=a**3, stated_spacegroup_number=0, stated_spacegroup_symbol="",
            structure_type=f"{symbol}-{i % len(PROTOTYPES)}", **columns))
    return pd.DataFrame(rows)


def write_catalog(path, n: int, *, row_group_size: int = 7, **kw) -> str:
    small_catalog(n, **kw).to_parquet(path, row_group_size=row_group_size)
    return str(path)

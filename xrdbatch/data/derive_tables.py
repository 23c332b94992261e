"""Derive the package data tables in this folder (run by a developer, never at import or install time).

    python xrdbatch/data/derive_tables.py [--shared ../shared/data]

Writes
------
elements.json
    symbol -> Z, X (Pauling electronegativity; 4.5 where undefined), atomic_radius, metallic_radius,
    ionic_radii {oxidation state: angstrom}, common_oxidation_states, is_metal. From pymatgen's periodic
    table (CC-BY/MIT data). Used for reduced formulas (electronegativity order) and the synthetic generator.
space_group_prior.json
    source -> list of 230 relative frequencies (space groups 1..230), from
    ../shared/data/structures/space_group_priors/space_group_counts.json (counts of deduplicated ICSD 2025,
    COD 2024 and Materials Project entries, via the dara-xrd package, MIT). Statistics only.
wyckoff.npz
    Wyckoff positions of the 230 space groups in their standard (ITA, first setting, hexagonal axes for R)
    conventional cells, from pyxtal's database (MIT): for each group and position, multiplicity, letter and
    the affine operations (rotation int8, translation in 1/24) that map free parameters (x, y, z) onto all
    equivalent positions.
"""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def derive_elements() -> dict:
    import warnings

    from pymatgen.core.periodic_table import Element

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z in range(1, 104):
            el = Element.from_Z(z)
            x = el.X
            ionic = {}
            for k, v in (el.ionic_radii or {}).items():
                ionic[str(int(k))] = float(v)
            out[el.symbol] = {
                "Z": z,
                "X": float(x) if x == x else 4.5,
                "atomic_radius": float(el.atomic_radius) if el.atomic_radius else None,
                "metallic_radius": float(el.metallic_radius) if el.metallic_radius else None,
                "ionic_radii": ionic,
                "common_oxidation_states": [int(o) for o in el.common_oxidation_states],
                "is_metal": bool(el.is_metal),
            }
    return out


def derive_prior(shared: Path) -> dict:
    counts = json.loads((shared / "structures" / "space_group_priors" / "space_group_counts.json").read_text())
    prior = {}
    for name, table in counts.items():
        key = {"materials_project": "mp"}.get(name, name.split("_")[0].lower())
        v = np.array([float(table.get(str(i), 0)) for i in range(1, 231)])
        prior[key] = {"source": name, "counts": v.astype(int).tolist()}
    return prior


def _parse_op(text: str):
    rot = np.zeros((3, 3), dtype=np.int8)
    trans = np.zeros(3, dtype=np.int16)
    for i, comp in enumerate(text.replace(" ", "").split(",")):
        expr = comp.replace("-", "+-")
        for term in filter(None, expr.split("+")):
            sign = -1 if term.startswith("-") else 1
            term = term.lstrip("-")
            var = term[-1] if term[-1] in "xyz" else None
            coef = term[:-1] if var else term
            if var:
                coef = coef.rstrip("*")
                c = Fraction(coef) if coef else Fraction(1)
                assert c.denominator == 1, text
                rot[i, "xyz".index(var)] += sign * int(c)
            else:
                t = Fraction(coef) * 24 * sign
                assert t.denominator == 1, text
                trans[i] += int(t)
    return rot, trans


def derive_wyckoff() -> dict:
    from pyxtal.symmetry import Group

    group_index, pos_index, rots, trans, mult, letters, dof = [], [], [], [], [], [], []
    pos_start = [0]
    op_start = [0]
    sg_first_pos = [0]
    for number in range(1, 231):
        g = Group(number)
        for wp in g.Wyckoff_positions:  # general position first in pyxtal order? keep their order
            ops = [_parse_op(op.as_xyz_str()) for op in wp.ops]
            for r, t in ops:
                rots.append(r)
                trans.append(t)
            op_start.append(len(rots))
            mult.append(wp.multiplicity)
            letters.append(wp.letter)
            dof.append(int(np.linalg.matrix_rank(ops[0][0].astype(float))))
        sg_first_pos.append(len(mult))
    return {
        "sg_pos_start": np.array(sg_first_pos, dtype=np.int32),  # (231,) positions of group n: [s[n-1], s[n])
        "pos_op_start": np.array(op_start, dtype=np.int32),  # (n_pos+1,)
        "multiplicity": np.array(mult, dtype=np.int16),
        "letter": np.array(letters),
        "dof": np.array(dof, dtype=np.int8),
        "rot": np.array(rots, dtype=np.int8),  # (n_ops, 3, 3)
        "trans24": np.array(trans, dtype=np.int16),  # (n_ops, 3) translation x 24
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(HERE.parents[2] / "shared" / "data"))
    p.add_argument("--only", nargs="*", default=["elements", "prior", "wyckoff"])
    args = p.parse_args(argv)
    if "elements" in args.only:
        (HERE / "elements.json").write_text(json.dumps(derive_elements(), separators=(",", ":")))
    if "prior" in args.only:
        (HERE / "space_group_prior.json").write_text(json.dumps(derive_prior(Path(args.shared)), indent=0))
    if "wyckoff" in args.only:
        np.savez_compressed(HERE / "wyckoff.npz", **derive_wyckoff())


if __name__ == "__main__":
    main()

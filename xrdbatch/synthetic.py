"""Random but physically sensible crystals (the ``synthetic:N`` source).

Record ``i`` of seed ``s`` depends on ``(s, i)`` only (``numpy.random.default_rng((s, i))``), so any range
of records can be generated on any worker, in any order, and gives the same structures.

How one crystal is made
-----------------------
1. **Space group** drawn from a prior: the space-group frequencies of ICSD (default), COD or Materials
   Project (``data/space_group_prior.json``, derived from the shared counts), or uniform.
2. **Size and Wyckoff orbits**: a target number of atoms in the conventional cell (log-normal, median 24,
   1-300); orbits are drawn from the group's Wyckoff positions (``data/wyckoff.npz``, ITA standard settings,
   derived from pyxtal's tables), fixed positions at most once.
3. **Chemistry**: 70 % ionic (1-2 anions among O, F, Cl, S, N, Se, Br, I, Te, H; cations with an oxidation
   state chosen so that the formula is charge balanced), 30 % intermetallic (2-5 metals or metalloids).
4. **Cell**: lattice shape drawn for the crystal system with the spread of real databases (axis ratios
   0.2-5, monoclinic beta 90-127 degrees, triclinic reduced cells; see :func:`_lattice`); the volume is the
   sum of atomic volumes (4/3 pi r^3 / packing fraction with crystal ionic radii for ions, metallic radii for
   metals; MgO, Al2O3, NaCl, Fe, Al come out within 10 % of experiment) times a log-normal factor (sigma 0.1).
5. **Positions**: orbits are placed one by one; each tries up to 256 random free parameters and keeps the
   first whose atoms respect pair distances (cation-anion >= 0.85 (r_c + r_a), other pairs >= 0.8 or 0.7
   times the sum of radii, see :func:`_min_distance`); if an orbit cannot be placed the cell grows by 12 %
   and placement restarts.
6. **Labels** come from spglib through :func:`xrdbatch.sources.label_crystal`, like every other source;
   a crystal whose spglib space group differs from the drawn one (an accidental supergroup) is rebuilt in
   the same space group (up to 4 times), so the catalog follows the prior and the labels are what spglib
   says. Orbits with free parameters are favoured (weight 1 + number of free parameters), because crystals
   made of fixed positions alone often have a higher symmetry than the group they were drawn in.

Numbers only (numpy), vectorised over trial positions; tables are loaded once per process.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from xrdbatch.crystal import Crystal, crystal_system_of

#: Median and log-sigma of the number of atoms in the conventional cell (ICSD-like), and the cap.
#: (Medians by crystal system as in the shared real structures, triclinic 60 / monoclinic 44 / ... with up to 48
#: orbits, were tried in session 3: +1.1 points on held-out real structure types, -3.8 on RRUFF dev, monoclinic
#: minerals called orthorhombic; not kept.)
SIZE_MEDIAN_ATOMS = 24
SIZE_LOG_SIGMA = 0.8
SIZE_MAX_ATOMS = 300
#: Free-parameter trials per Wyckoff orbit, cell growth per failed placement, placement rounds.
TRIALS_PER_ORBIT = 256
GROWTH_PER_ROUND = 1.10
PLACEMENT_ROUNDS = 6
#: Cell shapes (real databases: log axis ratios spread ~0.6, uniaxial c/a median ~1.2, monoclinic beta median
#: ~106 degrees, triclinic angles 68-115 degrees on the shared real structures).
AXIS_LOG_SIGMA = 0.55
AXIS_RATIO_MAX = 5.0
UNIAXIAL_C_OVER_A = 1.2
MONOCLINIC_BETA_SPAN_DEG = 37.0
TRICLINIC_ANGLES_DEG = (65.0, 115.0)
#: Attempts at a crystal whose spglib space group equals the drawn one.
MAX_ATTEMPTS = 4

PRIORS = ("icsd", "cod", "mp", "uniform")

# Anions with oxidation state and relative frequency (ICSD-like: oxides dominate).
_ANIONS = (("O", -2, 0.55), ("F", -1, 0.08), ("Cl", -1, 0.07), ("S", -2, 0.10), ("N", -3, 0.05),
           ("Se", -2, 0.04), ("Br", -1, 0.03), ("I", -1, 0.03), ("Te", -2, 0.02), ("H", -1, 0.01),
           ("P", -3, 0.02))
_ANION_CDF = np.cumsum([w for _, _, w in _ANIONS]) / sum(w for _, _, w in _ANIONS)
#: Probabilities of 1..5 distinct elements (ICSD-like: ternaries most common).
_N_ELEMENTS_CDF = np.cumsum([0.03, 0.27, 0.4, 0.2, 0.1])[:-1]
# Cations: common, stable elements (no noble gases, nothing beyond U, no Tc/Pm/Po/At/Fr/Ra/Ac/Pa).
_CATIONS = ("Li Na K Rb Cs Be Mg Ca Sr Ba Sc Y La Ce Pr Nd Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Ti Zr Hf V Nb Ta Cr Mo W "
            "Mn Re Fe Ru Os Co Rh Ir Ni Pd Pt Cu Ag Au Zn Cd Hg B Al Ga In Tl Si Ge Sn Pb P As Sb Bi Se Te Th U").split()
_METALS = ("Li Na K Mg Ca Sr Ba Sc Y La Ce Pr Nd Sm Gd Tb Dy Ho Er Yb Lu Ti Zr Hf V Nb Ta Cr Mo W Mn Re Fe Ru Os "
           "Co Rh Ir Ni Pd Pt Cu Ag Au Zn Cd Hg Al Ga In Tl Si Ge Sn Pb As Sb Bi Th U B").split()


# ====================================================================================== tables ====
@lru_cache(maxsize=None)
def _elements() -> dict:
    from xrdbatch.sources import _elements as table

    return table()


@lru_cache(maxsize=None)
def prior_probabilities(prior: str = "icsd") -> np.ndarray:
    """Probabilities of space groups 1..230 (shape (230,)) for a named prior.

    >>> p = prior_probabilities("icsd"); p.shape, round(float(p.sum()), 6), int(p.argmax()) + 1
    ((230,), 1.0, 14)
    """
    if prior == "uniform":
        return np.full(230, 1.0 / 230)
    from importlib.resources import files

    table = json.loads(files("xrdbatch").joinpath("data", "space_group_prior.json").read_text())
    if prior not in table:
        raise ValueError(f"unknown space-group prior {prior!r}; valid: {', '.join(PRIORS)}")
    counts = np.asarray(table[prior]["counts"], dtype=np.float64)
    return counts / counts.sum()


@lru_cache(maxsize=None)
def _prior_cdf(prior: str) -> np.ndarray:
    cdf = np.cumsum(prior_probabilities(prior))
    return cdf / cdf[-1]


class _Wyckoff(NamedTuple):
    multiplicity: int
    dof: int
    letter: str
    rot: np.ndarray  # (m, 3, 3)
    trans: np.ndarray  # (m, 3)


@lru_cache(maxsize=None)
def _wyckoff_table():
    from importlib.resources import files

    with files("xrdbatch").joinpath("data", "wyckoff.npz").open("rb") as fh:
        d = np.load(fh)
        return {k: d[k] for k in d.files}


@lru_cache(maxsize=None)
def wyckoff_positions(number: int) -> tuple[_Wyckoff, ...]:
    """Wyckoff positions of a space group (general position first), standard conventional setting."""
    t = _wyckoff_table()
    out = []
    for p in range(t["sg_pos_start"][number - 1], t["sg_pos_start"][number]):
        a, b = t["pos_op_start"][p], t["pos_op_start"][p + 1]
        out.append(_Wyckoff(int(t["multiplicity"][p]), int(t["dof"][p]), str(t["letter"][p]),
                            t["rot"][a:b].astype(np.float64), t["trans24"][a:b].astype(np.float64) / 24.0))
    return tuple(out)


@lru_cache(maxsize=None)
def _chemistry():
    """Element properties the generator needs, as plain dicts (loaded once per process)."""
    el = _elements()
    cations_by_q: dict[int, list[str]] = {}
    ionic_r: dict[tuple[str, int], float] = {}
    for sym in _CATIONS:
        for q in el[sym]["common_oxidation_states"]:
            r = el[sym]["ionic_radii"].get(str(q))
            if q > 0 and r:
                cations_by_q.setdefault(q, []).append(sym)
                ionic_r[(sym, q)] = r
    for sym, q, _ in _ANIONS:
        r = el[sym]["ionic_radii"].get(str(q))
        ionic_r[(sym, q)] = r if r else (el[sym]["atomic_radius"] or 1.5) * 1.3
    metal_r = {s: el[s]["metallic_radius"] or el[s]["atomic_radius"] or 1.4 for s in _METALS + _CATIONS}
    atomic_r = {s: el[s]["atomic_radius"] or 1.4 for s in el}
    return cations_by_q, ionic_r, metal_r, atomic_r


# ===================================================================================== lattice ====
def _lattice(rng: np.random.Generator, number: int, volume: float) -> np.ndarray:
    """Lattice (rows) of the crystal system of ``number`` with the given volume (angstrom^3).

    Cell shapes follow real structure databases (:data:`AXIS_LOG_SIGMA` etc.; measured on the 2,103 real
    structures of ``../shared/data/structures``): axis ratios spread over 0.2-5, monoclinic beta mostly 95-125
    degrees, triclinic reduced cells (a <= b <= c, angles 65-115 degrees).
    """
    system = crystal_system_of(number)
    r = np.exp(rng.normal(0.0, AXIS_LOG_SIGMA, size=2)).clip(1.0 / AXIS_RATIO_MAX, AXIS_RATIO_MAX)
    al = be = ga = 90.0
    if system == "cubic":
        abc = (1.0, 1.0, 1.0)
    elif system in ("tetragonal",):
        abc = (1.0, 1.0, r[0] * UNIAXIAL_C_OVER_A)
    elif system in ("hexagonal", "trigonal"):
        abc, ga = (1.0, 1.0, r[0] * UNIAXIAL_C_OVER_A), 120.0
    elif system == "orthorhombic":
        abc = (1.0, r[0], r[1])
    elif system == "monoclinic":
        abc, be = (1.0, r[0], r[1]), 90.0 + float(MONOCLINIC_BETA_SPAN_DEG * rng.beta(2.0, 2.5))
    else:
        while True:
            al, be, ga = rng.uniform(*TRICLINIC_ANGLES_DEG, size=3)
            ca, cb, cg = np.cos(np.radians([al, be, ga]))
            if 1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg > 0.1:
                break
        abc = tuple(sorted((1.0, r[0], r[1])))
    lat = _from_parameters(*abc, al, be, ga)
    return lat * (volume / abs(np.linalg.det(lat))) ** (1.0 / 3.0)


def _from_parameters(a, b, c, alpha, beta, gamma) -> np.ndarray:
    ca, cb, cg = np.cos(np.radians([alpha, beta, gamma]))
    sg = math.sin(math.radians(gamma))
    cx = cb
    cy = (ca - cb * cg) / sg
    cz = math.sqrt(max(1.0 - cx**2 - cy**2, 1e-12))
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [c * cx, c * cy, c * cz]])


# ==================================================================================== chemistry ====
class _Species(NamedTuple):
    symbol: str
    charge: int  # 0 for metals in intermetallics
    radius: float  # angstrom: crystal ionic radius (ions) or metallic radius
    volume: float  # angstrom^3 per atom


def _pick_orbits(rng, positions, n_target):
    orbits: list[int] = []
    used_fixed: set[int] = set()
    total = 0
    while len(orbits) < 12:
        remaining = n_target - total
        cands = [k for k, w in enumerate(positions)
                 if w.multiplicity <= remaining and (w.dof > 0 or k not in used_fixed)]
        if not cands:
            if orbits:
                break
            cands = [int(np.argmin([w.multiplicity for w in positions]))]
        # orbits with free parameters are favoured: all-fixed picks often have a higher (accidental) symmetry
        weights = np.array([1.0 + positions[c].dof for c in cands])
        k = cands[int(np.searchsorted(np.cumsum(weights), rng.random() * weights.sum(), side="right"))]
        orbits.append(k)
        if positions[k].dof == 0:
            used_fixed.add(k)
        total += positions[k].multiplicity
        if total >= 0.75 * n_target and rng.random() < 0.5:
            break
    return orbits


def _assign_chemistry(rng, counts: np.ndarray) -> tuple[list[int], list[_Species]] | None:
    """Species of each orbit (index into the species list) and the species, or None if no balance found."""
    cations_by_q, ionic_r, metal_r, _ = _chemistry()
    n_orb = len(counts)
    k = 1 + int(np.searchsorted(_N_ELEMENTS_CDF, rng.random(), side="right"))
    k = max(1, min(k, n_orb))
    ionic = k >= 2 and rng.random() < 0.7
    if ionic:
        for _ in range(8):
            n_an = 2 if (k >= 4 and rng.random() < 0.2) else 1
            assign = _partition(rng, n_orb, k)
            amount = np.bincount(assign, weights=counts, minlength=k)
            an_idx: list[int] = []
            while len(an_idx) < n_an:
                i = int(np.searchsorted(_ANION_CDF, rng.random(), side="right"))
                if i not in an_idx:
                    an_idx.append(i)
            anions = [_ANIONS[i] for i in an_idx]
            q_total = sum(-q * amount[j] for j, (_, q, _) in enumerate(anions))
            cat_amount = amount[n_an:]
            charges = _balance(rng, cat_amount, q_total)
            if charges is None:
                continue
            species = []
            taken = {s for s, _, _ in anions}
            for sym, q, _ in anions:
                r = ionic_r[(sym, q)]
                species.append(_Species(sym, q, r, 4.18879 * r**3 / 0.62))
            ok = True
            for q in charges:
                pool = [s for s in cations_by_q.get(int(q), []) if s not in taken]
                if not pool:
                    ok = False
                    break
                sym = pool[int(rng.integers(len(pool)))]
                taken.add(sym)
                r = ionic_r[(sym, int(q))]
                species.append(_Species(sym, int(q), r, 4.18879 * r**3 / 0.62))
            if ok:
                return assign.tolist(), species
    # intermetallic (or fallback when no charge-balanced assignment was found)
    syms = rng.permutation(len(_METALS))[:k]
    species = []
    for i in syms:
        s = _METALS[int(i)]
        r = metal_r[s]
        species.append(_Species(s, 0, r, 4.18879 * r**3 / 0.70))
    return _partition(rng, n_orb, k).tolist(), species


def _partition(rng, n_orb: int, k: int) -> np.ndarray:
    """Orbit -> species index, every species used at least once."""
    assign = np.concatenate([np.arange(k), rng.integers(0, k, size=n_orb - k)])
    return rng.permutation(assign)


@lru_cache(maxsize=None)
def _charge_grid(n: int) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(1, 7)] * n, indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def _balance(rng, amounts: np.ndarray, q_total: float) -> np.ndarray | None:
    """Cation oxidation states (1..6) with sum(amount * q) == q_total, drawn among the solutions."""
    n = len(amounts)
    if n == 0 or n > 4:
        return None
    grid = _charge_grid(n)
    sol = grid[np.abs(grid @ amounts - q_total) < 1e-6]
    if len(sol) == 0:
        return None
    return sol[int(rng.integers(len(sol)))]


def _min_distance(a: _Species, b: _Species) -> float:
    """Shortest allowed distance between two atoms, angstrom."""
    if a.charge == 0 or b.charge == 0:
        _, _, metal_r, atomic_r = _chemistry()
        ra = metal_r.get(a.symbol, atomic_r.get(a.symbol, 1.4)) if a.charge <= 0 else atomic_r[a.symbol]
        rb = metal_r.get(b.symbol, atomic_r.get(b.symbol, 1.4)) if b.charge <= 0 else atomic_r[b.symbol]
        return 0.7 * (ra + rb)
    if (a.charge > 0) != (b.charge > 0):
        return 0.8 * (a.radius + b.radius)
    if a.charge < 0:
        return 0.75 * (a.radius + b.radius)
    _, _, _, atomic_r = _chemistry()
    return max(0.7 * (atomic_r[a.symbol] + atomic_r[b.symbol]), a.radius + b.radius + 0.6)


# ===================================================================================== placing ====
def _fixed_orbit_scale(lattice, positions, orbits, orbit_species, dmin) -> float:
    """Smallest factor (>= 1) on the cell that keeps the atoms of fixed Wyckoff positions far enough apart.

    Fixed positions have no free parameter, so their distances scale with the cell and can be
    satisfied exactly instead of by trial and error.
    """
    fixed = [o for o, k in enumerate(orbits) if positions[k].dof == 0]
    if not fixed:
        return 1.0
    f = np.concatenate([np.mod(positions[orbits[o]].trans, 1.0) for o in fixed])
    sp = np.concatenate([np.full(positions[orbits[o]].multiplicity, orbit_species[o]) for o in fixed])
    if len(sp) < 2:
        return 1.0
    d = f[:, None, :] - f[None, :, :]
    d -= np.round(d)
    dist = np.sqrt(np.einsum("abi,ij,abj->ab", d, lattice @ lattice.T, d))
    np.fill_diagonal(dist, np.inf)
    need = dmin[sp[:, None], sp[None, :]] / np.maximum(dist, 1e-9)
    return float(max(1.0, need.max() * 1.001))


def _place(rng, lattice, positions, orbits, orbit_species, species, dmin):
    """Fractional coordinates and species index of all atoms, or None when an orbit does not fit.

    Every placed set is a union of full orbits, so it is invariant under the group: the distances of an
    orbit's atoms to each other and to the placed atoms are those of its representative atom (op 0) alone.
    That makes a trial O(m + n) instead of O(m (m + n)), so hundreds of trials per orbit are cheap.
    """
    placed_f = np.empty((0, 3))
    placed_s = np.empty(0, dtype=np.int64)
    order = sorted(range(len(orbits)), key=lambda o: (positions[orbits[o]].dof > 0, -positions[orbits[o]].multiplicity))
    dropped: set[int] = set()

    def remaining_species(o):  # species still carried by another, not dropped orbit
        return {orbit_species[k] for k in range(len(orbits)) if k != o and k not in dropped}

    for o in order:
        w = positions[orbits[o]]
        s = orbit_species[o]
        found = None
        for trials in ((1,) if w.dof == 0 else (32, TRIALS_PER_ORBIT)):
            params = rng.random((trials, 3))
            rep = params @ w.rot[0].T + w.trans[0]  # representative atom of every trial, (T, 3)
            ok = np.ones(trials, dtype=bool)
            if len(placed_s):  # cheap test first: representative vs the atoms already placed
                d = placed_f[None, :, :] - rep[:, None, :]
                d -= np.round(d)
                d2 = ((d @ lattice) ** 2).sum(-1)
                ok = (d2 >= (dmin[s, placed_s] ** 2)[None, :]).all(axis=1)
            idx = np.flatnonzero(ok)[:16]
            if len(idx) and w.multiplicity > 1:  # then its own images, for the survivors only
                cand = np.einsum("mij,tj->tmi", w.rot[1:], params[idx]) + w.trans[None, 1:]
                d = cand - rep[idx, None, :]
                d -= np.round(d)
                d2 = ((d @ lattice) ** 2).sum(-1)
                idx = idx[d2.min(axis=1) >= dmin[s, s] ** 2]
            if len(idx):
                found = params[idx[0]]
                break
        if found is None:
            if orbit_species.count(s) > 1 and s in remaining_species(o):
                dropped.add(o)  # the species keeps other orbits: drop this one rather than the crystal
                continue
            return None
        atoms = np.mod(w.rot @ found + w.trans, 1.0)
        placed_f = np.concatenate([placed_f, atoms])
        placed_s = np.concatenate([placed_s, np.full(w.multiplicity, s)])
    return placed_f, placed_s


class Generated(NamedTuple):
    """One synthetic crystal, its spglib labels and how it was made."""

    crystal: Crystal
    labels: object  # xrdbatch.sources.Labels, or None if labelling failed
    spacegroup_number: int  # the drawn (constructed) space group
    attempts: int


def generate(seed: int, index: int, prior: str = "icsd", options=None) -> Generated:
    """Synthetic crystal number ``index`` of ``seed`` (deterministic, independent of other indices).

    Parameters
    ----------
    seed, index : int
        Record ``index`` is drawn from ``numpy.random.default_rng((seed, index))``.
    prior : {"icsd", "cod", "mp", "uniform"}
        Space-group prior.
    options : xrdbatch.sources.Options, optional
        Labelling options (spglib symprec etc.).

    Returns
    -------
    Generated
        The crystal, its labels from :func:`xrdbatch.sources.label_crystal` (None when the last attempt
        failed the sanity checks) and the drawn space group. A crystal whose spglib space group differs
        from the drawn one is redrawn up to :data:`MAX_ATTEMPTS` times.
    """
    from xrdbatch import sources

    options = options or sources.Options()
    rng = np.random.default_rng((int(seed), int(index)))
    number = int(min(np.searchsorted(_prior_cdf(prior), rng.random(), side="right") + 1, 230))
    best = None
    for attempt in range(1, MAX_ATTEMPTS + 1):  # same space group each time, so the catalog follows the prior
        crystal = _build(rng, number)
        if crystal is None:
            continue
        try:
            labels = sources.label_crystal(crystal, options)
        except sources.RecordError:
            labels = None
        best = Generated(crystal, labels, number, attempt)
        if labels is not None and labels.spacegroup_number == number:
            return best
    if best is None:  # practically unreachable: a one-atom cubic crystal keeps the row count exact
        crystal = Crystal(np.eye(3) * 2.55, ("Cu",), np.zeros((1, 3)), [1.0], [0.5])
        best = Generated(crystal, sources.label_crystal(crystal, options), 221, MAX_ATTEMPTS)
    return best


def _build(rng, number: int) -> Crystal | None:
    positions = wyckoff_positions(number)
    n_target = int(np.clip(round(SIZE_MEDIAN_ATOMS * math.exp(rng.normal(0.0, SIZE_LOG_SIGMA))), 1, SIZE_MAX_ATOMS))
    orbits = _pick_orbits(rng, positions, n_target)
    counts = np.array([positions[k].multiplicity for k in orbits], dtype=np.float64)
    orbit_species, species = _assign_chemistry(rng, counts)
    n_sp = len(species)
    dmin = np.array([[_min_distance(species[i], species[j]) for j in range(n_sp)] for i in range(n_sp)])
    volume = float(sum(species[s].volume * c for s, c in zip(orbit_species, counts)))
    volume *= math.exp(rng.normal(0.0, 0.1))
    lattice = _lattice(rng, number, volume)
    lattice = lattice * _fixed_orbit_scale(lattice, positions, orbits, orbit_species, dmin)
    for _ in range(PLACEMENT_ROUNDS):
        placed = _place(rng, lattice, positions, orbits, orbit_species, species, dmin)
        if placed is not None:
            frac, sp = placed
            symbols = tuple(species[s].symbol for s in sp)
            b_orbit = rng.uniform(0.3, 1.5, size=n_sp)
            return Crystal(lattice, symbols, frac, np.ones(len(sp)), b_orbit[sp])
        lattice = lattice * GROWTH_PER_ROUND ** (1.0 / 3.0)
    return None


# ======================================================================================== rows ====
def rows(start: int, stop: int, *, seed: int = 0, prior: str = "icsd", options=None, source: str = "") -> list[dict]:
    """Catalog rows of synthetic records ``start..stop-1`` (labels from spglib via :mod:`xrdbatch.sources`)."""
    from xrdbatch import sources

    options = options or sources.Options()
    out = []
    for i in range(start, stop):
        path = f"synthetic:seed={seed}:prior={prior}#{i}"
        try:
            g = generate(seed, i, prior, options)
        except Exception as exc:  # noqa: BLE001 - a generator bug must not stop the batch
            raw = sources.RawRecord(i, "", reason=f"synthetic generator failed: {type(exc).__name__}: {exc}")
            out.append(sources.make_row(raw, source, path, options))
            continue
        c = g.crystal
        digest = hashlib.sha256(c.lattice.tobytes() + c.frac_coords.tobytes() + "".join(c.symbols).encode()).hexdigest()
        raw = sources.RawRecord(i, digest, c, "", "ok", g.spacegroup_number, "")
        out.append(sources.make_row(raw, source, path, options, labels=g.labels))
    return out

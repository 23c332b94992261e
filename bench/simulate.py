"""Benchmark: xrdbatch.simulate against pymatgen's XRDCalculator, same structures, same run.

For every structure of the shared AFLOW prototype and spglib sets (read by the project's ingest readers,
converted to pymatgen with ``Crystal.to_structure`` outside the timed region, B set to 0 because pymatgen
ignores per-site B) it times, in CPU seconds of
this process (``time.process_time``, so other jobs on a shared machine disturb it less than wall time):

* pymatgen: ``XRDCalculator(lambda).get_pattern(structure, two_theta_range=(min, max))``;
* xrdbatch, the regeneration path: ``reflections(crystal, d_min)`` + ``pattern(refl, conditions)`` (a full
  profile on the 2-theta grid, which pymatgen does not even compute);
* xrdbatch, like for like: ``stick_pattern(crystal, conditions)`` (same peaks, intensities and hkl families
  as pymatgen);

checks that every peak above 1 (of 100) agrees within 0.001 degrees and 0.5, and prints the speed-up per size
band (<= 10, 11-40, 41-100, > 100 atoms) and overall, plus structures per second per core. Then it runs the
large cells (CoRE MOF sample, the CIF edge-case corpus) through the regeneration path and reports time and peak
RSS. Ratios, not absolute times, are the result: both sides run in the same process on the same machine.

    python bench/simulate.py                     # everything (pymatgen takes several minutes)
    python bench/simulate.py --sample 300        # a seeded sample of the prototype sets
    python bench/simulate.py --skip-large        # without the MOF / edge-case pass
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "structures"
BANDS = ((1, 10), (11, 40), (41, 100), (101, 10**9))


def read_set(kind: str):
    """(name, Crystal) of every structure of a shared set that the ingest readers read."""
    from xrdbatch import sources

    out = []
    if kind == "aflow":
        for path in sorted((SHARED / "aflow_prototypes").glob("*.cif")):
            out += [(path.name, r.crystal) for r in sources.read_cif(path, path.read_bytes()) if r.crystal is not None]
    elif kind == "spglib":
        for path in sorted((SHARED / "spglib_poscars").rglob("POSCAR*")):
            out += [(f"{path.parent.name}/{path.name}", r.crystal)
                    for r in sources.read_poscar(path, path.read_bytes()) if r.crystal is not None]
    else:
        for path in sorted((SHARED / kind).rglob("*.cif")):
            try:
                out += [(path.name, r.crystal) for r in sources.read_cif(path, path.read_bytes())
                        if r.crystal is not None]
            except Exception as exc:  # the edge-case corpus: a reader failure is a skipped file here
                print(f"  (reader failed on {path.name}: {type(exc).__name__})", file=sys.stderr)
    return out


def same_peaks(ref, ours, tt_tol=1e-3, i_tol=0.5, floor=1.0):
    """(agree, n peaks above floor, max |d 2theta|, max |d I|, same peak count) for one structure."""
    rx, ry = np.asarray(ref.x), np.asarray(ref.y)
    ox, oy = ours.two_theta_deg, ours.intensity
    worst_x = worst_y = 0.0
    n = 0
    for ax, ay, bx, by in ((rx, ry, ox, oy), (ox, oy, rx, ry)):
        for x, y in zip(ax[ay > floor], ay[ay > floor]):
            if not len(bx):
                return False, n, np.inf, np.inf, False
            j = np.argmin(np.abs(bx - x))
            worst_x, worst_y = max(worst_x, abs(bx[j] - x)), max(worst_y, abs(by[j] - y))
            n += 1
    return worst_x <= tt_tol and worst_y <= i_tol, n // 2, worst_x, worst_y, len(rx) == len(ox)


def cpu(fn, *args):
    t0 = time.process_time()
    out = fn(*args)
    return out, time.process_time() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=0, help="seeded sample of this many prototype structures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="xrdbatch repeats per structure (best is kept)")
    parser.add_argument("--skip-large", action="store_true", help="skip the MOF / edge-case pass")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    from xrdbatch import simulate as S
    from xrdbatch.conditions import Conditions

    cond = Conditions()
    print(f"conditions: {cond.to_json()}")
    t0 = time.perf_counter()
    S.pattern(S.reflections(S.Crystal(np.eye(3) * 4, ["Si"], [[0, 0, 0]], [1], [0]), 1.0), cond)
    S.stick_pattern(S.Crystal(np.eye(3) * 4, ["Si"], [[0, 0, 0]], [1], [0]), cond)
    print(f"numba kernels ready in {time.perf_counter() - t0:.2f} s (load from cache, or compile on first run)")

    items = [(n, c, "aflow") for n, c in read_set("aflow")] + [(n, c, "spglib") for n, c in read_set("spglib")]
    items = [it for it in items if not set(it[1].symbols) - set(S.SCATTERING_PARAMS)]  # pymatgen has no f either
    # pymatgen ignores per-site B (it takes B per element, or anisotropic U): compare without it
    items = [(n, S.Crystal(c.lattice, c.symbols, c.frac_coords, c.occupancies, np.zeros(c.n_entries)), k)
             for n, c, k in items]
    if args.sample:
        items = random.Random(args.seed).sample(items, min(args.sample, len(items)))
    calc = XRDCalculator(cond.wavelength_angstrom)
    rng = (cond.two_theta_min_deg, cond.two_theta_max_deg)
    rows = []
    for i, (name, c, kind) in enumerate(items):
        s = c.to_structure()
        try:
            ref, t_pmg = cpu(calc.get_pattern, s, True, rng)
        except Exception as exc:  # pymatgen failure: not comparable
            print(f"  pymatgen failed on {name}: {exc}", file=sys.stderr)
            continue
        t_sim = t_stick = np.inf
        for _ in range(args.repeat):
            (refl, t_r) = cpu(S.reflections, c, cond.d_min_angstrom)
            (_, t_p) = cpu(S.pattern, refl, cond)
            t_sim = min(t_sim, t_r + t_p)
            stick, t_s = cpu(S.stick_pattern, c, cond)
            t_stick = min(t_stick, t_s)
        rows.append((name, kind, c.n_entries, t_pmg, t_sim, t_stick, same_peaks(ref, stick)))
        if (i + 1) % 200 == 0:
            print(f"  {i + 1}/{len(items)}", file=sys.stderr)

    n_atoms = np.array([r[2] for r in rows])
    t_pmg, t_sim, t_stick = (np.array([r[k] for r in rows]) for k in (3, 4, 5))
    ok = np.array([r[6][0] for r in rows])
    n_peaks = sum(r[6][1] for r in rows)
    dx = max(r[6][2] for r in rows)
    dy = max(r[6][3] for r in rows)
    same_count = sum(r[6][4] for r in rows)
    print(f"\n{len(rows)} structures (AFLOW prototypes + spglib POSCARs), CPU time per structure in ms;"
          f" speed-up = pymatgen / xrdbatch (of medians; of totals)")
    print(f"{'atoms':>9} {'n':>5} {'pymatgen':>9} {'refl+pat':>9} {'x median':>9} {'x total':>8} "
          f"{'stick':>7} {'x median':>9} {'x total':>8} {'same peaks':>11}")
    for lo, hi in BANDS + ((1, 10**9),):
        sel = (n_atoms >= lo) & (n_atoms <= hi)
        if not sel.any():
            continue
        label = "all" if (lo, hi) == (1, 10**9) else (f"{lo}-{hi}" if hi < 10**9 else f">{lo - 1}")
        mp, ms, mk = (1e3 * np.median(t[sel]) for t in (t_pmg, t_sim, t_stick))
        tot_s, tot_k = t_pmg[sel].sum() / t_sim[sel].sum(), t_pmg[sel].sum() / t_stick[sel].sum()
        print(f"{label:>9} {sel.sum():>5} {mp:>9.2f} {ms:>9.3f} {mp / ms:>8.1f}x {tot_s:>7.1f}x "
              f"{mk:>7.3f} {mp / mk:>8.1f}x {tot_k:>7.1f}x {ok[sel].sum():>5}/{sel.sum()}")
    print(f"agreement with pymatgen: {ok.sum()}/{len(rows)} structures, {n_peaks} peaks above 1: max |d 2theta| "
          f"{dx:.2e} deg, max |d I| {dy:.2e} (of 100); identical peak count (all peaks, incl. < 1) on "
          f"{same_count}/{len(rows)}")
    bad = [r[0] for r in rows if not r[6][0]]
    if bad:
        print(f"peaks differ from pymatgen on {len(bad)}: {bad[:10]}")
    proto = np.array([r[1] == "aflow" for r in rows])
    if proto.any():
        print(f"\nstructures/s/core, AFLOW prototype set ({proto.sum()} structures), reflections + pattern: "
              f"{proto.sum() / t_sim[proto].sum():.0f}   "
              f"(pymatgen get_pattern: {proto.sum() / t_pmg[proto].sum():.1f})")
    print(f"structures/s/core, all {len(rows)}: {len(rows) / t_sim.sum():.0f}   "
          f"(pymatgen: {len(rows) / t_pmg.sum():.1f})")

    # batch path as the store uses it: reflections per crystal, one patterns() call per chunk
    crystals = [c for _, c, _ in items]
    t0 = time.process_time()
    refls = [S.reflections(c, cond.d_min_angstrom) for c in crystals]
    t1 = time.process_time()
    S.patterns(refls, cond)
    t2 = time.process_time()
    print(f"batch: reflections {1e3 * (t1 - t0) / len(crystals):.3f} ms/structure, patterns "
          f"{1e3 * (t2 - t1) / len(crystals):.3f} ms/structure ({len(crystals) / (t2 - t0):.0f} structures/s/core)")

    if not args.skip_large:
        for kind in ("core_mof_sample", "cif_edge_cases"):
            if not (SHARED / kind).exists():
                continue
            cells = read_set(kind)
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            t0 = time.process_time()
            n_ok = n_err = 0
            worst = (0.0, "", 0)
            for name, c in cells:
                t_a = time.process_time()
                try:
                    S.pattern(S.reflections(c, cond.d_min_angstrom), cond)
                    n_ok += 1
                except ValueError:
                    n_err += 1
                dt = time.process_time() - t_a
                if dt > worst[0]:
                    worst = (dt, name, c.n_entries)
            t = time.process_time() - t0
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{kind}: {n_ok} simulated, {n_err} rejected (ValueError), max {max(c.n_entries for _, c in cells)} "
                  f"entries, {1e3 * t / max(1, len(cells)):.2f} ms/structure, slowest {1e3 * worst[0]:.0f} ms "
                  f"({worst[1]}, {worst[2]} entries); peak RSS {rss:.0f} MB (was {rss0:.0f} MB before)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: mass scoring of measured-format files (parse + peak finding + prediction), files/s and memory.

Writes ``--n-files`` files (half ``.xy``, half ``.xrdml``) from simulated patterns with a sloped background,
an amorphous hump, a random scale and Poisson noise; then scores them with ``xrdbatch.score.score`` on a
``distributed.LocalCluster`` of ``--workers`` single-threaded processes, sampling the resident memory of the
whole process tree (client + scheduler + workers) every 0.2 s. Printed, all measured in this run:

* parse rate of :mod:`xrdbatch.readers` against the references ``np.loadtxt`` (what the seed used),
  ``pandas.read_csv`` and, for xrdml, ``xml.etree`` + ``str.split`` -- as ratios;
* a serial split of the per-file cost: parse / +features / +prediction (with ``--search-match N``: the same
  with the search-match against an N-entry library, as a ratio);
* end-to-end files/s on the cluster (wall clock), and the CPU time of the whole process tree per file, which
  gives the rate on dedicated cores when the machine is shared (the load average is printed alongside);
* peak memory per worker and total, and per-worker memory in each quarter of the run (flat = the last quarter
  is no higher than the first).

Goal (issue 6): >= 1,000 files/s on 2 cores, memory flat. Nothing here gates CI.

Usage::

    python bench/score.py --n-files 10000 --workers 2 [--model BUNDLE | --feature-set indexed3] [--keep DIR]

Without ``--model`` a model with the default forest sizes is trained first (``xrdbatch.train`` on ICSD-like
synthetic features); the files are simulated from AFLOW prototypes in ../shared (else builtin prototypes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

XRDML_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.5" status="Completed">
  <sample type="To be analyzed"><id>{id}</id><name>{name}</name></sample>
  <xrdMeasurement measurementType="Scan" status="Completed">
    <usedWavelength intended="K-Alpha 1">
      <kAlpha1 unit="Angstrom">{wavelength:.6f}</kAlpha1>
      <kAlpha2 unit="Angstrom">1.5444260</kAlpha2>
      <ratioKAlpha2KAlpha1>0.5000</ratioKAlpha2KAlpha1>
    </usedWavelength>
    <scan appendNumber="0" mode="Continuous" scanAxis="Gonio" status="Completed">
      <dataPoints>
        <positions axis="2Theta" unit="deg"><startPosition>{start:.4f}</startPosition><endPosition>{end:.4f}</endPosition></positions>
        <positions axis="Omega" unit="deg"><startPosition>{ostart:.4f}</startPosition><endPosition>{oend:.4f}</endPosition></positions>
        <commonCountingTime unit="seconds">1.00</commonCountingTime>
        <counts unit="counts">{counts}</counts>
      </dataPoints>
    </scan>
  </xrdMeasurement>
</xrdMeasurements>
"""


def measured_like(clean: np.ndarray, two_theta: np.ndarray, rng) -> np.ndarray:
    """Counts from a clean pattern (max 1): scale, sloped background, amorphous hump, Poisson noise."""
    peak_counts = rng.uniform(2e3, 2e4)
    background = rng.uniform(50, 300) * (1 + 2 * np.exp(-two_theta / 15)) \
        + rng.uniform(0, 200) * np.exp(-0.5 * ((two_theta - rng.uniform(20, 30)) / 5) ** 2)
    return rng.poisson(clean * peak_counts + background).astype(np.int64)


def write_xy(path, two_theta, counts):
    lines = np.char.add(np.char.add(np.char.mod("%.4f", two_theta), " "), np.char.mod("%d", counts))
    Path(path).write_text("\n".join(lines.tolist()) + "\n")


def write_xrdml(path, two_theta, counts, name, wavelength=1.540598):
    Path(path).write_text(XRDML_TEMPLATE.format(
        id=name, name=name, wavelength=wavelength, start=two_theta[0], end=two_theta[-1],
        ostart=two_theta[0] / 2, oend=two_theta[-1] / 2, counts=" ".join(map(str, counts.tolist()))))


def simulated_patterns(conditions, n_max: int = 400):
    """Clean simulated patterns (n, n_points) of real structures shipped with the project or ../shared."""
    from xrdbatch import simulate, sources
    from xrdbatch.crystal import crystals_from_table

    specs = ["builtin:prototypes"]
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "structures" / "aflow_prototypes"
    if shared.is_dir():
        specs = [str(p) for p in sorted(shared.glob("*.cif"))[: n_max + 50]]
    catalog = sources.ingest(specs)
    ok = catalog[catalog["status"] == "ok"].head(n_max)
    crystals = crystals_from_table(ok)
    refls = [simulate.reflections(c, conditions.d_min_angstrom) for c in crystals]
    return simulate.patterns(refls, conditions), ok


def write_files(folder: Path, n_files: int, seed: int = 0):
    from xrdbatch.conditions import Conditions

    conditions = Conditions()  # CuKa, 5-90 deg, 0.02 step: 4251 points per file
    clean, _ = simulated_patterns(conditions)
    clean = clean[clean.max(axis=1) > 0]
    tt = conditions.two_theta_deg()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        counts = measured_like(clean[i % len(clean)], tt, rng)
        sub = folder / f"d{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        if i % 2:
            write_xrdml(sub / f"p{i:06d}.xrdml", tt, counts, f"p{i}")
        else:
            write_xy(sub / f"p{i:06d}.xy", tt, counts)
    return conditions


def build_model(workdir: Path, n_rows: int = 20_000, feature_set: str = "seed11",
                crystal_system_model: str = "extra_trees", library_entries: int = 0) -> Path:
    """A real model bundle from the project's train stage with its default forest sizes (or the boosted
    crystal-system model), trained on ICSD-like synthetic ``feature_set`` features
    (``xrdbatch.train.synthetic_lattice_features``), CuKa 5-90 deg; with ``library_entries`` its first rows
    are also its search-match library (the cost of a match depends on the library's size and line density,
    not on where its entries come from)."""
    from xrdbatch import features, match, train
    from xrdbatch.conditions import Conditions

    conditions = Conditions()
    X, labels = train.synthetic_lattice_features(n_rows, feature_set, wavelength_angstrom=conditions.wavelength_angstrom)
    names = features.feature_names(feature_set)
    library = None
    if library_entries:
        n = min(library_entries, n_rows)
        lib_labels = labels.iloc[:n].rename(columns={"spacegroup_number": "space_group"}).assign(
            id=[f"synthetic-{i}" for i in range(n)], formula="")
        library = (match.ReferenceLibrary.from_features(X[:n], names, lib_labels), f"{n} synthetic rows (bench)")
    out = workdir / f"model_{feature_set}_{crystal_system_model}"
    t = time.perf_counter()
    train.train_arrays(X, labels, out, feature_set=feature_set, feature_names=names,
                       peak_params={}, conditions=conditions, n_jobs=2, log=lambda *a: None, overwrite=True,
                       model_params={"crystal_system": train.crystal_system_params(crystal_system_model)},
                       library=library)
    print(f"model: {feature_set} features, crystal system {crystal_system_model}, trained on {n_rows} synthetic rows "
          f"with the default shapes in {time.perf_counter() - t:.1f} s"
          + (f"; search-match library of {library_entries} entries" if library else ""))
    return out


class MemorySampler:
    """Peak and per-quarter RSS of this process and all its children (the LocalCluster), every 0.2 s."""

    def __init__(self, interval_s: float = 0.2):
        import psutil

        self.proc = psutil.Process()
        self.interval_s = interval_s
        self.samples = []  # (t, total_rss, max_worker_rss)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            total, worst = self.proc.memory_info().rss, 0
            for child in self.proc.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                worst = max(worst, rss)
            self.samples.append((time.perf_counter(), total, worst))
            self._stop.wait(self.interval_s)

    def cpu_seconds(self) -> tuple[float, float]:
        """User + system CPU seconds so far of (this process and all its children, the children only).

        With a LocalCluster the scheduler and the nannies live in this process and the workers are its
        children, so the second number is the workers' own CPU time.
        """
        import psutil

        children = 0.0
        for p in self.proc.children(recursive=True):
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            children += t.user + t.system
        own = self.proc.cpu_times()
        return own.user + own.system + children, children

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def time_parsers(files_xy, files_xml):
    """Files/s of xrdbatch.readers vs references on the same files (one process)."""
    import io
    import xml.etree.ElementTree as ET

    import pandas as pd

    from xrdbatch import readers

    def rate(fn, files):  # CPU time of this process: robust on a shared machine
        fn(files[0])  # warm up (numba compile, imports)
        t = time.process_time()
        for f in files:
            fn(f)
        return len(files) / (time.process_time() - t)

    def etree_xrdml(f):
        root = ET.parse(f).getroot()
        node = next(e for e in root.iter() if e.tag.endswith("counts") or e.tag.endswith("intensities"))
        return np.array(node.text.split(), dtype=float)

    out = {
        "readers .xy": rate(readers.read_patterns, files_xy),
        "np.loadtxt .xy": rate(np.loadtxt, files_xy),
        "pandas.read_csv .xy": rate(lambda f: pd.read_csv(f, sep=" ", header=None).to_numpy(), files_xy),
        "readers .xrdml": rate(readers.read_patterns, files_xml),
        "ElementTree+split .xrdml": rate(etree_xrdml, files_xml),
    }
    del io
    return out


def main(argv=None) -> int:
    from xrdbatch.train import CRYSTAL_SYSTEM_MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-files", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="files per task (default: the product's, score.batch_size_for)")
    parser.add_argument("--model", default=None, help="model bundle (default: train a small one)")
    parser.add_argument("--feature-set", default="seed11",
                        help="feature set of the model trained when --model is not given (the scoring cost per file "
                             "depends on it: e.g. measured, indexed3)")
    parser.add_argument("--crystal-system-model", choices=CRYSTAL_SYSTEM_MODELS, default="extra_trees",
                        help="crystal-system model of the bundle trained when --model is not given")
    parser.add_argument("--search-match", type=int, default=0, metavar="N",
                        help="give the trained bundle a search-match library of N entries and time the serial per-file "
                             "cost with and without the match (needs a feature set with Q columns, e.g. measured)")
    parser.add_argument("--shift-average", type=float, default=0.0, metavar="DEG",
                        help="score with zero-shift averaging over 7 views (the recipe: 0.06)")
    parser.add_argument("--keep", default=None, help="write files here and keep them (default: a temp dir)")
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    from xrdbatch import score

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="xrdbench-"))
    data = work / "files"
    try:
        t = time.perf_counter()
        if not (data.is_dir() and sum(1 for _ in data.rglob("p*")) >= args.n_files):
            shutil.rmtree(data, ignore_errors=True)
            write_files(data, args.n_files)
        print(f"files: {args.n_files} (.xy and .xrdml, 4251 points, CuKa 5-90 deg) ready in "
              f"{time.perf_counter() - t:.1f} s under {data}")
        model = Path(args.model) if args.model else build_model(work, feature_set=args.feature_set,
                                                                crystal_system_model=args.crystal_system_model,
                                                                library_entries=args.search_match)
        from xrdbatch.features import shift_offsets

        offsets = tuple(float(o) for o in shift_offsets(args.shift_average, 7))

        files = score.expand_inputs([str(data)])[: args.n_files]
        xy = [f for f in files if f.endswith(".xy")][:300]
        xml = [f for f in files if f.endswith(".xrdml")][:300]
        rates = time_parsers(xy, xml)
        print("\nparse only, one process (files per CPU-second; ratio = xrdbatch.readers / reference):")
        for name, r in rates.items():
            print(f"  {name:28s} {r:9.0f}")
        print(f"  ratio vs np.loadtxt          {rates['readers .xy'] / rates['np.loadtxt .xy']:9.1f}x")
        print(f"  ratio vs pandas.read_csv     {rates['readers .xy'] / rates['pandas.read_csv .xy']:9.1f}x")
        print(f"  ratio vs ElementTree (xrdml) {rates['readers .xrdml'] / rates['ElementTree+split .xrdml']:9.1f}x")

        # serial split of the per-file cost on 1000 files (one batch)
        from xrdbatch import readers

        sample = files[:1000]
        opts = score.ScoreOptions(str(model.resolve()), shift_offsets_deg=offsets)
        score.score_files(sample[:10], opts)  # warm up: model load, numba
        t0 = time.process_time()
        for f in sample:
            readers.read_patterns(f)
        t1 = time.process_time()
        score.score_files(sample, opts)
        t2 = time.process_time()
        n = len(sample)
        print(f"\nserial, one process, {n} files, CPU time: parse {1e3 * (t1 - t0) / n:.2f} ms/file; "
              f"parse+features+prediction {1e3 * (t2 - t1) / n:.2f} ms/file ({n / (t2 - t1):.0f} files per "
              "CPU-second)" + (f"; shift averaging over {len(offsets)} views" if len(offsets) > 1 else ""))
        if args.search_match:
            matching = score.ScoreOptions(str(model.resolve()), shift_offsets_deg=offsets, search_match=True)
            score.score_files(sample[:10], matching)
            t3 = time.process_time()
            rows = score.score_files(sample, matching)
            t4 = time.process_time()
            print(f"  with search-match against {args.search_match} entries: {1e3 * (t4 - t3) / n:.2f} ms/file, "
                  f"{(t4 - t3) / (t2 - t1):.2f}x the time without ({1e3 * (t4 - t3 - t2 + t1) / n:.2f} ms/file for the "
                  f"match); {sum(bool(r.get('matched')) for r in rows)} of {len(rows)} rows matched")

        out = work / "results.parquet"
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, memory_limit="4GiB")
        with Client(cluster) as client, MemorySampler() as mem:
            t_load = time.perf_counter()
            client.run(score.warm_up, str(model.resolve()))  # one-time per worker: model load, numba
            print(f"\nworkers ready (model loaded, scanner compiled) in {time.perf_counter() - t_load:.1f} s")
            cpu0 = mem.cpu_seconds()
            t = time.perf_counter()
            summary = score.score([str(data)], str(model), str(out), executor="dask", client=client,
                                  batch_size=args.batch_size)
            elapsed = time.perf_counter() - t
            cpu1 = mem.cpu_seconds()
            cpu, cpu_workers = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        cluster.close()
        rate = summary["files"] / elapsed
        print(f"\nend to end on {args.workers} worker processes: {summary['files']} files in {elapsed:.1f} s = "
              f"{rate:.0f} files/s ({rate / args.workers:.0f} per core); rows {summary['rows']}, "
              f"ok {summary['ok']}, errors {summary['errors']}"
              + (f", search-match on ({summary['matched']} matched)" if summary["search_match"] else "")
              + "  [goal >= 1000 files/s on 2 cores]")
        n = summary["files"]
        print(f"CPU time during the run: workers {cpu_workers:.1f} s ({1e3 * cpu_workers / n:.2f} ms per file -> "
              f"{args.workers * n / cpu_workers:.0f} files/s on {args.workers} dedicated cores); whole process tree "
              f"incl. client, scheduler, nannies {cpu:.1f} s ({1e3 * cpu / n:.2f} ms per file -> "
              f"{args.workers * n / cpu:.0f} files/s). Load average now {os.getloadavg()[0]:.1f}: the wall-clock "
              "rate above is only meaningful on an idle machine.")
        s = np.array([(t_, tot, w) for t_, tot, w in mem.samples if t_ >= t])
        if len(s) >= 4:
            q = np.array_split(s, 4)
            print(f"memory: peak total {s[:, 1].max() / 2**20:.0f} MiB, peak per worker "
                  f"{s[:, 2].max() / 2**20:.0f} MiB; per-worker peak by quarter of the run: "
                  + ", ".join(f"{part[:, 2].max() / 2**20:.0f}" for part in q) + " MiB")
        import pandas as pd

        df = pd.read_parquet(out)
        print("predicted crystal systems:", df["crystal_system"].value_counts().head(7).to_dict())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

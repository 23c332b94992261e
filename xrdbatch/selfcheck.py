"""``xrdbatch selfcheck``: is this installation (a laptop, a compute node, a container image) able to work?

Checks are small functions registered in :data:`CHECKS` (name -> function returning a one-line detail, raising
on failure). :func:`run_checks` runs them in order and never stops at the first failure, so one run shows every
problem; the CLI prints one line per check and exits 0 when all passed, 1 otherwise. Containers use it as their
health check and build test (``HEALTHCHECK CMD xrdbatch selfcheck --quick``, Apptainer ``%test``).

- ``versions``: Python, xrdbatch and the libraries the pipeline stands on import, with their versions.
- ``simulation``: a rock-salt NaCl pattern from :mod:`xrdbatch.simulate`; its strongest line must be (200) at
  2-theta = 2 asin(lambda / 2 d200) (Bragg's law), d200 = a / 2.
- ``model``: a tiny ExtraTrees saved with skops, loaded back with an explicit trusted-type list, same predictions.
- ``cluster``: the Dask cluster the pipeline verbs would use with the same options (scheduler file/address, else
  the embedded LocalCluster shape); with ``connect=True`` it connects and counts workers.
- ``writable``: the working directory (or ``$TMPDIR``) takes an atomic write, as every stage needs.

``quick=True`` runs only the checks that take well under a second (no numba compilation, no model fit).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass

LIBRARIES = ("numpy", "scipy", "pandas", "pyarrow", "pymatgen", "spglib", "gemmi", "dask", "distributed", "zarr",
             "xarray", "sklearn", "skops", "fsspec", "numba", "h5py", "matplotlib")
DISTRIBUTIONS = {"sklearn": "scikit-learn"}  # import name -> distribution name, where they differ
NACL_A_ANGSTROM = 5.6402
TWO_THETA_TOL_DEG = 0.05


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: ``ok``, a one-line ``detail`` (or the error), and the time it took."""

    name: str
    ok: bool
    detail: str
    seconds: float


def check_versions(**_) -> str:
    """Import every library the pipeline needs; report versions (an ImportError names the missing one)."""
    from xrdbatch import __version__

    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in LIBRARIES:
        module = importlib.import_module(name)
        try:
            found.append(f"{name} {version(DISTRIBUTIONS.get(name, name))}")
        except PackageNotFoundError:
            found.append(f"{name} {getattr(module, '__version__', '?')}")
    return f"xrdbatch {__version__}, Python {platform.python_version()} ({sys.executable}); " + ", ".join(found)


def check_simulation(**_) -> str:
    """Simulate rock-salt NaCl (CuKa) and check the strongest line sits at the (200) Bragg angle."""
    import numpy as np

    from xrdbatch.conditions import Conditions
    from xrdbatch.crystal import Crystal
    from xrdbatch.simulate import pattern, reflections

    a = NACL_A_ANGSTROM
    # conventional cubic cell, Fm-3m: Na at 4a (0,0,0)+F, Cl at 4b (1/2,0,0)+F
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    frac = np.vstack([fcc, (fcc + [0.5, 0, 0]) % 1.0])
    crystal = Crystal(lattice=np.eye(3) * a, symbols=("Na",) * 4 + ("Cl",) * 4, frac_coords=frac,
                      occupancies=np.ones(8), b_iso=np.full(8, 0.5))
    conditions = Conditions()
    refl = reflections(crystal, conditions.d_min_angstrom)
    row = pattern(refl, conditions)
    two_theta = conditions.two_theta_deg()
    if row.shape != two_theta.shape or not np.isfinite(row).all() or row.max() <= 0:
        raise AssertionError(f"pattern of NaCl: expected {two_theta.shape} finite values with a peak, "
                             f"got shape {row.shape}, max {float(np.nanmax(row)) if row.size else 'n/a'}")
    expected = 2 * np.degrees(np.arcsin(conditions.wavelength_angstrom / (2 * a / 2)))
    got = float(two_theta[int(np.argmax(row))])
    if abs(got - expected) > TWO_THETA_TOL_DEG + conditions.two_theta_step_deg:
        raise AssertionError(f"NaCl strongest line: expected (200) at 2-theta {expected:.3f} deg, got {got:.3f} deg")
    return f"NaCl: {len(refl.d_angstrom)} reflections, strongest line at {got:.2f} deg (expected {expected:.2f})"


def check_model(**_) -> str:
    """Fit a tiny ExtraTrees, save it with skops, load it back (trusted types listed), compare predictions."""
    import numpy as np
    import skops.io as sio
    from sklearn.ensemble import ExtraTreesClassifier

    rng = np.random.default_rng(0)
    X = rng.random((40, 4))
    y = (X[:, 0] > 0.5).astype(int)
    model = ExtraTreesClassifier(n_estimators=5, random_state=0).fit(X, y)
    with tempfile.TemporaryDirectory(prefix="xrdbatch-selfcheck-") as tmp:
        path = os.path.join(tmp, "model.skops")
        sio.dump(model, path)
        trusted = sio.get_untrusted_types(file=path)
        loaded = sio.load(path, trusted=trusted)
        size = os.path.getsize(path)
    if not np.array_equal(model.predict_proba(X), loaded.predict_proba(X)):
        raise AssertionError("skops round trip of ExtraTreesClassifier changed predict_proba")
    return f"ExtraTrees -> skops ({size} bytes) -> same predictions"


def check_cluster(scheduler_address=None, scheduler_file=None, n_workers=None, threads_per_worker=None,
                  connect=False, **_) -> str:
    """Say which Dask cluster the verbs would use with these options; connect and count workers if asked."""
    from xrdbatch import cluster

    notes = []
    if os.environ.get("SLURM_JOB_ID"):
        notes.append(f"inside SLURM job {os.environ['SLURM_JOB_ID']} on {os.environ.get('SLURM_JOB_NUM_NODES', '?')}"
                     " node(s)")
    if os.environ.get("DASK_SCHEDULER_ADDRESS") and not scheduler_address:
        notes.append(f"DASK_SCHEDULER_ADDRESS={os.environ['DASK_SCHEDULER_ADDRESS']} is set: pass it with "
                     "--scheduler-address to use it")
    if scheduler_file:
        where = f"scheduler file {scheduler_file}"
        if not os.path.exists(scheduler_file):
            raise FileNotFoundError(f"{where} does not exist; start `dask scheduler --scheduler-file` first")
    elif scheduler_address:
        where = f"scheduler at {scheduler_address}"
    else:
        workers, threads = cluster.local_cluster_size(n_workers, threads_per_worker)
        where = f"embedded LocalCluster: {workers} worker process(es) x {threads} thread(s) " \
                f"({cluster.machine_cores()} usable cores)"
    if connect:
        with cluster.get_client(scheduler_address, scheduler_file, n_workers, threads_per_worker, log=None) as c:
            info = c.scheduler_info()
            where += f"; connected: {len(info['workers'])} worker(s), " \
                     f"{sum(w['nthreads'] for w in info['workers'].values())} thread(s)"
    return "; ".join([where, *notes])


def check_writable(**_) -> str:
    """An atomic write (temporary name, rename) in the working directory, else in the temp directory."""
    for folder in (os.getcwd(), tempfile.gettempdir()):
        try:
            fd, tmp = tempfile.mkstemp(prefix=".xrdbatch-selfcheck-", dir=folder)
            os.close(fd)
            final = tmp + ".done"
            os.replace(tmp, final)
            os.unlink(final)
            return f"atomic write ok in {folder}"
        except OSError as exc:
            last = f"{folder}: {exc}"
    raise PermissionError(f"cannot write in the working or temp directory ({last}); bind a writable folder")


CHECKS: dict = {
    "versions": check_versions,
    "simulation": check_simulation,
    "model": check_model,
    "cluster": check_cluster,
    "writable": check_writable,
}
QUICK = ("versions", "cluster", "writable")


def run_checks(names=None, *, quick: bool = False, **options) -> list[CheckResult]:
    """Run the named checks (default: all, or :data:`QUICK`); every check runs even after a failure.

    Parameters
    ----------
    names : iterable of str, optional
        Subset of :data:`CHECKS`.
    quick : bool
        Only the fast checks (the container health check).
    **options
        Cluster options passed to :func:`check_cluster` (``scheduler_address``, ``scheduler_file``,
        ``n_workers``, ``threads_per_worker``, ``connect``).
    """
    names = list(names) if names else list(QUICK if quick else CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise KeyError(f"unknown selfcheck(s) {unknown}; valid: {', '.join(CHECKS)}")
    results = []
    for name in names:
        start = time.perf_counter()
        try:
            detail, ok = CHECKS[name](**options), True
        except Exception as exc:  # a failing check is a result, not a crash
            detail, ok = f"{type(exc).__name__}: {exc}", False
        results.append(CheckResult(name, ok, detail, time.perf_counter() - start))
    return results


def format_results(results: list[CheckResult]) -> str:
    """One line per check, then a summary line."""
    lines = [f"{'ok  ' if r.ok else 'FAIL'} {r.name:<11} {r.detail}  [{r.seconds:.1f} s]" for r in results]
    failed = [r.name for r in results if not r.ok]
    lines.append("selfcheck: all checks passed" if not failed else f"selfcheck: FAILED: {', '.join(failed)}")
    return "\n".join(lines)

"""Thin command line: parse, resolve configuration, call one library function, return an exit code.

Each verb is a ``_cmd_<verb>(args) -> int`` function registered in :data:`COMMANDS`
(a dict, not an if/elif chain). Heavy and optional imports happen inside the command
that needs them, so ``xrdbatch --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys


class CliError(Exception):
    """An error for the user: printed without a traceback, exit code 2."""


# --------------------------------------------------------------------------------- ingest ----
def _add_ingest(sub):
    p = sub.add_parser("ingest", help="read structure sources into a labelled Parquet catalog")
    p.add_argument("sources", nargs="+", help="folders/files of CIF/POSCAR/JSON, builtin:prototypes, synthetic:N")
    p.add_argument("--out", required=True, help="catalog Parquet path")
    p.add_argument("--symprec", type=float, default=None, help="spglib symprec in angstrom")
    p.add_argument("--max-atoms", type=int, default=None, help="entries above this become skipped rows")
    p.add_argument("--keep-duplicates", action="store_true", help="keep rows with identical content")
    p.add_argument("--seed", type=int, default=0, help="seed of synthetic:N sources")
    p.add_argument("--prior", default=None, help="space-group prior for synthetic:N (icsd, cod, mp)")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: all cores)")
    _add_cluster_options(p)
    return p


def _cmd_ingest(args) -> int:
    from xrdbatch import sources

    options = {k: v for k, v in dict(symprec=args.symprec, max_atoms=args.max_atoms, seed=args.seed,
                                      prior=args.prior).items() if v is not None}
    summary = sources.ingest_to_parquet(args.sources, args.out, dedupe=not args.keep_duplicates,
                                        progress=True, **options)
    print(summary)
    return 0


# ------------------------------------------------------------------------- cluster options ----
def _add_cluster_options(p):
    g = p.add_argument_group("cluster")
    g.add_argument("--scheduler-address", default=None, help="connect to a running Dask scheduler")
    g.add_argument("--scheduler-file", default=None, help="Dask scheduler file (written inside a SLURM job)")
    g.add_argument("--n-workers", type=int, default=None, help="LocalCluster worker processes")
    g.add_argument("--threads-per-worker", type=int, default=None, help="LocalCluster threads per worker")


COMMANDS: dict = {
    "ingest": (_add_ingest, _cmd_ingest),
}


def build_parser() -> argparse.ArgumentParser:
    from xrdbatch import __version__

    parser = argparse.ArgumentParser(prog="xrdbatch", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"xrdbatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (add, run) in COMMANDS.items():
        add(sub).set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except CliError as exc:
        print(f"xrdbatch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xrdbatch {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

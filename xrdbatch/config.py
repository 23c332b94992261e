"""Run configuration: one TOML file for a whole run, ``--set key=value`` overrides, effective config.

The config is resolved at the edge (the ``run``/``demo``/``config show`` commands) into plain dicts and
one :class:`~xrdbatch.conditions.Conditions`; library functions take explicit arguments and never read it.
Layers, later wins: :data:`DEFAULTS` <- the file <- ``--set`` overrides. Sections:

``[sources]``     what ``ingest`` reads (specs, seed, prior, ...) and where the catalog goes
``[conditions]``  the instrument (``radiation`` name or wavelength, ``ka2``, and any ``Conditions`` field)
``[store]``       the Zarr store (path, chunk size, resolution kept for retargeting, restart)
``[cluster]``     the Dask client (scheduler address or file, or LocalCluster shape)
``[training]``, ``[scoring]``  read by those stages (keys they do not know are theirs to reject)

Relative paths are relative to ``out_dir`` (top-level key), itself relative to the working directory.

Example::

    out_dir = "my-run"
    [sources]
    specs = ["cifs/", "synthetic:5000"]
    [conditions]
    radiation = "MoKa"
    two_theta_max_deg = 40.0
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Iterable

from xrdbatch.conditions import Conditions

_CONDITION_FIELDS = {f.name: f.default for f in dataclasses.fields(Conditions)}

#: Every section, key and default value (``None`` = unset; TOML has no null, so unset keys are omitted).
DEFAULTS: dict = {
    "out_dir": ".",
    "sources": {
        "specs": ["builtin:prototypes"],
        "catalog": "catalog.parquet",
        "seed": 0,
        "prior": "icsd",
        "max_atoms": None,
        "symprec": None,
        "dedupe": True,
    },
    "conditions": {
        "radiation": "CuKa",
        "ka2": False,
        **{k: v for k, v in _CONDITION_FIELDS.items() if k not in ("wavelength_angstrom", "wavelength2_angstrom")},
    },
    "store": {
        "path": "store.zarr",
        "chunk_size": 500,
        "d_min_angstrom": None,
        "restart": False,
    },
    "cluster": {
        "scheduler_address": None,
        "scheduler_file": None,
        "n_workers": None,
        "threads_per_worker": None,
    },
    "training": {},
    "scoring": {},
}

#: Sections whose keys other stages own: passed through without checking here.
OPEN_SECTIONS = ("training", "scoring")


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file/key, the expectation and the fix."""


def _merge(base: dict, update: dict, origin: str, strict: bool = True, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if key not in out or not isinstance(out[key], dict):
                if strict:
                    raise ConfigError(f"{origin}: unknown section [{name}]; valid sections: "
                                      f"{sorted(k for k, v in DEFAULTS.items() if isinstance(v, dict))}")
                out[key] = {}
            out[key] = _merge(out[key], value, origin, strict=strict and key not in OPEN_SECTIONS, prefix=f"{name}.")
        else:
            if strict and key not in out:
                raise ConfigError(f"{origin}: unknown key {name!r}; valid keys here: {sorted(out)}")
            out[key] = value
    return out


def parse_override(text: str) -> dict:
    """``"store.chunk_size=200"`` -> ``{"store": {"chunk_size": 200}}`` (value parsed as TOML, else a string).

    >>> parse_override("conditions.radiation=MoKa")
    {'conditions': {'radiation': 'MoKa'}}
    >>> parse_override("sources.specs=['synthetic:10']")
    {'sources': {'specs': ['synthetic:10']}}
    """
    import tomllib

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects section.key=value (e.g. store.chunk_size=200), got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    out: dict = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> dict:
    """Effective config: :data:`DEFAULTS` <- TOML file ``path`` <- ``overrides`` (``section.key=value``)."""
    import tomllib

    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = os.fspath(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; `xrdbatch config show` prints a complete one") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        config = _merge(config, data, f"config file {path}")
    for text in overrides:
        config = _merge(config, parse_override(text), f"--set {text}")
    resolve_conditions(config["conditions"])  # fail early, at the edge
    return config


def resolve_conditions(section: dict) -> Conditions:
    """The ``[conditions]`` section as a :class:`Conditions`.

    ``radiation`` is a line name (``"CuKa"``, ``"MoKa12"``, ...) or a wavelength in angstrom;
    ``ka2 = true`` turns a single-line name into its K-alpha1/K-alpha2 doublet (``"CuKa"`` -> ``"CuKa12"``).
    Other keys are :class:`Conditions` fields.

    >>> resolve_conditions({"radiation": "CuKa", "ka2": True}).wavelength2_angstrom
    1.544426
    """
    fields = {k: v for k, v in section.items() if k not in ("radiation", "ka2") and v is not None}
    radiation = section.get("radiation", "CuKa")
    if section.get("ka2"):
        if isinstance(radiation, str) and radiation.endswith("Ka"):
            radiation = radiation + "12"
        elif not (isinstance(radiation, str) and radiation.endswith("Ka12")) and "wavelength2_angstrom" not in fields:
            raise ConfigError(f"conditions.ka2 = true needs a line name such as 'CuKa' or a wavelength2_angstrom, "
                              f"got radiation = {radiation!r}")
    try:
        return Conditions.from_radiation(radiation, **fields)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[conditions]: {exc}") from None


def path_in(config: dict, value: str | None) -> str | None:
    """A path of the config, resolved against ``out_dir`` (absolute paths and URLs unchanged)."""
    if value is None or "://" in str(value) or os.path.isabs(value):
        return value
    return os.path.join(config["out_dir"], value)


def _drop_none(node):
    if isinstance(node, dict):
        return {k: _drop_none(v) for k, v in node.items() if v is not None}
    return node


def dumps(config: dict) -> str:
    """The config as TOML text (unset keys omitted), with the resolved conditions as a comment."""
    import tomli_w

    text = tomli_w.dumps(_drop_none(config))
    cond = resolve_conditions(config["conditions"])
    header = ("# xrdbatch effective config (defaults <- file <- --set); unset keys are omitted.\n"
              f"# resolved conditions: {cond.to_json()}\n")
    return header + text

"""Shared test fixtures: the read-only data beside the project (``../shared/data``), and small test crystals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """Path under ``../shared/data``; skips the calling test with the reason where it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path} (a fresh clone has no ../shared; see shared/README.md)")
    return path


@pytest.fixture
def shared():
    """Fixture form of :func:`shared_path`."""
    return shared_path


def nacl():
    """Rock salt NaCl (a = 5.64 angstrom, B = 0.5), the conventional cubic cell."""
    from xrdbatch.crystal import Crystal

    na = [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]]
    cl = [[.5, .5, .5], [.5, 0, 0], [0, .5, 0], [0, 0, .5]]
    return Crystal(np.eye(3) * 5.64, ("Na",) * 4 + ("Cl",) * 4, np.array(na + cl, float), np.ones(8), np.full(8, 0.5))

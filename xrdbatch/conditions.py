"""Instrument conditions: the one immutable value that fixes the physics of a pattern.

A :class:`Conditions` is created at the edge (CLI, config file) and then travels with the
data: it is written into the Zarr store attrs and the model manifest and read back from
there, so later stages never re-derive physics settings from the command line.
Every field carries its unit in its name. Named X-ray lines (``"CuKa"``) are resolved to
numbers once, by :meth:`Conditions.from_radiation`.

Numbers only: numpy, no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np

# K-alpha1 / K-alpha2 wavelengths in angstrom (Bearden 1967 / International Tables C, 4.2.2.1),
# and the K-alpha weighted mean (2*Ka1 + Ka2)/3 that pymatgen's WAVELENGTHS table uses for "CuKa".
XRAY_LINES_ANGSTROM: dict[str, tuple[float, float | None]] = {
    "CuKa": (1.54184, None),
    "CuKa1": (1.54056, None),
    "CuKa12": (1.540598, 1.544426),
    "MoKa": (0.71073, None),
    "MoKa1": (0.70930, None),
    "MoKa12": (0.709300, 0.713590),
    "CoKa": (1.79026, None),
    "CoKa1": (1.78896, None),
    "CoKa12": (1.788965, 1.792850),
    "FeKa": (1.93735, None),
    "FeKa1": (1.93604, None),
    "FeKa12": (1.936042, 1.939980),
    "CrKa": (2.29100, None),
    "CrKa1": (2.28970, None),
    "CrKa12": (2.289700, 2.293606),
    "AgKa": (0.560885, None),
    "AgKa1": (0.559421, None),
    "AgKa12": (0.559421, 0.563813),
}

PROFILES = ("pseudo_voigt", "gaussian", "lorentzian")


@dataclass(frozen=True)
class Conditions:
    """Instrument setup of a powder X-ray pattern (immutable, hashable, JSON round-trip).

    Parameters
    ----------
    wavelength_angstrom : float
        Primary wavelength (K-alpha1, or the weighted K-alpha mean when no K-alpha2 is given), in angstrom.
    wavelength2_angstrom : float or None
        K-alpha2 wavelength in angstrom; ``None`` simulates a single line.
    ka2_ratio : float
        Intensity of K-alpha2 relative to K-alpha1 (0.5 for most tubes).
    two_theta_min_deg, two_theta_max_deg, two_theta_step_deg : float
        The 2-theta grid, in degrees: ``min, min + step, ..., <= max``.
    profile : {"pseudo_voigt", "gaussian", "lorentzian"}
        Peak shape on the grid.
    fwhm_deg : float
        Constant full width at half maximum in degrees (used where Caglioti U, V, W are all zero).
    caglioti_u_deg2, caglioti_v_deg2, caglioti_w_deg2 : float
        Caglioti FWHM(theta)^2 = U tan^2(theta) + V tan(theta) + W, in degree^2.
    eta : float
        Lorentzian fraction of the pseudo-Voigt (0 = Gaussian, 1 = Lorentzian).
    monochromator_two_theta_deg : float or None
        2-theta of a graphite/Ge monochromator for the polarisation factor; ``None`` = no monochromator.

    Examples
    --------
    >>> c = Conditions.from_radiation("CuKa", two_theta_max_deg=90.0)
    >>> c.wavelength_angstrom
    1.54184
    >>> Conditions.from_dict(c.to_dict()) == c
    True
    >>> round(c.d_min_angstrom, 4)
    1.0902
    """

    wavelength_angstrom: float = 1.54184
    wavelength2_angstrom: float | None = None
    ka2_ratio: float = 0.5
    two_theta_min_deg: float = 5.0
    two_theta_max_deg: float = 90.0
    two_theta_step_deg: float = 0.02
    profile: str = "pseudo_voigt"
    fwhm_deg: float = 0.1
    caglioti_u_deg2: float = 0.0
    caglioti_v_deg2: float = 0.0
    caglioti_w_deg2: float = 0.0
    eta: float = 0.5
    monochromator_two_theta_deg: float | None = None

    def __post_init__(self):
        problems = []
        if not (self.wavelength_angstrom > 0 and math.isfinite(self.wavelength_angstrom)):
            problems.append(f"wavelength_angstrom must be a positive number, got {self.wavelength_angstrom!r}")
        if self.wavelength2_angstrom is not None and not self.wavelength2_angstrom > 0:
            problems.append(f"wavelength2_angstrom must be positive or None, got {self.wavelength2_angstrom!r}")
        if not 0 <= self.two_theta_min_deg < self.two_theta_max_deg < 180:
            problems.append(
                "need 0 <= two_theta_min_deg < two_theta_max_deg < 180, got "
                f"{self.two_theta_min_deg!r} .. {self.two_theta_max_deg!r}"
            )
        if not self.two_theta_step_deg > 0:
            problems.append(f"two_theta_step_deg must be positive, got {self.two_theta_step_deg!r}")
        if self.profile not in PROFILES:
            problems.append(f"profile must be one of {PROFILES}, got {self.profile!r}")
        if not self.fwhm_deg > 0:
            problems.append(f"fwhm_deg must be positive, got {self.fwhm_deg!r}")
        if not 0 <= self.eta <= 1:
            problems.append(f"eta must be within [0, 1], got {self.eta!r}")
        if not 0 <= self.ka2_ratio <= 1:
            problems.append(f"ka2_ratio must be within [0, 1], got {self.ka2_ratio!r}")
        if problems:
            raise ValueError("invalid Conditions: " + "; ".join(problems))

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_radiation(cls, radiation: str | float, **fields) -> Conditions:
        """Build conditions from a named X-ray line (``"CuKa"``, ``"CuKa12"``, ...) or a wavelength.

        ``"XxKa12"`` names give K-alpha1 and K-alpha2; ``"XxKa"`` the weighted mean, single line.
        """
        if isinstance(radiation, (int, float)):
            return cls(wavelength_angstrom=float(radiation), **fields)
        try:
            w1, w2 = XRAY_LINES_ANGSTROM[radiation]
        except KeyError:
            try:
                return cls(wavelength_angstrom=float(radiation), **fields)
            except ValueError:
                raise ValueError(
                    f"unknown radiation {radiation!r}: expected a wavelength in angstrom or one of "
                    f"{sorted(XRAY_LINES_ANGSTROM)}"
                ) from None
        return cls(wavelength_angstrom=w1, wavelength2_angstrom=w2, **fields)

    @classmethod
    def from_dict(cls, data: dict) -> Conditions:
        """Inverse of :meth:`to_dict`; unknown keys are an error that lists the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown Conditions field(s) {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> Conditions:
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes) -> Conditions:
        return dataclasses.replace(self, **changes)

    # -- derived numbers ----------------------------------------------------------------------
    @property
    def n_points(self) -> int:
        """Number of 2-theta grid points."""
        return int(math.floor((self.two_theta_max_deg - self.two_theta_min_deg) / self.two_theta_step_deg + 1e-9)) + 1

    def two_theta_deg(self) -> np.ndarray:
        """The 2-theta grid in degrees, float64, shape ``(n_points,)``."""
        return self.two_theta_min_deg + self.two_theta_step_deg * np.arange(self.n_points, dtype=np.float64)

    @property
    def wavelengths_angstrom(self) -> tuple[float, ...]:
        """All simulated wavelengths (one or two)."""
        if self.wavelength2_angstrom is None:
            return (self.wavelength_angstrom,)
        return (self.wavelength_angstrom, self.wavelength2_angstrom)

    @property
    def d_min_angstrom(self) -> float:
        """Smallest d-spacing seen on the grid by any line: lambda_max / (2 sin(theta_max)) (Bragg's law)."""
        theta_max = math.radians(self.two_theta_max_deg) / 2
        return max(self.wavelengths_angstrom) / (2 * math.sin(theta_max))

    def q_per_angstrom(self, two_theta_deg: np.ndarray) -> np.ndarray:
        """Scattering vector Q = 4 pi sin(theta) / lambda (primary wavelength), in 1/angstrom."""
        return 4 * np.pi * np.sin(np.radians(np.asarray(two_theta_deg)) / 2) / self.wavelength_angstrom

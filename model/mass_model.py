"""Batched parameters of the lens mass model: elliptical power law (EPL) plus external shear.

Conventions are lenstronomy's (``EPL`` / ``SIE`` + ``SHEAR``), see
:mod:`lenscast.model.parameter_spec`:

* ``theta_e`` (arcsec): Einstein radius. The convergence of the main deflector is
  ``kappa = (3 - gamma)/2 * (theta_e / sqrt(q x'^2 + y'^2 / q))^(gamma - 1)`` in the frame
  ``(x', y')`` centred on the lens and rotated so that ``x'`` lies along the major axis
  (Tessore & Metcalf 2015, A&A 580, A79, eq. 1 with ``b = theta_e sqrt(q)``, ``t = gamma - 1``).
* ``e1``, ``e2``: ellipticity, ``q = (1 - |e|)/(1 + |e|)``, major-axis angle
  ``phi = arctan2(e2, e1) / 2`` from +x towards +y.
* ``gamma``: logarithmic slope of the 3-D density; ``gamma = 2`` is the SIE (the fast path).
* ``gamma1``, ``gamma2``: external shear with potential
  ``psi = (gamma1 (x^2 - y^2) + 2 gamma2 x y) / 2`` about the coordinate origin (the cutout
  centre), as lenstronomy's ``SHEAR`` with its default ``ra_0 = dec_0 = 0``. A shear centred
  elsewhere differs by a constant deflection, i.e. only by a shift of the source plane: image
  positions and delays predicted from an observed image are the same either way.

The class only holds parameters; the physics is in pure functions
(:mod:`lenscast.model.lens_quantities`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

#: Field names in constructor order (the spec's names plus the slope ``gamma``).
FIELD_NAMES: tuple[str, ...] = (
    "theta_e",
    "e1",
    "e2",
    "center_x",
    "center_y",
    "gamma",
    "gamma1",
    "gamma2",
)
#: Parameters that default when a mapping does not give them (SIE, no external shear).
DEFAULTS: dict[str, float] = {"gamma": 2.0, "gamma1": 0.0, "gamma2": 0.0}


@dataclass(frozen=True)
class MassModel:
    """EPL (SIE for ``gamma = 2``) plus external shear for a batch of ``n`` systems.

    Every field is stored as a float64 array of shape ``(n,)``; scalars broadcast.

    Parameters
    ----------
    theta_e : array_like
        Einstein radius, arcsec (> 0).
    e1, e2 : array_like
        Ellipticity components, dimensionless, ``|e| < 1``.
    center_x, center_y : array_like
        Mass centre, arcsec.
    gamma : array_like, default 2.0
        Power-law slope (2 = isothermal).
    gamma1, gamma2 : array_like, default 0.0
        External shear components, dimensionless.
    """

    theta_e: FloatArray
    e1: FloatArray
    e2: FloatArray
    center_x: FloatArray
    center_y: FloatArray
    gamma: FloatArray = DEFAULTS["gamma"]  # type: ignore[assignment]
    gamma1: FloatArray = DEFAULTS["gamma1"]  # type: ignore[assignment]
    gamma2: FloatArray = DEFAULTS["gamma2"]  # type: ignore[assignment]

    def __post_init__(self) -> None:
        values = [np.asarray(getattr(self, name), dtype=np.float64) for name in FIELD_NAMES]
        arrays = np.broadcast_arrays(*[np.atleast_1d(v) for v in values])
        if arrays[0].ndim != 1:
            raise ValueError(f"mass-model parameters must be scalars or 1-D, got {arrays[0].shape}")
        for name, arr in zip(FIELD_NAMES, arrays, strict=True):
            # Copies: the frozen model must not alias (or be changed through) the caller's arrays.
            object.__setattr__(self, name, np.array(arr, dtype=np.float64))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, ArrayLike]) -> MassModel:
        """Build from a mapping keyed by parameter-spec names (``gamma``, shear optional).

        Extra keys (e.g. ``sigma_*``) are ignored; a missing required key raises ``KeyError``.
        """
        kwargs: dict[str, Any] = {}
        for name in FIELD_NAMES:
            if name in mapping:
                kwargs[name] = mapping[name]
            elif name in DEFAULTS:
                kwargs[name] = DEFAULTS[name]
            else:
                raise KeyError(f"mass model needs {name!r}")
        return cls(**kwargs)

    def as_mapping(self) -> dict[str, FloatArray]:
        """All fields as ``{name: array (n,)}``."""
        return {name: getattr(self, name) for name in FIELD_NAMES}

    @property
    def n(self) -> int:
        """Number of systems in the batch."""
        return int(self.theta_e.shape[0])

    def __len__(self) -> int:
        return self.n

    def take(self, idx: ArrayLike) -> MassModel:
        """Select systems by integer index array, slice or boolean mask."""
        index = idx if isinstance(idx, slice) else np.asarray(idx)
        return MassModel(
            **{f.name: np.atleast_1d(getattr(self, f.name)[index]) for f in fields(self)}
        )

    def __getitem__(self, idx: ArrayLike) -> MassModel:
        return self.take(idx)

    def repeat(self, k: int) -> MassModel:
        """Each system repeated ``k`` times consecutively (``n * k`` systems)."""
        return MassModel(**{name: np.repeat(v, k) for name, v in self.as_mapping().items()})

    @property
    def axis_ratio(self) -> FloatArray:
        """Minor-to-major axis ratio ``q = (1 - |e|) / (1 + |e|)``."""
        e = np.hypot(self.e1, self.e2)
        return (1.0 - e) / (1.0 + e)

    @property
    def position_angle(self) -> FloatArray:
        """Major-axis angle ``phi = arctan2(e2, e1) / 2``, radians from +x towards +y."""
        return 0.5 * np.arctan2(self.e2, self.e1)

    @property
    def is_isothermal(self) -> bool:
        """True when every system is an SIE (``gamma == 2`` exactly): the fast path applies."""
        return bool(np.all(self.gamma == 2.0))

    def invalid_reasons(self) -> list[str | None]:
        """Per system, why its parameters are unphysical (or ``None`` when they are usable).

        Checks finiteness, ``theta_e > 0``, ``|e| < 1``, ``1 < gamma < 3`` and ``|shear| < 1``
        (beyond which the lens mapping is not defined or not invertible as modelled here).
        """
        reasons: list[str | None] = []
        for i in range(self.n):
            values = {name: float(getattr(self, name)[i]) for name in FIELD_NAMES}
            bad = [name for name, v in values.items() if not np.isfinite(v)]
            if bad:
                reasons.append(f"non-finite {', '.join(bad)}")
            elif values["theta_e"] <= 0:
                reasons.append(f"theta_e must be > 0, got {values['theta_e']}")
            elif np.hypot(values["e1"], values["e2"]) >= 1:
                reasons.append("ellipticity |e| = hypot(e1, e2) must be < 1")
            elif not 1.0 < values["gamma"] < 3.0:
                reasons.append(f"slope gamma must be in (1, 3), got {values['gamma']}")
            elif np.hypot(values["gamma1"], values["gamma2"]) >= 1:
                reasons.append("external shear hypot(gamma1, gamma2) must be < 1")
            else:
                reasons.append(None)
        return reasons


def expand(param: FloatArray, ndim: int) -> FloatArray:
    """View a per-system ``(n,)`` parameter so it broadcasts against coordinates of ``ndim``.

    Coordinates are ``(n,)`` (one point per system) or ``(n, k)`` (``k`` points per system).
    """
    return param.reshape(param.shape + (1,) * max(ndim - 1, 0))

"""The one named parameter specification of the predicted lens mass model.

Shared by the trainer (target order), the ONNX output order, the database columns, the
query field names and the range checks. Conventions are lenstronomy's (see README):

* ``theta_e``: Einstein radius of the singular isothermal ellipsoid, arcsec.
* ``e1``, ``e2``: ellipticity, ``e1 = (1-q)/(1+q) cos 2phi``, ``e2 = (1-q)/(1+q) sin 2phi``,
  with ``q`` the axis ratio and ``phi`` the position angle of the major axis measured from the
  +x axis (east) towards +y (north).
* ``center_x``, ``center_y``: mass centre, arcsec from the cutout centre, ``x = dRA cos(Dec)``
  (east positive) and ``y = dDec`` (north positive).
* ``gamma1``, ``gamma2``: external shear components (dimensionless), same angle convention.

A model may also output :data:`LENS_PROBABILITY` (``p_lens``): the calibrated probability that the
cutout shows a galaxy-scale strong lens the mass model applies to. It is optional: a model
without it still works, and its results store NULL there.

Never pass a bare positional vector across a module boundary: index it through
:data:`MASS_PARAMETER_NAMES` or :func:`as_mapping`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Bumped whenever a name, order, unit or range below changes; recorded with every prediction.
PARAMETER_SPEC_VERSION = "1.1"  # 1.1: the optional p_lens output


@dataclass(frozen=True)
class Parameter:
    """One predicted parameter.

    Parameters
    ----------
    name : str
        Field name used everywhere (training targets, ONNX columns, database, queries).
    unit : str
        Physical unit (``"arcsec"`` or ``""`` for dimensionless).
    low, high : float
        Range the network is trained on; predictions outside it are flagged, inputs outside
        it are rejected by range checks.
    description : str
        One-line meaning with its convention.
    """

    name: str
    unit: str
    low: float
    high: float
    description: str

    @property
    def sigma_name(self) -> str:
        """Name of this parameter's 1-sigma uncertainty field, e.g. ``sigma_theta_e``."""
        return f"sigma_{self.name}"


#: Predicted SIE + external shear parameters, in ONNX output order.
MASS_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("theta_e", "arcsec", 0.5, 5.0, "Einstein radius of the SIE"),
    Parameter("e1", "", -0.5, 0.5, "SIE ellipticity, (1-q)/(1+q) cos 2phi"),
    Parameter("e2", "", -0.5, 0.5, "SIE ellipticity, (1-q)/(1+q) sin 2phi"),
    Parameter("center_x", "arcsec", -0.8, 0.8, "mass centre, dRA cos(Dec) from cutout centre"),
    Parameter("center_y", "arcsec", -0.8, 0.8, "mass centre, dDec from cutout centre"),
    Parameter("gamma1", "", -0.15, 0.15, "external shear component 1"),
    Parameter("gamma2", "", -0.15, 0.15, "external shear component 2"),
)

MASS_PARAMETER_NAMES: tuple[str, ...] = tuple(p.name for p in MASS_PARAMETERS)
SIGMA_NAMES: tuple[str, ...] = tuple(p.sigma_name for p in MASS_PARAMETERS)
N_PARAMETERS = len(MASS_PARAMETERS)

#: The optional lens-evidence output, a probability (dimensionless, 0..1). The calibration is
#: inside the ONNX graph; the service applies no transform. Results whose ``p_lens`` is below
#: the threshold in force (:data:`DEFAULT_P_LENS_THRESHOLD` unless the model card or the
#: settings say otherwise) are kept but flagged ``no_lens``.
LENS_PROBABILITY = Parameter(
    "p_lens", "", 0.0, 1.0, "calibrated probability that the cutout shows a galaxy-scale lens"
)
#: Threshold on ``p_lens`` when neither the settings nor the model card give one.
DEFAULT_P_LENS_THRESHOLD = 0.5

#: Network input contract (HSC model): bands, cutout size, pixel scale and pixel unit.
BANDS: tuple[str, ...] = ("g", "r", "i", "z")
CUTOUT_SIZE_PIX = 64
PIXEL_SCALE_ARCSEC = 0.168
#: Pixels are calibrated coadd fluxes with AB zeropoint 27.0: mag = 27 - 2.5 log10(flux).
PIXEL_ZEROPOINT_AB = 27.0

#: ONNX tensor names (input and the two outputs, both shaped (batch, N_PARAMETERS)).
ONNX_INPUT_NAME = "cutout"
ONNX_MEAN_NAME = "mean"
ONNX_SIGMA_NAME = "sigma"
#: The optional third output, shaped (batch,): :data:`LENS_PROBABILITY` per cutout.
ONNX_P_LENS_NAME = LENS_PROBABILITY.name


def parameter(name: str) -> Parameter:
    """Return the :class:`Parameter` called ``name`` (KeyError if unknown)."""
    for p in MASS_PARAMETERS:
        if p.name == name:
            return p
    raise KeyError(f"unknown mass parameter {name!r}; known: {', '.join(MASS_PARAMETER_NAMES)}")


def as_mapping(values: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    """Split an array of shape ``(..., N_PARAMETERS)`` into named columns.

    Parameters
    ----------
    values : ndarray, shape (..., 7)
        Columns in :data:`MASS_PARAMETER_NAMES` order.

    Returns
    -------
    dict of str to ndarray
        ``{"theta_e": values[..., 0], ...}``.
    """
    values = np.asarray(values)
    if values.shape[-1] != N_PARAMETERS:
        raise ValueError(f"expected last axis of length {N_PARAMETERS}, got shape {values.shape}")
    return {name: values[..., i] for i, name in enumerate(MASS_PARAMETER_NAMES)}


def as_array(mapping: Mapping[str, object]) -> NDArray[np.float64]:
    """Stack named columns into shape ``(..., N_PARAMETERS)`` in spec order."""
    missing = [n for n in MASS_PARAMETER_NAMES if n not in mapping]
    if missing:
        raise KeyError(f"missing mass parameters: {', '.join(missing)}")
    return np.stack([np.asarray(mapping[n], dtype=np.float64) for n in MASS_PARAMETER_NAMES], -1)

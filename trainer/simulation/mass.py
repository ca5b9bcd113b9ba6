"""Singular isothermal ellipsoid plus external shear: deflection and lensing potential.

Vectorised NumPy implementation used to ray-trace the simulated cutouts. Conventions are
lenstronomy's (profiles ``SIE`` and ``SHEAR``), so the parameters are exactly the parameter
spec's (``model/parameter_spec.py``):

* convergence ``kappa = theta_e / (2 sqrt(q x'^2 + y'^2 / q))`` in the frame rotated to the
  major axis (the "intermediate axis" normalisation, so ``theta_e`` is the Einstein radius
  for any axis ratio ``q``);
* ``phi = arctan2(e2, e1) / 2``, ``q = (1 - e) / (1 + e)``, ``e = sqrt(e1^2 + e2^2)``;
* shear potential ``psi = gamma1 (x^2 - y^2) / 2 + gamma2 x y`` about the coordinate origin
  (lenstronomy's default ``ra_0 = dec_0 = 0``), not about the lens centre.

The deflection is Kormann et al. (1994) / Keeton (2001, "A catalog of mass models", eq. for the
SIE with core ``s = 0``) rewritten for the intermediate-axis normalisation. The isothermal
potential follows from Euler's theorem (the potential is homogeneous of degree one), so
``psi = x' alpha_x' + y' alpha_y'``. All angles in arcsec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Axis ratios closer to 1 than this are evaluated at ``1 - _Q_EPS``; the deflection is
#: continuous there and arctan/arctanh stay accurate (relative error below 1e-9).
_Q_EPS = 1e-8


def ellipticity_to_phi_q(*, e1: ArrayLike, e2: ArrayLike) -> tuple[NDArray, NDArray]:
    """Position angle and axis ratio from lenstronomy's ellipticity components.

    Parameters
    ----------
    e1, e2 : array_like
        ``(1 - q)/(1 + q) cos 2phi`` and ``(1 - q)/(1 + q) sin 2phi`` (dimensionless).

    Returns
    -------
    phi : ndarray
        Major-axis angle from +x towards +y, radians.
    q : ndarray
        Minor/major axis ratio, in (0, 1].
    """
    e1 = np.asarray(e1, dtype=np.float64)
    e2 = np.asarray(e2, dtype=np.float64)
    e = np.minimum(np.hypot(e1, e2), 0.9999)
    return 0.5 * np.arctan2(e2, e1), (1.0 - e) / (1.0 + e)


def phi_q_to_ellipticity(*, phi: ArrayLike, q: ArrayLike) -> tuple[NDArray, NDArray]:
    """Inverse of :func:`ellipticity_to_phi_q`: ``(e1, e2)`` from angle (radians) and ``q``."""
    phi = np.asarray(phi, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    e = (1.0 - q) / (1.0 + q)
    return e * np.cos(2.0 * phi), e * np.sin(2.0 * phi)


def _sie_rotated(xr: NDArray, yr: NDArray, theta_e: NDArray, q: NDArray):
    """SIE deflection and potential in the major-axis frame (arrays broadcast together)."""
    q = np.minimum(q, 1.0 - _Q_EPS)
    f = np.sqrt(1.0 - q * q)
    omega = np.sqrt(q * q * xr * xr + yr * yr)
    # Avoid 0/0 at the exact centre: the deflection there is bounded and its limit is 0.
    omega = np.where(omega == 0.0, 1e-15, omega)
    scale = theta_e * np.sqrt(q) / f
    ax = scale * np.arctan(f * xr / omega)
    ay = scale * np.arctanh(f * yr / omega)
    return ax, ay, xr * ax + yr * ay


@dataclass(frozen=True)
class SieShear:
    """An SIE plus external shear (lenstronomy's ``SIE`` and ``SHEAR``).

    The fields broadcast against each other and against the positions they are evaluated at.

    Attributes
    ----------
    theta_e : array_like
        Einstein radius, arcsec.
    e1, e2 : array_like
        SIE ellipticity components (lenstronomy convention), dimensionless.
    center_x, center_y : array_like
        Mass centre, arcsec.
    gamma1, gamma2 : array_like
        External shear components, about the coordinate origin, dimensionless.
    """

    theta_e: ArrayLike
    e1: ArrayLike
    e2: ArrayLike
    center_x: ArrayLike
    center_y: ArrayLike
    gamma1: ArrayLike
    gamma2: ArrayLike

    @classmethod
    def from_mapping(cls, values: Mapping[str, ArrayLike]) -> SieShear:
        """The seven parameters, picked out of a larger record (a truth row, a lens draw)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})


def _sie_in_frame(x: NDArray, y: NDArray, lens: SieShear) -> tuple[NDArray, ...]:
    """SIE deflection (major-axis frame, arcsec) and potential (arcsec^2) at sky ``x, y``.

    Returns ``(alpha_x', alpha_y', psi, cos phi, sin phi)``: the frame's rotation comes along so
    the caller can turn the deflection back to the sky.
    """
    phi, q = ellipticity_to_phi_q(e1=lens.e1, e2=lens.e2)
    cos, sin = np.cos(phi), np.sin(phi)
    dx, dy = x - lens.center_x, y - lens.center_y
    axr, ayr, psi = _sie_rotated(cos * dx + sin * dy, -sin * dx + cos * dy,
                                 np.asarray(lens.theta_e, dtype=np.float64), q)  # fmt: skip
    return axr, ayr, psi, cos, sin


def sie_shear_deflection(x: ArrayLike, y: ArrayLike, *, lens: SieShear) -> tuple[NDArray, NDArray]:
    """Deflection angle of an SIE plus external shear.

    Parameters
    ----------
    x, y : array_like
        Image-plane positions, arcsec (x east, y north). Broadcast against the parameters.
    lens : SieShear
        The mass model.

    Returns
    -------
    alpha_x, alpha_y : ndarray
        Deflection, arcsec; the source position is ``(x - alpha_x, y - alpha_y)``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    axr, ayr, _, cos, sin = _sie_in_frame(x, y, lens)
    g1, g2 = np.asarray(lens.gamma1), np.asarray(lens.gamma2)
    return cos * axr - sin * ayr + g1 * x + g2 * y, sin * axr + cos * ayr + g2 * x - g1 * y


def sie_shear_potential(x: ArrayLike, y: ArrayLike, *, lens: SieShear) -> NDArray:
    """Lensing potential of an SIE plus external shear at ``x, y`` (arcsec), arcsec^2."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    _, _, psi, _, _ = _sie_in_frame(x, y, lens)
    return psi + 0.5 * np.asarray(lens.gamma1) * (x * x - y * y) + np.asarray(lens.gamma2) * x * y

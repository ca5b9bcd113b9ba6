"""Elliptical power-law (EPL) mass profile; the SIE (slope 2) has a closed-form fast path.

Implements Tessore & Metcalf (2015, A&A 580, A79; "TM15") in lenstronomy's parameterisation:
with ``b = theta_e sqrt(q)``, ``t = gamma - 1`` and, in the frame centred on the lens with ``x'``
along the major axis, ``R = sqrt(q^2 x'^2 + y'^2)`` and ``phi = arg(q x' + i y')``:

* convergence  ``kappa = (2 - t)/2 (b/R)^t``                               (TM15 eq. 1)
* deflection   ``alpha = 2b/(1+q) (b/R)^(t-1) Omega(phi)``, complex ``alpha_x + i alpha_y``,
  ``Omega = e^{i phi} 2F1(1, t/2; 2 - t/2; -f e^{2 i phi})``, ``f = (1-q)/(1+q)``  (TM15 eq. 13)
  summed with the recurrence of TM15 eq. 18 to double precision (terms shrink like ``f^n``).
* potential    ``psi = (x' alpha_x + y' alpha_y) / (2 - t)``                 (TM15 eq. 15)
* shear        ``gamma = (1 - t) alpha / z* - kappa z / z*``, ``z = x' + i y'`` (TM15 eq. 22)

For the SIE (``t = 1``) the series has the closed form (Kormann et al. 1994; Keeton 2001 eq. for
the SIE with our ``b``): ``alpha_x' = b/s atan(s x'/R)``, ``alpha_y' = b/s atanh(s y'/R)`` with
``s = sqrt(1 - q^2)``, and the Hessian is ``2 kappa / r^2 [[y^2, -xy], [-xy, x^2]]`` because an
isothermal potential is homogeneous of degree 1.

All angles in arcsec; the profile is singular at the centre (NaN/inf there, by design).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: Terms of the TM15 series are bounded by ``f^n``; stop when that is below this.
_SERIES_TOL = 1e-16
_SERIES_MAX_TERMS = 400
#: Below this ``s = sqrt(1 - q^2)`` the closed forms use their Taylor series (q -> 1 limit).
_SMALL_S = 1e-4


def shape_parameters(
    *, theta_e: FloatArray, e1: FloatArray, e2: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """TM15 scale ``b = theta_e sqrt(q)`` (arcsec), axis ratio ``q`` and major-axis cos, sin."""
    e = np.hypot(e1, e2)
    q = (1.0 - e) / (1.0 + e)
    angle = 0.5 * np.arctan2(e2, e1)
    return theta_e * np.sqrt(q), q, np.cos(angle), np.sin(angle)


def to_frame(
    x: FloatArray, y: FloatArray, cos: FloatArray, sin: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Rotate centred coordinates into the major-axis frame (by minus the position angle)."""
    return cos * x + sin * y, -sin * x + cos * y


def from_frame(
    xp: FloatArray, yp: FloatArray, cos: FloatArray, sin: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Rotate a vector from the major-axis frame back to the sky frame."""
    return cos * xp - sin * yp, sin * xp + cos * yp


def _atan_over(s: FloatArray, z: FloatArray) -> FloatArray:
    """``atan(s z) / s``, continuous through ``s -> 0`` (round q)."""
    small = s < _SMALL_S
    if not np.any(small):  # the usual case: skip the series branch (hot path of the solver)
        return np.arctan(s * z) / s
    safe_s = np.where(small, 1.0, s)
    return np.where(small, z * (1.0 - (s * z) ** 2 / 3.0), np.arctan(safe_s * z) / safe_s)


def _atanh_over(s: FloatArray, z: FloatArray) -> FloatArray:
    """``atanh(s z) / s``, continuous through ``s -> 0`` (round q)."""
    small = s < _SMALL_S
    if not np.any(small):
        return np.arctanh(s * z) / s
    # |z| <= 1 here, so 0.5 keeps the unused branch finite (atanh(1) would warn).
    safe_s = np.where(small, 0.5, s)
    return np.where(small, z * (1.0 + (s * z) ** 2 / 3.0), np.arctanh(safe_s * z) / safe_s)


def sie_frame_deflection(
    xp: FloatArray, yp: FloatArray, *, b: FloatArray, q: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """SIE deflection in the major-axis frame (closed form, see module docstring), arcsec.

    Depends on direction only: the SIE deflection has the same length at every radius.
    """
    s = np.sqrt(np.maximum(1.0 - q * q, 0.0))
    big_r = np.sqrt(q * q * xp * xp + yp * yp)
    return b * _atan_over(s, xp / big_r), b * _atanh_over(s, yp / big_r)


def tm15_omega(phi: FloatArray, *, t: FloatArray, q: FloatArray) -> NDArray[np.complex128]:
    """TM15 angular function ``Omega(phi)`` (their eqs. 13, 18) as a complex array.

    Parameters
    ----------
    phi : ndarray
        Elliptical angle ``arg(q x' + i y')``, radians.
    t : ndarray
        ``gamma - 1`` (0 < t < 2), broadcasting against ``phi``.
    q : ndarray
        Axis ratio (0 < q <= 1), broadcasting against ``phi``.
    """
    f = (1.0 - q) / (1.0 + q)
    f_max = float(np.max(f)) if np.size(f) else 0.0
    n_terms = 1
    if f_max > _SERIES_TOL:
        n_terms = min(_SERIES_MAX_TERMS, int(np.log(_SERIES_TOL) / np.log(f_max)) + 2)
    term = np.exp(1j * phi)
    total = term.copy()
    step = -f * np.exp(2j * phi)
    two_minus_t = 2.0 - t
    for k in range(1, n_terms):
        term = term * ((2 * k - two_minus_t) / (2 * k + two_minus_t) * step)
        total += term
    return total


def epl_frame_deflection(
    xp: FloatArray, yp: FloatArray, *, b: FloatArray, q: FloatArray, t: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """EPL deflection in the major-axis frame (TM15 eq. 13), arcsec."""
    zq = q * xp + 1j * yp
    big_r = np.abs(zq)
    alpha = 2.0 * b / (1.0 + q) * (b / big_r) ** (t - 1.0) * tm15_omega(np.angle(zq), t=t, q=q)
    return alpha.real, alpha.imag


@dataclass(frozen=True)
class EPLParameters:
    """Parameters of an EPL, each broadcasting against the sky positions it is evaluated at.

    Attributes
    ----------
    theta_e : ndarray
        Einstein radius, arcsec.
    gamma : ndarray
        Logarithmic slope of the density (2: isothermal, the SIE).
    e1, e2 : ndarray
        Ellipticity components (lenstronomy's convention), dimensionless.
    center_x, center_y : ndarray
        Lens centre, arcsec.
    """

    theta_e: FloatArray
    gamma: FloatArray
    e1: FloatArray
    e2: FloatArray
    center_x: FloatArray
    center_y: FloatArray


def _in_frame(
    x: FloatArray, y: FloatArray, lens: EPLParameters
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """``(b, q, cos, sin, x', y')``: the TM15 shape and the positions in the major-axis frame."""
    b, q, cos, sin = shape_parameters(theta_e=lens.theta_e, e1=lens.e1, e2=lens.e2)
    xp, yp = to_frame(x - lens.center_x, y - lens.center_y, cos, sin)
    return b, q, cos, sin, xp, yp


def _frame_convergence(
    xp: FloatArray, yp: FloatArray, *, b: FloatArray, q: FloatArray, t: FloatArray
) -> FloatArray:
    """TM15 eq. 1, ``kappa = (2 - t)/2 (b/R)^t``, in the major-axis frame (dimensionless)."""
    return (2.0 - t) / 2.0 * (b / np.sqrt(q * q * xp * xp + yp * yp)) ** t


def convergence(x: FloatArray, y: FloatArray, *, lens: EPLParameters) -> FloatArray:
    """Convergence ``kappa`` (dimensionless) of the EPL at sky positions ``x, y`` (arcsec)."""
    b, q, _, _, xp, yp = _in_frame(x, y, lens)
    return _frame_convergence(xp, yp, b=b, q=q, t=lens.gamma - 1.0)


def deflection(
    x: FloatArray, y: FloatArray, *, lens: EPLParameters
) -> tuple[FloatArray, FloatArray]:
    """Deflection ``(alpha_x, alpha_y)`` in arcsec; closed form where ``gamma == 2``."""
    b, q, cos, sin, xp, yp = _in_frame(x, y, lens)
    if np.all(lens.gamma == 2.0):
        axp, ayp = sie_frame_deflection(xp, yp, b=b, q=q)
    else:
        axp, ayp = epl_frame_deflection(xp, yp, b=b, q=q, t=lens.gamma - 1.0)
    return from_frame(axp, ayp, cos, sin)


def potential(x: FloatArray, y: FloatArray, *, lens: EPLParameters) -> FloatArray:
    """Lensing potential ``psi`` in arcsec^2 (TM15 eq. 15), zero at the lens centre."""
    ax, ay = deflection(x, y, lens=lens)
    return ((x - lens.center_x) * ax + (y - lens.center_y) * ay) / (3.0 - lens.gamma)


def hessian(
    x: FloatArray, y: FloatArray, *, lens: EPLParameters
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Second derivatives ``(psi_xx, psi_xy, psi_yy)`` of the potential (dimensionless)."""
    b, q, cos, sin, xp, yp = _in_frame(x, y, lens)
    t = lens.gamma - 1.0
    kappa = _frame_convergence(xp, yp, b=b, q=q, t=t)
    if np.all(lens.gamma == 2.0):
        dx, dy = x - lens.center_x, y - lens.center_y
        scale = 2.0 * kappa / (dx * dx + dy * dy)
        return scale * dy * dy, -scale * dx * dy, scale * dx * dx
    axp, ayp = epl_frame_deflection(xp, yp, b=b, q=q, t=t)
    z = xp + 1j * yp
    shear = ((1.0 - t) * (axp + 1j * ayp) - kappa * z) / np.conj(z)
    # A spin-2 quantity: rotating the frame back by the position angle multiplies it by e^{2i phi}.
    shear = shear * (cos + 1j * sin) ** 2
    return kappa + shear.real, shear.imag, kappa - shear.real

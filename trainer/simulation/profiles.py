"""Analytic surface-brightness profiles: elliptical Sérsic and circular Gaussian clumps.

Surface brightness is in coadd flux units per arcsec^2 (zeropoint 27), so a pixel's flux is
the profile times the (sub)pixel area. The Sérsic profile uses lenstronomy's
``SERSIC_ELLIPSE`` conventions so its images can be compared one to one:

* ``I(R) = I_e exp(-b_n ((R / R_s)^(1/n) - 1))`` (Sérsic 1963), with
  ``R = sqrt(q x'^2 + y'^2 / q)`` in the frame of the major axis, so ``R_s`` is the half-light
  radius along the intermediate axis;
* ``b_n = 1.9992 n - 0.3271`` (Capaccioli 1989 approximation, as lenstronomy);
* total flux ``F = 2 pi n R_s^2 I_e e^(b_n) b_n^(-2n) Gamma(2n)`` (Graham & Driver 2005,
  eq. 4; the elliptical radius above preserves area, so ``q`` does not enter).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gamma as gamma_function

from lenscast.trainer.simulation.mass import ellipticity_to_phi_q

#: Smallest radius at which the Sérsic profile is evaluated, arcsec (tames the n > 4 cusp).
_R_MIN = 1e-4


def sersic_b(n: ArrayLike) -> NDArray:
    """``b_n`` of the Sérsic profile (Capaccioli 1989 linear approximation)."""
    return 1.9992 * np.asarray(n, dtype=np.float64) - 0.3271


def sersic_amplitude(*, flux: ArrayLike, r_sersic: ArrayLike, n_sersic: ArrayLike) -> NDArray:
    """Surface brightness at ``r_sersic`` (flux/arcsec^2) of a Sérsic of total ``flux``.

    Parameters
    ----------
    flux : array_like
        Total flux, coadd units.
    r_sersic : array_like
        Half-light radius, arcsec (intermediate axis).
    n_sersic : array_like
        Sérsic index.
    """
    n = np.asarray(n_sersic, dtype=np.float64)
    b = sersic_b(n)
    norm = 2.0 * np.pi * n * np.asarray(r_sersic) ** 2 * np.exp(b) * b ** (-2.0 * n)
    return np.asarray(flux) / (norm * gamma_function(2.0 * n))


def sersic_ellipse(
    x: ArrayLike,
    y: ArrayLike,
    *,
    flux: float,
    r_sersic: float,
    n_sersic: float,
    e1: float,
    e2: float,
    center_x: float,
    center_y: float,
) -> NDArray:
    """Elliptical Sérsic surface brightness, coadd flux per arcsec^2.

    Parameters
    ----------
    x, y : array_like
        Positions, arcsec.
    flux : float
        Total flux, coadd units.
    r_sersic : float
        Half-light radius (intermediate axis), arcsec.
    n_sersic : float
        Sérsic index.
    e1, e2 : float
        Ellipticity components (lenstronomy convention, see ``mass.ellipticity_to_phi_q``).
    center_x, center_y : float
        Centre, arcsec.
    """
    phi, q = ellipticity_to_phi_q(e1=e1, e2=e2)
    cos, sin = np.cos(phi), np.sin(phi)
    dx = np.asarray(x) - center_x
    dy = np.asarray(y) - center_y
    xr = cos * dx + sin * dy
    yr = -sin * dx + cos * dy
    radius = np.maximum(np.sqrt(q * xr * xr + yr * yr / q), _R_MIN)
    b = sersic_b(n_sersic)
    amp = sersic_amplitude(flux=flux, r_sersic=r_sersic, n_sersic=n_sersic)
    return amp * np.exp(-b * ((radius / r_sersic) ** (1.0 / n_sersic) - 1.0))


def gaussian_clumps(
    x: ArrayLike,
    y: ArrayLike,
    *,
    flux: NDArray,
    sigma: NDArray,
    center_x: NDArray,
    center_y: NDArray,
) -> NDArray:
    """Sum of circular Gaussians (star-forming clumps), coadd flux per arcsec^2.

    Parameters
    ----------
    x, y : array_like
        Positions, arcsec, any shape ``S``.
    flux, sigma, center_x, center_y : ndarray, shape (k,)
        Total flux (coadd units), standard deviation (arcsec) and centre (arcsec) per clump.

    Returns
    -------
    ndarray, shape S
    """
    x = np.asarray(x)
    out = np.zeros(x.shape)
    for f, s, cx, cy in zip(flux, sigma, center_x, center_y, strict=True):
        r2 = (x - cx) ** 2 + (np.asarray(y) - cy) ** 2
        out += f / (2.0 * np.pi * s * s) * np.exp(-0.5 * r2 / (s * s))
    return out

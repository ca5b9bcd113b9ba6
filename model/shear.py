"""External shear: a constant tidal field from the lens environment.

Potential ``psi = (gamma1 (x^2 - y^2) + 2 gamma2 x y) / 2`` about the coordinate origin (the
cutout centre), as lenstronomy's ``SHEAR`` with ``ra_0 = dec_0 = 0`` (e.g. Keeton 2001,
astro-ph/0102341, sec. 3.4 "external shear"). Angles in arcsec, shear dimensionless.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def potential(
    x: FloatArray, y: FloatArray, *, gamma1: FloatArray, gamma2: FloatArray
) -> FloatArray:
    """Shear potential ``(gamma1 (x^2 - y^2) + 2 gamma2 x y) / 2`` in arcsec^2."""
    return 0.5 * gamma1 * (x * x - y * y) + gamma2 * x * y


def deflection(
    x: FloatArray, y: FloatArray, *, gamma1: FloatArray, gamma2: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Shear deflection ``(gamma1 x + gamma2 y, gamma2 x - gamma1 y)`` in arcsec."""
    return gamma1 * x + gamma2 * y, gamma2 * x - gamma1 * y


def hessian(
    x: FloatArray, y: FloatArray, *, gamma1: FloatArray, gamma2: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Constant Hessian ``(psi_xx, psi_xy, psi_yy) = (gamma1, gamma2, -gamma1)``."""
    shape = np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(gamma1))
    g1 = np.broadcast_to(gamma1, shape)
    return g1, np.broadcast_to(gamma2, shape), -g1

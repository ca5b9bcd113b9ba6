"""Lensing quantities of the full mass model (EPL/SIE + external shear) at image-plane points.

Every function is ``f(x, y, *, model)`` with ``x, y`` in arcsec shaped ``(n,)`` (one point per
system of ``model``) or ``(n, k)`` (``k`` points per system); a one-system model broadcasts
against any shape. See :mod:`lenscast.model.epl` and :mod:`lenscast.model.shear` for the formulas
and papers.

Lens equation (e.g. Schneider, Ehlers & Falco 1992, eq. 5.9): ``beta = theta - alpha(theta)``.
Fermat potential (ibid. eq. 5.6): ``tau = |theta - beta|^2 / 2 - psi(theta)`` in arcsec^2;
the arrival-time delay is ``D_dt / c * delta tau`` (see :mod:`lenscast.model.cosmology`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lenscast.model import epl, shear
from lenscast.model.mass_model import MassModel, expand

FloatArray = NDArray[np.float64]


def _prepare(
    x: ArrayLike, y: ArrayLike, model: MassModel
) -> tuple[FloatArray, FloatArray, dict[str, FloatArray]]:
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    ndim = max(xa.ndim, ya.ndim, 1)
    params = {name: expand(v, ndim) for name, v in model.as_mapping().items()}
    return xa, ya, params


def _main(params: dict[str, FloatArray]) -> epl.EPLParameters:
    keys = ("theta_e", "gamma", "e1", "e2", "center_x", "center_y")
    return epl.EPLParameters(**{k: params[k] for k in keys})


def deflection(x: ArrayLike, y: ArrayLike, *, model: MassModel) -> tuple[FloatArray, FloatArray]:
    """Total deflection ``(alpha_x, alpha_y)``, arcsec."""
    xa, ya, p = _prepare(x, y, model)
    ax, ay = epl.deflection(xa, ya, lens=_main(p))
    sx, sy = shear.deflection(xa, ya, gamma1=p["gamma1"], gamma2=p["gamma2"])
    return ax + sx, ay + sy


def hessian(
    x: ArrayLike, y: ArrayLike, *, model: MassModel
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Total Hessian of the potential ``(psi_xx, psi_xy, psi_yy)``, dimensionless."""
    xa, ya, p = _prepare(x, y, model)
    fxx, fxy, fyy = epl.hessian(xa, ya, lens=_main(p))
    return fxx + p["gamma1"], fxy + p["gamma2"], fyy - p["gamma1"]


def convergence(x: ArrayLike, y: ArrayLike, *, model: MassModel) -> FloatArray:
    """Convergence ``kappa`` (external shear adds none), dimensionless."""
    xa, ya, p = _prepare(x, y, model)
    return epl.convergence(xa, ya, lens=_main(p))


def potential(x: ArrayLike, y: ArrayLike, *, model: MassModel) -> FloatArray:
    """Total lensing potential ``psi``, arcsec^2."""
    xa, ya, p = _prepare(x, y, model)
    return epl.potential(xa, ya, lens=_main(p)) + shear.potential(
        xa, ya, gamma1=p["gamma1"], gamma2=p["gamma2"]
    )


def magnification(x: ArrayLike, y: ArrayLike, *, model: MassModel) -> FloatArray:
    """Signed magnification ``1 / det(I - H)``; its sign is the image parity."""
    fxx, fxy, fyy = hessian(x, y, model=model)
    det = (1.0 - fxx) * (1.0 - fyy) - fxy * fxy
    with np.errstate(divide="ignore"):
        return 1.0 / det


def ray_shoot(x: ArrayLike, y: ArrayLike, *, model: MassModel) -> tuple[FloatArray, FloatArray]:
    """Source-plane position ``beta = theta - alpha(theta)`` of image-plane points, arcsec."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    ax, ay = deflection(xa, ya, model=model)
    return xa - ax, ya - ay


def fermat_potential(
    x: ArrayLike,
    y: ArrayLike,
    *,
    model: MassModel,
    source_x: ArrayLike,
    source_y: ArrayLike,
) -> FloatArray:
    """Fermat potential ``|theta - beta|^2 / 2 - psi(theta)`` in arcsec^2.

    ``source_x, source_y`` are per system ``(n,)`` and broadcast over the points of each system.
    """
    xa, ya, _ = _prepare(x, y, model)
    ndim = max(xa.ndim, ya.ndim, 1)
    bx = expand(np.atleast_1d(np.asarray(source_x, dtype=np.float64)), ndim)
    by = expand(np.atleast_1d(np.asarray(source_y, dtype=np.float64)), ndim)
    return 0.5 * ((xa - bx) ** 2 + (ya - by) ** 2) - potential(xa, ya, model=model)

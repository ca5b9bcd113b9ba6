"""Critical curves and caustics of one EPL/SIE + shear system (for plots and checks).

Critical curves are where the lens mapping is singular, ``det(I - H) = 0`` (Schneider,
Ehlers & Falco 1992, sec. 6.1); caustics are their images under ``beta = theta - alpha``.
Along each ray from the lens centre the determinant is sampled on a logarithmic radius grid
and every sign change refined by bisection. The outermost root of a ray lies on the tangential
critical curve; for slopes shallower than isothermal (``gamma < 2``) the next one inwards lies
on the radial critical curve. The singular isothermal profile has no radial critical curve but
a "cut" (pseudo-caustic): the image of the centre's neighbourhood, across which image pairs
appear and vanish; it is returned as ``cut_x, cut_y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lenscast.model import lens_quantities as lq
from lenscast.model.mass_model import MassModel

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class CriticalCurves:
    """Closed curves (first point repeated at the end), arcsec; empty arrays where absent."""

    tangential_x: FloatArray
    tangential_y: FloatArray
    tangential_caustic_x: FloatArray
    tangential_caustic_y: FloatArray
    radial_x: FloatArray
    radial_y: FloatArray
    radial_caustic_x: FloatArray
    radial_caustic_y: FloatArray
    cut_x: FloatArray
    cut_y: FloatArray


def _det(x: FloatArray, y: FloatArray, model: MassModel) -> FloatArray:
    fxx, fxy, fyy = lq.hessian(x, y, model=model)
    return (1.0 - fxx) * (1.0 - fyy) - fxy * fxy


def _closed(v: FloatArray) -> FloatArray:
    return np.append(v, v[:1]) if v.size else v


def critical_curves(
    model: MassModel, *, index: int = 0, n_angles: int = 720, n_radii: int = 600
) -> CriticalCurves:
    """Critical curves and caustics of system ``index`` of ``model``.

    Parameters
    ----------
    model : MassModel
        The batch; only system ``index`` is used.
    n_angles, n_radii : int
        Rays from the lens centre, and log-spaced radii per ray (1e-4 to 20 theta_e).
    """
    m = model.take([index])
    cx, cy, theta_e = float(m.center_x[0]), float(m.center_y[0]), float(m.theta_e[0])
    phi = np.linspace(0.0, 2.0 * np.pi, n_angles, endpoint=False)[:, None]
    radii = theta_e * np.geomspace(1e-4, 20.0, n_radii)[None, :]
    cos, sin = np.cos(phi), np.sin(phi)
    det = _det(cx + radii * cos, cy + radii * sin, m)
    change = det[:, :-1] * det[:, 1:] <= 0
    # Per ray: the outermost sign change (tangential) and the next one inwards (radial).
    idx = np.arange(n_radii - 1)[None, :]
    outer = np.where(change, idx, -1).max(axis=1)
    inner = np.where(change & (idx < outer[:, None]), idx, -1).max(axis=1)

    def refine(cell: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        rows = np.flatnonzero(cell >= 0)
        lo, hi = radii[0, cell[rows]], radii[0, cell[rows] + 1]
        c, s = cos[rows, 0], sin[rows, 0]
        d_lo = _det(cx + lo * c, cy + lo * s, m)
        for _ in range(60):  # bisection to ~1e-18 of the cell: plots and checks, not the hot path
            mid = 0.5 * (lo + hi)
            d_mid = _det(cx + mid * c, cy + mid * s, m)
            same = d_mid * d_lo > 0
            lo, d_lo = np.where(same, mid, lo), np.where(same, d_mid, d_lo)
            hi = np.where(same, hi, mid)
        r = 0.5 * (lo + hi)
        return _closed(cx + r * c), _closed(cy + r * s)

    tx, ty = refine(outer)
    rx, ry = refine(inner)
    tcx, tcy = lq.ray_shoot(tx, ty, model=m)
    rcx, rcy = lq.ray_shoot(rx, ry, model=m) if rx.size else (rx, ry)
    cut_x = cut_y = np.zeros(0)
    if m.gamma[0] == 2.0:
        # The SIE deflection depends on direction only: the cut is the centre's image.
        eps = 1e-9 * theta_e
        cut_x, cut_y = lq.ray_shoot(cx + eps * cos[:, 0], cy + eps * sin[:, 0], model=m)
        cut_x, cut_y = _closed(cut_x), _closed(cut_y)
    return CriticalCurves(tx, ty, tcx, tcy, rx, ry, rcx, rcy, cut_x, cut_y)


def critical_curves_and_caustics(
    model: MassModel, *, n_angles: int = 720
) -> tuple[list[list[FloatArray]], list[list[FloatArray]]]:
    """Per system, the critical curves and the caustics as closed ``(k, 2)`` polylines.

    Returns ``(critical, caustic)``: ``critical[i]`` lists system ``i``'s tangential (then, if
    any, radial) critical curve; ``caustic[i]`` their caustics, then the SIE cut if present.
    Arcsec, for plotting.
    """
    critical: list[list[FloatArray]] = []
    caustic: list[list[FloatArray]] = []
    for i in range(model.n):
        c = critical_curves(model, index=i, n_angles=n_angles)
        pairs = [(c.tangential_x, c.tangential_y), (c.radial_x, c.radial_y)]
        critical.append([np.column_stack(p) for p in pairs if p[0].size])
        images = [
            (c.tangential_caustic_x, c.tangential_caustic_y),
            (c.radial_caustic_x, c.radial_caustic_y),
            (c.cut_x, c.cut_y),
        ]
        caustic.append([np.column_stack(p) for p in images if p[0].size])
    return critical, caustic

"""All images of a point source behind EPL/SIE + external shear, for a batch of systems.

Semi-analytic (see :mod:`lenscast.model.angular_equation` for the reduction): the lens equation
becomes one equation in the polar angle ``phi`` about the lens centre. It is sampled on a ``phi``
grid, every sign change and every dip towards zero (a close pair of images, source near a fold) is
bracketed, the brackets are refined (Newton with bisection safeguard for the SIE, whose
angular function has analytic derivatives; Illinois regula falsi for the general EPL), and each
image is polished by Newton's method on the full 2-D lens equation. An image is kept only if
it maps back onto the source to ``RESIDUAL_TOL``; duplicates (roots found twice) are merged.

Images returned: 2 or 4 (3 for naked-cusp configurations of very elliptical lenses; up to 6
for rare ellipticity + misaligned-shear "butterfly" caustics). The central image, a maximum of
the arrival time, is dropped: it does not exist for the singular SIE and is deeply demagnified
(and unmodelled by a pure power law) for shallower EPLs. A source exactly on the optical axis
of a circular lens without shear has an Einstein ring: ``ring`` is True and no point images are
returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lenscast.model import angular_equation as ang
from lenscast.model import lens_quantities as lq
from lenscast.model import root_finding as rf
from lenscast.model.epl_roots import epl_roots
from lenscast.model.mass_model import MassModel

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: Columns of the NaN-padded image arrays (2 or 4 images usually; up to 6 for butterflies).
MAX_IMAGES = 6
#: |beta(theta) - beta| accepted for an image, relative to max(1, theta_e), arcsec.
RESIDUAL_TOL = 1e-8
#: Two roots closer than this (relative to max(1, theta_e)) are the same image.
DUPLICATE_TOL = 1e-7
#: Grid points in the polar angle: SIE (cheap, analytic) and general EPL.
N_GRID_SIE = 64
N_GRID_EPL = 128


@dataclass(frozen=True)
class ImageSet:
    """Images of a batch of sources, in order of arrival (increasing Fermat potential).

    Attributes
    ----------
    x, y : ndarray, shape (n, MAX_IMAGES)
        Image positions, arcsec, NaN padded.
    magnification : ndarray, shape (n, MAX_IMAGES)
        Signed magnification ``1/det(I - H)``; negative for saddle points (odd parity).
    fermat_potential : ndarray, shape (n, MAX_IMAGES)
        ``|theta - beta|^2/2 - psi``, arcsec^2 (the arrival order before cosmology).
    n_images : ndarray of int, shape (n,)
        Number of images found.
    ring : ndarray of bool, shape (n,)
        Source on the optical axis of a circular, unsheared lens: an Einstein ring of radius
        ``theta_e``, no point images.
    """

    x: FloatArray
    y: FloatArray
    magnification: FloatArray
    fermat_potential: FloatArray
    n_images: NDArray[np.int_]
    ring: NDArray[np.bool_]


def _ring_mask(frame: ang.AngularFrame, model: MassModel) -> NDArray[np.bool_]:
    scale = np.maximum(model.theta_e, 1.0)
    round_lens = np.hypot(model.e1, model.e2) < 1e-12
    no_shear = np.hypot(model.gamma1, model.gamma2) < 1e-12
    on_axis = np.hypot(frame.sx, frame.sy) < 1e-12 * scale
    return round_lens & no_shear & on_axis


def _sie_roots(frame: ang.AngularFrame, n_grid: int) -> tuple[FloatArray, IntArray, FloatArray]:
    """Angles, systems and radii of all roots of the SIE angular function."""
    h = 2.0 * np.pi / n_grid
    grid = np.arange(n_grid, dtype=np.float64) * h
    # A (1, m) grid: cos/sin once per angle, broadcast against the (n, 1) constants.
    (g,) = ang.sie_function(grid[None, :], frame, None, order=0)
    valid = np.isfinite(g)

    def fun(phi: FloatArray, system: IntArray) -> tuple[FloatArray, FloatArray]:
        val, der = ang.sie_function(phi, frame, system)
        return val, der

    def dfun(phi: FloatArray, system: IntArray) -> tuple[FloatArray, FloatArray]:
        _, der, der2 = ang.sie_function(phi, frame, system, order=2)
        return der, der2

    sys_a, cell = rf.sign_change_cells(g, valid)
    lo, hi = grid[cell], grid[cell] + h
    g_lo, g_hi = g[sys_a, cell], g[sys_a, (cell + 1) % n_grid]
    # Close pairs: locate the extremum of g in the dip (a root of g'), test its sign.
    sys_b, point = rf.discrete_extrema(g, valid)
    e_lo, e_hi = grid[point] - h, grid[point] + h
    d_lo = ang.sie_function(e_lo, frame, sys_b)[1]
    d_hi = ang.sie_function(e_hi, frame, sys_b)[1]
    turn = d_lo * d_hi < 0
    sys_b, e_lo, e_hi, d_lo, d_hi = sys_b[turn], e_lo[turn], e_hi[turn], d_lo[turn], d_hi[turn]
    g_ref = g[sys_b, point[turn]]
    phi_star = rf.bracketed_newton(dfun, rf.Brackets(e_lo, e_hi, d_lo, d_hi, sys_b))
    (g_star,) = ang.sie_function(phi_star, frame, sys_b, order=0)
    split = g_star * g_ref <= 0
    # A source exactly on a fold: the extremum touches zero; the merged image is the extremum.
    touch = ~split & (np.abs(g_star) <= 1e-13 * np.maximum(frame.b[sys_b], 1.0))
    g_e_lo = g[sys_b, (point[turn] - 1) % n_grid]
    g_e_hi = g[sys_b, (point[turn] + 1) % n_grid]
    lo = np.concatenate([lo, e_lo[split], phi_star[split]])
    hi = np.concatenate([hi, phi_star[split], e_hi[split]])
    f_lo = np.concatenate([g_lo, g_e_lo[split], g_star[split]])
    f_hi = np.concatenate([g_hi, g_star[split], g_e_hi[split]])
    system = np.concatenate([sys_a, sys_b[split], sys_b[split]])
    roots = rf.bracketed_newton(fun, rf.Brackets(lo, hi, f_lo, f_hi, system))
    phi = np.concatenate([roots, phi_star[touch]])
    system = np.concatenate([system, sys_b[touch]])
    return phi, system, ang.sie_radius(phi, frame, system)


def _polish(
    x: FloatArray, y: FloatArray, bx: FloatArray, by: FloatArray, model: MassModel
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Newton on ``theta - alpha(theta) = beta``; a step is kept only if it lowers the residual."""
    px, py = lq.ray_shoot(x, y, model=model)
    res = np.hypot(bx - px, by - py)
    for _ in range(8):
        fxx, fxy, fyy = lq.hessian(x, y, model=model)
        a11, a12, a22 = 1.0 - fxx, -fxy, 1.0 - fyy
        det = a11 * a22 - a12 * a12
        rx, ry = bx - px, by - py
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = x + (a22 * rx - a12 * ry) / det
            ty = y + (-a12 * rx + a11 * ry) / det
        qx, qy = lq.ray_shoot(tx, ty, model=model)
        new_res = np.hypot(bx - qx, by - qy)
        better = new_res < res
        x, y = np.where(better, tx, x), np.where(better, ty, y)
        px, py = np.where(better, qx, px), np.where(better, qy, py)
        res = np.where(better, new_res, res)
        if not np.any(better & (res > 1e-15 * np.maximum(1.0, np.abs(x) + np.abs(y)))):
            break
    return x, y, res


def solve_images(
    source_x: ArrayLike, source_y: ArrayLike, *, model: MassModel, n_grid: int | None = None
) -> ImageSet:
    """Solve the lens equation for every image of each source.

    Parameters
    ----------
    source_x, source_y : array_like, shape (n,) or scalar
        Source positions, arcsec (same frame as the lens centre).
    model : MassModel
        ``n`` systems (or one, broadcast to the sources).
    n_grid : int, optional
        Polar-angle grid size (default :data:`N_GRID_SIE` or :data:`N_GRID_EPL`).

    Returns
    -------
    ImageSet
        Images in arrival order, NaN padded to :data:`MAX_IMAGES`.
    """
    bx_all = np.atleast_1d(np.asarray(source_x, dtype=np.float64))
    by_all = np.atleast_1d(np.asarray(source_y, dtype=np.float64))
    n = max(bx_all.size, by_all.size, model.n)
    bx_all, by_all = np.broadcast_to(bx_all, (n,)), np.broadcast_to(by_all, (n,))
    if model.n != n:
        model = model.take(np.zeros(n, dtype=np.intp))
    frame = ang.angular_frame(bx_all, by_all, model)
    ring = _ring_mask(frame, model)

    phis, systems, radii = [], [], []
    iso = (model.gamma == 2.0) & ~ring
    for mask, isothermal in ((iso, True), (~iso & ~ring, False)):
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            continue
        sub = ang.take_frame(frame, idx)
        if isothermal:
            phi, s, r = _sie_roots(sub, n_grid or N_GRID_SIE)
        else:
            phi, s, r = epl_roots(sub, n_grid or N_GRID_EPL)
        phis.append(phi)
        systems.append(idx[s])
        radii.append(r)
    phi = np.concatenate(phis) if phis else np.zeros(0)
    system = np.concatenate(systems) if systems else np.zeros(0, dtype=np.intp)
    r = np.concatenate(radii) if radii else np.zeros(0)
    # Roots with r <= 0 belong to the opposite direction: spurious. Radii below 1e-9 theta_e
    # (underflowing central images of shallow profiles) sit on the singular centre itself.
    keep = np.isfinite(r) & (r > 1e-9 * frame.b[system])
    phi, system, r = phi[keep], system[keep], r[keep]
    cand = model.take(system)
    xp, yp = r * np.cos(phi), r * np.sin(phi)
    x = cand.center_x + frame.cos[system] * xp - frame.sin[system] * yp
    y = cand.center_y + frame.sin[system] * xp + frame.cos[system] * yp
    x, y, res = _polish(x, y, bx_all[system], by_all[system], cand)
    scale = np.maximum(1.0, cand.theta_e)
    mag = lq.magnification(x, y, model=cand)
    fxx, _, fyy = lq.hessian(x, y, model=cand)
    # Maxima of the arrival time (central images, both eigenvalues of I - H negative): dropped.
    maximum = (mag > 0) & (fxx + fyy > 2.0)
    good = (res < RESIDUAL_TOL * scale) & ~maximum
    x, y, mag, system, scale = x[good], y[good], mag[good], system[good], scale[good]
    tau = lq.fermat_potential(
        x, y, model=cand.take(np.flatnonzero(good)), source_x=bx_all[system],
        source_y=by_all[system],
    )  # fmt: skip
    return _assemble(n, system, x, y, mag, tau, scale, ring)


def _assemble(
    n: int,
    system: IntArray,
    x: FloatArray,
    y: FloatArray,
    mag: FloatArray,
    tau: FloatArray,
    scale: FloatArray,
    ring: NDArray[np.bool_],
) -> ImageSet:
    """Merge duplicate roots, order by arrival and pad to ``(n, MAX_IMAGES)``."""
    order = np.lexsort((tau, system))
    system = system[order]
    x, y, mag, tau, scale = x[order], y[order], mag[order], tau[order], scale[order]
    first = np.searchsorted(system, np.arange(n))
    rank = np.arange(system.size) - first[system]
    width = int(rank.max()) + 1 if rank.size else 1
    grid = np.full((4, n, width), np.nan)
    for k, values in enumerate((x, y, mag, tau)):
        grid[k, system, rank] = values
    sc = np.full((n, width), 1.0)
    sc[system, rank] = scale
    # Pairwise distances within each system; a root that repeats an earlier one is dropped.
    dist = np.hypot(
        grid[0][:, :, None] - grid[0][:, None, :], grid[1][:, :, None] - grid[1][:, None, :]
    )
    earlier = np.tril(np.ones((width, width), dtype=bool), k=-1)
    duplicate = np.any((dist < DUPLICATE_TOL * sc[:, :, None]) & earlier[None], axis=2)
    present = np.isfinite(grid[0]) & ~duplicate
    # Stable sort that moves absent entries to the end while keeping arrival order.
    pos = np.argsort(~present, axis=1, kind="stable")
    grid = np.take_along_axis(grid, pos[None], axis=2)
    present = np.take_along_axis(present, pos, axis=1)
    grid = np.where(present[None], grid, np.nan)
    n_images = present.sum(axis=1)
    out = np.full((4, n, MAX_IMAGES), np.nan)
    w = min(width, MAX_IMAGES)
    out[:, :, :w] = grid[:, :, :w]
    return ImageSet(
        x=out[0], y=out[1], magnification=out[2], fermat_potential=out[3],
        n_images=np.minimum(n_images, MAX_IMAGES), ring=ring,
    )  # fmt: skip

"""Roots of the general-EPL angular equation (slopes other than 2), for the lens-equation solver.

See :mod:`lenscast.model.angular_equation` for the reduction. Along each ray the radial equation
``r - A r^(1-t) = S_r`` has one increasing branch; for slopes shallower than isothermal
(``t < 1``) also an inner, decreasing one (central images and, near the radial critical curve,
some saddles). The two branches meet where ``S_r`` equals the minimum of the left side: an
image pair born on the radial caustic sits on either side of that junction, so the junction
brackets roots too (:func:`_junction_roots`). Correctness first: the Tessore & Metcalf series
costs ~60 terms per evaluation, and Illinois regula falsi needs no derivative.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from lenscast.model import angular_equation as ang
from lenscast.model import root_finding as rf

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: Samples between the last valid grid angle and a branch junction.
_JUNCTION_SAMPLES = 32


def epl_roots(frame: ang.AngularFrame, n_grid: int) -> tuple[FloatArray, IntArray, FloatArray]:
    """Angles, systems and radii of all roots of the general-EPL angular function.

    Slopes shallower than isothermal have a second (inner) branch of the radial equation;
    its roots are searched too (central maxima found there are dropped by the caller).
    """
    out_phi, out_sys, out_r = [], [], []
    shallow = np.flatnonzero(frame.t < 1.0)
    everyone = np.arange(frame.b.size)
    for inner, idx in ((False, everyone), (True, shallow)):
        if idx.size == 0:
            continue
        sub = ang.take_frame(frame, idx)
        phi, system = _epl_branch_roots(sub, n_grid, inner)
        out_phi.append(phi)
        out_sys.append(idx[system])
        out_r.append(ang.epl_function(phi, sub, system, inner=inner)[1])
    if shallow.size:
        sub = ang.take_frame(frame, shallow)
        for inner, phi, system in _junction_roots(sub, n_grid):
            out_phi.append(phi)
            out_sys.append(shallow[system])
            out_r.append(ang.epl_function(phi, sub, system, inner=inner)[1])
    return np.concatenate(out_phi), np.concatenate(out_sys), np.concatenate(out_r)


def _epl_branch_roots(
    frame: ang.AngularFrame, n_grid: int, inner: bool
) -> tuple[FloatArray, IntArray]:
    h = 2.0 * np.pi / n_grid
    grid = np.arange(n_grid, dtype=np.float64) * h
    f, _ = ang.epl_function(grid[None, :], frame, None, inner=inner)
    valid = np.isfinite(f)

    def fun(phi: FloatArray, system: IntArray) -> FloatArray:
        return ang.epl_function(phi, frame, system, inner=inner)[0]

    sys_a, cell = rf.sign_change_cells(f, valid)
    lo, hi = grid[cell], grid[cell] + h
    f_lo, f_hi = f[sys_a, cell], f[sys_a, (cell + 1) % n_grid]
    sys_b, point = rf.discrete_extrema(f, valid)
    ref = f[sys_b, point]
    e_lo, e_hi = grid[point] - h, grid[point] + h
    phi_star = rf.golden_minimum(fun, e_lo, e_hi, sys_b, np.sign(ref))
    f_star = fun(phi_star, sys_b)
    split = f_star * ref <= 0
    f_e_lo, f_e_hi = f[sys_b, (point - 1) % n_grid], f[sys_b, (point + 1) % n_grid]
    lo = np.concatenate([lo, e_lo[split], phi_star[split]])
    hi = np.concatenate([hi, phi_star[split], e_hi[split]])
    f_lo = np.concatenate([f_lo, f_e_lo[split], f_star[split]])
    f_hi = np.concatenate([f_hi, f_star[split], f_e_hi[split]])
    system = np.concatenate([sys_a, sys_b[split], sys_b[split]])
    ok = np.isfinite(f_lo) & np.isfinite(f_hi)
    roots = rf.illinois(fun, rf.Brackets(lo, hi, f_lo, f_hi, system).take(ok))
    touch = ~split & (np.abs(f_star) <= 1e-13 * np.maximum(frame.b[sys_b], 1.0))
    return np.concatenate([roots, phi_star[touch]]), np.concatenate([system[ok], sys_b[touch]])


def _junction_roots(
    frame: ang.AngularFrame, n_grid: int
) -> list[tuple[bool, FloatArray, IntArray]]:
    """Roots between the last valid grid angle and the junction of the two radial branches."""
    h = 2.0 * np.pi / n_grid
    grid = np.arange(n_grid, dtype=np.float64) * h
    f, _ = ang.epl_function(grid[None, :], frame, None)
    valid = np.isfinite(f)
    nxt = np.roll(valid, -1, axis=1)
    system, cell = np.nonzero(valid != nxt)
    if system.size == 0:
        return []
    left_valid = valid[system, cell]
    good = np.where(left_valid, grid[cell], grid[cell] + h)
    bad = np.where(left_valid, grid[cell] + h, grid[cell])
    for _ in range(50):  # bisection on validity: the junction to ~1e-17 rad
        mid = 0.5 * (good + bad)
        ok = np.isfinite(ang.epl_function(mid, frame, system)[0])
        good, bad = np.where(ok, mid, good), np.where(ok, bad, mid)
    start = np.where(left_valid, grid[cell], grid[cell] + h)
    # Near the junction r(phi) - and so G - goes like sqrt(phi - phi_junction): sample
    # quadratically towards it so that close image pairs there are still separated.
    steps = (np.arange(_JUNCTION_SAMPLES + 1) / _JUNCTION_SAMPLES) ** 2
    phis = good[:, None] + (start - good)[:, None] * steps[None, :]
    rows = np.broadcast_to(system[:, None], phis.shape)
    found = []
    for inner in (False, True):

        def fun(phi: FloatArray, sys: IntArray, inner: bool = inner) -> FloatArray:
            return ang.epl_function(phi, frame, sys, inner=inner)[0]

        vals = fun(phis.ravel(), rows.ravel()).reshape(phis.shape)
        a, b = vals[:, :-1], vals[:, 1:]
        jr, jc = np.nonzero(np.isfinite(a) & np.isfinite(b) & (a * b <= 0))
        if jr.size:
            brackets = rf.Brackets(phis[jr, jc], phis[jr, jc + 1], a[jr, jc], b[jr, jc], system[jr])
            roots = rf.illinois(fun, brackets)
            found.append((inner, roots, system[jr]))
    return found

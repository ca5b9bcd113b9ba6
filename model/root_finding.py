"""Vectorised bracketing and root polishing for periodic 1-D functions on many systems at once.

The lens-equation solver reduces each system to a function of the polar angle sampled on a
grid; these helpers find every bracket (sign change, or a close pair of roots hiding inside one
grid cell) and refine all brackets of all systems together, so the cost is a few NumPy passes
over arrays rather than a Python loop over systems.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
#: ``fun(phi, system_index) -> (value, derivative)`` evaluated element-wise.
WithDerivative = Callable[[FloatArray, IntArray], tuple[FloatArray, FloatArray]]
#: ``fun(phi, system_index) -> value`` evaluated element-wise.
ValueOnly = Callable[[FloatArray, IntArray], FloatArray]


def sign_change_cells(values: FloatArray, valid: NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """Cells ``[i, i+1]`` (periodic) of a ``(n, m)`` grid where the sampled function changes sign.

    Returns the system and left-grid indices. A zero at a grid point flags both of its cells;
    the duplicate root this gives is removed later by position.
    """
    nxt = np.roll(values, -1, axis=1)
    both = valid & np.roll(valid, -1, axis=1)
    system, cell = np.nonzero(both & (values * nxt <= 0.0))
    return system, cell


def discrete_extrema(values: FloatArray, valid: NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """Grid points (periodic) where ``|values|`` has a local minimum without a sign change.

    A close pair of roots can hide between grid points: the samples then show only a dip of
    ``|f|`` towards zero. These points are where such pairs are searched for.
    """
    prev = np.roll(values, 1, axis=1)
    nxt = np.roll(values, -1, axis=1)
    ok = valid & np.roll(valid, 1, axis=1) & np.roll(valid, -1, axis=1)
    same_sign = (values * prev > 0.0) & (values * nxt > 0.0)
    mag = np.abs(values)
    dip = (mag <= np.abs(prev)) & (mag <= np.abs(nxt))
    system, point = np.nonzero(ok & same_sign & dip)
    return system, point


@dataclass(frozen=True)
class Brackets:
    """Intervals ``[lo, hi]`` that each hold a root of one system's function, shape ``(k,)``.

    Attributes
    ----------
    lo, hi : ndarray of float
        The ends, in the function's variable (the polar angle, radians, for the solver).
    f_lo, f_hi : ndarray of float
        The function at the ends, of opposite signs (or one of them zero).
    system : ndarray of int
        The system each bracket belongs to (the function's second argument).
    """

    lo: FloatArray
    hi: FloatArray
    f_lo: FloatArray
    f_hi: FloatArray
    system: IntArray

    def take(self, keep: NDArray[np.bool_]) -> Brackets:
        """The brackets where ``keep`` is true."""
        return Brackets(self.lo[keep], self.hi[keep], self.f_lo[keep], self.f_hi[keep],
                        self.system[keep])  # fmt: skip


def bracketed_newton(
    fun: WithDerivative, brackets: Brackets, *, max_iter: int = 60, xtol: float = 1e-12
) -> FloatArray:
    """Roots of ``fun`` inside ``brackets`` (one per bracket).

    ``xtol`` (relative) is kept well above rounding: near the root the function value is
    rounding noise, and chasing it would turn Newton into bisection. The caller polishes
    the result on the full 2-D equation anyway.

    Newton steps that would leave the current bracket are replaced by bisection, so every
    bracket converges; Newton makes the usual case quadratic (a handful of iterations).
    """
    lo, hi, f_lo = brackets.lo.copy(), brackets.hi.copy(), brackets.f_lo.copy()
    system = brackets.system
    denom = f_lo - brackets.f_hi
    safe = np.where(denom != 0.0, denom, 1.0)
    # Start from the secant through the ends: already close on a fine grid.
    x = np.where(denom != 0.0, lo + (hi - lo) * f_lo / safe, 0.5 * (lo + hi))
    active = np.arange(x.size)
    for _ in range(max_iter):
        if active.size == 0:
            break
        # Only unconverged roots are iterated: a few slow brackets must not cost the batch.
        xa, la, ha, fla = x[active], lo[active], hi[active], f_lo[active]
        f, df = fun(xa, system[active])
        same = f * fla > 0.0
        la = np.where(same, xa, la)
        fla = np.where(same, f, fla)
        ha = np.where(same, ha, xa)
        with np.errstate(divide="ignore", invalid="ignore"):
            candidate = xa - f / df
        inside = (
            np.isfinite(candidate)
            & (candidate >= np.minimum(la, ha))
            & (candidate <= np.maximum(la, ha))
        )
        new_x = np.where(inside, candidate, 0.5 * (la + ha))
        new_x = np.where(f == 0.0, xa, new_x)
        done = np.abs(new_x - xa) <= xtol * np.maximum(1.0, np.abs(xa))
        x[active], lo[active], hi[active], f_lo[active] = new_x, la, ha, fla
        active = active[~done]
    return x


def illinois(
    fun: ValueOnly, brackets: Brackets, *, max_iter: int = 100, xtol: float = 1e-14
) -> FloatArray:
    """Roots inside ``brackets`` by the Illinois variant of regula falsi (no derivative needed).

    Superlinear and always bracketed (Dowell & Jarratt 1971); used for the general EPL, whose
    reduced angular function has no cheap derivative.
    """
    a, b = brackets.lo.copy(), brackets.hi.copy()
    fa, fb, system = brackets.f_lo.copy(), brackets.f_hi.copy(), brackets.system
    side = np.zeros(a.shape, dtype=np.int8)
    active = np.arange(a.size)
    for _ in range(max_iter):
        if active.size == 0:
            break
        # Only unconverged brackets are iterated (each evaluation sums a ~60-term series).
        aa, ba, faa, fba, sa = a[active], b[active], fa[active], fb[active], side[active]
        denom = fba - faa
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(denom != 0.0, ba - fba * (ba - aa) / denom, 0.5 * (aa + ba))
        bad = ~np.isfinite(c) | (c <= np.minimum(aa, ba)) | (c >= np.maximum(aa, ba))
        c = np.where(bad, 0.5 * (aa + ba), c)
        fc = fun(c, system[active])
        left = fc * faa > 0.0  # root lies in [c, b]: c replaces a
        # Illinois: halve the retained end's value when the same end is kept twice in a row.
        fba = np.where(left & (sa == 1), 0.5 * fba, fba)
        faa = np.where(~left & (sa == -1), 0.5 * faa, faa)
        a[active] = np.where(left, c, aa)
        fa[active] = np.where(left, fc, faa)
        b[active] = np.where(left, ba, c)
        fb[active] = np.where(left, fba, fc)
        side[active] = np.where(left, 1, -1).astype(np.int8)
        width = np.abs(b[active] - a[active])
        done = (width <= xtol * np.maximum(1.0, np.abs(c))) | (fc == 0.0)
        active = active[~done]
    return np.where(np.abs(fa) < np.abs(fb), a, b)


def golden_minimum(
    fun: ValueOnly,
    lo: FloatArray,
    hi: FloatArray,
    system: IntArray,
    sign: FloatArray,
    *,
    n_iter: int = 50,
) -> FloatArray:
    """Minimiser of ``sign * fun`` on each ``[lo, hi]`` by golden-section search.

    With ``sign`` the sign of the samples around a dip, this finds the extremum of ``fun``
    closest to zero; if ``fun`` changes sign there, the dip hides a pair of roots.
    """
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lo.copy(), hi.copy()
    c = b - ratio * (b - a)
    d = a + ratio * (b - a)
    fc, fd = sign * fun(c, system), sign * fun(d, system)
    for _ in range(n_iter):
        # Minimum in [a, d] when fc < fd (b moves to d), else in [c, b] (a moves to c); the
        # interior point that stays is reused, so each iteration costs one new evaluation.
        left = fc < fd
        a, b, c, d = (
            np.where(left, a, c),
            np.where(left, d, b),
            np.where(left, d - ratio * (d - a), d),
            np.where(left, c, c + ratio * (b - c)),
        )
        fp = sign * fun(np.where(left, c, d), system)
        fc, fd = np.where(left, fp, fd), np.where(left, fc, fp)
    return 0.5 * (a + b)

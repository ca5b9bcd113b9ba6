"""The lens equation of EPL/SIE + external shear reduced to one equation in the polar angle.

Work in the frame centred on the lens with ``x'`` along the major axis. The shear about the
origin equals a shear about the lens centre plus a constant deflection ``Gamma c``, so with
``M = I - Gamma'`` (shear rotated into the frame) and ``u = (cos phi, sin phi)`` the lens
equation ``beta = theta - alpha(theta)`` becomes

    ``M r u - r^(1-t) a(phi) = s``,    ``s = R(-pa) (beta - c + Gamma c)``,

where ``a(phi)`` is the main deflection at unit radius in direction ``phi`` (the EPL deflection
scales as ``r^(1-t)`` along a ray; Tessore & Metcalf 2015, eq. 13).

* SIE (``t = 1``): the deflection does not depend on ``r`` at all, so
  ``r u = M^-1 (s + a(phi))`` and the images are the zeros of
  ``g(phi) = u x adj(M) (s + a(phi))`` with ``r = u . adj(M)(s + a) / det M > 0``
  (``x`` is the 2-D cross product; ``adj(M)`` avoids the division). ``g`` is smooth and its
  derivatives are analytic, because ``da/dphi = 2 kappa(u) t_hat = (b / R(u)) t_hat`` for an
  isothermal profile (``t_hat = du/dphi``).
* general EPL: with ``M^-1`` applied, the radial component ``r - A(phi) r^(1-t) = S_r(phi)``
  (``A = u . M^-1 a``, ``S_r = u . M^-1 s``) fixes ``r(phi)`` on each monotonic branch
  (:func:`branch_radius`), and the images are the zeros of the tangential component
  ``G(phi) = S_t + r^(1-t) T`` with ``S_t = t_hat . M^-1 s`` and ``T = t_hat . M^-1 a``.
  Both stay well conditioned for a round lens (``T -> 0``, roots along the source
  direction), unlike eliminating ``r^(1-t)`` first.

Functions take per-candidate parameter arrays from :class:`AngularFrame` indexed by ``system``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lenscast.model import epl
from lenscast.model.mass_model import MassModel

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class AngularFrame:
    """Per-system constants of the reduced equation, each an array of shape ``(n,)``."""

    b: FloatArray  # TM15 scale theta_e sqrt(q), arcsec
    q: FloatArray  # axis ratio
    t: FloatArray  # gamma - 1
    cos: FloatArray  # cos of the major-axis position angle
    sin: FloatArray
    m11: FloatArray  # M = I - Gamma' in the major-axis frame (symmetric)
    m12: FloatArray
    m22: FloatArray
    sx: FloatArray  # reduced source s in the major-axis frame, arcsec
    sy: FloatArray

    @property
    def det(self) -> FloatArray:
        """``det M = 1 - |gamma_ext|^2`` (> 0 for sub-critical external shear)."""
        return self.m11 * self.m22 - self.m12 * self.m12


def angular_frame(source_x: FloatArray, source_y: FloatArray, model: MassModel) -> AngularFrame:
    """Constants of the reduced equation for sources ``(n,)`` (arcsec) behind ``model``."""
    b, q, cos, sin = epl.shape_parameters(theta_e=model.theta_e, e1=model.e1, e2=model.e2)
    g1, g2 = model.gamma1, model.gamma2
    cx, cy = model.center_x, model.center_y
    # beta - c + Gamma c: the shear about the origin seen from the lens centre.
    vx = source_x - cx + g1 * cx + g2 * cy
    vy = source_y - cy + g2 * cx - g1 * cy
    sx, sy = epl.to_frame(vx, vy, cos, sin)
    # A spin-2 field: rotating the frame by -pa rotates the shear components by -2 pa.
    cos2, sin2 = cos * cos - sin * sin, 2.0 * sin * cos
    g1p = g1 * cos2 + g2 * sin2
    g2p = -g1 * sin2 + g2 * cos2
    return AngularFrame(
        b=b, q=q, t=model.gamma - 1.0, cos=cos, sin=sin,
        m11=1.0 - g1p, m12=-g2p, m22=1.0 + g1p, sx=sx, sy=sy,
    )  # fmt: skip


def take_frame(frame: AngularFrame, idx: IntArray) -> AngularFrame:
    """The constants of a subset of systems."""
    return AngularFrame(**{f: getattr(frame, f)[idx] for f in AngularFrame.__dataclass_fields__})


def _pick(frame: AngularFrame, system: IntArray | None, ndim: int) -> dict[str, FloatArray]:
    """Per-system constants, gathered per candidate (``system``) or broadcast over a grid."""
    out = {}
    for name in ("b", "q", "t", "m11", "m12", "m22", "sx", "sy"):
        v = getattr(frame, name)
        out[name] = v[system] if system is not None else v.reshape(v.shape + (1,) * (ndim - 1))
    return out


def sie_function(
    phi: FloatArray, frame: AngularFrame, system: IntArray | None, order: int = 1
) -> tuple[FloatArray, ...]:
    """``g(phi)`` and its first ``order`` derivatives (``order`` 0, 1 or 2), arcsec.

    ``system`` gives each element's system (``None``: ``phi`` is an ``(n, m)`` grid).
    """
    p = _pick(frame, system, phi.ndim)
    c, s = np.cos(phi), np.sin(phi)
    q2 = p["q"] * p["q"]
    big_r = np.sqrt(q2 * c * c + s * s)
    ax, ay = epl.sie_frame_deflection(c, s, b=p["b"], q=p["q"])
    # adj(M) = [[m22, -m12], [-m12, m11]] applied to (s + a).
    vx, vy = p["sx"] + ax, p["sy"] + ay
    wx = p["m22"] * vx - p["m12"] * vy
    wy = -p["m12"] * vx + p["m11"] * vy
    g = c * wy - s * wx
    if order == 0:
        return (g,)
    k = p["b"] / big_r
    apx, apy = -k * s, k * c
    wpx = p["m22"] * apx - p["m12"] * apy
    wpy = -p["m12"] * apx + p["m11"] * apy
    gp = -s * wy - c * wx + c * wpy - s * wpx
    if order == 1:
        return g, gp
    dk = -p["b"] * (1.0 - q2) * s * c / big_r**3
    appx, appy = -dk * s - k * c, dk * c - k * s
    wppx = p["m22"] * appx - p["m12"] * appy
    wppy = -p["m12"] * appx + p["m11"] * appy
    gpp = -g + 2.0 * (-s * wpy - c * wpx) + c * wppy - s * wppx
    return g, gp, gpp


def sie_radius(phi: FloatArray, frame: AngularFrame, system: IntArray) -> FloatArray:
    """Image radius ``r = u . adj(M)(s + a) / det M`` at a root ``phi`` of ``g``, arcsec."""
    p = _pick(frame, system, 1)
    c, s = np.cos(phi), np.sin(phi)
    ax, ay = epl.sie_frame_deflection(c, s, b=p["b"], q=p["q"])
    vx, vy = p["sx"] + ax, p["sy"] + ay
    wx = p["m22"] * vx - p["m12"] * vy
    wy = -p["m12"] * vx + p["m11"] * vy
    det = p["m11"] * p["m22"] - p["m12"] * p["m12"]
    return (c * wx + s * wy) / det


def branch_radius(a_r: FloatArray, s_r: FloatArray, t: FloatArray, *, inner: bool) -> FloatArray:
    """Root ``r`` of the radial equation ``r - a_r r^(1-t) = s_r`` on one branch (NaN: none).

    For ``t > 1`` the left side ``h(r)`` increases monotonically from ``-inf``: one root. For
    ``t < 1`` it falls from 0 to its minimum at ``r_min = ((1-t) a_r)^(1/t)`` and then rises:
    the ``inner`` branch ``(0, r_min)`` holds central images (maxima, later dropped) and, near
    the radial critical curve, some saddles; the outer branch holds the rest. Safeguarded
    Newton inside the branch's bracket.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        shallow = t < 1.0
        r_min = np.where(shallow, ((1.0 - t) * a_r) ** (1.0 / t), 0.0)
        h_min = np.where(shallow, r_min - a_r * r_min ** (1.0 - t), -np.inf)
        if inner:
            ok = shallow & (a_r > 0.0) & (s_r >= h_min) & (s_r < 0.0)
            lo, hi = np.zeros_like(r_min), r_min
            # Near the centre h ~ -a_r r^(1-t): a good start.
            r = (np.abs(s_r) / a_r) ** (1.0 / (1.0 - t))
        else:
            ok = (a_r > 0.0) & (s_r >= h_min)
            lo = r_min.copy()
            hi = np.abs(s_r) + a_r ** (1.0 / t) + a_r + 2.0 * r_min
            for _ in range(60):  # grow until bracketed (rarely more than one pass)
                short = ok & (hi - a_r * hi ** (1.0 - t) - s_r < 0.0)
                if not np.any(short):
                    break
                hi = np.where(short, 2.0 * hi, hi)
            r = np.maximum(s_r, 0.0) + a_r ** (1.0 / t)
        direction = -1.0 if inner else 1.0  # h decreases on the inner branch
        r = np.where(np.isfinite(r) & (r > lo) & (r < hi), r, 0.5 * (lo + hi))
        shape = r.shape
        a_r, s_r, t = (np.broadcast_to(v, shape).ravel() for v in (a_r, s_r, t))
        r, lo, hi = r.ravel().copy(), np.broadcast_to(lo, shape).ravel().copy(), hi.ravel().copy()
        active = np.flatnonzero(ok.ravel())
        for _ in range(100):
            if active.size == 0:
                break
            # Only unconverged radii are iterated (the grid holds ~10^6 of them).
            ra, aa, sa, ta = r[active], a_r[active], s_r[active], t[active]
            power = aa * ra ** (1.0 - ta)
            h = direction * (ra - power - sa)
            la = np.where(h < 0.0, ra, lo[active])
            ha = np.where(h > 0.0, ra, hi[active])
            dh = direction * (1.0 - (1.0 - ta) * power / ra)
            nxt = ra - h / dh
            inside = np.isfinite(nxt) & (nxt >= la) & (nxt <= ha)
            nxt = np.where(inside, nxt, 0.5 * (la + ha))
            # Converged: a step at rounding level, or h itself is rounding noise.
            noise = 4e-16 * (ra + np.abs(power) + np.abs(sa))
            done = (np.abs(nxt - ra) <= 1e-13 * ra) | (np.abs(h) <= noise)
            r[active] = np.where(np.abs(h) <= noise, ra, nxt)
            lo[active], hi[active] = la, ha
            active = active[~done]
        r = r.reshape(shape)
    return np.where(ok, r, np.nan)


def epl_function(
    phi: FloatArray, frame: AngularFrame, system: IntArray | None, *, inner: bool = False
) -> tuple[FloatArray, FloatArray]:
    """``G(phi)`` (arcsec) and the radius ``r(phi)`` (arcsec; NaN where no image can lie).

    With ``M^-1`` applied, the radial component of the equation fixes ``r(phi)`` (see
    :func:`branch_radius`; ``inner`` picks its branch) and the tangential one is
    ``G = t_hat . M^-1 (s + r^(1-t) a) = 0``.
    """
    p = _pick(frame, system, phi.ndim)
    c, s = np.cos(phi), np.sin(phi)
    ax, ay = epl.epl_frame_deflection(c, s, b=p["b"], q=p["q"], t=p["t"])
    det = p["m11"] * p["m22"] - p["m12"] * p["m12"]
    # M^-1 = adj(M) / det M applied to a and to s.
    iax = (p["m22"] * ax - p["m12"] * ay) / det
    iay = (-p["m12"] * ax + p["m11"] * ay) / det
    isx = (p["m22"] * p["sx"] - p["m12"] * p["sy"]) / det
    isy = (-p["m12"] * p["sx"] + p["m11"] * p["sy"]) / det
    r = branch_radius(c * iax + s * iay, c * isx + s * isy, p["t"], inner=inner)
    g = (-s * isx + c * isy) + r ** (1.0 - p["t"]) * (-s * iax + c * iay)
    return g, r

"""A TAN projection with SIP distortion polynomials, in NumPy (no wcslib on the hot path).

The SIP convention (Shupe et al. 2005, ASP Conf. Ser. 347, 491) distorts pixel offsets from the
reference pixel, ``u = p1 - CRPIX1`` and ``v = p2 - CRPIX2``, before the linear part of the WCS:

    ``(xi, eta) = CD (u + f(u, v), v + g(u, v))``,
    ``f = sum A_p_q u^p v^q``, ``g = sum B_p_q u^p v^q`` over ``p + q <= order``,

and ``(xi, eta)`` is then deprojected as a plain TAN
(:class:`lenscast.consumer.cutouts_wcs.TanWcs`).
The sky-to-pixel direction solves ``(u + f, v + g) = (U, V)`` for ``(u, v)`` by Newton's method
from the undistorted ``(U, V)``, as astropy's ``all_world2pix`` does by iteration, rather than
through the ``AP``/``BP`` polynomials, which only approximate the inverse. Cutouts from survey
pipelines (HSC, LSST) often carry such headers, each with its own coefficients, so building a
wcslib object per alert would cost more than the rest of decoding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_wcs import TanWcs

#: SIP cards: orders and coefficients of the forward (``A``, ``B``) and inverse (``AP``, ``BP``)
#: polynomials.
SIP_KEY = re.compile(r"^(A|B|AP|BP)_(ORDER|\d+_\d+)$")
#: Highest SIP order read (astropy reads any; 9 is far beyond survey practice).
MAX_SIP_ORDER = 9
#: Newton steps of the sky-to-pixel direction; a few suffice for distortions of a few pixels.
MAX_INVERSE_STEPS = 20
#: Pixel change below which the inverse has converged.
INVERSE_TOLERANCE_PIX = 1e-10


def sip_matrix(cards: Mapping[str, Any], prefix: str) -> NDArray[np.float64] | None:
    """``M[p, q]`` = ``{prefix}_p_q`` for ``p + q <= order``; None without an order card.

    As astropy reads them: an order of 1 or less means no polynomial (None), a missing
    coefficient is 0.

    Raises
    ------
    AlertRejected
        ``cutout.no_wcs`` for an order or coefficient that is not a number, or too high an order.
    """
    order = cards.get(f"{prefix}_ORDER")
    if order is None:
        return None
    if isinstance(order, bool) or not isinstance(order, int) or order > MAX_SIP_ORDER:
        raise AlertRejected("cutout.no_wcs", f"{prefix}_ORDER = {order!r}"[:200])
    if order <= 1:
        return None
    matrix = np.zeros((order + 1, order + 1))
    for key, p, q in _coefficient_keys(prefix, order):
        value = cards.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AlertRejected("cutout.no_wcs", f"{key} = {value!r}"[:200])
        matrix[p, q] = value
    if not np.isfinite(matrix).all():
        raise AlertRejected("cutout.no_wcs", f"non-finite {prefix}_p_q SIP coefficient")
    return matrix


@lru_cache(maxsize=64)
def _coefficient_keys(prefix: str, order: int) -> tuple[tuple[str, int, int], ...]:
    """``("{prefix}_p_q", p, q)`` for ``p + q <= order`` (the same few sets in every header)."""
    return tuple((f"{prefix}_{p}_{q}", p, q)
                 for p in range(order + 1) for q in range(order + 1 - p))


def _poly(
    m: NDArray[np.float64], up: NDArray[np.float64], vp: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``sum M[..., p, q] u^p v^q`` from the powers of u and v (a few points: no einsum set-up).

    ``m`` is one coefficient matrix, shape ``(P, Q)``, or a stack of them, ``(k, P, Q)``; the
    result has shape ``(n,)`` or ``(k, n)``.
    """
    return np.sum(up * (m @ vp), axis=-2)


def _powers(x: NDArray[np.float64], order: int) -> NDArray[np.float64]:
    """``x**k`` for ``k = 0..order``, shape ``(order + 1, n)``."""
    out = np.empty((order + 1, x.size))
    out[0] = 1.0
    for k in range(1, order + 1):
        out[k] = out[k - 1] * x
    return out


@dataclass(frozen=True)
class TanSipWcs:
    """A TAN WCS whose pixel offsets are first distorted by the SIP polynomials ``A``, ``B``.

    Attributes
    ----------
    tan : TanWcs
        The undistorted projection (``CRVAL``, ``CRPIX``, ``CD``).
    a, b : ndarray, shape (order + 1, order + 1)
        ``A_p_q`` and ``B_p_q`` at ``[p, q]``, pixels (zero-padded to one order).
    grid_id : tuple
        The header's WCS cards, which determine the mapping.
    """

    tan: TanWcs
    a: NDArray[np.float64]
    b: NDArray[np.float64]
    grid_id: tuple[Any, ...] = field(repr=False, compare=False)

    @property
    def order(self) -> int:
        """Polynomial order (the larger of ``A_ORDER``, ``B_ORDER``)."""
        return self.a.shape[0] - 1

    @cached_property
    def _newton_matrices(self) -> NDArray[np.float64]:
        """``A``, ``B`` and their four partial derivatives as one stack, ``(6, P, P)``.

        d/du of ``u^p v^q`` is ``p u^(p-1) v^q``: the coefficient moves from ``[p, q]`` to
        ``[p - 1, q]``, times ``p`` (likewise for v), so every derivative is a matrix of the
        same shape and one product per Newton step evaluates all six polynomials.
        """
        k = np.arange(1, self.order + 1, dtype=float)
        stack = np.zeros((6, *self.a.shape))
        stack[0], stack[1] = self.a, self.b
        stack[2, :-1, :], stack[4, :-1, :] = k[:, None] * self.a[1:, :], k[:, None] * self.b[1:, :]
        stack[3, :, :-1], stack[5, :, :-1] = self.a[:, 1:] * k, self.b[:, 1:] * k
        return stack

    def _distorted(
        self, u: NDArray[np.float64], v: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(u + f(u, v), v + g(u, v))``, pixels."""
        f, g = _poly(self._newton_matrices[:2], _powers(u, self.order), _powers(v, self.order))
        return u + f, v + g

    def pix_to_world(self, cols: NDArray, rows: NDArray) -> tuple[NDArray, NDArray]:
        """RA, Dec (degrees) of 0-based pixel positions."""
        c0, r0 = self.tan.crpix
        u = np.ravel(np.asarray(cols, dtype=float)) - c0
        v = np.ravel(np.asarray(rows, dtype=float)) - r0
        du, dv = self._distorted(u, v)
        return self.tan.pix_to_world(du + c0, dv + r0)

    def world_to_pix(self, ra: NDArray, dec: NDArray) -> tuple[NDArray, NDArray]:
        """0-based pixel positions of RA, Dec (degrees), to :data:`INVERSE_TOLERANCE_PIX`.

        Raises
        ------
        ValueError
            When Newton's method does not converge (a position far off the cutout, where the
            polynomial folds over); the caller rejects the alert, as for wcslib's failure.
        """
        c0, r0 = self.tan.crpix
        cols, rows = self.tan.world_to_pix(np.ravel(ra), np.ravel(dec))
        target_u, target_v = np.asarray(cols) - c0, np.asarray(rows) - r0
        known = np.isfinite(target_u) & np.isfinite(target_v)  # NaN in, NaN out
        u, v = target_u.copy(), target_v.copy()
        order, matrices = self.order, self._newton_matrices
        for _ in range(MAX_INVERSE_STEPS):
            f, g, f_u, f_v, g_u, g_v = _poly(matrices, _powers(u, order), _powers(v, order))
            fu, fv = u + f - target_u, v + g - target_v
            j11, j12, j21, j22 = 1.0 + f_u, f_v, g_u, 1.0 + g_v
            det = j11 * j22 - j12 * j21
            step_u = (j22 * fu - j12 * fv) / det
            step_v = (j11 * fv - j21 * fu) / det
            u, v = u - step_u, v - step_v
            if np.all(np.abs(step_u[known]) + np.abs(step_v[known]) <= INVERSE_TOLERANCE_PIX):
                return u + c0, v + r0
        raise ValueError("the SIP distortion could not be inverted at this position")


def tan_sip_wcs(
    tan: TanWcs, cards: Mapping[str, Any], grid_id: tuple[Any, ...]
) -> TanSipWcs | None:
    """The SIP WCS of a ``RA---TAN-SIP``/``DEC--TAN-SIP`` header whose TAN part is ``tan``.

    None when astropy must decide (no forward polynomial in one of the axes, or inverse
    polynomials given for one axis only: astropy warns and makes its own choices there).

    Raises
    ------
    AlertRejected
        ``cutout.no_wcs`` for malformed SIP cards (:func:`sip_matrix`).
    """
    a, b = sip_matrix(cards, "A"), sip_matrix(cards, "B")
    ap, bp = sip_matrix(cards, "AP"), sip_matrix(cards, "BP")
    if a is None or b is None or (ap is None) != (bp is None):
        return None
    order = max(a.shape[0], b.shape[0])
    a_full, b_full = np.zeros((order, order)), np.zeros((order, order))
    a_full[: a.shape[0], : a.shape[1]] = a
    b_full[: b.shape[0], : b.shape[1]] = b
    return TanSipWcs(tan=tan, a=a_full, b=b_full, grid_id=grid_id)

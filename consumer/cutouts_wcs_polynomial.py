"""A TAN projection with a polynomial distortion (SIP or TPV), without wcslib on the hot path.

Two conventions distort a TAN cutout by a polynomial in two variables, at different stages:

``SIP`` (Shupe et al. 2005, ASP Conf. Ser. 347, 491)
    on the pixel offsets from the reference pixel, ``u = p1 - CRPIX1``, ``v = p2 - CRPIX2``,
    before the linear part: ``(xi, eta) = CD (u + f(u, v), v + g(u, v))`` (pixels).
``TPV`` (SCAMP's convention, as wcslib implements it)
    on the intermediate world coordinates after the linear part, ``(x, y) = CD (u, v)``:
    ``(xi, eta) = (P1(x, y, r), P2(x, y, r))`` in degrees, with ``r = sqrt(x^2 + y^2)``.

Either way ``(xi, eta)`` is then deprojected as a plain TAN (:class:`TanWcs`). Both polynomials
are sums of monomials ``x^i y^j r^k`` (:class:`Polynomial2D`). The sky-to-pixel direction
solves ``P(x, y) = (X, Y)`` by Newton's method from ``(X, Y)``, as wcslib and astropy's
``all_world2pix`` iterate, rather than through SIP's ``AP``/``BP``, which only approximate it.

Survey pipelines write such headers with coefficients of their own for every exposure, so no
two alerts share a WCS: building a wcslib object per alert would cost more than the rest of
decoding. An alert maps only a handful of positions, so up to
:data:`~lenscast.consumer.cutouts_wcs.FEW_POINTS` of them are mapped one by one in plain floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lenscast.consumer.cutouts_wcs import (
    FEW_POINTS,
    TanWcs,
    offsets_to_sky,
    sky_to_offsets,
    unzip_points,
)

#: Newton steps of the sky-to-pixel direction; a few suffice for distortions of a few pixels.
MAX_INVERSE_STEPS = 20
#: Pixel change below which the inverse has converged.
INVERSE_TOLERANCE_PIX = 1e-10

#: A monomial ``x^i y^j r^k`` as its exponents ``(i, j, k)``.
Exponents = tuple[int, int, int]


@dataclass(frozen=True)
class Polynomial2D:
    """``(sum_t a_t m_t(x, y), sum_t b_t m_t(x, y))`` with monomials ``m_t = x^i y^j r^k``.

    Attributes
    ----------
    exponents : tuple of (int, int, int)
        ``(i, j, k)`` of each monomial; ``k > 0`` only where the convention has radial terms.
    a, b : tuple of float
        Coefficients of each monomial in the first and second output.
    """

    exponents: tuple[Exponents, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    #: ``(i, j, k, a, b)`` per monomial: the loop's one tuple to unpack.
    _terms: tuple[tuple[int, int, int, float, float], ...] = field(
        init=False, repr=False, compare=False
    )
    _max_power: int = field(init=False, repr=False, compare=False)
    _radial: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        terms = tuple((i, j, k, a, b) for (i, j, k), a, b in zip(
            self.exponents, self.a, self.b, strict=True))  # fmt: skip
        object.__setattr__(self, "_terms", terms)
        object.__setattr__(self, "_max_power", max((max(e) for e in self.exponents), default=0))
        object.__setattr__(self, "_radial", any(k for _, _, k in self.exponents))

    @classmethod
    def from_terms(cls, terms: Mapping[Exponents, Sequence[float]]) -> Polynomial2D:
        """The polynomial with coefficients ``terms[(i, j, k)] = (a, b)``."""
        exponents = tuple(terms)
        return cls(exponents, tuple(terms[e][0] for e in exponents),
                   tuple(terms[e][1] for e in exponents))  # fmt: skip

    def _powers(self, x: Any, y: Any) -> tuple[list[Any], list[Any], dict[int, Any] | None]:
        """``x^i``, ``y^j`` for ``i, j = 0..max + 1`` and ``r^k`` (None without radial terms)."""
        n = self._max_power + 1
        xp, yp = [1.0, x], [1.0, y]
        for _ in range(n - 1):
            xp.append(xp[-1] * x)
            yp.append(yp[-1] * y)
        return xp, yp, _radial_powers(x, y, n) if self._radial else None

    def map(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Both outputs at ``(x, y)``: floats, or arrays of one shape."""
        xp, yp, rp = self._powers(x, y)
        f = g = 0.0
        for i, j, k, a, b in self._terms:
            m = xp[i] * yp[j] * rp[k] if rp is not None and k else xp[i] * yp[j]
            f, g = f + a * m, g + b * m
        return f, g

    def evaluate(self, x: Any, y: Any) -> tuple[Any, ...]:
        """Both outputs and their four partial derivatives at ``(x, y)``.

        ``x``, ``y`` are floats or arrays of one shape (the arithmetic is the same). The radial
        monomial ``r`` has no derivative at ``r = 0``; it is taken as 0 there.

        Returns
        -------
        f, g, f_x, f_y, g_x, g_y : float or ndarray
        """
        xp, yp, rp = self._powers(x, y)
        f = g = f_x = f_y = g_x = g_y = 0.0
        for i, j, k, a, b in self._terms:
            if k == 0:
                m = xp[i] * yp[j]
                # d/dx x^i y^j = i x^(i-1) y^j (nothing when i = 0), likewise d/dy.
                m_x = i * xp[i - 1] * yp[j] if i else 0.0
                m_y = j * xp[i] * yp[j - 1] if j else 0.0
            else:  # x^i y^j r^k: d/dx adds k x^(i+1) y^j r^(k-2), as dr/dx = x / r
                assert rp is not None
                radial_part = k * rp[k - 2] * yp[j]
                m = xp[i] * yp[j] * rp[k]
                m_x = (i * xp[i - 1] * yp[j] * rp[k] if i else 0.0) + radial_part * xp[i + 1]
                m_y = (j * xp[i] * yp[j - 1] * rp[k] if j else 0.0) + radial_part * xp[i] * y
            f, f_x, f_y = f + a * m, f_x + a * m_x, f_y + a * m_y
            g, g_x, g_y = g + b * m, g_x + b * m_x, g_y + b * m_y
        return f, g, f_x, f_y, g_x, g_y

    def invert_point(
        self, target_x: float, target_y: float, tolerance: float
    ) -> tuple[float, float]:
        """``(x, y)`` with ``P(x, y) = (target_x, target_y)``, by Newton's method from the target.

        NaN in, NaN out. ``tolerance`` is the step (in ``x``, ``y`` units) at which it stops.

        Raises
        ------
        ValueError
            When it does not converge (a position far off the cutout, where the polynomial
            folds over).
        """
        if not (math.isfinite(target_x) and math.isfinite(target_y)):
            return math.nan, math.nan
        x, y = target_x, target_y
        for _ in range(MAX_INVERSE_STEPS):
            f, g, f_x, f_y, g_x, g_y = self.evaluate(x, y)
            rx, ry = f - target_x, g - target_y
            det = f_x * g_y - f_y * g_x
            if det == 0.0 or not math.isfinite(det):
                break
            step_x, step_y = (g_y * rx - f_y * ry) / det, (f_x * ry - g_x * rx) / det
            x, y = x - step_x, y - step_y
            if abs(step_x) + abs(step_y) <= tolerance:
                return x, y
        raise ValueError("the WCS distortion could not be inverted at this position")

    def invert(
        self, target_x: NDArray, target_y: NDArray, tolerance: float
    ) -> tuple[NDArray, NDArray]:
        """:meth:`invert_point` of arrays, all points stepping together."""
        known = np.isfinite(target_x) & np.isfinite(target_y)
        x, y = target_x.copy(), target_y.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            for _ in range(MAX_INVERSE_STEPS):
                f, g, f_x, f_y, g_x, g_y = self.evaluate(x, y)
                rx, ry = f - target_x, g - target_y
                det = f_x * g_y - f_y * g_x
                step_x, step_y = (g_y * rx - f_y * ry) / det, (f_x * ry - g_x * rx) / det
                x, y = x - step_x, y - step_y
                if np.all(np.abs(step_x[known]) + np.abs(step_y[known]) <= tolerance):
                    return x, y
        raise ValueError("the WCS distortion could not be inverted at this position")


def _radial_powers(x: Any, y: Any, n: int) -> dict[int, Any]:
    """``r^k`` for ``k = -1..n`` (``r^-1`` taken as 0 at ``r = 0``), ``r = sqrt(x^2 + y^2)``."""
    r2 = x * x + y * y
    r = r2**0.5
    inverse: Any
    if isinstance(r, np.ndarray):
        inverse = np.where(r > 0.0, 1.0 / np.where(r > 0.0, r, 1.0), 0.0)
    else:
        inverse = 1.0 / r if r > 0.0 else 0.0
    powers = {-1: inverse, 0: 1.0, 1: r}
    for k in range(2, n + 1):
        powers[k] = powers[k - 1] * r
    return powers


@dataclass(frozen=True)
class DistortedTanWcs:
    """A TAN WCS with a polynomial distortion on the pixel offsets (SIP) or after ``CD`` (TPV).

    Attributes
    ----------
    tan : TanWcs
        The undistorted projection (``CRVAL``, ``CRPIX``, ``CD``).
    polynomial : Polynomial2D
        The whole map of the distorted stage, identity part included: pixels to pixels (SIP) or
        degrees to degrees (TPV).
    convention : str
        ``"SIP"`` (distortion on pixel offsets) or ``"TPV"`` (on intermediate coordinates).
    grid_id : tuple
        The header's WCS cards, which determine the mapping.
    """

    tan: TanWcs
    polynomial: Polynomial2D
    convention: str
    grid_id: tuple[Any, ...] = field(repr=False, compare=False)
    #: Newton's stopping step in the polynomial's own units: pixels, or degrees for TPV.
    _tolerance: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.convention not in ("SIP", "TPV"):
            raise ValueError(f"unknown distortion convention {self.convention!r}")
        a, b, c, d = self.tan.linear[2:6]
        scale = math.sqrt(abs(a * d - b * c))  # degrees per pixel
        tolerance = INVERSE_TOLERANCE_PIX * (scale if self.convention == "TPV" else 1.0)
        object.__setattr__(self, "_tolerance", tolerance)

    def _intermediate(self, u: Any, v: Any) -> tuple[Any, Any]:
        """Intermediate world coordinates (degrees) of pixel offsets from ``CRPIX`` (floats or
        arrays)."""
        a, b, c, d = self.tan.linear[2:6]
        if self.convention == "SIP":
            u, v = self.polynomial.map(u, v)
        xi, eta = a * u + b * v, c * u + d * v
        if self.convention == "TPV":
            xi, eta = self.polynomial.map(xi, eta)
        return xi, eta

    def _offsets(self, xi: Any, eta: Any, invert: Any) -> tuple[Any, Any]:
        """Pixel offsets from ``CRPIX`` of intermediate world coordinates (degrees), with
        ``invert`` the polynomial's inverse for floats or for arrays."""
        a, b, c, d = self.tan.linear[6:]
        if self.convention == "TPV":
            xi, eta = invert(xi, eta, self._tolerance)
        u, v = a * xi + b * eta, c * xi + d * eta
        if self.convention == "SIP":
            u, v = invert(u, v, self._tolerance)
        return u, v

    def pix_to_world(self, cols: NDArray, rows: NDArray) -> tuple[NDArray, NDArray]:
        """RA, Dec (degrees) of 0-based pixel positions."""
        cols, rows = np.asarray(cols, dtype=float), np.asarray(rows, dtype=float)
        c0, r0 = self.tan.linear[:2]
        if cols.size <= FEW_POINTS:
            points = zip(cols.ravel().tolist(), rows.ravel().tolist(), strict=True)
            sky = [self.tan.intermediate_to_world(*self._intermediate(p - c0, q - r0))
                   for p, q in points]  # fmt: skip
            return unzip_points(sky, cols.shape)
        xi, eta = self._intermediate(cols - c0, rows - r0)
        return offsets_to_sky(xi * 3600.0, eta * 3600.0, ra0=self.tan.ra0, dec0=self.tan.dec0)

    def world_to_pix(self, ra: NDArray, dec: NDArray) -> tuple[NDArray, NDArray]:
        """0-based pixel positions of RA, Dec (degrees), to :data:`INVERSE_TOLERANCE_PIX`.

        Raises
        ------
        ValueError
            When Newton's method does not converge (a position far off the cutout, where the
            polynomial folds over); the caller rejects the alert, as for wcslib's failure.
        """
        ra, dec = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
        c0, r0 = self.tan.linear[:2]
        if ra.size <= FEW_POINTS:
            pix = []
            for alpha, delta in zip(ra.ravel().tolist(), dec.ravel().tolist(), strict=True):
                du, dv = self._offsets(*self.tan.world_to_intermediate(alpha, delta),
                                       self.polynomial.invert_point)  # fmt: skip
                pix.append((du + c0, dv + r0))
            return unzip_points(pix, ra.shape)
        xi, eta = sky_to_offsets(ra, dec, ra0=self.tan.ra0, dec0=self.tan.dec0)
        u, v = self._offsets(xi / 3600.0, eta / 3600.0, self.polynomial.invert)
        return u + c0, v + r0

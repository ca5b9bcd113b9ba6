"""World coordinates of cutouts: the tangent plane, a fast TAN WCS and the astropy wrapper.

Offsets on the sky follow the project convention (README, Conventions): ``x = dRA cos(Dec)`` east
positive, ``y = dDec`` north positive, arcsec from a centre, taken exactly as gnomonic
(tangent-plane) standard coordinates, which is what the pixel grid of a TAN cutout measures.

Almost every cutout carries a plain linear TAN WCS. Such headers are handled by :class:`TanWcs`,
a few lines of NumPy that are exact for that case and ~100 times faster than building an astropy
WCS; TAN with SIP or TPV distortion by
:class:`lenscast.consumer.cutouts_wcs_polynomial.DistortedTanWcs`; any other WCS goes through
:class:`AstropyWcs` (wcslib). Which header takes which path is decided in
:mod:`lenscast.consumer.cutouts_wcs_header`; tests check them against wcslib. An alert maps only
a handful of positions at a time, so up to :data:`FEW_POINTS` of them are mapped one by one in
plain floats (``*_point`` functions), more at once in NumPy: the same formulas either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from astropy.wcs import WCS
from numpy.typing import NDArray

ARCSEC_PER_RADIAN = 180.0 / math.pi * 3600.0
#: Up to this many positions are mapped one by one in plain floats: an alert maps a handful
#: (a transient, a band's centre and its neighbours, a few images), where NumPy's fixed cost per
#: call would be most of the time.
FEW_POINTS = 16


def sky_to_offsets(
    ra: NDArray | float, dec: NDArray | float, *, ra0: float, dec0: float
) -> tuple[NDArray, NDArray]:
    """Gnomonic (tangent-plane) offsets of sky positions from a centre.

    ``x = cos(dec) sin(ra - ra0) / cos(c)`` (east positive) and ``y = [cos(dec0) sin(dec) -
    sin(dec0) cos(dec) cos(ra - ra0)] / cos(c)`` (north positive), with ``cos(c) = sin(dec0)
    sin(dec) + cos(dec0) cos(dec) cos(ra - ra0)`` and ``c`` the angular distance from the
    centre (Calabretta & Greisen 2002, A&A 395, 1077, TAN projection); to first order
    ``x = dRA cos(dec)`` and ``y = dDec``. Positions 90 degrees or more away give NaN.

    Parameters
    ----------
    ra, dec : float or ndarray
        Positions, degrees.
    ra0, dec0 : float
        Centre (tangent point), degrees.

    Returns
    -------
    x, y : ndarray
        Offsets, arcsec.
    """
    d0 = math.radians(dec0)
    sin_d0, cos_d0 = math.sin(d0), math.cos(d0)
    dec_r = np.radians(dec)
    dra = np.radians(np.asarray(ra, dtype=float) - ra0)
    cos_d, sin_d, cos_dra = np.cos(dec_r), np.sin(dec_r), np.cos(dra)
    cos_c = sin_d0 * sin_d + cos_d0 * cos_d * cos_dra
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(cos_c > 0, ARCSEC_PER_RADIAN / cos_c, np.nan)
    return cos_d * np.sin(dra) * inv, (cos_d0 * sin_d - sin_d0 * cos_d * cos_dra) * inv


def offsets_to_sky(
    x: NDArray | float, y: NDArray | float, *, ra0: float, dec0: float
) -> tuple[NDArray, NDArray]:
    """Inverse of :func:`sky_to_offsets`: offsets (arcsec) to RA in [0, 360), Dec (degrees).

    The point ``centre + x east + y north`` (unit vectors at the centre, offsets in radians)
    is normalised back onto the sphere, which inverts the TAN projection exactly.
    """
    d0 = math.radians(dec0)
    sin_d0, cos_d0 = math.sin(d0), math.cos(d0)
    xr = np.asarray(x, dtype=float) / ARCSEC_PER_RADIAN
    yr = np.asarray(y, dtype=float) / ARCSEC_PER_RADIAN
    # Coordinates in a frame rotated by ra0 about the pole: (towards centre meridian, east, pole).
    u = cos_d0 - yr * sin_d0
    w = sin_d0 + yr * cos_d0
    ra = (ra0 + np.degrees(np.arctan2(xr, u))) % 360.0
    dec = np.degrees(np.arctan2(w, np.hypot(u, xr)))
    return ra, dec


class CutoutWcs(Protocol):
    """Pixel <-> sky mapping of a cutout (0-based pixel coordinates, degrees).

    ``grid_id`` is hashable and equal for two objects only when their mappings are the same.
    """

    @property
    def grid_id(self) -> tuple[Any, ...]:
        """Identity of the mapping (bands with equal ids share one measured geometry)."""
        ...

    def pix_to_world(self, cols: NDArray, rows: NDArray) -> tuple[NDArray, NDArray]:
        """RA, Dec of 0-based pixel positions ``(col, row)``."""
        ...

    def world_to_pix(self, ra: NDArray, dec: NDArray) -> tuple[NDArray, NDArray]:
        """0-based pixel positions ``(col, row)`` of RA, Dec."""
        ...


def sky_to_offsets_point(
    ra: float, dec: float, *, ra0: float, sin_dec0: float, cos_dec0: float
) -> tuple[float, float]:
    """:func:`sky_to_offsets` of one position in plain floats (arcsec; NaN where that gives NaN).

    For the few positions an alert maps (a transient, a handful of images), where NumPy's
    per-call cost is most of the time. ``sin_dec0``, ``cos_dec0``: of the centre's Dec.
    """
    if not (math.isfinite(ra) and math.isfinite(dec)):
        return math.nan, math.nan
    dec_r, dra = math.radians(dec), math.radians(ra - ra0)
    cos_d, sin_d, cos_dra = math.cos(dec_r), math.sin(dec_r), math.cos(dra)
    cos_c = sin_dec0 * sin_d + cos_dec0 * cos_d * cos_dra
    if not cos_c > 0.0:
        return math.nan, math.nan
    inv = ARCSEC_PER_RADIAN / cos_c
    return cos_d * math.sin(dra) * inv, (cos_dec0 * sin_d - sin_dec0 * cos_d * cos_dra) * inv


def offsets_to_sky_point(
    x: float, y: float, *, ra0: float, sin_dec0: float, cos_dec0: float
) -> tuple[float, float]:
    """:func:`offsets_to_sky` of one offset (arcsec) in plain floats: RA in [0, 360), Dec, deg."""
    xr, yr = x / ARCSEC_PER_RADIAN, y / ARCSEC_PER_RADIAN
    u = cos_dec0 - yr * sin_dec0
    w = sin_dec0 + yr * cos_dec0
    ra = (ra0 + math.degrees(math.atan2(xr, u))) % 360.0
    return ra, math.degrees(math.atan2(w, math.hypot(u, xr)))


@dataclass(frozen=True)
class TanWcs:
    """A linear TAN (gnomonic) WCS: ``(xi, eta) = CD (p - CRPIX)``, tangent point ``CRVAL``.

    Attributes
    ----------
    ra0, dec0 : float
        ``CRVAL1``, ``CRVAL2``, degrees.
    crpix : ndarray, shape (2,)
        Reference pixel, 0-based ``(col, row)``.
    cd : ndarray, shape (2, 2)
        Linear transform, degrees per pixel.
    """

    ra0: float
    dec0: float
    crpix: NDArray[np.float64]
    cd: NDArray[np.float64]
    #: ``(ra0, dec0, crpix..., cd...)`` as Python floats: identifies the pixel grid.
    grid_id: tuple[float, ...] = field(init=False, repr=False, compare=False)
    #: ``CRPIX`` (0-based), ``CD`` and ``CD^-1`` as plain floats, row by row.
    linear: tuple[float, ...] = field(init=False, repr=False, compare=False)
    #: ``(ra0, sin dec0, cos dec0)``, for the few-point path.
    _centre: tuple[float, float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Inverted once, by hand (a 2x2 matrix): every transient position goes through it.
        (a, b), (c, d) = self.cd.tolist()
        det = a * d - b * c
        inverse = (d / det, -b / det, -c / det, a / det)
        grid = (self.ra0, self.dec0, *self.crpix.tolist(), a, b, c, d)
        object.__setattr__(self, "grid_id", grid)
        d0 = math.radians(self.dec0)
        object.__setattr__(self, "_centre", (self.ra0, math.sin(d0), math.cos(d0)))
        object.__setattr__(self, "linear", (*self.crpix.tolist(), a, b, c, d, *inverse))

    def intermediate_to_world(self, xi: float, eta: float) -> tuple[float, float]:
        """RA, Dec (degrees) of one intermediate world coordinate ``(xi, eta)``, degrees."""
        ra0, sin_d0, cos_d0 = self._centre
        return offsets_to_sky_point(
            xi * 3600.0, eta * 3600.0, ra0=ra0, sin_dec0=sin_d0, cos_dec0=cos_d0
        )

    def world_to_intermediate(self, ra: float, dec: float) -> tuple[float, float]:
        """Intermediate world coordinate ``(xi, eta)`` (degrees) of one RA, Dec (degrees)."""
        ra0, sin_d0, cos_d0 = self._centre
        x, y = sky_to_offsets_point(ra, dec, ra0=ra0, sin_dec0=sin_d0, cos_dec0=cos_d0)
        return x / 3600.0, y / 3600.0

    def _pix_to_world_point(self, col: float, row: float) -> tuple[float, float]:
        """RA, Dec (degrees) of one 0-based pixel position, in plain floats."""
        c0, r0, a, b, c, d = self.linear[:6]
        dx, dy = col - c0, row - r0
        return self.intermediate_to_world(a * dx + b * dy, c * dx + d * dy)

    def _world_to_pix_point(self, ra: float, dec: float) -> tuple[float, float]:
        """0-based pixel position of one RA, Dec (degrees), in plain floats."""
        c0, r0 = self.linear[:2]
        a, b, c, d = self.linear[6:]
        xi, eta = self.world_to_intermediate(ra, dec)
        return a * xi + b * eta + c0, c * xi + d * eta + r0

    def pix_to_world(self, cols: NDArray, rows: NDArray) -> tuple[NDArray, NDArray]:
        """RA, Dec (degrees) of 0-based pixel positions."""
        cols, rows = np.asarray(cols, dtype=float), np.asarray(rows, dtype=float)
        if cols.size <= FEW_POINTS:
            points = zip(cols.ravel().tolist(), rows.ravel().tolist(), strict=True)
            return unzip_points([self._pix_to_world_point(p, q) for p, q in points], cols.shape)
        # Written out element by element: 2x2 maps, where tensordot's setup would cost more
        # than the arithmetic.
        c0, r0, a, b, c, d = self.linear[:6]
        dx, dy = cols - c0, rows - r0
        xi, eta = (a * dx + b * dy) * 3600.0, (c * dx + d * dy) * 3600.0
        return offsets_to_sky(xi, eta, ra0=self.ra0, dec0=self.dec0)

    def world_to_pix(self, ra: NDArray, dec: NDArray) -> tuple[NDArray, NDArray]:
        """0-based pixel positions of RA, Dec (degrees)."""
        ra, dec = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
        if ra.size <= FEW_POINTS:
            points = zip(ra.ravel().tolist(), dec.ravel().tolist(), strict=True)
            return unzip_points([self._world_to_pix_point(p, q) for p, q in points], ra.shape)
        c0, r0 = self.linear[:2]
        a, b, c, d = self.linear[6:]
        xi, eta = sky_to_offsets(ra, dec, ra0=self.ra0, dec0=self.dec0)
        xi, eta = xi / 3600.0, eta / 3600.0
        return a * xi + b * eta + c0, c * xi + d * eta + r0


def unzip_points(
    pairs: list[tuple[float, float]], shape: tuple[int, ...]
) -> tuple[NDArray, NDArray]:
    """Two arrays of ``shape`` from a list of ``(first, second)`` pairs (the few-point path's
    results)."""
    both = np.array(pairs, dtype=float).reshape(*shape, 2) if pairs else np.empty((*shape, 2))
    return both[..., 0], both[..., 1]


@dataclass(frozen=True)
class AstropyWcs:
    """Any celestial WCS that wcslib understands (through astropy).

    Attributes
    ----------
    wcs : astropy.wcs.WCS
        Already set up (``wcs.wcs.set()``): shared between bands and alerts, only read.
    grid_id : tuple
        The header's WCS cards ``(keyword, type, value)``, which determine the mapping.
    """

    wcs: WCS
    grid_id: tuple[Any, ...] = field(repr=False, compare=False)

    def pix_to_world(self, cols: NDArray, rows: NDArray) -> tuple[NDArray, NDArray]:
        """RA, Dec (degrees) of 0-based pixel positions."""
        world = self.wcs.all_pix2world(np.column_stack([np.ravel(cols), np.ravel(rows)]), 0)
        return world[:, self.wcs.wcs.lng], world[:, self.wcs.wcs.lat]

    def world_to_pix(self, ra: NDArray, dec: NDArray) -> tuple[NDArray, NDArray]:
        """0-based pixel positions of RA, Dec (degrees)."""
        world = np.empty((np.size(ra), 2))
        world[:, self.wcs.wcs.lng] = np.ravel(ra)
        world[:, self.wcs.wcs.lat] = np.ravel(dec)
        pix = self.wcs.all_world2pix(world, 0)
        return pix[:, 0], pix[:, 1]

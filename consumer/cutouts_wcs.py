"""World coordinates of cutouts: the tangent plane, a fast TAN WCS and the astropy fallback.

Offsets on the sky follow the project convention (README, Conventions): ``x = dRA cos(Dec)`` east
positive, ``y = dDec`` north positive, arcsec from a centre, taken exactly as gnomonic
(tangent-plane) standard coordinates, which is what the pixel grid of a TAN cutout measures.

Almost every cutout carries a plain linear TAN WCS (``RA---TAN``/``DEC--TAN`` with ``CD`` or
``PC``+``CDELT``, no distortion terms). Such headers are handled by :class:`TanWcs`, a few lines
of NumPy that are exact for that case and ~100 times faster than building an astropy WCS, which
matters at broker rates. Any other WCS (other projections, SIP or PV distortions, ``CROTA``,
swapped axes, ...) goes through :class:`AstropyWcs` (wcslib). Tests check both against each other.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from numpy.typing import NDArray

from lenscast.consumer.alert import AlertRejected

ARCSEC_PER_RADIAN = 180.0 / math.pi * 3600.0

#: Header keywords that can change a celestial WCS (any axis, any alternate letter).
_WCS_KEY = re.compile(
    r"^(CTYPE|CRVAL|CRPIX|CDELT|CUNIT|CROTA|CD\d_|PC\d_|PV\d_|PS\d_|LONPOLE|LATPOLE|A_|B_|AP_|BP_"
    r"|DP\d|DQ\d|CPDIS|CQDIS|D2IM|WCSAXES|EQUINOX|EPOCH|RADESYS|RADECSYS)"
)
#: Of those, the ones a plain linear TAN WCS may carry.
_TAN_KEYS = frozenset(
    {"CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2",
     "CUNIT1", "CUNIT2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "PC1_1", "PC1_2", "PC2_1",
     "PC2_2", "WCSAXES", "EQUINOX", "RADESYS", "RADECSYS"}
)  # fmt: skip


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
    """Pixel <-> sky mapping of a cutout (0-based pixel coordinates, degrees)."""

    def pix_to_world(self, cols: NDArray, rows: NDArray) -> tuple[NDArray, NDArray]:
        """RA, Dec of 0-based pixel positions ``(col, row)``."""
        ...

    def world_to_pix(self, ra: NDArray, dec: NDArray) -> tuple[NDArray, NDArray]:
        """0-based pixel positions ``(col, row)`` of RA, Dec."""
        ...


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
    _cd_inv: NDArray[np.float64] = field(init=False, repr=False, compare=False)
    #: ``(ra0, dec0, crpix..., cd...)`` as Python floats: identifies the pixel grid.
    grid_id: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Inverted once: every transient position and resampled grid goes through it.
        object.__setattr__(self, "_cd_inv", np.linalg.inv(self.cd))
        grid = (self.ra0, self.dec0, *self.crpix.tolist(), *self.cd.ravel().tolist())
        object.__setattr__(self, "grid_id", grid)

    def pix_to_world(self, cols: NDArray, rows: NDArray) -> tuple[NDArray, NDArray]:
        """RA, Dec (degrees) of 0-based pixel positions."""
        # Written out element by element: these are 2x2 maps of a few points per alert, where
        # tensordot's setup would cost more than the arithmetic.
        (a, b), (c, d) = self.cd.tolist()
        dx = np.asarray(cols, float) - self.crpix[0]
        dy = np.asarray(rows, float) - self.crpix[1]
        xi, eta = (a * dx + b * dy) * 3600.0, (c * dx + d * dy) * 3600.0
        return offsets_to_sky(xi, eta, ra0=self.ra0, dec0=self.dec0)

    def world_to_pix(self, ra: NDArray, dec: NDArray) -> tuple[NDArray, NDArray]:
        """0-based pixel positions of RA, Dec (degrees)."""
        xi, eta = sky_to_offsets(ra, dec, ra0=self.ra0, dec0=self.dec0)
        (a, b), (c, d) = self._cd_inv.tolist()
        xi, eta = xi / 3600.0, eta / 3600.0
        return a * xi + b * eta + self.crpix[0], c * xi + d * eta + self.crpix[1]


@dataclass(frozen=True)
class AstropyWcs:
    """Any celestial WCS that wcslib understands (through astropy)."""

    wcs: WCS

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


def _number(cards: Mapping[str, Any], key: str, default: float) -> float:
    value = cards.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AlertRejected("cutout.no_wcs", f"{key} = {value!r} is not a finite number")
    return float(value)


@lru_cache(maxsize=1024)
def _is_wcs_key(key: str) -> bool:
    """Whether a header keyword can change the WCS (cached: keywords repeat across cutouts)."""
    return _WCS_KEY.match(key) is not None


def _wcs_cards(cards: Mapping[str, Any]) -> tuple[tuple[str, type, Any], ...]:
    """The WCS cards of a header as a hashable key: ``(keyword, type, value)`` in card order.

    The type is part of the key so that e.g. ``True`` and ``1`` (equal in Python) never share a
    cache entry: the first is rejected as a CD element, the second is not.
    """
    return tuple((k, type(v), v) for k, v in cards.items() if _is_wcs_key(k))


@lru_cache(maxsize=256)
def _tan_wcs_of(wcs_cards: tuple[tuple[str, type, Any], ...]) -> TanWcs | None:
    """:func:`_tan_wcs` of a header's WCS cards, cached.

    The bands of one alert almost always share one WCS: it is then checked and built once.
    Rejections are exceptions, which ``lru_cache`` does not store, so they are raised anew.
    """
    return _tan_wcs({k: v for k, _, v in wcs_cards})


def _tan_wcs(cards: Mapping[str, Any]) -> TanWcs | None:
    """A :class:`TanWcs` when the header is a plain linear TAN WCS, else None."""
    wcs_keys = {k for k in cards if _is_wcs_key(k)}
    if not wcs_keys <= _TAN_KEYS or wcs_keys & {"CD1_1", "PC1_1"} == {"CD1_1", "PC1_1"}:
        return None
    if cards.get("CTYPE1") != "RA---TAN" or cards.get("CTYPE2") != "DEC--TAN":
        return None
    if any(cards.get(k, "deg") != "deg" for k in ("CUNIT1", "CUNIT2")):
        return None
    if cards.get("WCSAXES", 2) != 2:
        return None
    if "CD1_1" in wcs_keys:
        cd = np.array([[_number(cards, f"CD{i}_{j}", 0.0) for j in (1, 2)] for i in (1, 2)])
    else:
        pc = np.array(
            [[_number(cards, f"PC{i}_{j}", float(i == j)) for j in (1, 2)] for i in (1, 2)]
        )
        cdelt = np.array([_number(cards, "CDELT1", 1.0), _number(cards, "CDELT2", 1.0)])
        cd = cdelt[:, None] * pc
    det = float(np.linalg.det(cd))
    if not math.isfinite(det) or abs(det) < 1e-30:
        raise AlertRejected("cutout.no_wcs", "singular CD matrix")
    dec0 = _number(cards, "CRVAL2", math.nan)
    if not -90.0 <= dec0 <= 90.0:
        raise AlertRejected("cutout.no_wcs", f"CRVAL2 = {dec0} outside [-90, 90]")
    return TanWcs(
        ra0=_number(cards, "CRVAL1", math.nan) % 360.0,
        dec0=dec0,
        crpix=np.array([_number(cards, "CRPIX1", 0.0) - 1.0, _number(cards, "CRPIX2", 0.0) - 1.0]),
        cd=cd,
    )


@contextmanager
def _astropy_quiet() -> Iterator[None]:
    """Silence astropy's INFO log (e.g. its SIP advice) for one hostile header."""
    logger = logging.getLogger("astropy")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def cutout_wcs(cards: Mapping[str, Any], header_text: str) -> CutoutWcs:
    """The celestial WCS of a cutout header.

    Parameters
    ----------
    cards : mapping
        Parsed header keywords (see :func:`lenscast.consumer.cutouts_fits.parse_cards`).
    header_text : str
        The raw header, for the astropy fallback.

    Raises
    ------
    AlertRejected
        ``cutout.no_wcs`` when there is no usable two-axis celestial WCS.
    """
    tan = _tan_wcs_of(_wcs_cards(cards))
    if tan is not None:
        return tan
    try:
        with warnings.catch_warnings(), _astropy_quiet():
            # Non-standard survey keywords make astropy warn; the WCS is checked below.
            warnings.simplefilter("ignore")
            wcs = WCS(fits.Header.fromstring(header_text), naxis=2)
    except Exception as exc:  # wcslib rejects malformed WCS keywords in many ways
        raise AlertRejected("cutout.no_wcs", f"unusable WCS: {exc!r}"[:300]) from exc
    if not wcs.has_celestial or wcs.naxis != 2:
        raise AlertRejected("cutout.no_wcs", "no celestial (RA/Dec) WCS in the header")
    # Galactic (GLON/GLAT) or ecliptic axes are celestial too, but the alert's ra/dec and the
    # offsets computed from them are equatorial: reading those axes as RA/Dec would be wrong.
    if (wcs.wcs.lngtyp, wcs.wcs.lattyp) != ("RA", "DEC"):
        axes = f"{wcs.wcs.lngtyp}/{wcs.wcs.lattyp}"
        raise AlertRejected("cutout.no_wcs", f"celestial axes {axes}, not RA/Dec")
    return AstropyWcs(wcs)

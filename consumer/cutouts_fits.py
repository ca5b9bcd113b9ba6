"""Bounded reading of one FITS cutout: gzip, header, pixels, pixel unit and world coordinates.

Cutouts arrive from outside, so nothing here trusts a length: the gzip stream is inflated with a
byte bound (a gzip bomb is rejected), the header is scanned card by card up to a bound, ``NAXISn``
and ``BITPIX`` are checked against the bytes actually present before any array is made, and every
failure is an :class:`~consumer.alert.AlertRejected` with a ``cutout.*`` reason.

Pixel units (BRIEF conventions): lenscast works in calibrated coadd flux with AB zeropoint 27.0
(``mag = 27 - 2.5 log10(value)``), the unit of HSC data releases. A cutout states its unit in
``BUNIT`` and, for relative flux units, its zeropoint in ``MAGZERO`` (AB magnitude of a pixel
value of 1, the keyword lenscast writes) or ``FLUXMAG0`` (flux of a zero-magnitude source, the
LSST/HSC pipeline keyword, ``MAGZERO = 2.5 log10 FLUXMAG0``). Absolute units (Jy, mJy, uJy, nJy)
imply their AB zeropoint. Other units, or a relative unit without a zeropoint, are rejected:
a unit is never assumed.
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from numpy.typing import NDArray

from consumer.alert import AlertRejected

_GZIP_MAGIC = b"\x1f\x8b"
_CARD = 80
_BLOCK = 2880
#: Header cards scanned for ``END`` before giving up (100 blocks, 288 kB).
_MAX_HEADER_CARDS = 3600
#: Largest accepted NAXISn, pixels (the product is bounded separately).
_MAX_AXIS_PIX = 65536

_BITPIX_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}

#: Relative flux units: these need MAGZERO or FLUXMAG0.
RELATIVE_UNITS = frozenset({"count", "counts", "ct", "adu", "dn", "flux"})
#: Absolute flux-density units and their AB zeropoints (mag = ZP - 2.5 log10 value).
ABSOLUTE_UNIT_ZEROPOINTS = {"jy": 8.9, "mjy": 16.4, "ujy": 23.9, "microjy": 23.9, "njy": 31.4}
#: Agreement required between two statements of the same zeropoint, magnitudes.
_ZEROPOINT_TOL_MAG = 1e-3


@dataclass(frozen=True)
class FitsCutout:
    """One cutout as read from its FITS bytes (native orientation, not yet standardised).

    Attributes
    ----------
    pixels : ndarray, shape (ny, nx), float64
        Pixel values in the file's unit, ``pixels[row, col]`` with FITS ``(x, y) = (col, row)``.
    header : astropy.io.fits.Header
    zeropoint_ab : float
        AB magnitude of a pixel value of 1, from ``BUNIT`` and ``MAGZERO``/``FLUXMAG0``.
    wcs : astropy.wcs.WCS
        Celestial WCS of the image (two axes).
    """

    pixels: NDArray[np.float64]
    header: fits.Header
    zeropoint_ab: float
    wcs: WCS


def gunzip_bounded(data: bytes, max_bytes: int) -> bytes:
    """Inflate a gzip stream, refusing to produce more than ``max_bytes`` bytes.

    Raises
    ------
    AlertRejected
        ``cutout.gzip_bomb`` past the bound, ``cutout.bad_gzip`` for a corrupt or truncated
        stream or trailing bytes after it.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise AlertRejected("cutout.bad_gzip", str(exc)) from exc
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise AlertRejected("cutout.gzip_bomb", f"gzip cutout inflates past {max_bytes} bytes")
    if not inflater.eof:
        raise AlertRejected("cutout.bad_gzip", "truncated gzip stream")
    if inflater.unused_data:
        raise AlertRejected("cutout.bad_gzip", "bytes after the gzip stream")
    return out


def _header_length(data: bytes) -> int:
    """Bytes of the primary header (whole 2880-byte blocks up to and including ``END``)."""
    if not data.startswith(b"SIMPLE  ="):
        raise AlertRejected("cutout.not_fits", f"starts with {bytes(data[:9])!r}, not SIMPLE")
    n_cards = min(len(data) // _CARD, _MAX_HEADER_CARDS)
    for i in range(n_cards):
        if data[i * _CARD : i * _CARD + 8] == b"END     ":
            return -(-(i + 1) * _CARD // _BLOCK) * _BLOCK
    raise AlertRejected("cutout.not_fits", f"no END card in the first {n_cards} header cards")


def _int_key(header: fits.Header, key: str, low: int, high: int) -> int:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AlertRejected("cutout.bad_header", f"{key} = {value!r} is not an integer")
    if not low <= value <= high:
        raise AlertRejected("cutout.bad_header", f"{key} = {value} outside [{low}, {high}]")
    return value


def _float_key(header: fits.Header, key: str, default: float | None = None) -> float | None:
    value = header.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AlertRejected("cutout.bad_header", f"{key} = {value!r} is not a number")
    if not math.isfinite(value):
        raise AlertRejected("cutout.bad_header", f"{key} = {value} is not finite")
    return float(value)


def parse_header(data: bytes) -> tuple[fits.Header, int]:
    """Parse the primary header of FITS ``data``; return it and its length in bytes."""
    length = _header_length(data)
    if length > len(data):
        raise AlertRejected("cutout.truncated", "header blocks run past the end of the file")
    try:
        text = data[:length].decode("ascii")
        with warnings.catch_warnings():
            # Non-standard cards are common in survey headers; what matters is checked below.
            warnings.simplefilter("ignore")
            header = fits.Header.fromstring(text)
            # Touch every value now: astropy parses cards lazily and may fail on access.
            for _ in header.items():
                pass
    except AlertRejected:
        raise
    except Exception as exc:  # hostile header text: any parse failure is a bad header
        raise AlertRejected("cutout.bad_header", f"unparseable header: {exc!r}"[:300]) from exc
    return header, length


def read_pixels(data: bytes, header: fits.Header, offset: int, max_pixels: int) -> NDArray:
    """Read the primary image described by ``header`` from ``data[offset:]`` as float64.

    Raises
    ------
    AlertRejected
        ``cutout.bad_header``, ``cutout.bad_shape`` (not a 2-D image), ``cutout.too_large``,
        ``cutout.truncated`` or ``cutout.non_finite`` (NaN/inf pixels or BLANK values).
    """
    if header.get("SIMPLE") is not True:
        raise AlertRejected("cutout.not_fits", "SIMPLE is not T")
    bitpix = _int_key(header, "BITPIX", -64, 64)
    if bitpix not in _BITPIX_DTYPES:
        raise AlertRejected("cutout.bad_header", f"BITPIX = {bitpix}")
    naxis = _int_key(header, "NAXIS", 0, 999)
    if naxis != 2:
        raise AlertRejected("cutout.bad_shape", f"NAXIS = {naxis}; a cutout is a 2-D image")
    nx = _int_key(header, "NAXIS1", 0, _MAX_AXIS_PIX)
    ny = _int_key(header, "NAXIS2", 0, _MAX_AXIS_PIX)
    if nx == 0 or ny == 0:
        raise AlertRejected("cutout.bad_shape", f"empty image {nx} x {ny}")
    if nx * ny > max_pixels:
        raise AlertRejected("cutout.too_large", f"{nx} x {ny} pixels > {max_pixels}")
    n_bytes = nx * ny * abs(bitpix) // 8
    if offset + n_bytes > len(data):
        raise AlertRejected("cutout.truncated", f"{n_bytes} data bytes declared, fewer present")
    raw = np.frombuffer(data, dtype=_BITPIX_DTYPES[bitpix], count=nx * ny, offset=offset)
    pixels = raw.astype(np.float64).reshape(ny, nx)
    if bitpix > 0:
        blank = header.get("BLANK")
        if isinstance(blank, int) and not isinstance(blank, bool) and np.any(raw == blank):
            raise AlertRejected("cutout.non_finite", "BLANK (undefined) pixels")
    bscale = _float_key(header, "BSCALE", 1.0)
    bzero = _float_key(header, "BZERO", 0.0)
    if bscale != 1.0 or bzero != 0.0:
        with np.errstate(all="ignore"):
            pixels = pixels * bscale + bzero
    if not np.all(np.isfinite(pixels)):
        raise AlertRejected("cutout.non_finite", f"{int(np.sum(~np.isfinite(pixels)))} pixels")
    return pixels


def zeropoint_ab(header: fits.Header) -> float:
    """AB magnitude of a pixel value of 1 from ``BUNIT`` and ``MAGZERO``/``FLUXMAG0``.

    Raises
    ------
    AlertRejected
        ``cutout.units`` for a missing or unknown unit, a relative unit without a zeropoint,
        or disagreeing zeropoint statements.
    """
    bunit = header.get("BUNIT")
    if not isinstance(bunit, str) or not bunit.strip():
        raise AlertRejected("cutout.units", "no BUNIT; the pixel unit is never assumed")
    unit = bunit.strip().lower().replace("µ", "u")
    stated: list[float] = []
    magzero = _float_key(header, "MAGZERO")
    if magzero is not None:
        stated.append(magzero)
    fluxmag0 = _float_key(header, "FLUXMAG0")
    if fluxmag0 is not None:
        if fluxmag0 <= 0:
            raise AlertRejected("cutout.units", f"FLUXMAG0 = {fluxmag0} is not positive")
        stated.append(2.5 * math.log10(fluxmag0))
    if unit in ABSOLUTE_UNIT_ZEROPOINTS:
        stated.append(ABSOLUTE_UNIT_ZEROPOINTS[unit])
    elif unit not in RELATIVE_UNITS:
        raise AlertRejected("cutout.units", f"unknown BUNIT {bunit!r}")
    if not stated:
        raise AlertRejected("cutout.units", f"BUNIT {bunit!r} needs MAGZERO or FLUXMAG0")
    if max(stated) - min(stated) > _ZEROPOINT_TOL_MAG:
        raise AlertRejected("cutout.units", f"inconsistent zeropoints {stated} for {bunit!r}")
    if not 0.0 < stated[0] < 60.0:
        raise AlertRejected("cutout.units", f"zeropoint {stated[0]} outside (0, 60) mag")
    return stated[0]


def celestial_wcs(header: fits.Header) -> WCS:
    """The two-axis celestial WCS of the header.

    Raises
    ------
    AlertRejected
        ``cutout.no_wcs`` when the header has no usable celestial WCS.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header, naxis=2)
    except Exception as exc:  # wcslib rejects malformed WCS keywords in many ways
        raise AlertRejected("cutout.no_wcs", f"unusable WCS: {exc!r}"[:300]) from exc
    if not wcs.has_celestial or wcs.naxis != 2:
        raise AlertRejected("cutout.no_wcs", "no celestial (RA/Dec) WCS in the header")
    return wcs


def read_cutout(data: bytes, *, max_bytes: int, max_pixels: int) -> FitsCutout:
    """Read one cutout (FITS, optionally gzip-compressed) with bounded resources.

    Parameters
    ----------
    data : bytes
        The ``stampData`` of one cutout.
    max_bytes : int
        Largest accepted FITS file after any decompression, bytes.
    max_pixels : int
        Largest accepted ``NAXIS1 * NAXIS2``.

    Returns
    -------
    FitsCutout

    Raises
    ------
    AlertRejected
        With a ``cutout.*`` reason for any problem.
    """
    if len(data) > max_bytes:
        raise AlertRejected("cutout.too_large", f"{len(data)} bytes > {max_bytes}")
    if data[:2] == _GZIP_MAGIC:
        data = gunzip_bounded(data, max_bytes)
    header, offset = parse_header(data)
    pixels = read_pixels(data, header, offset, max_pixels)
    zeropoint = zeropoint_ab(header)
    return FitsCutout(pixels=pixels, header=header, zeropoint_ab=zeropoint, wcs=celestial_wcs(header))

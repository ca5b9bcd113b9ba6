"""Bounded reading of one FITS cutout: gzip, header cards, pixels and the pixel unit.

Cutouts arrive from outside, so nothing here trusts a length: a gzip stream is inflated with a
byte bound (a gzip bomb is rejected), the header is scanned card by card up to a bound,
``NAXISn`` and ``BITPIX`` are checked against the bytes actually present before any array is
made, and every failure is an :class:`~lenscast.consumer.alert.AlertRejected` with a ``cutout.*``
reason. The image is read from the primary HDU (as lenscast writes it) or, when that is empty, from
the first ``IMAGE`` extension.

Pixel units (README, Conventions): lenscast works in calibrated coadd flux with AB zeropoint 27.0
(``mag = 27 - 2.5 log10(value)``), the unit of HSC data releases. A cutout states its unit in
``BUNIT`` and, for relative flux units (``count``, ``adu``, ``flux``, ...), its zeropoint in
``MAGZERO`` (AB magnitude of a pixel value of 1: the keyword lenscast writes) or ``FLUXMAG0``
(flux of a zero-magnitude source, the LSST/HSC pipeline keyword; ``MAGZERO = 2.5 log10
FLUXMAG0``). Absolute units (Jy, mJy, uJy, nJy) imply their AB zeropoint (8.9, 16.4, 23.9,
31.4). Another unit, or a relative unit without a zeropoint, is rejected: a unit is never assumed.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_wcs import CutoutWcs
from lenscast.consumer.cutouts_wcs_header import cutout_wcs

_GZIP_MAGIC = b"\x1f\x8b"
_CARD = 80
_BLOCK = 2880
#: Header cards scanned for ``END`` before giving up (100 blocks, 288 kB).
_MAX_HEADER_CARDS = 3600
#: Largest accepted NAXISn, pixels (the product is bounded separately).
_MAX_AXIS_PIX = 65536
_END = b"END     "
#: Splits a header's text into its 80-character cards (in C, not a Python loop).
_CARDS = re.compile(r".{80}", re.DOTALL)
_BITPIX_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}

#: Relative flux units: these need MAGZERO or FLUXMAG0.
RELATIVE_UNITS = frozenset({"count", "counts", "ct", "adu", "dn", "flux"})
#: Absolute flux-density units and their AB zeropoints (mag = ZP - 2.5 log10 value).
ABSOLUTE_UNIT_ZEROPOINTS = {"jy": 8.9, "mjy": 16.4, "ujy": 23.9, "microjy": 23.9, "njy": 31.4}
#: Agreement required between two statements of the same zeropoint, magnitudes.
_ZEROPOINT_TOL_MAG = 1e-3

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([EeDd][+-]?\d+)?$")


@dataclass(frozen=True)
class FitsCutout:
    """One cutout as read from its FITS bytes (native orientation, not yet standardised).

    Attributes
    ----------
    pixels : ndarray, shape (ny, nx), float64
        Pixel values in the file's unit, ``pixels[row, col]`` with FITS ``(x, y) = (col, row)``.
    cards : dict
        Header keywords (first occurrence of each) to parsed values.
    zeropoint_ab : float
        AB magnitude of a pixel value of 1, from ``BUNIT`` and ``MAGZERO``/``FLUXMAG0``.
    wcs : CutoutWcs
        Celestial WCS of the image.
    """

    pixels: NDArray[np.float64]
    cards: dict[str, Any]
    zeropoint_ab: float
    wcs: CutoutWcs


def gunzip_bounded(data: bytes, max_bytes: int) -> bytes:
    """Inflate a gzip stream, refusing to produce more than ``max_bytes`` bytes.

    Raises
    ------
    AlertRejected
        ``cutout.gzip_bomb`` past the bound, ``cutout.bad_gzip`` for a corrupt or truncated
        stream or for bytes after it.
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


@lru_cache(maxsize=4096)
def _value(text: str) -> Any:
    """Parse the value field of a header card (FITS standard 4.0, section 4.2).

    Cached: most cards (BITPIX, CTYPE, CD, BUNIT, ...) repeat from alert to alert, and the
    results are immutable.
    """
    text = text.strip()
    if text.startswith("'"):
        # A string ends at the first lone quote; '' is an escaped quote.
        out, i = [], 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                return "".join(out).rstrip()
            out.append(text[i])
            i += 1
        return None  # unterminated string: no value
    value = text.split("/", 1)[0].strip()
    if value == "T":
        return True
    if value == "F":
        return False
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value.replace("D", "E").replace("d", "e"))
    return value or None


@lru_cache(maxsize=4096)
def _keyword_value(card: str) -> tuple[str, Any] | None:
    """Keyword and parsed value of one 80-character card (None: no value, e.g. COMMENT).

    Cached on the whole card: from alert to alert most cards (BITPIX, NAXISn, CTYPEn, CDi_j,
    BUNIT, ...) repeat exactly, and only a few (CRVALn, dates) are new.
    """
    key = card[:8].rstrip()
    if not key or card[8:10] != "= ":
        return None
    return key, _value(card[10:])


def _end_card(data: bytes, start: int, n_cards: int) -> int | None:
    """Index of the ``END`` card among the ``n_cards`` cards from ``start`` (None: absent).

    ``bytes.find`` jumps to each candidate; one that is not at a card boundary (``END`` inside
    another card's text) is skipped. Much faster than comparing every card in Python.
    """
    limit = start + n_cards * _CARD
    at = data.find(_END, start, limit)
    while at >= 0:
        offset = at - start
        if offset % _CARD == 0:
            return offset // _CARD
        at = data.find(_END, start + (offset // _CARD + 1) * _CARD, limit)
    return None


def parse_cards(
    data: bytes, start: int = 0, first: bytes = b"SIMPLE  ="
) -> tuple[dict[str, Any], str, int]:
    """Parse the header that begins at ``data[start:]`` (the primary header by default).

    Parameters
    ----------
    data : bytes
        The FITS file.
    start : int
        Offset of the header, bytes (a multiple of 2880).
    first : bytes
        What the header must start with (``SIMPLE  =`` or ``XTENSION=``).

    Returns
    -------
    cards : dict
        Keyword to value (str, int, float, bool or None), first occurrence of each keyword;
        commentary cards are skipped.
    text : str
        The header as ASCII text (for the astropy WCS fallback).
    length : int
        Bytes of the header, whole 2880-byte blocks up to and including ``END``.

    Raises
    ------
    AlertRejected
        ``cutout.not_fits`` (wrong first card or no ``END``), ``cutout.bad_header``
        (non-ASCII), ``cutout.truncated``.
    """
    if data[start : start + len(first)] != first:
        found = bytes(data[start : start + 9])
        raise AlertRejected("cutout.not_fits", f"header starts with {found!r}, not {first!r}")
    n_cards = min((len(data) - start) // _CARD, _MAX_HEADER_CARDS)
    end = _end_card(data, start, n_cards)
    if end is None:
        raise AlertRejected("cutout.not_fits", f"no END card in the first {n_cards} header cards")
    length = -(-(end + 1) * _CARD // _BLOCK) * _BLOCK
    if start + length > len(data):
        raise AlertRejected("cutout.truncated", "header blocks run past the end of the file")
    try:
        text = data[start : start + end * _CARD].decode("ascii")
    except UnicodeDecodeError as exc:
        raise AlertRejected("cutout.bad_header", "non-ASCII header") from exc
    cards: dict[str, Any] = {}
    for card in _CARDS.findall(text):
        keyword = _keyword_value(card)
        if keyword is not None and keyword[0] not in cards:
            cards[keyword[0]] = keyword[1]
    return cards, data[start : start + length].decode("ascii", "replace"), length


def image_header(data: bytes) -> tuple[dict[str, Any], str, int]:
    """Cards, text and data offset of the image: the primary HDU, or the first extension.

    Survey cutouts (e.g. LSST's) often keep an empty primary HDU and the image in an ``IMAGE``
    extension; its cards are used, with the primary's filling in keywords it lacks (the FITS
    ``INHERIT`` convention).
    """
    cards, text, offset = parse_cards(data)
    if cards.get("NAXIS") != 0:
        return cards, text, offset
    try:
        ext, ext_text, ext_length = parse_cards(data, offset, b"XTENSION=")
    except AlertRejected as exc:
        detail = f"empty primary HDU and no readable extension ({exc.detail})"
        raise AlertRejected("cutout.bad_shape", detail) from exc
    if ext.get("XTENSION") != "IMAGE":
        raise AlertRejected("cutout.bad_shape", f"empty primary HDU, then {ext.get('XTENSION')!r}")
    merged = {**cards, **ext}
    merged["SIMPLE"] = cards.get("SIMPLE")
    return merged, ext_text, offset + ext_length


def _int_key(cards: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = cards.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AlertRejected("cutout.bad_header", f"{key} = {value!r} is not an integer")
    if not low <= value <= high:
        raise AlertRejected("cutout.bad_header", f"{key} = {value} outside [{low}, {high}]")
    return value


def _float_key(cards: Mapping[str, Any], key: str) -> float | None:
    value = cards.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AlertRejected("cutout.bad_header", f"{key} = {value!r} is not a finite number")
    return float(value)


def read_pixels(data: bytes, cards: Mapping[str, Any], offset: int, max_pixels: int) -> NDArray:
    """Read the primary image described by ``cards`` from ``data[offset:]`` as float64.

    Raises
    ------
    AlertRejected
        ``cutout.not_fits``, ``cutout.bad_header``, ``cutout.bad_shape`` (not a 2-D image),
        ``cutout.too_large``, ``cutout.truncated`` or ``cutout.non_finite`` (NaN/inf or
        BLANK pixels).
    """
    if cards.get("SIMPLE") is not True:
        raise AlertRejected("cutout.not_fits", "SIMPLE is not T")
    bitpix = _int_key(cards, "BITPIX", -64, 64)
    if bitpix not in _BITPIX_DTYPES:
        raise AlertRejected("cutout.bad_header", f"BITPIX = {bitpix}")
    naxis = _int_key(cards, "NAXIS", 0, 999)
    if naxis != 2:
        raise AlertRejected("cutout.bad_shape", f"NAXIS = {naxis}; a cutout is a 2-D image")
    nx = _int_key(cards, "NAXIS1", 0, _MAX_AXIS_PIX)
    ny = _int_key(cards, "NAXIS2", 0, _MAX_AXIS_PIX)
    if nx == 0 or ny == 0:
        raise AlertRejected("cutout.bad_shape", f"empty image {nx} x {ny}")
    if nx * ny > max_pixels:
        raise AlertRejected("cutout.too_large", f"{nx} x {ny} pixels > {max_pixels}")
    if offset + nx * ny * abs(bitpix) // 8 > len(data):
        raise AlertRejected("cutout.truncated", f"{nx} x {ny} x {abs(bitpix)} bits declared")
    raw = np.frombuffer(data, dtype=_BITPIX_DTYPES[bitpix], count=nx * ny, offset=offset)
    with np.errstate(invalid="ignore"):  # signalling NaNs warn on cast; rejected just below
        pixels = raw.astype(np.float64).reshape(ny, nx)
    if bitpix > 0:
        blank = cards.get("BLANK")
        if isinstance(blank, int) and not isinstance(blank, bool) and np.any(raw == blank):
            raise AlertRejected("cutout.non_finite", "BLANK (undefined) pixels")
    bscale = _float_key(cards, "BSCALE")
    bscale = 1.0 if bscale is None else bscale
    bzero = _float_key(cards, "BZERO")
    bzero = 0.0 if bzero is None else bzero
    if bscale == 0.0:
        raise AlertRejected("cutout.bad_header", "BSCALE = 0")
    if bscale != 1.0 or bzero != 0.0:
        with np.errstate(all="ignore"):  # overflow shows up as non-finite just below
            pixels = pixels * bscale + bzero
    if not np.isfinite(pixels).all():
        raise AlertRejected("cutout.non_finite", f"{int(np.sum(~np.isfinite(pixels)))} pixels")
    return pixels


def zeropoint_ab(cards: Mapping[str, Any]) -> float:
    """AB magnitude of a pixel value of 1 from ``BUNIT`` and ``MAGZERO``/``FLUXMAG0``.

    Raises
    ------
    AlertRejected
        ``cutout.units`` for a missing or unknown unit, a relative unit without a zeropoint,
        disagreeing zeropoint statements or an implausible zeropoint.
    """
    bunit = cards.get("BUNIT")
    if not isinstance(bunit, str) or not bunit.strip():
        raise AlertRejected("cutout.units", "no BUNIT; the pixel unit is never assumed")
    unit = bunit.strip().lower().replace("µ", "u")
    stated: list[float] = []
    try:
        magzero = _float_key(cards, "MAGZERO")
        fluxmag0 = _float_key(cards, "FLUXMAG0")
    except AlertRejected as exc:
        raise AlertRejected("cutout.units", exc.detail) from exc
    if magzero is not None:
        stated.append(magzero)
    if fluxmag0 is not None:
        if fluxmag0 <= 0:
            raise AlertRejected("cutout.units", f"FLUXMAG0 = {fluxmag0} is not positive")
        stated.append(2.5 * math.log10(fluxmag0))
    if unit in ABSOLUTE_UNIT_ZEROPOINTS:
        stated.append(ABSOLUTE_UNIT_ZEROPOINTS[unit])
    elif unit not in RELATIVE_UNITS:
        raise AlertRejected("cutout.units", f"unknown BUNIT {bunit!r}"[:200])
    if not stated:
        raise AlertRejected("cutout.units", f"BUNIT {bunit!r} needs MAGZERO or FLUXMAG0")
    if max(stated) - min(stated) > _ZEROPOINT_TOL_MAG:
        raise AlertRejected("cutout.units", f"inconsistent zeropoints {stated} for {bunit!r}")
    if not 0.0 < stated[0] < 60.0:
        raise AlertRejected("cutout.units", f"zeropoint {stated[0]} outside (0, 60) mag")
    return stated[0]


def read_cutout(data: bytes, *, max_bytes: int, max_pixels: int) -> FitsCutout:
    """Read one cutout (FITS, optionally gzip-compressed) with bounded resources.

    Parameters
    ----------
    data : bytes
        The ``stampData`` of one cutout.
    max_bytes : int
        Largest accepted FITS file, before and after any decompression, bytes.
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
    cards, text, offset = image_header(data)
    pixels = read_pixels(data, cards, offset, max_pixels)
    zeropoint = zeropoint_ab(cards)
    wcs = cutout_wcs(cards, text)
    return FitsCutout(pixels=pixels, cards=cards, zeropoint_ab=zeropoint, wcs=wcs)

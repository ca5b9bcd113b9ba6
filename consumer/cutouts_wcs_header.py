"""Read the celestial WCS of a cutout header: the sky frame, the fast TAN path, cached astropy.

Three steps, cheapest first:

1. **Sky frame.** Offsets and transient positions are RA/Dec (ICRS), so a header in another frame
   is rejected (``cutout.sky_frame``), never read as RA/Dec: galactic (``GLON``/``GLAT``),
   ecliptic or any other non-equatorial celestial axes, ``RADESYS`` FK4 / FK4-NO-E / GAPPT, or
   FK5 at an equinox other than J2000. FK5 J2000 is accepted as ICRS: the two frames differ by
   the ~0.02" frame bias (Feissel & Mignard 1998, A&A 331, L33), below the lens-centre target.
2. **Fast TAN path** (:class:`lenscast.consumer.cutouts_wcs.TanWcs`) for every header that is
   mathematically a plain TAN projection, whichever way it is written: ``CD``, or ``PC`` with
   ``CDELT``, or ``CDELT`` alone, or ``CDELT`` with ``CROTA2``; ``LONPOLE`` at its default
   (180 deg) and any ``LATPOLE`` in [-90, 90] (a zenithal projection's
   celestial pole is fixed by ``CRVAL``: Calabretta & Greisen 2002, A&A 395, 1077, sec. 2.4,
   where ``LATPOLE`` only chooses between two poles when the reference point is off the native
   pole); ``EQUINOX`` 2000, ``RADESYS``, ``WCSAXES = 2``, ``CUNIT = 'deg'``. Cards no celestial
   transform reads (``MJDREF``, ``DATEREF``, ``MJD-OBS``, ``DATE-OBS``, ``WCSNAME``,
   IRAF ``LTV``/``LTM``, alternate WCSs such as LSST's pixel ``CTYPE1A = 'LINEAR'``) are not
   looked at. ~100 times faster than building an astropy WCS, which matters at broker rates.
   The same header with ``-SIP`` axis types and SIP polynomials (``A``/``B``, optionally
   ``AP``/``BP``), or with ``-TPV`` axis types and ``PV1_n``/``PV2_n`` polynomials, takes the
   same path with the distortion applied in NumPy
   (:class:`lenscast.consumer.cutouts_wcs_polynomial.DistortedTanWcs`).
3. **astropy (wcslib)** for anything else (lookup-table distortions, other projections,
   ``PV`` terms on them, swapped axes, another ``LONPOLE``, other units, mixed
   ``CD``/``PC``/``CROTA``).
   Built at most once per distinct set of WCS cards (straight from wcslib's parser and the SIP
   cards where possible, :mod:`lenscast.consumer.cutouts_wcs_wcslib`): the bands of an alert share
   it, and a bounded LRU cache keeps it for later alerts with the same cards.

Tests check the fast path against wcslib on property-based headers of every accepted style.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_wcs import AstropyWcs, CutoutWcs, TanWcs
from lenscast.consumer.cutouts_wcs_polynomial import DistortedTanWcs
from lenscast.consumer.cutouts_wcs_sip import SIP_KEY, tan_sip_wcs
from lenscast.consumer.cutouts_wcs_tpv import TPV_KEY, tan_tpv_wcs
from lenscast.consumer.cutouts_wcs_wcslib import fast_astropy_wcs

#: Keywords that can change the primary celestial WCS as wcslib/astropy read it (alternate WCSs,
#: suffixed ``A``-``Z``, are left out below). ``LONGPOLE`` and ``PROJPn`` are old AIPS spellings.
_WCS_KEY = re.compile(
    r"^(CTYPE|CRVAL|CRPIX|CDELT|CUNIT|CROTA|CD\d_|PC\d_|PV\d_|PS\d_|LONPOLE|LATPOLE|LONGPOLE"
    r"|PROJP|A_|B_|AP_|BP_|DP\d|DQ\d|CPDIS|CQDIS|CPERR|CQERR|D2IM|WCSAXES|EQUINOX|EPOCH"
    r"|RADESYS|RADECSYS)"
)
#: Cards of an alternate WCS (``CTYPE1A``, ``CD1_1B``, ``LONPOLEA``, ...), which the primary
#: WCS never reads.
_ALTERNATE_KEY = re.compile(
    r"^((CTYPE|CRVAL|CRPIX|CDELT|CUNIT|CROTA)\d|(CD|PC|PV|PS)\d_\d|LONPOLE|LATPOLE|WCSAXES"
    r"|EQUINOX|RADESYS)[A-Z]$"
)
#: Of the WCS keywords, those a plain TAN projection may carry (values checked separately).
_TAN_KEYS = frozenset(
    {"CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2",
     "CUNIT1", "CUNIT2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "PC1_1", "PC1_2", "PC2_1",
     "PC2_2", "CROTA2", "LONPOLE", "LATPOLE", "WCSAXES", "EQUINOX", "EPOCH", "RADESYS",
     "RADECSYS"}
)  # fmt: skip
#: The distorted TAN projections read in NumPy, by axis types: their cards and their builder.
_DISTORTIONS = {
    ("RA---TAN-SIP", "DEC--TAN-SIP"): (SIP_KEY, tan_sip_wcs),
    ("RA---TPV", "DEC--TPV"): (TPV_KEY, tan_tpv_wcs),
}
_CD_KEYS = frozenset({"CD1_1", "CD1_2", "CD2_1", "CD2_2"})
_PC_KEYS = frozenset({"PC1_1", "PC1_2", "PC2_1", "PC2_2"})
#: Celestial axis types of wcslib (``xLON``/``xLAT``, ``xyLN``/``xyLT``; RA/DEC is the only one
#: accepted), by the first four characters of ``CTYPEi``.
_CELESTIAL_AXIS = re.compile(r"^(.LON|.LAT|..LN|..LT|RA--|DEC-)")
#: Equatorial frames read as ICRS RA/Dec (FK5 at equinox J2000 only, checked separately).
_ACCEPTED_FRAMES = frozenset({"ICRS", "FK5"})
#: Distinct WCSs kept built by astropy (a few kB each). Cutouts centred on different objects
#: have different ``CRVAL``s, so hits across alerts come from re-sent packets (replays, re-issued
#: alerts) and from producers that cut on a fixed grid; the bands of one alert always share one.
ASTROPY_CACHE_SIZE = 64

WcsCards = tuple[tuple[str, type, Any], ...]


@lru_cache(maxsize=1024)
def _is_wcs_key(key: str) -> bool:
    """Whether a keyword can change the primary WCS (cached: keywords repeat across cutouts)."""
    return _WCS_KEY.match(key) is not None and _ALTERNATE_KEY.match(key) is None


def wcs_cards(cards: Mapping[str, Any]) -> WcsCards:
    """The WCS cards of a header as a hashable key: ``(keyword, type, value)`` in card order.

    The type is part of the key so that e.g. ``True`` and ``1`` (equal in Python) never share a
    cache entry: the first is rejected as a CD element, the second is not.
    """
    return tuple((k, type(v), v) for k, v in cards.items() if _is_wcs_key(k))


def _number(cards: Mapping[str, Any], key: str, default: float) -> float:
    value = cards.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AlertRejected("cutout.no_wcs", f"{key} = {value!r} is not a finite number")
    return float(value)


def check_sky_frame(cards: Mapping[str, Any]) -> None:
    """Reject a header whose celestial coordinates are not ICRS (or FK5 J2000) RA/Dec.

    Raises
    ------
    AlertRejected
        ``cutout.sky_frame`` naming the frame found.
    """
    for key, value in cards.items():
        if key.startswith("CTYPE") and _is_wcs_key(key) and isinstance(value, str):
            axis = _CELESTIAL_AXIS.match(value)
            if axis is not None and axis.group(1) not in ("RA--", "DEC-"):
                raise AlertRejected(
                    "cutout.sky_frame",
                    f"{key} = {value!r}: celestial axes must be RA/Dec (ICRS), not "
                    f"{'galactic' if value.startswith('GL') else 'another frame'}"[:200],
                )
    frame = cards.get("RADESYS", cards.get("RADECSYS"))
    equinox = cards.get("EQUINOX", cards.get("EPOCH"))
    if equinox is not None and (isinstance(equinox, bool) or not isinstance(equinox, int | float)):
        raise AlertRejected("cutout.sky_frame", f"EQUINOX = {equinox!r} is not a number"[:200])
    if frame is None:  # FITS WCS paper II, sec. 3.1: the default follows EQUINOX
        frame = "ICRS" if equinox is None else "FK4" if equinox < 1984.0 else "FK5"
    name = frame.strip().upper() if isinstance(frame, str) else None
    if name not in _ACCEPTED_FRAMES:
        detail = f"RADESYS = {frame!r}: need ICRS or FK5 J2000"
        raise AlertRejected("cutout.sky_frame", detail[:200])
    if name == "FK5" and equinox is not None and equinox != 2000.0:
        raise AlertRejected("cutout.sky_frame", f"FK5 at EQUINOX = {equinox!r}: need J2000")


def _linear_part(cards: Mapping[str, Any], keys: frozenset[str]) -> np.ndarray | None:
    """The CD matrix (degrees per pixel) of a TAN header, None when wcslib must decide.

    wcslib's precedence (PC over CD over CROTA) and its handling of mixed forms are left to it:
    a header mixing them takes the astropy path.
    """
    has_cd, has_pc, has_crota = bool(keys & _CD_KEYS), bool(keys & _PC_KEYS), "CROTA2" in keys
    if has_cd + has_pc + has_crota > 1:
        return None
    if has_cd:  # CDELT is ignored beside CD; missing elements are 0 (wcslib)
        return np.array([[_number(cards, f"CD{i}_{j}", 0.0) for j in (1, 2)] for i in (1, 2)])
    cdelt1, cdelt2 = _number(cards, "CDELT1", 1.0), _number(cards, "CDELT2", 1.0)
    if has_crota:  # Greisen & Calabretta 2002, A&A 395, 1061, eq. 189 (the AIPS convention)
        rho = math.radians(_number(cards, "CROTA2", 0.0))
        cos, sin = math.cos(rho), math.sin(rho)
        return np.array([[cdelt1 * cos, -cdelt2 * sin], [cdelt1 * sin, cdelt2 * cos]])
    pc = np.array([[_number(cards, f"PC{i}_{j}", float(i == j)) for j in (1, 2)] for i in (1, 2)])
    return np.array([[cdelt1], [cdelt2]]) * pc


def _tan_wcs(cards: Mapping[str, Any], key: WcsCards) -> TanWcs | DistortedTanWcs | None:
    """A :class:`TanWcs` when the header is mathematically a plain TAN projection, a
    :class:`DistortedTanWcs` when it is one with SIP or TPV distortion, else None."""
    keys = {k for k in cards if _is_wcs_key(k)}
    ctypes = (cards.get("CTYPE1"), cards.get("CTYPE2"))
    distortion = _DISTORTIONS.get((str(ctypes[0]), str(ctypes[1])))
    if ctypes == ("RA---TAN", "DEC--TAN"):
        distortion_keys: set[str] = set()
    elif distortion is not None:
        distortion_keys = {k for k in keys if distortion[0].match(k)}
    else:
        return None
    if not keys - distortion_keys <= _TAN_KEYS:
        return None
    if any(cards.get(k, "deg") != "deg" for k in ("CUNIT1", "CUNIT2")):
        return None
    if cards.get("WCSAXES", 2) != 2:
        return None
    cd = _linear_part(cards, frozenset(keys))
    if cd is None:
        return None
    det = float(cd[0, 0] * cd[1, 1] - cd[0, 1] * cd[1, 0])
    if not math.isfinite(det) or abs(det) < 1e-30:
        raise AlertRejected("cutout.no_wcs", "singular CD matrix")
    dec0 = _number(cards, "CRVAL2", math.nan)
    if not -90.0 <= dec0 <= 90.0:
        raise AlertRejected("cutout.no_wcs", f"CRVAL2 = {dec0} outside [-90, 90]")
    # TanWcs puts the celestial pole at native longitude 180 deg, wcslib's default except when
    # the reference point is the north pole, where it is 0 (Calabretta & Greisen 2002, sec. 2.4
    # with theta_0 = 90): there only an explicit LONPOLE = 180 is the same projection.
    lonpole = _number(cards, "LONPOLE", 0.0 if dec0 == 90.0 else 180.0)
    if lonpole % 360.0 != 180.0:
        return None
    if not -90.0 <= _number(cards, "LATPOLE", 0.0) <= 90.0:
        return None
    tan = TanWcs(
        ra0=_number(cards, "CRVAL1", math.nan) % 360.0,
        dec0=dec0,
        crpix=np.array([_number(cards, "CRPIX1", 0.0) - 1.0, _number(cards, "CRPIX2", 0.0) - 1.0]),
        cd=cd,
    )
    return tan if distortion is None else distortion[1](tan, cards, key)


@lru_cache(maxsize=256)
def _tan_wcs_of(key: WcsCards) -> TanWcs | DistortedTanWcs | None:
    """:func:`_tan_wcs` of a header's WCS cards, cached.

    The sky frame is checked first (:func:`check_sky_frame`; every card it reads is a WCS card).
    The bands of one alert almost always share one WCS: it is then checked and built once.
    Rejections are exceptions, which ``lru_cache`` does not store, so they are raised anew.
    """
    cards = {k: v for k, _, v in key}
    check_sky_frame(cards)
    return _tan_wcs(cards, key)


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


def _astropy_wcs(cards: Mapping[str, Any], header_text: str, key: WcsCards) -> AstropyWcs:
    try:
        wcs = fast_astropy_wcs(cards, header_text)
        if wcs is None:
            with warnings.catch_warnings(), _astropy_quiet():
                # Non-standard survey keywords make astropy warn; the WCS is checked below.
                warnings.simplefilter("ignore")
                wcs = WCS(fits.Header.fromstring(header_text), naxis=2)
                # Set up now, so that the shared object is only read afterwards.
                wcs.wcs.set()
    except Exception as exc:  # wcslib rejects malformed WCS keywords in many ways
        raise AlertRejected("cutout.no_wcs", f"unusable WCS: {exc!r}"[:300]) from exc
    if not wcs.has_celestial or wcs.naxis != 2:
        raise AlertRejected("cutout.no_wcs", "no celestial (RA/Dec) WCS in the header")
    return AstropyWcs(wcs, grid_id=key)


class _AstropyCache:
    """Bounded LRU of astropy WCSs keyed by the header's WCS cards (failures are not kept)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[WcsCards, AstropyWcs] = {}
        self.builds = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: WcsCards, cards: Mapping[str, Any], header_text: str) -> AstropyWcs:
        """The WCS for ``key``, built from the header when not kept."""
        wcs = self._items.pop(key, None)
        if wcs is None:
            wcs = _astropy_wcs(cards, header_text, key)
            self.builds += 1
            if len(self._items) >= self.size:
                del self._items[next(iter(self._items))]  # least recently used
        self._items[key] = wcs  # (re)inserted last: most recently used
        return wcs


#: The process-wide cache (decoding runs on one thread per process).
ASTROPY_CACHE = _AstropyCache(ASTROPY_CACHE_SIZE)


def cutout_wcs(cards: Mapping[str, Any], header_text: str) -> CutoutWcs:
    """The celestial WCS of a cutout header.

    Parameters
    ----------
    cards : mapping
        Parsed header keywords (see :func:`lenscast.consumer.cutouts_fits.parse_cards`).
    header_text : str
        The raw header, for the astropy path.

    Raises
    ------
    AlertRejected
        ``cutout.sky_frame`` for celestial coordinates other than ICRS / FK5 J2000 RA/Dec;
        ``cutout.no_wcs`` when there is no usable two-axis celestial WCS.
    """
    key = wcs_cards(cards)
    tan = _tan_wcs_of(key)
    if tan is not None:
        return tan
    return ASTROPY_CACHE.get(key, cards, header_text)

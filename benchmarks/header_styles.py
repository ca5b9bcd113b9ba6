"""Sample packets whose cutout headers are written in the styles real producers write.

The same pixels and the same sky mapping as the shipped sample cutouts, with the WCS written as:

``ours``
    lenscast's own writer (:func:`lenscast.tools.alert_encoding.cutout_header`): ``WCSAXES``,
    ``CTYPE``, ``CUNIT``, ``CRVAL``, ``CRPIX``, a ``CD`` matrix, ``RADESYS``.
``astropy``
    astropy's ``WCS.to_header()`` of a WCS built with ``CDELT``, and an observation date:
    ``CDELT`` (with ``PC`` when rotated), ``LONPOLE``, ``LATPOLE``, ``MJDREF``, ``DATE-OBS``,
    ``MJD-OBS``, ``RADESYS``.
``survey``
    the CD-matrix style of survey pipelines (LSST, HSC): an empty primary HDU and the image in an
    ``IMAGE`` extension, ``CD`` matrix, ``EQUINOX`` 2000, ``RADESYS``, IRAF ``LTV``/``LTM`` and
    an alternate pixel WCS ``A`` (``CTYPE1A = 'LINEAR'``) giving the parent-image position.
``sip``
    a distorted TAN (``RA---TAN-SIP``, ZTF style) with second-order ``A``/``B`` and inverse
    ``AP``/``BP`` polynomials: the NumPy TAN-SIP path. The coefficients (below 1e-3 pixel of
    distortion over a cutout) differ from alert to alert, as a real stream's do from exposure
    to exposure, so that no alert finds another's WCS in the consumer's caches.
``tpv``
    a TAN with a ``TPV`` polynomial (``RA---TPV``, as SCAMP writes for DES-like pipelines): the
    NumPy TPV path, with a ``PV1_4`` term (far below a pixel) that differs from alert to alert
    in the same way.
``zea``
    a zenithal equal-area projection (``RA---ZEA``, as HiPS cutout services write it on
    request): no NumPy path, so every alert builds its own wcslib WCS
    (:mod:`lenscast.consumer.cutouts_wcs_wcslib`): ``CRPIX1`` moves by at most 1e-4 pixel from
    alert to alert, so that no alert finds another's. The worst case, a stream whose every alert
    takes the slow path. Over a 64-pixel cutout ZEA and TAN differ by ~1e-14 rad.
"""

from __future__ import annotations

import functools
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from fastavro import schemaless_reader

from lenscast.consumer.alert_schema import schema_for_id
from lenscast.consumer.cutouts_fits import read_cutout
from lenscast.consumer.framing import read_alert_file, unframe_wire
from lenscast.tools.alert_encoding import encode_record

SAMPLE = Path(__file__).resolve().parents[1] / "consumer" / "samples" / "hsc-sample.avro"
STYLES = ("ours", "astropy", "survey", "sip", "tpv", "zea")
#: The card ``distinct`` rewrites per alert, its base value and its relative step per alert,
#: by style.
_DISTINCT_CARD = {
    "sip": ("A_2_0", 1.0e-7, 1.0e-4),
    "tpv": ("PV1_4", 1.0e-5, 1.0e-4),
    "zea": ("CRPIX1", 32.5, 1.0e-11),
}
_CARD = 80


def _read(stamp: bytes) -> tuple[fits.Header, np.ndarray]:
    with fits.open(io.BytesIO(stamp)) as hdus:
        return hdus[0].header.copy(), np.asarray(hdus[0].data).copy()


def _bytes(hdus: fits.HDUList) -> bytes:
    buffer = io.BytesIO()
    hdus.writeto(buffer)
    return buffer.getvalue()


def _non_wcs(header: fits.Header) -> list[tuple[str, object, str]]:
    """The cards of ``header`` that are not its WCS (units, zeropoint, filter)."""
    keep = ("BUNIT", "MAGZERO", "FLUXMAG0", "FILTER")
    return [(k, header[k], header.comments[k]) for k in keep if k in header]


def _astropy(header: fits.Header, data: np.ndarray) -> bytes:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = [header["CTYPE1"], header["CTYPE2"]]
    wcs.wcs.crval = [header["CRVAL1"], header["CRVAL2"]]
    wcs.wcs.crpix = [header["CRPIX1"], header["CRPIX2"]]
    cd = np.array([[header.get(f"CD{i}_{j}", 0.0) for j in (1, 2)] for i in (1, 2)])
    cdelt = np.array([cd[0, 0], cd[1, 1]])
    wcs.wcs.cdelt = cdelt
    wcs.wcs.pc = cd / cdelt[:, None]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.dateobs = "2026-12-02T06:00:00"
    wcs.wcs.mjdobs = 61011.25
    out = fits.Header()
    out.extend(wcs.to_header(), update=True)
    for key, value, comment in _non_wcs(header):
        out[key] = (value, comment)
    return _bytes(fits.HDUList([fits.PrimaryHDU(data=data, header=out)]))


def _survey(header: fits.Header, data: np.ndarray) -> bytes:
    ext = fits.Header()
    for key in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CUNIT1", "CUNIT2"):
        ext[key] = header[key]
    for i in (1, 2):
        for j in (1, 2):
            ext[f"CD{i}_{j}"] = header.get(f"CD{i}_{j}", 0.0)
    ext["EQUINOX"] = 2000.0
    ext["RADESYS"] = "ICRS"
    # Where the cutout sits in its parent (patch) image: IRAF keywords and an alternate WCS.
    x0, y0 = 1811.0, 2413.0
    ext["LTV1"], ext["LTV2"], ext["LTM1_1"], ext["LTM2_2"] = -x0, -y0, 1.0, 1.0
    ext["WCSNAMEA"] = "PIXEL"
    for axis, origin in ((1, x0), (2, y0)):
        ext[f"CTYPE{axis}A"] = "LINEAR"
        ext[f"CRPIX{axis}A"] = 1.0
        ext[f"CRVAL{axis}A"] = origin
        ext[f"CUNIT{axis}A"] = "PIXEL"
    ext["MJD-OBS"] = 61011.25
    ext["EXTTYPE"] = "IMAGE"
    for key, value, comment in _non_wcs(header):
        ext[key] = (value, comment)
    primary = fits.PrimaryHDU()
    image = fits.ImageHDU(data=data, header=ext, name="IMAGE")
    return _bytes(fits.HDUList([primary, image]))


def _sip(header: fits.Header, data: np.ndarray) -> bytes:
    out = header.copy()
    out["CTYPE1"], out["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    coefficients = {"A_2_0": 1.0e-7, "A_1_1": -2.0e-7, "A_0_2": 1.5e-7,
                    "B_2_0": -1.0e-7, "B_1_1": 1.2e-7, "B_0_2": 2.0e-7}  # fmt: skip
    out["A_ORDER"], out["B_ORDER"] = 2, 2
    for key, value in coefficients.items():
        out[key] = value
    out["AP_ORDER"], out["BP_ORDER"] = 2, 2
    for key, value in coefficients.items():  # inverse to first order
        out[key.replace("_", "P_", 1)] = -value
    return _bytes(fits.HDUList([fits.PrimaryHDU(data=data, header=out)]))


def _tpv(header: fits.Header, data: np.ndarray) -> bytes:
    out = header.copy()
    out["CTYPE1"], out["CTYPE2"] = "RA---TPV", "DEC--TPV"
    # Identity linear terms plus one small quadratic term per axis (degrees).
    for axis in (1, 2):
        out[f"PV{axis}_0"] = 0.0
        out[f"PV{axis}_1"] = 1.0
        out[f"PV{axis}_2"] = 0.0
    out["PV1_4"], out["PV2_4"] = 1.0e-5, -1.0e-5
    return _bytes(fits.HDUList([fits.PrimaryHDU(data=data, header=out)]))


def _zea(header: fits.Header, data: np.ndarray) -> bytes:
    out = header.copy()
    if out["CRPIX1"] != _DISTINCT_CARD["zea"][1]:
        raise ValueError("the zea style expects the sample's reference pixel")
    out["CTYPE1"], out["CTYPE2"] = "RA---ZEA", "DEC--ZEA"
    return _bytes(fits.HDUList([fits.PrimaryHDU(data=data, header=out)]))


def restyle(stamp: bytes, style: str) -> bytes:
    """The cutout ``stamp`` (written by lenscast) with its header in ``style``."""
    if style == "ours":
        return stamp
    header, data = _read(stamp)
    if style == "astropy":
        return _astropy(header, data)
    if style == "survey":
        return _survey(header, data)
    if style == "sip":
        return _sip(header, data)
    if style == "tpv":
        return _tpv(header, data)
    if style == "zea":
        return _zea(header, data)
    raise ValueError(f"unknown header style {style!r}; known: {', '.join(STYLES)}")


def distinct(stamp: bytes, style: str, index: int) -> bytes:
    """``stamp`` made distinct for alert ``index`` where the style needs it (``sip``, ``tpv``,
    ``zea``).

    One card (``A_2_0``, ``PV1_4``, ``CRPIX1``) is rewritten in place (same card length), a
    change of at most ~1e-4 pixel over a 64-pixel cutout.
    """
    if style not in _DISTINCT_CARD:
        return stamp
    keyword, base, step = _DISTINCT_CARD[style]
    at = stamp.find(f"{keyword:<8}=".encode())
    if at < 0 or at % _CARD:
        raise ValueError(f"no {keyword} card in a {style}-style cutout")
    value = base * (1.0 + math.fmod(index * step, 1.0))
    card = f"{keyword:<8}= {value:20.13E}".ljust(_CARD).encode()
    return stamp[:at] + card + stamp[at + _CARD :]


@functools.lru_cache(maxsize=len(STYLES))
def sample_records(style: str = "ours") -> tuple[tuple[int, dict[str, Any]], ...]:
    """The sample stream's records, cutout headers rewritten in ``style`` (once per style)."""
    records = []
    for raw in read_alert_file(SAMPLE):
        schema_id, payload = unframe_wire(raw)
        schema = schema_for_id(schema_id)
        assert schema is not None
        record = schemaless_reader(io.BytesIO(payload), schema.parsed)
        cutouts = [{**c, "stampData": restyle(c["stampData"], style)} for c in record["cutouts"]]
        records.append((schema.version, {**record, "cutouts": cutouts}))
    return tuple(records)


def rekeyed_packets(n: int, run_id: str, style: str = "ours") -> list[bytes]:
    """``n`` wire-format packets cycling through the sample stream, each with a unique alert id.

    ``style`` is how the cutout headers write their WCS (:mod:`header_styles`).
    """
    records = sample_records(style)
    out = []
    for i in range(n):
        version, record = records[i % len(records)]
        cutouts = [
            {**c, "stampData": distinct(c["stampData"], style, i)} for c in record["cutouts"]
        ]
        fields = {**record, "alertId": f"bench-{run_id}-{i:07d}", "cutouts": cutouts}
        out.append(encode_record(fields, schema_version=version))
    return out


def wcs_path(style: str) -> str:
    """Which WCS class the consumer builds for the first cutout of ``style``."""
    stamp = sample_records(style)[0][1]["cutouts"][0]["stampData"]
    return type(read_cutout(stamp, max_bytes=1 << 24, max_pixels=1 << 20).wcs).__name__

"""Decode one raw alert message into a validated :class:`~.alert.LensCandidateAlert`.

:func:`decode_alert` accepts the bytes of one Kafka message (or one archived message): the
Confluent wire format, or an Avro container file holding exactly one record (ZTF's framing; use
:func:`lenscast.consumer.framing.split_container` for archives of many). Every failure, for any
input bytes, is an :class:`~lenscast.consumer.alert.AlertRejected` with a dotted reason code and,
once the Avro record decoded, the alert id. Reason codes:

=============================  ==========================================================
``framing.empty``              zero-length message
``framing.unknown_magic``      neither wire-format byte 0 nor container magic ``Obj\\x01``
``framing.truncated``          wire header shorter than 5 bytes, container cut short
``framing.unknown_schema_id``  wire schema id not a shipped version (LSST's 700, 1100, ...)
``framing.wrong_schema``       container written with a foreign schema (e.g. a ZTF alert)
``framing.bad_container``      malformed container metadata or blocks
``framing.unsupported_codec``  container codec other than null/deflate
``framing.compression_bomb``   container block inflating past the bound
``framing.container_records``  container with zero or several records
``packet.too_large``           message larger than ``max_packet_bytes``
``avro.truncated``             Avro record runs past the end of the message
``avro.invalid``               bytes that are not a record of the schema
``avro.trailing_bytes``        bytes left after the record (likely another schema)
``avro.too_many_entries``      arrays holding more entries than ``max_entries`` (a decoding DoS)
``alert.bad_id``               empty, over-long or non-printable alertId / candidateId
``alert.bad_position``         ra/dec not finite or outside [0, 360) x [-90, 90]
``alert.bad_mjd``              mjd not finite or outside the accepted range
``alert.bad_provenance``       provenance strings over-long or non-printable
``alert.position_mismatch``    ra/dec far from the centre of the cutouts' WCS
``redshift.out_of_range``      a redshift not finite or outside (0, max_redshift]
``redshift.bad_error``         an error that is negative, non-finite or without its value
``redshift.order``             zSource <= zLens
``transient.bad_value``        non-finite or out-of-range diaSource fields
``transient.outside_cutout``   diaSource farther than ``max_transient_offset_arcsec`` from the
                               cutout centre (it may lie outside the cutout within that radius)
``cutout.*``                   see :mod:`.cutouts` and :mod:`.cutouts_fits`
``decode.internal_error``      a decoder bug (never expected; fuzz tests check this)
=============================  ==========================================================
"""

from __future__ import annotations

import io
import math
from typing import Any

from fastavro import schemaless_reader

from lenscast.consumer.alert import AlertRejected, LensCandidateAlert, Provenance, Transient
from lenscast.consumer.alert_schema import schema_for_id
from lenscast.consumer.avro_bounds import check_entries
from lenscast.consumer.cutouts import StandardCutouts, standardise_cutouts
from lenscast.consumer.decode_settings import DecodeSettings
from lenscast.consumer.framing import Framing, detect_framing, split_container, unframe_wire

#: Accepted MJD range, days (1941-07-18 .. 2132-09-01): catches unit and epoch mix-ups.
MJD_RANGE = (30000.0, 100000.0)
_MAX_ID_CHARS = 256
_MAX_BAND_CHARS = 16


DEFAULT_SETTINGS = DecodeSettings()


def _printable_id(value: Any) -> str | None:
    """The alert id to put on a rejection: only a valid one (it is stored, e.g. as text)."""
    ok = isinstance(value, str) and 0 < len(value) <= _MAX_ID_CHARS and value.isprintable()
    return value if ok else None


def _check_text(value: Any, what: str, reason: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_ID_CHARS:
        raise AlertRejected(reason, f"{what} must be 1-{_MAX_ID_CHARS} characters: {value!r}"[:300])
    if not value.isprintable():
        raise AlertRejected(reason, f"{what} has non-printable characters: {value!r}"[:300])
    return value


def _finite(value: Any, what: str, reason: str, low: float, high: float) -> float:
    if not isinstance(value, float | int) or not math.isfinite(value) or not low <= value <= high:
        raise AlertRejected(reason, f"{what} = {value!r} not a finite number in [{low}, {high}]")
    return float(value)


def _redshifts(record: dict[str, Any], settings: DecodeSettings) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, key in (("z_lens", "zLens"), ("z_source", "zSource")):
        value, err = record[key], record[f"{key}Err"]
        if value is not None and not (
            math.isfinite(value) and 0.0 < value <= settings.max_redshift
        ):
            raise AlertRejected("redshift.out_of_range", f"{key} = {value!r}")
        if err is not None and (value is None or not math.isfinite(err) or err < 0.0):
            raise AlertRejected("redshift.bad_error", f"{key}Err = {err!r} with {key} = {value!r}")
        out[name], out[f"{name}_err"] = value, err
    z_lens, z_source = out["z_lens"], out["z_source"]
    if z_lens is not None and z_source is not None and z_source <= z_lens:
        raise AlertRejected("redshift.order", f"zSource {z_source} <= zLens {z_lens}")
    return out


def _transient(
    dia: dict[str, Any] | None, cube: StandardCutouts, settings: DecodeSettings
) -> Transient | None:
    if dia is None:
        return None
    ra = _finite(dia["ra"], "diaSource.ra", "transient.bad_value", 0.0, 360.0)
    dec = _finite(dia["dec"], "diaSource.dec", "transient.bad_value", -90.0, 90.0)
    mjd = _finite(dia["midpointMjdTai"], "diaSource.mjd", "transient.bad_value", *MJD_RANGE)
    flux = _finite(dia["psfFlux"], "diaSource.psfFlux", "transient.bad_value", -math.inf, math.inf)
    flux_err = dia.get("psfFluxErr")
    if flux_err is not None:
        flux_err = _finite(flux_err, "diaSource.psfFluxErr", "transient.bad_value", 0.0, math.inf)
    band = dia["band"]
    if not band or len(band) > _MAX_BAND_CHARS or not band.isprintable():
        raise AlertRejected("transient.bad_value", f"diaSource.band {band!r}"[:100])
    try:
        x, y = cube.offsets_arcsec(ra, dec)
    except Exception as exc:  # wcslib may fail to invert a distorted WCS far off the image
        raise AlertRejected("transient.outside_cutout", f"cannot place it: {exc!r}"[:300]) from exc
    reach = settings.max_transient_offset_arcsec
    if not math.hypot(x, y) <= reach:
        detail = f'at ({x:.2f}, {y:.2f})", more than {reach:g}" from the cutout centre'
        raise AlertRejected("transient.outside_cutout", detail)
    return Transient(
        dia_source_id=int(dia["diaSourceId"]),
        ra=ra,
        dec=dec,
        mjd=mjd,
        band=band,
        flux=flux,
        x_arcsec=x,
        y_arcsec=y,
        flux_err=flux_err,
    )


def _read_record(raw: bytes, settings: DecodeSettings) -> tuple[dict[str, Any], str]:
    """Unframe and Avro-decode ``raw``; return the record and its schema version."""
    if len(raw) > settings.max_packet_bytes:
        raise AlertRejected("packet.too_large", f"{len(raw)} bytes > {settings.max_packet_bytes}")
    if detect_framing(raw) is Framing.CONTAINER:
        # One alert's record cannot exceed the packet bound once inflated either.
        messages = split_container(
            raw,
            max_bytes=settings.max_packet_bytes,
            max_block_bytes=settings.max_packet_bytes,
            max_entries=settings.max_entries,
        )
        if len(messages) != 1:
            raise AlertRejected(
                "framing.container_records",
                f"{len(messages)} records in one message; archives go through split_container",
            )
        raw = messages[0]
    schema_id, payload = unframe_wire(raw)
    schema = schema_for_id(schema_id)
    if schema is None:
        hint = " (an LSST alert_packet id?)" if schema_id >= 300 else ""
        raise AlertRejected("framing.unknown_schema_id", f"schema id {schema_id}{hint}")
    check_entries(payload, 0, schema.parsed, settings.max_entries)
    stream = io.BytesIO(payload)
    try:
        record = schemaless_reader(stream, schema.parsed, None)
    except (EOFError, StopIteration) as exc:
        raise AlertRejected("avro.truncated", str(exc)[:300]) from exc
    except Exception as exc:  # hostile bytes: any decoder failure means "not this schema"
        raise AlertRejected("avro.invalid", repr(exc)[:300]) from exc
    if not isinstance(record, dict):
        raise AlertRejected("avro.invalid", "record did not decode to a mapping")
    if stream.tell() != len(payload):
        extra = len(payload) - stream.tell()
        detail = f"{extra} bytes after the record"
        raise AlertRejected("avro.trailing_bytes", detail, _printable_id(record.get("alertId")))
    return record, schema.version


def _validate(record: dict[str, Any], version: str, settings: DecodeSettings) -> LensCandidateAlert:
    alert_id = _check_text(record["alertId"], "alertId", "alert.bad_id")
    candidate_id = _check_text(record["candidateId"], "candidateId", "alert.bad_id")
    assert alert_id is not None
    assert candidate_id is not None
    ra = _finite(record["ra"], "ra", "alert.bad_position", 0.0, 360.0)
    dec = _finite(record["dec"], "dec", "alert.bad_position", -90.0, 90.0)
    mjd = _finite(record["mjd"], "mjd", "alert.bad_mjd", *MJD_RANGE)
    prov = record["provenance"]
    survey = _check_text(prov["survey"], "provenance.survey", "alert.bad_provenance")
    assert survey is not None
    broker, upstream = (
        _check_text(prov[key], f"provenance.{key}", "alert.bad_provenance", optional=True)
        for key in ("broker", "upstreamAlertId")
    )
    provenance = Provenance(survey=survey, broker=broker, upstream_alert_id=upstream)
    redshifts = _redshifts(record, settings)
    cube = standardise_cutouts(record["cutouts"], settings)
    try:
        dx, dy = cube.offsets_arcsec(ra, dec)
    except Exception as exc:  # wcslib may fail to invert a distorted WCS far off the image
        detail = f"ra/dec off the WCS: {exc!r}"[:300]
        raise AlertRejected("alert.position_mismatch", detail) from exc
    offset_pix = math.hypot(dx, dy) / cube.pixel_scale_arcsec
    if not offset_pix <= settings.max_centre_offset_pix:
        raise AlertRejected(
            "alert.position_mismatch", f"ra/dec {offset_pix:.2f} px from the cutout centre"
        )
    return LensCandidateAlert(
        alert_id=alert_id,
        candidate_id=candidate_id,
        ra=ra,
        dec=dec,
        mjd=mjd,
        cutouts=cube.pixels,
        pixel_scale_arcsec=cube.pixel_scale_arcsec,
        z_lens=redshifts["z_lens"],
        z_lens_err=redshifts["z_lens_err"],
        z_source=redshifts["z_source"],
        z_source_err=redshifts["z_source_err"],
        transient=_transient(record["diaSource"], cube, settings),
        provenance=provenance,
        schema_version=version,
        sky_frame=cube,
    )


def decode_alert(raw: bytes, *, settings: DecodeSettings | None = None) -> LensCandidateAlert:
    """Decode and validate one alert message.

    Parameters
    ----------
    raw : bytes
        One message: Confluent wire format, or an Avro container file with one record.
    settings : DecodeSettings, optional
        Limits and the input contract; :data:`DEFAULT_SETTINGS` when omitted.

    Returns
    -------
    LensCandidateAlert
        Cutouts as float32 ``(4, 64, 64)`` griz, zeropoint 27, north up east left.

    Raises
    ------
    AlertRejected
        For any input that is not a valid alert (reason codes in the module docstring), with
        ``alert_id`` set whenever the Avro record decoded. No other exception escapes.
    """
    settings = DEFAULT_SETTINGS if settings is None else settings
    alert_id: str | None = None
    try:
        record, version = _read_record(bytes(raw), settings)
        alert_id = _printable_id(record.get("alertId"))
        return _validate(record, version, settings)
    except AlertRejected as exc:
        if exc.alert_id is None:
            exc.alert_id = alert_id
        raise
    except Exception as exc:  # a decoder bug must still become a rejection, never a crash
        raise AlertRejected("decode.internal_error", repr(exc)[:300], alert_id) from exc

"""Malformed and foreign alerts: each kind ends in AlertRejected with its specific reason.

Every case starts from a valid alert and breaks one thing, so a test fails for the reason it
names and not for another. Foreign packets (LSST wire-format alerts, a ZTF-style container) are
built with realistic schemas so that "the wrong topic" is exercised, not just random bytes.
"""

from __future__ import annotations

import copy
import gzip
import io
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from harness.foreign_alerts import lsst_payload, ztf_style_container
from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.decoding import DecodeSettings, decode_alert
from lenscast.consumer.framing import frame_wire, split_container
from lenscast.tools.alert_encoding import (
    TransientSpec,
    build_record,
    cutout_fits,
    cutout_header,
    encode_record,
    write_container,
)

RA, DEC = 150.0, 2.0


def _images(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 0.1, (4, 64, 64)).astype(np.float32)


def _record(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "alert_id": "alert-1",
        "candidate_id": "cand-1",
        "ra": RA,
        "dec": DEC,
        "mjd": 61000.25,
        "images": _images(),
        "z_lens": 0.5,
        "z_source": 2.0,
        "transient": TransientSpec(42, 1.0, -0.5, 61000.2, "i", 1500.0),
    }
    fields.update(overrides)
    return build_record(**fields)


VALID = _record()


def _fits(image: np.ndarray | None = None, *, drop: tuple[str, ...] = (), **cards: Any) -> bytes:
    """A cutout with header changes: ``cards`` set keywords, ``drop`` removes them."""
    data = np.ones((64, 64), np.float32) if image is None else image
    header = cutout_header(shape=data.shape, ra=RA, dec=DEC, pixel_scale_arcsec=0.168, band="g")
    for key in drop:
        del header[key]
    for key, value in cards.items():
        header[key] = value
    buffer = io.BytesIO()
    fits.PrimaryHDU(data=data.astype(">f4"), header=header).writeto(buffer)
    return buffer.getvalue()


def _with_cutout(stamp: bytes, band: str = "r") -> dict[str, Any]:
    record = copy.deepcopy(VALID)
    for cutout in record["cutouts"]:
        if cutout["band"] == band:
            cutout["stampData"] = stamp
    return record


def _reason(raw: bytes, settings: DecodeSettings | None = None) -> AlertRejected:
    with pytest.raises(AlertRejected) as info:
        decode_alert(raw, settings=settings)
    return info.value


def test_valid_alert_decodes() -> None:
    alert = decode_alert(encode_record(VALID))
    assert alert.alert_id == "alert-1"
    assert alert.transient is not None


# --- framing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "framing.empty"),
        (b"\x01\x00\x00\x00d", "framing.unknown_magic"),
        (b'{"alertId": 1}', "framing.unknown_magic"),
        (b"SIMPLE  =                    T", "framing.unknown_magic"),
        (b"\x00\x00\x00", "framing.truncated"),
        (b"\x00\x00\x00\x00\x64", "avro.truncated"),
        (b"Obj\x01", "framing.truncated"),
        (b"Obj\x01\x02\x00", "framing.truncated"),
    ],
)
def test_framing_reasons(raw: bytes, reason: str) -> None:
    assert _reason(raw).reason == reason


def test_unknown_schema_id() -> None:
    raw = encode_record(VALID)
    exc = _reason(frame_wire(101, raw[5:]))
    assert exc.reason == "framing.unknown_schema_id"


@pytest.mark.parametrize("schema_id", [700, 800, 1100])
def test_lsst_wire_alert_is_unknown_schema_id(schema_id: int) -> None:
    stamp = cutout_fits(np.zeros((30, 30), np.float32), ra=RA, dec=DEC, band="r")
    payload = lsst_payload(schema_id // 100, stamp, source_id=170028131516743681, ra=RA, dec=DEC)
    exc = _reason(frame_wire(schema_id, payload))
    assert exc.reason == "framing.unknown_schema_id"
    assert str(schema_id) in exc.detail


def test_ztf_style_container_is_wrong_schema() -> None:
    """ZTF puts one Avro container per message, with its own schema and gzipped cutouts."""
    stamp = gzip.compress(cutout_fits(np.zeros((63, 63), np.float32), ra=RA, dec=DEC, band="r"))
    exc = _reason(ztf_style_container(stamp))
    assert exc.reason == "framing.wrong_schema"
    assert "ztf" in exc.detail


def test_container_with_several_records_needs_splitting() -> None:
    buffer = io.BytesIO()
    write_container([VALID, _record(alert_id="alert-2")], buffer)
    assert _reason(buffer.getvalue()).reason == "framing.container_records"
    assert [decode_alert(m).alert_id for m in split_container(buffer.getvalue())] == [
        "alert-1",
        "alert-2",
    ]


def test_container_with_unsupported_codec() -> None:
    buffer = io.BytesIO()
    write_container([VALID], buffer, codec="null")
    data = bytearray(buffer.getvalue())
    # Same length as "deflate": swap the codec name in the metadata.
    at = data.index(b"null", data.index(b"avro.codec"))
    data[at : at + 4] = b"lzma"
    assert _reason(bytes(data)).reason == "framing.unsupported_codec"


def test_container_deflate_bomb_is_bounded() -> None:
    """A container block that inflates past the packet bound is refused, not inflated."""
    buffer = io.BytesIO()
    write_container([VALID], buffer, codec="deflate")
    raw = buffer.getvalue()
    with pytest.raises(AlertRejected) as info:
        split_container(raw, max_block_bytes=10_000)
    assert info.value.reason == "framing.compression_bomb"


def test_single_message_container_bomb_is_bounded_by_the_packet_limit() -> None:
    """A small deflated container whose record inflates past max_packet_bytes is refused."""
    record = copy.deepcopy(VALID)
    record["cutouts"].append({"band": "y", "stampData": bytes(8 * 2**20)})
    buffer = io.BytesIO()
    write_container([record], buffer, codec="deflate")
    assert len(buffer.getvalue()) < 200_000
    assert _reason(buffer.getvalue()).reason == "framing.compression_bomb"


def test_container_sync_marker_corrupted() -> None:
    buffer = io.BytesIO()
    write_container([VALID], buffer, codec="null")
    data = bytearray(buffer.getvalue())
    data[-1] ^= 0xFF
    assert _reason(bytes(data)).reason == "framing.bad_container"


# --- packet and Avro -------------------------------------------------------------------------


def test_packet_too_large() -> None:
    raw = encode_record(VALID)
    exc = _reason(raw, DecodeSettings(max_packet_bytes=len(raw) - 1))
    assert exc.reason == "packet.too_large"


def test_truncated_avro_keeps_no_id() -> None:
    raw = encode_record(VALID)
    exc = _reason(raw[: len(raw) // 2])
    assert exc.reason == "avro.truncated"


def test_trailing_bytes() -> None:
    exc = _reason(encode_record(VALID) + b"\x00\x00")
    assert exc.reason == "avro.trailing_bytes"
    assert exc.alert_id == "alert-1"


def test_huge_declared_string_length() -> None:
    # alertId's length varint claims ~2**62 bytes.
    raw = frame_wire(100, b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f" + b"x" * 10)
    assert _reason(raw).reason in {"avro.truncated", "avro.invalid"}


# --- alert fields ----------------------------------------------------------------------------


def _mutated(change: Callable[[dict[str, Any]], None]) -> bytes:
    record = copy.deepcopy(VALID)
    change(record)
    return encode_record(record)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r.update(alertId=""), "alert.bad_id"),
        (lambda r: r.update(alertId="x" * 300), "alert.bad_id"),
        (lambda r: r.update(alertId="bad\x00id"), "alert.bad_id"),
        (lambda r: r.update(candidateId="\n"), "alert.bad_id"),
        (lambda r: r.update(ra=float("nan")), "alert.bad_position"),
        (lambda r: r.update(dec=91.0), "alert.bad_position"),
        (lambda r: r.update(mjd=2460000.5), "alert.bad_mjd"),
        (lambda r: r.update(mjd=float("inf")), "alert.bad_mjd"),
        (lambda r: r.update(zLens=-0.1), "redshift.out_of_range"),
        (lambda r: r.update(zSource=float("nan")), "redshift.out_of_range"),
        (lambda r: r.update(zSource=1e6), "redshift.out_of_range"),
        (lambda r: r.update(zLens=2.5), "redshift.order"),
        (lambda r: r.update(zLensErr=-1.0), "redshift.bad_error"),
        (lambda r: r.update(zSource=None, zSourceErr=0.1), "redshift.bad_error"),
        (lambda r: r["provenance"].update(survey=""), "alert.bad_provenance"),
        (lambda r: r.update(ra=RA + 0.01), "alert.position_mismatch"),
        (lambda r: r["diaSource"].update(psfFlux=float("nan")), "transient.bad_value"),
        (lambda r: r["diaSource"].update(midpointMjdTai=-5.0), "transient.bad_value"),
        (lambda r: r["diaSource"].update(band=""), "transient.bad_value"),
        (lambda r: r["diaSource"].update(ra=RA + 0.01), "transient.outside_cutout"),
        (lambda r: r["diaSource"].update(dec=-DEC), "transient.outside_cutout"),
    ],
)
def test_field_reasons(change: Callable[[dict[str, Any]], None], reason: str) -> None:
    exc = _reason(_mutated(change))
    assert exc.reason == reason
    if reason != "alert.bad_id":
        assert exc.alert_id == "alert-1"  # the id is on every rejection after the Avro decoded


def test_non_printable_id_is_not_put_on_the_rejection() -> None:
    exc = _reason(_mutated(lambda r: r.update(alertId="bad\x00id")))
    assert exc.alert_id is None


# --- cutouts ---------------------------------------------------------------------------------


def test_missing_band() -> None:
    exc = _reason(_mutated(lambda r: r.update(cutouts=r["cutouts"][:3])))
    assert (exc.reason, exc.alert_id) == ("cutout.missing_band", "alert-1")
    assert "z" in exc.detail


def test_duplicate_band() -> None:
    exc = _reason(_mutated(lambda r: r["cutouts"].append(r["cutouts"][0])))
    assert exc.reason == "cutout.duplicate_band"


def test_extra_bands_are_ignored() -> None:
    extra = {"band": "y", "stampData": b"not even FITS"}
    alert = decode_alert(_mutated(lambda r: r["cutouts"].append(extra)))
    assert alert.cutouts.shape == (4, 64, 64)


#: Ignored entries a 4 MiB packet can declare (three bytes each); decoding them took seconds.
MANY_ENTRIES = 1_000_000


def test_a_million_ignored_cutout_entries_are_refused_before_decoding() -> None:
    junk = [{"band": "", "stampData": b""}] * MANY_ENTRIES
    raw = _mutated(lambda r: r["cutouts"].extend(junk))
    exc = _reason(raw)
    assert exc.reason == "avro.too_many_entries"
    container = io.BytesIO()
    write_container([{**VALID, "cutouts": [*VALID["cutouts"], *junk]}], container, codec="null")
    with pytest.raises(AlertRejected) as in_container:
        split_container(container.getvalue())
    assert in_container.value.reason == "avro.too_many_entries"


def test_entries_up_to_the_bound_decode() -> None:
    extra = [{"band": "y", "stampData": b""}] * (DecodeSettings().max_entries - 4)
    assert decode_alert(_mutated(lambda r: r["cutouts"].extend(extra))).alert_id == "alert-1"
    exc = _reason(_mutated(lambda r: r["cutouts"].extend([*extra, extra[0]])))
    assert exc.reason == "avro.too_many_entries"


def _bad_axes(naxis1: int, naxis2: int, naxis: int = 2) -> bytes:
    data = bytearray(_fits())
    for key, value in (("NAXIS   ", naxis), ("NAXIS1  ", naxis1), ("NAXIS2  ", naxis2)):
        at = data.index(key.encode())
        data[at : at + 30] = f"{key}= {value:20d}".encode()
    return bytes(data)


def _gzip_bomb(size: int) -> bytes:
    """A valid-looking gzipped FITS whose data section is ``size`` bytes of zeros."""
    header = _fits()[:2880]
    return gzip.compress(header + b"\x00" * size, compresslevel=9)


def _card_swap(old: bytes, new: bytes) -> bytes:
    data = _fits()
    at = data.index(old)
    return data[:at] + new.ljust(80) + data[at + 80 :]


CUTOUT_CASES = [
        (b"", "cutout.not_fits"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "cutout.not_fits"),
        (b"SIMPLE  =                    T" + b" " * 50 + b"NAXIS = 2" * 5, "cutout.not_fits"),
        (_fits()[:2880], "cutout.truncated"),
        (_fits()[:4000], "cutout.truncated"),
        (_bad_axes(10**9, 10**9), "cutout.bad_header"),
        (_bad_axes(60000, 60000), "cutout.too_large"),
        (_bad_axes(-64, 64), "cutout.bad_header"),
        (_bad_axes(64, 64, naxis=3), "cutout.bad_shape"),
        (_bad_axes(64, 64, naxis=0), "cutout.bad_shape"),
        (_card_swap(b"BITPIX", b"BITPIX  =                   12"), "cutout.bad_header"),
        (_card_swap(b"NAXIS1", b"NAXIS1  = 'sixty-four'"), "cutout.bad_header"),
        (_card_swap(b"SIMPLE", b"SIMPLE  =                    F"), "cutout.not_fits"),
        (_fits()[:2880].replace(b"END     ", b"XEND    ") * 200, "cutout.not_fits"),
        (_fits(np.ones((32, 32), np.float32)), "cutout.bad_shape"),
        (_fits(np.full((64, 64), np.nan, np.float32)), "cutout.non_finite"),
        (_fits(np.where(np.eye(64) > 0, np.inf, 1.0).astype(np.float32)), "cutout.non_finite"),
        (_card_swap(b"FILTER", b"BSCALE  =               1E+308"), "cutout.non_finite"),
        (_fits(drop=("BUNIT",)), "cutout.units"),
        (_fits(BUNIT="erg/s/cm2/A"), "cutout.units"),
        (_fits(BUNIT="mag"), "cutout.units"),
        (_fits(drop=("MAGZERO",)), "cutout.units"),
        (_fits(MAGZERO="27"), "cutout.units"),
        (_fits(FLUXMAG0=1.0e11), "cutout.units"),  # 27.5 mag, disagrees with MAGZERO 27
        (_fits(BUNIT="nJy"), "cutout.units"),  # nJy means 31.4, MAGZERO says 27
        (_fits(drop=("CTYPE1", "CTYPE2")), "cutout.no_wcs"),
        (_fits(CD1_1=0.0), "cutout.no_wcs"),
        (_fits(CTYPE1="RA---XYZ"), "cutout.no_wcs"),
        (_fits(CRVAL2=123.0), "cutout.no_wcs"),
        (_fits(CTYPE1="GLON-TAN", CTYPE2="GLAT-TAN"), "cutout.sky_frame"),
        (_fits(RADESYS="FK4", EQUINOX=1950.0), "cutout.sky_frame"),
        (_fits(CTYPE1="ELON-TAN", CTYPE2="ELAT-TAN"), "cutout.sky_frame"),
        (_fits(CD1_1=-0.168 / 3600 * 2), "cutout.pixel_scale"),
        (_fits(CD1_2=0.168 / 3600 * 0.3), "cutout.orientation"),
        (_fits(CRPIX1=33.5), "cutout.misaligned"),
        (_gzip_bomb(50 * 2**20), "cutout.gzip_bomb"),
        (gzip.compress(_fits())[:-20], "cutout.bad_gzip"),
        (b"\x1f\x8b" + b"\x00" * 50, "cutout.bad_gzip"),
        (gzip.compress(_fits()) + b"junk", "cutout.bad_gzip"),
        (b"SIMPLE  =" + b"\xff" * 3000, "cutout.not_fits"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("stamp", "reason"),
    CUTOUT_CASES,
    ids=[f"{i:02d}-{reason}" for i, (_, reason) in enumerate(CUTOUT_CASES)],
)
def test_cutout_reasons(stamp: bytes, reason: str) -> None:
    exc = _reason(encode_record(_with_cutout(stamp)))
    assert exc.reason == reason, exc.detail
    assert exc.alert_id == "alert-1"
    assert "band r" in exc.detail


def test_cutout_too_large_in_bytes() -> None:
    settings = DecodeSettings(max_cutout_bytes=20_000)
    exc = _reason(encode_record(_with_cutout(_fits(np.ones((80, 80), np.float32)))), settings)
    assert exc.reason == "cutout.too_large"


def test_non_ascii_header() -> None:
    stamp = _fits().replace(b"FILTER  = 'g", b"FILTER  = '\xe9")
    assert _reason(encode_record(_with_cutout(stamp))).reason == "cutout.bad_header"


def test_integer_cutout_with_blank_pixels() -> None:
    header = cutout_header(shape=(64, 64), ra=RA, dec=DEC, pixel_scale_arcsec=0.168, band="r")
    header["BLANK"] = -32768
    data = np.ones((64, 64), ">i2")
    data[3, 3] = -32768
    buffer = io.BytesIO()
    fits.PrimaryHDU(data=data, header=header).writeto(buffer)
    exc = _reason(encode_record(_with_cutout(buffer.getvalue())))
    assert exc.reason == "cutout.non_finite"


def test_rejection_detail_is_bounded() -> None:
    exc = _reason(_mutated(lambda r: r.update(alertId="\x01" * 256)))
    assert len(exc.detail) <= 1000


def test_wrong_avro_type_in_container_record() -> None:
    """A container whose writer schema is ours but whose block holds garbage."""
    buffer = io.BytesIO()
    write_container([VALID], buffer, codec="null")
    data = bytearray(buffer.getvalue())
    # Overwrite the start of the record (after header + count/size varints) with junk.
    start = data.index(b"alert-1") - 1
    data[start : start + 8] = struct.pack(">Q", 0xFFFFFFFFFFFFFFFF)
    assert _reason(bytes(data)).reason in {"avro.invalid", "avro.truncated"}


@pytest.mark.parametrize(
    ("x", "y", "accepted"),
    [
        (6.0, 0.0, True),  # beyond the 5.4" half-width of the cutout
        (-9.0, 9.0, True),  # 12.7": off the corner, within 3 x 5"
        (14.9, 0.0, True),
        (0.0, -15.2, False),
        (12.0, 12.0, False),  # 17"
    ],
)
def test_a_transient_beside_the_cutout_is_accepted_out_to_its_reach(
    x: float, y: float, accepted: bool
) -> None:
    from lenscast.consumer.decode_settings import TRANSIENT_REACH_THETA_E
    from lenscast.consumer.decoding import DEFAULT_SETTINGS

    assert DEFAULT_SETTINGS.max_transient_offset_arcsec == 3 * 5.0 == TRANSIENT_REACH_THETA_E * 5
    raw = encode_record(_record(transient=TransientSpec(42, x, y, 61000.2, "i", 1500.0)))
    if accepted:
        transient = decode_alert(raw).transient
        assert transient is not None
        assert (transient.x_arcsec, transient.y_arcsec) == pytest.approx((x, y), abs=1e-6)
    else:
        exc = _reason(raw)
        assert exc.reason == "transient.outside_cutout"
        assert 'more than 15" from the cutout centre' in exc.detail

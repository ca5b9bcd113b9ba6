"""Fuzzing ``decode_alert``: for any bytes, only ``AlertRejected`` ever escapes.

Property-based (hypothesis) and seeded mutation fuzzing: random bytes behind each framing,
every truncation of a valid packet, bit flips and byte overwrites (spread over the packet and
concentrated on the Avro and FITS headers), schema-generated records with arbitrary field values
and card-level FITS header mutations. Beyond "nothing else escapes", a rejection must never be
``decode.internal_error`` (that would be a decoder bug caught by the last-resort handler), and
pytest turns any warning into an error, so a decoder that warns fails here too.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenscast.consumer.alert import AlertRejected, LensCandidateAlert
from lenscast.consumer.decoding import DecodeSettings, decode_alert
from lenscast.consumer.framing import frame_wire
from lenscast.tools.alert_encoding import TransientSpec, build_record, cutout_header, encode_record

RA, DEC = 33.0, -5.0
RECORD = build_record(
    alert_id="fuzz-1",
    candidate_id="cand",
    ra=RA,
    dec=DEC,
    mjd=61000.0,
    images=np.random.default_rng(3).normal(1.0, 0.2, (4, 64, 64)).astype(np.float32),
    z_lens=0.4,
    z_lens_err=0.02,
    z_source=1.7,
    transient=TransientSpec(9, -0.8, 1.1, 61000.0, "r", 800.0, 30.0),
    broker="fuzz",
    upstream_alert_id="up-1",
)
PACKET = encode_record(RECORD)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _decode_or_reject(
    raw: bytes, decode_settings: DecodeSettings | None = None
) -> LensCandidateAlert | AlertRejected:
    """Decode; a rejection is returned (and checked), anything else propagates and fails."""
    try:
        alert = decode_alert(raw, settings=decode_settings)
    except AlertRejected as exc:
        rejection = exc
    else:
        assert alert.cutouts.shape == (4, 64, 64)
        assert alert.cutouts.dtype == np.float32
        assert np.all(np.isfinite(alert.cutouts))
        return alert
    assert rejection.reason != "decode.internal_error", rejection.detail
    assert rejection.reason.count(".") == 1, rejection.reason
    assert len(rejection.detail) <= 1000
    return rejection


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(raw: bytes) -> None:
    assert isinstance(_decode_or_reject(raw), AlertRejected)


@FUZZ
@given(st.sampled_from([b"\x00\x00\x00\x00\x64", b"Obj\x01", b"\x00"]), st.binary(max_size=4096))
def test_random_bytes_behind_valid_magic(prefix: bytes, tail: bytes) -> None:
    _decode_or_reject(prefix + tail)


def test_every_truncation_is_rejected() -> None:
    cuts = sorted({*range(0, 600), *range(0, len(PACKET), 97)})
    for cut in cuts:
        result = _decode_or_reject(PACKET[:cut])
        assert isinstance(result, AlertRejected), cut


def test_seeded_bit_flips() -> None:
    rng = np.random.default_rng(20260101)
    header_end = PACKET.index(b"END     ") + 80  # first cutout's header: where flips matter most
    reasons: dict[str, int] = {}
    for trial in range(1000):
        data = bytearray(PACKET)
        hi = header_end if trial % 2 else len(data)
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, hi))] ^= 1 << int(rng.integers(0, 8))
        result = _decode_or_reject(bytes(data))
        key = result.reason if isinstance(result, AlertRejected) else "accepted"
        reasons[key] = reasons.get(key, 0) + 1
    # The flips must reach deep enough to exercise many distinct checks, not stop at framing.
    assert len(reasons) >= 8, reasons


def test_seeded_byte_overwrites() -> None:
    rng = np.random.default_rng(7)
    for _ in range(500):
        data = bytearray(PACKET)
        start = int(rng.integers(0, len(data)))
        junk = rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
        data[start : start + len(junk)] = junk
        _decode_or_reject(bytes(data))


_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_texts = st.text(max_size=300)


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    """Records valid for the Avro schema with arbitrary values (including hostile ones)."""
    record = copy.deepcopy(RECORD)
    record["alertId"] = draw(st.one_of(st.just("ok-id"), _texts))
    record["ra"] = draw(st.one_of(st.just(RA), _floats))
    record["dec"] = draw(st.one_of(st.just(DEC), _floats))
    record["mjd"] = draw(st.one_of(st.just(61000.0), _floats))
    for key in ("zLens", "zLensErr", "zSource", "zSourceErr"):
        record[key] = draw(st.one_of(st.none(), st.just(record[key]), _floats))
    if draw(st.booleans()):
        dia = record["diaSource"]
        dia["ra"] = draw(st.one_of(st.just(dia["ra"]), _floats))
        dia["psfFlux"] = draw(st.floats(width=32))
        dia["band"] = draw(_texts)
        dia["diaSourceId"] = draw(st.integers(-(2**63), 2**63 - 1))
    if draw(st.booleans()):
        record["diaSource"] = None
    cutouts = record["cutouts"]
    mode = draw(st.sampled_from(["keep", "drop", "bytes", "shuffle_bands", "dup"]))
    if mode == "drop":
        del cutouts[draw(st.integers(0, 3))]
    elif mode == "bytes":
        cutouts[draw(st.integers(0, 3))]["stampData"] = draw(st.binary(max_size=6000))
    elif mode == "shuffle_bands":
        for cutout in cutouts:
            cutout["band"] = draw(st.sampled_from(["g", "r", "i", "z", "y", "", "G"]))
    elif mode == "dup":
        cutouts.append(cutouts[0])
    record["provenance"]["survey"] = draw(st.one_of(st.just("HSC"), _texts))
    return record


@FUZZ
@given(_records())
def test_schema_generated_records(record: dict[str, Any]) -> None:
    _decode_or_reject(encode_record(record))


_CARD_VALUES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "T",
            "F",
            "'RA---TAN'",
            "'DEC--SIN'",
            "'nJy'",
            "''",
            "'",
            "1.0D+400",
            "x",
            "'RA---TAN-SIP'",
            "'DEC--TAN-SIP'",
            "'GLON-AIT'",
            "'arcsec'",
        ]
    ),
)
_KEYS = [
    "A_0_2", "B_ORDER", "LATPOLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "CTYPE1", "CTYPE2",
    "CRVAL1", "CRVAL2", "CRPIX1",
    "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "CDELT1", "PC1_2", "CROTA2", "BUNIT",
    "MAGZERO", "FLUXMAG0", "BSCALE", "BZERO", "BLANK", "PV2_1", "A_ORDER", "LONPOLE", "CUNIT1",
]  # fmt: skip


@pytest.mark.parametrize("resample", [False, True])
@settings(FUZZ, max_examples=80)
@given(st.lists(st.tuples(st.sampled_from(_KEYS), _CARD_VALUES), min_size=1, max_size=4))
def test_fits_header_card_mutations(resample: bool, changes: list[tuple[str, Any]]) -> None:
    """Rewrite header cards of one cutout with arbitrary values (raw text, not via astropy).

    With resampling allowed, hostile WCS values also reach the resampler (wcslib inversions).
    """
    header = cutout_header(shape=(64, 64), ra=RA, dec=DEC, pixel_scale_arcsec=0.168, band="i")
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.ones((64, 64), ">f4"), header).writeto(buffer)
    data = bytearray(buffer.getvalue())
    end = data.index(b"END     ")
    for key, value in changes:
        card = f"{key:<8}= {value!s:>20}".ljust(80)[:80].encode()
        at = data.find(f"{key:<8}=".encode(), 0, end)
        if at >= 0:
            data[at : at + 80] = card
        else:  # insert before END (the header has room in its 2880-byte block)
            data[end : end + 80] = card
            data[end + 80 : end + 160] = b"END".ljust(80)
            end += 80
    record = copy.deepcopy(RECORD)
    record["cutouts"][2]["stampData"] = bytes(data)
    _decode_or_reject(encode_record(record), DecodeSettings(allow_resample=resample))


@pytest.mark.parametrize("schema_id", [0, 99, 101, 200, 700, 1100, 2**32 - 1])
def test_other_schema_ids(schema_id: int) -> None:
    result = _decode_or_reject(frame_wire(schema_id, PACKET[5:]))
    assert isinstance(result, AlertRejected)
    assert result.reason == "framing.unknown_schema_id"

"""Hostile lens-candidate packets: many kinds of malformed or foreign input, each with its reason.

Every kind starts from a **real** packet of the shipped sample stream
(``consumer/samples/hsc-sample.avro``) and breaks one thing, so the rejection it must end in is
known in advance: :func:`hostile_stream` returns ``(kind, expected_reason, bytes)`` triples, and
the reliability tests assert that the consumer stored each packet in ``rejected_alerts`` with
exactly that reason. Kinds that take a random ingredient (a cut point, random bytes, an unknown
schema id, where the NaN pixels go) draw it from a seeded generator, so a failing packet can be
rebuilt from its index.

The same module makes the valid alerts of the crash, outage, rebalance and soak tests by
re-keying the sample packets with new alert ids (:func:`valid_stream`): decoding 40 records
once and re-encoding them with another id costs ~0.5 ms per alert, against ~50 ms for a fresh
FITS + Avro alert.

The expensive part of a kind (writing a broken FITS stamp with astropy) is done once per
variant; per packet only the alert id changes.
"""

from __future__ import annotations

import copy
import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import fastavro
import numpy as np
from astropy.io import fits

from harness.foreign_alerts import lsst_payload, named_schema_container, ztf_style_container
from harness.paths import ROOT
from lenscast.consumer.alert_schema import known_versions, load_schema, registry_id
from lenscast.consumer.framing import frame_wire, read_alert_file, unframe_wire
from lenscast.tools.alert_encoding import encode_record, write_container

SAMPLE_STREAM = ROOT / "consumer" / "samples" / "hsc-sample.avro"
#: Registry ids the decoder knows; an "unknown schema id" packet must avoid them.
KNOWN_IDS = frozenset(registry_id(v) for v in known_versions())

Record = dict[str, Any]
#: The packet size limit the stream is built for: the consumer under test runs with
#: ``LENSCAST_MAX_PACKET_BYTES`` set to it (the default, 4 MiB, would make the oversized
#: packets 4 MiB each).
MAX_PACKET_BYTES = 2**20


# -- the real packets everything starts from --------------------------------------------------


@cache
def sample_records() -> tuple[Record, ...]:
    """The 40 records of the shipped sample stream, decoded once (treat as read-only)."""
    schema = load_schema()
    out = []
    for message in read_alert_file(SAMPLE_STREAM):
        schema_id, payload = unframe_wire(message)
        assert schema_id == schema.registry_id
        out.append(fastavro.schemaless_reader(io.BytesIO(payload), schema.parsed, None))
    return tuple(out)


def rekeyed(record: Record, alert_id: str) -> bytes:
    """``record`` as a wire-format packet under another alert id (cutouts shared, not copied)."""
    return encode_record({**record, "alertId": alert_id})


def valid_stream(
    n: int, *, prefix: str, malformed_every: int = 0, start: int = 0
) -> Iterator[tuple[str | None, bytes]]:
    """``n`` packets: sample alerts re-keyed ``{prefix}-{i:07d}``, some malformed.

    Parameters
    ----------
    n : int
        Packets to yield.
    prefix : str
        Alert-id prefix (unique per test, so ids never collide across tests).
    malformed_every : int
        Every ``malformed_every``-th packet is a cheap hostile packet (0: none).
    start : int
        Index of the first packet (to extend a stream).

    Yields
    ------
    (alert_id or None, bytes)
        ``None`` for a malformed packet (it must end in ``rejected_alerts``).
    """
    records = sample_records()
    cheap = [k for k in KINDS if k.cheap]
    for i in range(start, start + n):
        if malformed_every and i % malformed_every == malformed_every - 1:
            kind = cheap[(i // malformed_every) % len(cheap)]
            yield None, kind.build(np.random.default_rng([7, i]), f"{prefix}-bad-{i:07d}")
            continue
        alert_id = f"{prefix}-{i:07d}"
        yield alert_id, rekeyed(records[i % len(records)], alert_id)


# -- FITS stamp surgery -----------------------------------------------------------------------


@cache
def _smooth_record() -> Record:
    """The first sample alert with smooth pixels in gzipped stamps (headers and WCS kept).

    Hostile packets are built on it: ~10 kB instead of ~80 kB, because every rejected packet
    is stored with its raw bytes and 10,000 full-size ones would spend most of the test in
    PostgreSQL writing 800 MB of ``bytea``. gzipped FITS is a framing the decoder must read
    anyway (ZTF's), so the path through it is exercised, not bypassed.
    """
    record = dict(sample_records()[0])
    cutouts = []
    axis = np.arange(64) - 31.5
    blob = 50.0 * np.exp(-0.5 * (axis[None, :] ** 2 + axis[:, None] ** 2) / 4.0**2) + 1.0
    for cutout in record["cutouts"]:
        with fits.open(io.BytesIO(cutout["stampData"])) as hdul:
            header = hdul[0].header.copy()
        buffer = io.BytesIO()
        fits.PrimaryHDU(data=blob.astype(">f4"), header=header).writeto(buffer)
        cutouts.append({**cutout, "stampData": gzip.compress(buffer.getvalue(), mtime=0)})
    record["cutouts"] = cutouts
    return record


def _base() -> Record:
    return _smooth_record()


@cache
def _stamp_hdu() -> tuple[fits.Header, np.ndarray]:
    """Header and pixels of the first band's stamp of the base record."""
    stamp = gzip.decompress(_base()["cutouts"][0]["stampData"])
    with fits.open(io.BytesIO(stamp)) as hdul:
        return hdul[0].header.copy(), np.array(hdul[0].data, dtype=np.float32)


def _stamp(data: np.ndarray | None = None, *, drop: tuple[str, ...] = (), **cards: Any) -> bytes:
    """The first band's stamp rewritten with ``cards`` set, ``drop`` removed, other pixels."""
    header, pixels = _stamp_hdu()
    header = header.copy()
    for key in drop:
        del header[key]
    for key, value in cards.items():
        header[key] = value
    buffer = io.BytesIO()
    image = pixels if data is None else data
    fits.PrimaryHDU(data=image.astype(">f4"), header=header).writeto(buffer)
    return buffer.getvalue()


@cache
def _plain_stamp() -> bytes:
    """The base record's first stamp, uncompressed."""
    return _stamp()


def _set_card(stamp: bytes, key: str, value: str) -> bytes:
    """Overwrite the 80-byte card ``key`` in place (for values astropy refuses to write)."""
    data = bytearray(stamp)
    at = data.index(key.ljust(8).encode() + b"=")
    data[at : at + 80] = f"{key:<8}= {value:>20}".ljust(80).encode()
    return bytes(data)


def _with_stamp(stamp: bytes, band_index: int = 0) -> Record:
    record = copy.copy(_base())
    cutouts = [dict(c) for c in record["cutouts"]]
    cutouts[band_index]["stampData"] = stamp
    record["cutouts"] = cutouts
    return record


def _with(**fields: Any) -> Record:
    return {**_base(), **fields}


def _with_dia(**fields: Any) -> Record:
    base = next(r for r in sample_records() if r["diaSource"] is not None)
    return {**base, "diaSource": {**base["diaSource"], **fields}}


def _with_provenance(**fields: Any) -> Record:
    return {**_base(), "provenance": {**_base()["provenance"], **fields}}


# -- foreign packets: LSST and ZTF alerts on the wrong topic -----------------------------------


def _lsst_payload(major: int, rng: np.random.Generator) -> bytes:
    base = _base()
    source_id = int(rng.integers(1, 2**62))
    return lsst_payload(major, _plain_stamp(), source_id=source_id, ra=base["ra"], dec=base["dec"])


@cache
def _ztf_container() -> bytes:
    """A ZTF-style alert: one Avro container per message, its own schema, gzipped cutouts."""
    return ztf_style_container(gzip.compress(_plain_stamp()))


def _container(records: list[Record], codec: str = "null") -> bytes:
    buffer = io.BytesIO()
    write_container(records, buffer, codec=codec)
    return buffer.getvalue()


# -- the kinds ----------------------------------------------------------------------------------

Builder = Callable[[np.random.Generator, str], bytes]


@dataclass(frozen=True)
class Kind:
    """One kind of hostile packet.

    Attributes
    ----------
    name : str
        What is wrong with it.
    reason : str
        The rejection reason code it must end in (:mod:`lenscast.consumer.decoding`).
    build : callable
        ``build(rng, alert_id) -> bytes``.
    weight : int
        Relative frequency in :func:`hostile_stream` (large packets get a small weight).
    cheap : bool
        Small packet, cheap to decode (used to salt the valid streams).
    """

    name: str
    reason: str
    build: Builder
    weight: int = 10
    cheap: bool = False


def _record_kind(name: str, reason: str, make: Callable[[], Record], weight: int = 10) -> Kind:
    """A kind whose packet is a fixed broken record under a fresh alert id."""
    cached = cache(make)
    return Kind(name, reason, lambda _rng, alert_id: rekeyed(cached(), alert_id), weight)


def _bad_id_kind(name: str, alert_id: str) -> Kind:
    """A kind whose alert id itself is the fault (so it is not replaced by a fresh one)."""
    return Kind(name, "alert.bad_id", lambda _rng, _id: encode_record(_with(alertId=alert_id)))


def _random_bytes(rng: np.random.Generator, _id: str) -> bytes:
    raw = rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes()
    # Byte 0 must not be a valid magic (0 = wire format, "O" = container): those are other kinds.
    first = int(rng.integers(1, 256))
    first = first if first != ord("O") else 1
    return bytes([first]) + raw


def _truncated_avro(rng: np.random.Generator, alert_id: str) -> bytes:
    raw = rekeyed(_base(), alert_id)
    # Cut inside the cutouts (past the ids, before the last field), where the reader runs dry.
    return raw[: int(rng.integers(200, len(raw) - 200))]


def _unknown_schema_id(rng: np.random.Generator, alert_id: str) -> bytes:
    raw = rekeyed(_base(), alert_id)
    while (schema_id := int(rng.integers(0, 2**31))) in KNOWN_IDS:
        pass
    return frame_wire(schema_id, raw[5:])


def _lsst_wire(rng: np.random.Generator, _id: str) -> bytes:
    major = int(rng.choice([7, 8, 9, 10, 11]))
    return frame_wire(major * 100, _lsst_payload(major, rng))


def _random_behind_magic(rng: np.random.Generator, _id: str) -> bytes:
    n = int(rng.integers(1, 5))
    return b"\x00" + rng.integers(0, 256, n - 1, dtype=np.uint8).tobytes()


def _gzip_bomb_stamp() -> bytes:
    header, _ = _stamp_hdu()
    head = fits.PrimaryHDU(data=np.zeros((64, 64), ">f4"), header=header.copy())
    first = io.BytesIO()
    head.writeto(first)
    # A valid header followed by 64 MiB of zeros: ~65 kB compressed.
    return gzip.compress(first.getvalue()[:2880] + b"\x00" * (64 * 2**20), compresslevel=9)


def _nan_pixels(rng: np.random.Generator, alert_id: str) -> bytes:
    _, pixels = _stamp_hdu()
    bad = pixels.copy()
    n = int(rng.integers(1, 20))
    rows, cols = rng.integers(0, 64, n), rng.integers(0, 64, n)
    bad[rows, cols] = rng.choice([np.nan, np.inf, -np.inf], n)
    return rekeyed(_with_stamp(_stamp(bad), band_index=int(rng.integers(0, 4))), alert_id)


def _non_fits_cutout(rng: np.random.Generator, alert_id: str) -> bytes:
    junk = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
    stamp = [b"", b"\x89PNG\r\n\x1a\n" + junk, b"GIF89a" + junk, junk.replace(b"\x1f", b"")][
        int(rng.integers(0, 4))
    ]
    if stamp.startswith(b"SIMPLE"):
        stamp = b"X" + stamp
    return rekeyed(_with_stamp(stamp, band_index=int(rng.integers(0, 4))), alert_id)


def _truncated_fits(rng: np.random.Generator, alert_id: str) -> bytes:
    stamp = _plain_stamp()
    # Cut between the header and the last pixel (a cut in the final padding loses nothing).
    end = 2880 + 64 * 64 * 4
    return rekeyed(_with_stamp(stamp[: int(rng.integers(2880, end))]), alert_id)


def _absurd_naxis(naxis1: int, naxis2: int, naxis: int = 2) -> Callable[[], Record]:
    def make() -> Record:
        stamp = _plain_stamp()
        for key, value in (("NAXIS", naxis), ("NAXIS1", naxis1), ("NAXIS2", naxis2)):
            stamp = _set_card(stamp, key, str(value))
        return _with_stamp(stamp)

    return make


def _missing_band(rng: np.random.Generator, alert_id: str) -> bytes:
    drop = int(rng.integers(0, 4))
    keep = [c for i, c in enumerate(_base()["cutouts"]) if i != drop]
    return rekeyed({**_base(), "cutouts": keep}, alert_id)


def _huge_declared_length(rng: np.random.Generator, _id: str) -> bytes:
    # alertId's zig-zag length varint claims up to ~2**62 bytes, followed by a little data.
    n = int(rng.integers(2**40, 2**62))
    varint = bytearray()
    zz = n << 1
    while zz >= 0x80:
        varint.append((zz & 0x7F) | 0x80)
        zz >>= 7
    varint.append(zz)
    return frame_wire(100, bytes(varint) + b"x" * int(rng.integers(0, 64)))


def _wrong_schema_same_id(rng: np.random.Generator, _id: str) -> bytes:
    """An LSST record under our schema id: the bytes cannot be a lens-candidate record."""
    return frame_wire(100, _lsst_payload(11, rng))


def _ztf_on_wrong_topic(_rng: np.random.Generator, _id: str) -> bytes:
    return _ztf_container()


def _container_two_records(_rng: np.random.Generator, alert_id: str) -> bytes:
    return _container([{**_base(), "alertId": alert_id}, {**_base(), "alertId": alert_id + "b"}])


def _container_bad_codec(_rng: np.random.Generator, alert_id: str) -> bytes:
    data = bytearray(_container([{**_base(), "alertId": alert_id}]))
    at = data.index(b"null", data.index(b"avro.codec"))
    data[at : at + 4] = b"lzma"
    return bytes(data)


def _container_bad_sync(_rng: np.random.Generator, alert_id: str) -> bytes:
    data = bytearray(_container([{**_base(), "alertId": alert_id}]))
    data[-1] ^= 0xFF
    return bytes(data)


@cache
def _container_bomb() -> bytes:
    # One record whose first stamp is 5 MiB of zeros: its deflate block is ~5 kB on the wire.
    record = _with_stamp(b"\x00" * (5 * 2**20))
    return _container([record], codec="deflate")


def _short_container(rng: np.random.Generator, _id: str) -> bytes:
    # The magic alone, or a metadata count with nothing after it.
    return (b"Obj\x01", b"Obj\x01\x02", b"Obj\x01\x02\x00", b"Obj\x01\x04\x00")[
        int(rng.integers(0, 4))
    ]


@cache
def _oversized() -> bytes:
    # Valid but for its size: an extra y band pushes it just past MAX_PACKET_BYTES.
    record = _with(candidateId="big")
    record["cutouts"] = [*record["cutouts"], {"band": "y", "stampData": b"\x00" * MAX_PACKET_BYTES}]
    return encode_record(record)


KINDS: tuple[Kind, ...] = (
    # framing
    Kind("empty message", "framing.empty", lambda _r, _i: b"", cheap=True),
    Kind("random bytes", "framing.unknown_magic", _random_bytes, cheap=True),
    Kind("JSON text", "framing.unknown_magic", lambda _r, i: b'{"alertId": "%s"}' % i.encode(),
         cheap=True),
    Kind("bare FITS file", "framing.unknown_magic",
         lambda _r, _i: _plain_stamp(), weight=3),
    Kind("wire header cut short", "framing.truncated", _random_behind_magic, cheap=True),
    Kind("unknown schema id", "framing.unknown_schema_id", _unknown_schema_id),
    Kind("LSST alert on the wrong topic", "framing.unknown_schema_id", _lsst_wire),
    Kind("ZTF alert on the wrong topic", "framing.wrong_schema", _ztf_on_wrong_topic, weight=5),
    Kind("container cut short", "framing.truncated", _short_container, cheap=True),
    Kind("container schema named with a NUL", "framing.wrong_schema",
         lambda _r, _i: named_schema_container("alert\x00"), cheap=True),
    Kind("container schema named with a lone surrogate", "framing.wrong_schema",
         lambda _r, _i: named_schema_container("alert", "\ud800"), cheap=True),
    Kind("container with two records", "framing.container_records", _container_two_records,
         weight=3),
    Kind("container with an unknown codec", "framing.unsupported_codec", _container_bad_codec,
         weight=3),
    Kind("container with a corrupt sync marker", "framing.bad_container", _container_bad_sync,
         weight=3),
    Kind("deflate bomb container", "framing.compression_bomb", lambda _r, _i: _container_bomb(),
         weight=2),
    Kind("packet over the size limit", "packet.too_large", lambda _r, _i: _oversized(), weight=1),
    # Avro
    Kind("Avro record cut short", "avro.truncated", _truncated_avro),
    Kind("bytes after the record", "avro.trailing_bytes",
         lambda r, i: rekeyed(_base(), i) + r.integers(1, 256, 3, dtype=np.uint8).tobytes()),
    Kind("huge declared string length", "avro.truncated", _huge_declared_length, cheap=True),
    Kind("another schema's record under our id", "avro.truncated", _wrong_schema_same_id),
    _record_kind("250,000 ignored cutout entries", "avro.too_many_entries",
                 lambda: _with(cutouts=[*_base()["cutouts"],
                                        *[{"band": "", "stampData": b""}] * 250_000]), weight=1),
    # alert fields
    _bad_id_kind("empty alert id", ""),
    _bad_id_kind("alert id with a NUL", "a\x00b"),
    _bad_id_kind("alert id of 300 characters", "x" * 300),
    _record_kind("NaN right ascension", "alert.bad_position", lambda: _with(ra=float("nan"))),
    _record_kind("declination 91", "alert.bad_position", lambda: _with(dec=91.0)),
    _record_kind("JD instead of MJD", "alert.bad_mjd", lambda: _with(mjd=2460000.5)),
    _record_kind("infinite MJD", "alert.bad_mjd", lambda: _with(mjd=float("inf"))),
    _record_kind("empty survey", "alert.bad_provenance", lambda: _with_provenance(survey="")),
    _record_kind("negative lens redshift", "redshift.out_of_range", lambda: _with(zLens=-0.1)),
    _record_kind("source redshift 1e6", "redshift.out_of_range",
                 lambda: _with(zLens=0.5, zSource=1e6)),
    _record_kind("NaN source redshift", "redshift.out_of_range",
                 lambda: _with(zLens=0.5, zSource=float("nan"))),
    _record_kind("source in front of the lens", "redshift.order",
                 lambda: _with(zLens=2.5, zSource=1.0)),
    _record_kind("negative redshift error", "redshift.bad_error",
                 lambda: _with(zLens=0.5, zLensErr=-1.0)),
    _record_kind("ra/dec off the cutout centre", "alert.position_mismatch",
                 lambda: _with(ra=_base()["ra"] + 0.01)),
    _record_kind("NaN transient flux", "transient.bad_value",
                 lambda: _with_dia(psfFlux=float("nan"))),
    _record_kind("transient outside the cutout", "transient.outside_cutout",
                 lambda: _with_dia(dec=_with_dia()["dec"] + 0.01)),
    # cutouts
    Kind("non-FITS cutout", "cutout.not_fits", _non_fits_cutout),
    Kind("FITS cut short", "cutout.truncated", _truncated_fits),
    _record_kind("NAXIS1 = NAXIS2 = 10^9", "cutout.bad_header", _absurd_naxis(10**9, 10**9)),
    _record_kind("60000 x 60000 pixels declared", "cutout.too_large", _absurd_naxis(60000, 60000)),
    _record_kind("negative NAXIS1", "cutout.bad_header", _absurd_naxis(-64, 64)),
    _record_kind("NAXIS = 3", "cutout.bad_shape", _absurd_naxis(64, 64, naxis=3)),
    _record_kind("BITPIX = 12", "cutout.bad_header",
                 lambda: _with_stamp(_set_card(_stamp(), "BITPIX", "12"))),
    _record_kind("header with no END", "cutout.not_fits",
                 lambda: _with_stamp(_stamp()[:2880].replace(b"END     ", b"XEND    ") * 101),
                 weight=3),
    _record_kind("gzip bomb cutout", "cutout.gzip_bomb",
                 lambda: _with_stamp(_gzip_bomb_stamp()), weight=3),
    _record_kind("corrupt gzip cutout", "cutout.bad_gzip",
                 lambda: _with_stamp(gzip.compress(_stamp())[:-20])),
    Kind("NaN/inf pixels", "cutout.non_finite", _nan_pixels),
    _record_kind("32 x 32 cutout", "cutout.bad_shape",
                 lambda: _with_stamp(_stamp(np.ones((32, 32), np.float32), CRPIX1=16.5,
                                            CRPIX2=16.5))),
    Kind("missing band", "cutout.missing_band", _missing_band),
    _record_kind("duplicate band", "cutout.duplicate_band",
                 lambda: _with(cutouts=[*_base()["cutouts"], _base()["cutouts"][1]])),
    _record_kind("no BUNIT", "cutout.units", lambda: _with_stamp(_stamp(drop=("BUNIT",)))),
    _record_kind("magnitudes, not flux", "cutout.units", lambda: _with_stamp(_stamp(BUNIT="mag"))),
    _record_kind("no celestial WCS", "cutout.no_wcs",
                 lambda: _with_stamp(_stamp(drop=("CTYPE1", "CTYPE2")))),
    _record_kind("galactic (GLON/GLAT) WCS", "cutout.sky_frame",
                 lambda: _with_stamp(_stamp(CTYPE1="GLON-TAN", CTYPE2="GLAT-TAN"))),
    _record_kind("pixel scale doubled", "cutout.pixel_scale",
                 lambda: _with_stamp(_stamp(CD1_1=2 * _stamp_hdu()[0]["CD1_1"],
                                            CD2_2=2 * _stamp_hdu()[0]["CD2_2"]))),
    _record_kind("rotated 17 degrees", "cutout.orientation",
                 lambda: _with_stamp(_stamp(CD1_2=0.3 * _stamp_hdu()[0]["CD2_2"]))),
)  # fmt: skip


def hostile_stream(n: int, *, prefix: str, seed: int = 0) -> Iterator[tuple[str, str, bytes]]:
    """``n`` hostile packets, the kinds in turn by weight: ``(kind name, reason, bytes)``.

    Parameters
    ----------
    n : int
        Packets to yield.
    prefix : str
        Alert-id prefix.
    seed : int
        Seed of the random ingredients (packet ``i`` uses ``default_rng([seed, i])``).
    """
    schedule = [k for k in KINDS for _ in range(k.weight)]
    order = np.random.default_rng(seed).permutation(len(schedule))
    for i in range(n):
        kind = schedule[order[i % len(schedule)]]
        rng = np.random.default_rng([seed, i])
        yield kind.name, kind.reason, kind.build(rng, f"{prefix}-{i:07d}")


def kind_count() -> int:
    """How many kinds :func:`hostile_stream` cycles through."""
    return len(KINDS)


__all__ = [
    "KINDS",
    "MAX_PACKET_BYTES",
    "Kind",
    "hostile_stream",
    "kind_count",
    "rekeyed",
    "sample_records",
    "valid_stream",
]

"""Malformed and foreign alert packets of many kinds, each with the reasons it must be rejected for.

For the reliability tests and benchmarks (issue 7: "hostile input"): a seeded stream of packets
that a lens-candidate topic may receive by mistake or malice — random and truncated bytes, wrong
framing, unknown schema ids, real-looking LSST and ZTF alerts, huge declared lengths, oversized
packets, non-FITS cutouts, FITS with absurd headers or NAXIS, gzip bombs, NaN/inf pixels, wrong
shapes, pixel scales and units, missing or duplicated bands, bad redshifts, ids and transients.
:func:`consumer.decoding.decode_alert` must reject each one with one of the listed reasons and
never crash.

Packets are small (gzip-compressed cutouts of smooth images, a few kB each) and generated lazily,
so ``iter_hostile_packets(100_000)`` costs little memory. Each packet whose Avro part is readable
has a unique alert id ``hostile-<seed>-<index>``.
"""

from __future__ import annotations

import copy
import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fastavro
import numpy as np

from consumer.alert_encoding import (
    TransientSpec,
    build_record,
    cutout_fits,
    encode_record,
    write_container,
)
from consumer.decoding import DEFAULT_SETTINGS
from consumer.framing import frame_wire
from model import parameter_spec as spec

_RA, _DEC = 150.0, 2.0
_AVRO_BROKEN = frozenset({"avro.truncated", "avro.invalid"})


@dataclass(frozen=True)
class HostilePacket:
    """One malformed packet.

    Attributes
    ----------
    kind : str
        What is wrong with it (a key of :data:`KINDS`).
    raw : bytes
        The message bytes.
    reasons : frozenset of str
        Rejection reasons that are correct for it (usually one).
    alert_id : str or None
        The alert id a rejection should carry (None when the Avro part is unreadable).
    """

    kind: str
    raw: bytes
    reasons: frozenset[str]
    alert_id: str | None


def _smooth_images() -> np.ndarray:
    q = (np.arange(spec.CUTOUT_SIZE_PIX) - (spec.CUTOUT_SIZE_PIX - 1) / 2) * 0.168
    r = np.hypot(*np.meshgrid(q, q))
    cube = np.stack([(1.0 + b) * np.exp(-r / 0.8) for b in range(4)])
    return np.round(cube * 64).astype(np.float32) / 64


def _fits_with(image: np.ndarray, **cards: Any) -> bytes:
    """A cutout with header cards changed (``None`` deletes one)."""
    raw = cutout_fits(image, ra=_RA, dec=_DEC, band="r")
    text = bytearray(raw)
    for key, value in cards.items():
        at = bytes(text).find(f"{key:<8}=".encode(), 0, 2880)
        card = (b"" if value is None else f"{key:<8}= {value:>20}".encode()).ljust(80)
        if at >= 0:
            text[at : at + 80] = card
        else:
            end = bytes(text).index(b"END     ")
            text[end : end + 160] = card + b"END".ljust(80)
    return bytes(text)


def _gzip_bomb(header: bytes, size: int) -> bytes:
    stream = io.BytesIO()
    with gzip.GzipFile(fileobj=stream, mode="wb", compresslevel=9, mtime=0) as out:
        out.write(header[:2880])
        chunk = b"\x00" * 2**20
        for _ in range(size // len(chunk)):
            out.write(chunk)
    return stream.getvalue()


def _bad_cutouts() -> dict[str, tuple[bytes, frozenset[str]]]:
    """Replacement ``stampData`` for one band, by kind (built once, reused)."""
    one = np.ones((64, 64), np.float32)
    nan = one.copy()
    nan[10, 20] = np.nan
    inf = one.copy()
    inf[5, 5] = np.inf
    base = cutout_fits(one, ra=_RA, dec=_DEC, band="r")
    cases: dict[str, tuple[bytes, str | frozenset[str]]] = {
        "cutout_not_fits": (b"\x89PNG\r\n\x1a\n" + bytes(200), "cutout.not_fits"),
        "cutout_empty": (b"", "cutout.not_fits"),
        "cutout_truncated": (base[:4000], "cutout.truncated"),
        "cutout_no_end": (base[:2880].replace(b"END     ", b"ENX     ") * 3, "cutout.not_fits"),
        "cutout_absurd_naxis": (_fits_with(one, NAXIS1=10**12, NAXIS2=10**12), "cutout.bad_header"),
        "cutout_huge_naxis": (_fits_with(one, NAXIS1=60000, NAXIS2=60000), "cutout.too_large"),
        "cutout_naxis3": (_fits_with(one, NAXIS=3), "cutout.bad_shape"),
        "cutout_bad_bitpix": (_fits_with(one, BITPIX=7), "cutout.bad_header"),
        "cutout_text_naxis": (_fits_with(one, NAXIS1="'many'"), "cutout.bad_header"),
        "cutout_gzip_bomb": (_gzip_bomb(base, 16 * 2**20), "cutout.gzip_bomb"),
        "cutout_bad_gzip": (gzip.compress(base, mtime=0)[:-30], "cutout.bad_gzip"),
        "cutout_nan": (cutout_fits(nan, ra=_RA, dec=_DEC, band="r"), "cutout.non_finite"),
        "cutout_inf": (cutout_fits(inf, ra=_RA, dec=_DEC, band="r"), "cutout.non_finite"),
        "cutout_wrong_shape": (
            cutout_fits(np.ones((32, 48), np.float32), ra=_RA, dec=_DEC, band="r"),
            "cutout.bad_shape",
        ),
        "cutout_wrong_scale": (
            cutout_fits(one, ra=_RA, dec=_DEC, band="r", pixel_scale_arcsec=0.2),
            "cutout.pixel_scale",
        ),
        # Rotated by 10 degrees at the right pixel scale: CD = s R(10 deg) diag(-1, 1).
        "cutout_rotated": (
            _fits_with(
                one, CD1_1=-4.5958e-05, CD1_2=-8.1036e-06, CD2_1=-8.1036e-06, CD2_2=4.5958e-05
            ),
            "cutout.orientation",
        ),  # fmt: skip
        "cutout_no_unit": (_fits_with(one, BUNIT=None), "cutout.units"),
        "cutout_unknown_unit": (_fits_with(one, BUNIT="'erg/s/cm2/A'"), "cutout.units"),
        "cutout_no_zeropoint": (_fits_with(one, MAGZERO=None), "cutout.units"),
        "cutout_no_wcs": (_fits_with(one, CTYPE1=None, CTYPE2=None), "cutout.no_wcs"),
        "cutout_bad_projection": (_fits_with(one, CTYPE1="'RA---QQQ'"), "cutout.no_wcs"),
        "cutout_misaligned": (_fits_with(one, CRPIX1=36.5), "cutout.misaligned"),
    }
    return {
        kind: (raw, frozenset([reason]) if isinstance(reason, str) else reason)
        for kind, (raw, reason) in cases.items()
    }


def _lsst_alert(schema_id: int) -> bytes:
    """A real-looking LSST alert_packet message (cut-down schema) with its registry id."""
    major = schema_id // 100
    schema = fastavro.parse_schema(
        {
            "type": "record", "name": "alert", "namespace": f"lsst.v{major}_0",
            "fields": [
                {"name": "diaSourceId", "type": "long"},
                {"name": "diaSource", "type": {
                    "type": "record", "name": "diaSource", "fields": [
                        {"name": "diaSourceId", "type": "long"},
                        {"name": "midpointMjdTai", "type": "double"},
                        {"name": "ra", "type": "double"}, {"name": "dec", "type": "double"},
                        {"name": "psfFlux", "type": ["null", "float"]},
                        {"name": "band", "type": ["null", "string"]}]}},
                {"name": "cutoutDifference", "type": ["null", "bytes"]},
            ],
        }
    )  # fmt: skip
    buffer = io.BytesIO()
    record = {
        "diaSourceId": 170028131516743681,
        "diaSource": {"diaSourceId": 170028131516743681, "midpointMjdTai": 60646.1,
                      "ra": _RA, "dec": _DEC, "psfFlux": 1234.0, "band": "r"},
        "cutoutDifference": cutout_fits(np.zeros((30, 30), np.float32), ra=_RA, dec=_DEC,
                                        band="r"),
    }  # fmt: skip
    fastavro.schemaless_writer(buffer, schema, record)
    return frame_wire(schema_id, buffer.getvalue())


def _ztf_alert() -> bytes:
    """A ZTF-style message: an Avro container file with ZTF's schema and gzipped cutouts."""
    schema = fastavro.parse_schema(
        {
            "type": "record", "name": "alert", "namespace": "ztf",
            "fields": [
                {"name": "schemavsn", "type": "string"}, {"name": "objectId", "type": "string"},
                {"name": "candid", "type": "long"},
                {"name": "cutoutScience", "type": ["null", {
                    "type": "record", "name": "cutout", "fields": [
                        {"name": "fileName", "type": "string"},
                        {"name": "stampData", "type": "bytes"}]}]},
            ],
        }
    )  # fmt: skip
    stamp = gzip.compress(
        cutout_fits(np.zeros((63, 63), np.float32), ra=_RA, dec=_DEC, band="r"), mtime=0
    )
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, sync_marker=b"ztf-sync-marker!", records=[{
        "schemavsn": "3.3", "objectId": "ZTF21aaaaaaa", "candid": 1234567890123456789,
        "cutoutScience": {"fileName": "candid1234_pid5678_targ_sci.fits.gz", "stampData": stamp},
    }])  # fmt: skip
    return buffer.getvalue()


Mutation = Callable[[dict[str, Any], np.random.Generator], tuple[frozenset[str], bool]]


def _field(change: Callable[[dict[str, Any]], None], reason: str) -> Mutation:
    def mutate(record: dict[str, Any], rng: np.random.Generator) -> tuple[frozenset[str], bool]:
        change(record)
        return frozenset([reason]), reason != "alert.bad_id"

    return mutate


#: Record-level kinds: change a valid record, then encode it (the Avro part stays readable).
RECORD_KINDS: dict[str, Mutation] = {
    "missing_band": _field(lambda r: r["cutouts"].pop(), "cutout.missing_band"),
    "duplicate_band": _field(
        lambda r: r["cutouts"].append(r["cutouts"][0]), "cutout.duplicate_band"
    ),
    "no_cutouts": _field(lambda r: r.update(cutouts=[]), "cutout.missing_band"),
    "z_negative": _field(lambda r: r.update(zLens=-0.3), "redshift.out_of_range"),
    "z_nan": _field(lambda r: r.update(zSource=float("nan")), "redshift.out_of_range"),
    "z_huge": _field(lambda r: r.update(zSource=1e9), "redshift.out_of_range"),
    "z_order": _field(lambda r: r.update(zLens=3.0, zSource=1.0), "redshift.order"),
    "z_error_negative": _field(lambda r: r.update(zLensErr=-0.1), "redshift.bad_error"),
    "mjd_jd": _field(lambda r: r.update(mjd=2460000.5), "alert.bad_mjd"),
    "position_nan": _field(lambda r: r.update(ra=float("nan")), "alert.bad_position"),
    "position_off_cutout": _field(lambda r: r.update(ra=_RA + 1.0), "alert.position_mismatch"),
    "id_empty": _field(lambda r: r.update(alertId=""), "alert.bad_id"),
    "id_control_chars": _field(lambda r: r.update(alertId="a\x00\x1b[2J"), "alert.bad_id"),
    "id_too_long": _field(lambda r: r.update(alertId="x" * 10000), "alert.bad_id"),
    "transient_outside": _field(
        lambda r: r["diaSource"].update(dec=_DEC + 0.01), "transient.outside_cutout"
    ),
    "transient_nan_flux": _field(
        lambda r: r["diaSource"].update(psfFlux=float("nan")), "transient.bad_value"
    ),
}

#: Wire-level kinds: bytes that are not a readable record of our schema.
WIRE_KINDS = (
    "empty", "random_bytes", "json_text", "short_header", "unknown_schema_id", "lsst_alert",
    "ztf_alert", "truncated_avro", "trailing_bytes", "huge_length", "bit_flipped_header",
    "too_large",
)  # fmt: skip


class _Factory:
    """Builds hostile packets from one valid base record."""

    def __init__(self, seed: int, max_packet_bytes: int) -> None:
        self.seed = seed
        self.max_packet_bytes = max_packet_bytes
        self.base = build_record(
            alert_id="base", candidate_id="hostile", ra=_RA, dec=_DEC, mjd=61000.0,
            images=_smooth_images(), z_lens=0.5, z_source=2.0, survey="hostile",
            transient=TransientSpec(1, 1.0, 1.0, 61000.0, "i", 100.0), compress=True,
        )  # fmt: skip
        self.cutouts = _bad_cutouts()
        self.lsst = {sid: _lsst_alert(sid) for sid in (700, 800, 1100)}
        self.ztf = _ztf_alert()
        self.kinds = [*RECORD_KINDS, *self.cutouts, *WIRE_KINDS]

    def record(self, index: int) -> dict[str, Any]:
        record = copy.copy(self.base)
        record["alertId"] = f"hostile-{self.seed}-{index}"
        record["cutouts"] = [dict(c) for c in self.base["cutouts"]]
        record["diaSource"] = dict(self.base["diaSource"])
        return record

    def packet(self, kind: str, index: int, rng: np.random.Generator) -> HostilePacket:
        record = self.record(index)
        alert_id = record["alertId"]
        if kind in RECORD_KINDS:
            reasons, keeps_id = RECORD_KINDS[kind](record, rng)
            return HostilePacket(
                kind, encode_record(record), reasons, alert_id if keeps_id else None
            )
        if kind in self.cutouts:
            stamp, reasons = self.cutouts[kind]
            band = int(rng.integers(1, 4)) if kind != "cutout_misaligned" else 3
            record["cutouts"][band]["stampData"] = stamp
            return HostilePacket(kind, encode_record(record), reasons, alert_id)
        raw, reasons = self._wire(kind, encode_record(record), rng)
        return HostilePacket(kind, raw, reasons, None)

    def _wire(
        self, kind: str, valid: bytes, rng: np.random.Generator
    ) -> tuple[bytes, frozenset[str]]:
        one = frozenset
        if kind == "empty":
            return b"", one(["framing.empty"])
        if kind == "random_bytes":
            raw = rng.integers(0, 256, int(rng.integers(1, 3000)), dtype=np.uint8).tobytes()
            raw = bytes([int(rng.integers(1, 256)) & 0xFE | 0x02]) + raw  # never 0x00 or 'O'
            return raw, one(["framing.unknown_magic"])
        if kind == "json_text":
            return b'{"alertId": "x", "ra": 1.0}', one(["framing.unknown_magic"])
        if kind == "short_header":
            return b"\x00" + bytes(int(rng.integers(0, 4))), one(["framing.truncated"])
        if kind == "unknown_schema_id":
            schema_id = int(rng.choice([0, 1, 99, 101, 200, 2**32 - 1]))
            return frame_wire(schema_id, valid[5:]), one(["framing.unknown_schema_id"])
        if kind == "lsst_alert":
            return self.lsst[int(rng.choice(list(self.lsst)))], one(["framing.unknown_schema_id"])
        if kind == "ztf_alert":
            return self.ztf, one(["framing.wrong_schema"])
        if kind == "truncated_avro":
            return valid[: int(rng.integers(5, len(valid) - 1))], _AVRO_BROKEN
        if kind == "trailing_bytes":
            return valid + bytes(int(rng.integers(1, 64))), one(["avro.trailing_bytes"])
        if kind == "huge_length":
            return frame_wire(
                100, b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f" + valid[6:50]
            ), _AVRO_BROKEN
        if kind == "bit_flipped_header":
            data = bytearray(valid)
            data[int(rng.integers(5, 40))] ^= 0xFF
            # A flip in the ids or numbers may still decode; only require "not a crash".
            return bytes(data), frozenset()
        if kind == "too_large":
            return valid + bytes(self.max_packet_bytes + 1 - len(valid)), one(["packet.too_large"])
        raise KeyError(kind)


def iter_hostile_packets(
    n: int,
    *,
    seed: int = 0,
    kinds: tuple[str, ...] | None = None,
    max_packet_bytes: int = DEFAULT_SETTINGS.max_packet_bytes,
) -> Iterator[HostilePacket]:
    """Yield ``n`` hostile packets, cycling through the kinds in a seeded random order.

    Parameters
    ----------
    n : int
        Number of packets.
    seed : int
        Makes the stream reproducible; part of the alert ids.
    kinds : tuple of str, optional
        Restrict to these kinds (default: all, see :func:`hostile_kinds`).
    max_packet_bytes : int
        The consumer's packet bound; ``too_large`` packets are one byte longer. (Kafka's own
        default message limit is 1 MB: lower the consumer's bound, or raise the broker's.)

    Yields
    ------
    HostilePacket
        ``reasons`` is empty only for ``bit_flipped_header``, where any rejection (or even an
        accepted alert, if the flip hit a free-text field) is correct.
    """
    rng = np.random.default_rng(seed)
    factory = _Factory(seed, max_packet_bytes)
    chosen = list(kinds or factory.kinds)
    for index in range(n):
        if index % len(chosen) == 0:
            rng.shuffle(chosen)
        yield factory.packet(chosen[index % len(chosen)], index, rng)


def hostile_kinds() -> tuple[str, ...]:
    """All kinds :func:`iter_hostile_packets` produces."""
    return (*RECORD_KINDS, *_bad_cutouts(), *WIRE_KINDS)


def hostile_container(path: Any, n: int, *, seed: int = 0) -> int:
    """Write the record-level and cutout kinds (valid Avro, invalid alerts) to a container file.

    Useful for ``lenscast process`` / ``replay`` runs; returns the number of records written.
    """
    factory = _Factory(seed, DEFAULT_SETTINGS.max_packet_bytes)
    kinds = [*RECORD_KINDS, *factory.cutouts]
    rng = np.random.default_rng(seed)

    def records() -> Iterator[dict[str, Any]]:
        for index in range(n):
            kind = kinds[index % len(kinds)]
            record = factory.record(index)
            if kind in RECORD_KINDS:
                RECORD_KINDS[kind](record, rng)
            else:
                record["cutouts"][int(rng.integers(1, 4))]["stampData"] = factory.cutouts[kind][0]
            yield record

    return write_container(records(), path)

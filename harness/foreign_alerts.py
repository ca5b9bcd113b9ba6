"""Alert packets of other surveys, for the tests that check they are refused by name."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro


def ztf_style_container(stamp: bytes) -> bytes:
    """A ZTF-style alert: one Avro container per message with its own schema.

    ``stamp`` is the (gzipped, as ZTF ships them) science cutout.
    """
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "alert",
            "namespace": "ztf",
            "fields": [
                {"name": "schemavsn", "type": "string"},
                {"name": "publisher", "type": "string"},
                {"name": "objectId", "type": "string"},
                {"name": "candid", "type": "long"},
                {
                    "name": "cutoutScience",
                    "type": [
                        "null",
                        {
                            "type": "record",
                            "name": "cutout",
                            "fields": [
                                {"name": "fileName", "type": "string"},
                                {"name": "stampData", "type": "bytes"},
                            ],
                        },
                    ],
                },
            ],
        }
    )
    buffer = io.BytesIO()
    fastavro.writer(
        buffer,
        schema,
        [
            {
                "schemavsn": "3.3", "publisher": "ZTF (www.ztf.caltech.edu)",
                "objectId": "ZTF18abcdefg", "candid": 1234567890123456789,
                "cutoutScience": {"fileName": "candid_pid_sci.fits.gz", "stampData": stamp},
            }
        ],
    )  # fmt: skip
    return buffer.getvalue()


def _lsst_schema(major: int) -> Any:
    """A cut-down LSST alert_packet schema (the fields that matter for a wrong-topic packet)."""
    dia_source = {
        "type": "record",
        "name": "diaSource",
        "namespace": f"lsst.v{major}_0",
        "fields": [
            {"name": "diaSourceId", "type": "long"},
            {"name": "visit", "type": "long"},
            {"name": "detector", "type": "int"},
            {"name": "midpointMjdTai", "type": "double"},
            {"name": "ra", "type": "double"},
            {"name": "dec", "type": "double"},
            {"name": "psfFlux", "type": ["null", "float"]},
            {"name": "band", "type": ["null", "string"]},
        ],
    }
    return fastavro.parse_schema(
        {
            "type": "record",
            "name": "alert",
            "namespace": f"lsst.v{major}_0",
            "fields": [
                {"name": "diaSourceId", "type": "long"},
                {"name": "diaSource", "type": dia_source},
                {"name": "cutoutDifference", "type": ["null", "bytes"]},
                {"name": "cutoutScience", "type": ["null", "bytes"]},
                {"name": "cutoutTemplate", "type": ["null", "bytes"]},
            ],
        }
    )


def lsst_payload(major: int, stamp: bytes, *, source_id: int, ra: float, dec: float) -> bytes:
    """An LSST alert of schema ``major`` as its schemaless Avro body (frame it to send it).

    Parameters
    ----------
    major : int
        The LSST alert_packet major version (its registry id is ``major * 100``).
    stamp : bytes
        The FITS cutout, used for all three cutouts.
    source_id : int
        The diaSourceId.
    ra, dec : float
        Position of the diaSource, degrees.
    """
    buffer = io.BytesIO()
    fastavro.schemaless_writer(
        buffer,
        _lsst_schema(major),
        {
            "diaSourceId": source_id,
            "diaSource": {
                "diaSourceId": source_id, "visit": 2024120200123, "detector": 94,
                "midpointMjdTai": 60646.1, "ra": ra, "dec": dec, "psfFlux": 1234.0, "band": "r",
            },
            "cutoutDifference": stamp, "cutoutScience": stamp, "cutoutTemplate": stamp,
        },
    )  # fmt: skip
    return buffer.getvalue()


def _avro_long(n: int) -> bytes:
    """Avro's zig-zag varint encoding of ``n``."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _avro_bytes(data: bytes) -> bytes:
    return _avro_long(len(data)) + data


def raw_container(metadata: dict[str, bytes], blocks: list[tuple[int, bytes]]) -> bytes:
    """An Avro container assembled byte by byte, so that its header may say anything.

    Parameters
    ----------
    metadata : dict of str to bytes
        The header's metadata map (``avro.schema``, ``avro.codec``, ...), written as given.
    blocks : list of (int, bytes)
        ``(record count, block bytes)`` of each data block, written as given.
    """
    sync = bytes(range(16))
    header = b"Obj\x01" + _avro_long(len(metadata))
    header += b"".join(_avro_bytes(k.encode()) + _avro_bytes(v) for k, v in metadata.items())
    header += _avro_long(0) + sync
    body = b"".join(_avro_long(n) + _avro_bytes(block) + sync for n, block in blocks)
    return header + body


def named_schema_container(name: str, namespace: str = "elsewhere") -> bytes:
    """A one-record container whose writer schema is a foreign record called ``name``.

    ``name`` and ``namespace`` go into the schema JSON as escapes, so they may hold any
    character (NUL, a lone surrogate); the decoder refuses the schema and quotes its name.
    """
    schema = {
        "type": "record",
        "name": name,
        "namespace": namespace,
        "fields": [{"name": "n", "type": "long"}],
    }
    return raw_container(
        {"avro.schema": json.dumps(schema).encode("ascii"), "avro.codec": b"null"},
        [(1, _avro_long(7))],
    )

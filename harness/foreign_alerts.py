"""Alert packets of other surveys, for the tests that check they are refused by name."""

from __future__ import annotations

import io
import json

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

"""Alert framings: the Confluent wire format (Kafka) and Avro object container files (archives).

The framing is chosen from the first bytes only, never guessed:

* **Confluent wire format** — byte 0 is ``0x00``, bytes 1-4 a big-endian schema registry id
  (``major * 100 + minor``, see :mod:`lenscast.consumer.alert_schema`), then one schemaless Avro
  record. This is what LSST (and lenscast) put on Kafka.
* **Avro object container file** — magic ``b"Obj\\x01"``, a metadata map holding the writer
  schema and codec, a 16-byte sync marker, then blocks of records. Archives use it, and ZTF sends
  one such file per Kafka message. Only containers written with one of our shipped schemas are
  accepted (recognised by the Avro parsing canonical form), with the ``null`` or ``deflate``
  codec; deflate blocks are decompressed with a bound, so a compression bomb is rejected.

Anything else is rejected with an :class:`~lenscast.consumer.alert.AlertRejected` reason. The
container reader is written here rather than taken from fastavro so that every length it reads is
bounded and every failure maps to a reason code.
"""

from __future__ import annotations

import io
import json
import zlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from fastavro import schemaless_reader
from fastavro.schema import to_parsing_canonical_form

from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.alert_schema import AlertSchema, schema_for_canonical
from lenscast.consumer.avro_bounds import DEFAULT_MAX_ENTRIES, check_entries

WIRE_MAGIC = b"\x00"
CONTAINER_MAGIC = b"Obj\x01"
#: Bytes of the Confluent wire-format header (magic byte + 4-byte schema id).
WIRE_HEADER_BYTES = 5
_SYNC_BYTES = 16
#: Default bound on a whole container file (archives hold many alerts), bytes.
DEFAULT_MAX_CONTAINER_BYTES = 2**31
#: Default bound on one decompressed container block, bytes.
DEFAULT_MAX_BLOCK_BYTES = 256 * 2**20
#: Bound on the container metadata (schema JSON and codec), bytes.
_MAX_METADATA_BYTES = 1 * 2**20


class Framing(Enum):
    """How an alert message is framed."""

    WIRE = "confluent-wire"
    CONTAINER = "avro-container"


def detect_framing(raw: bytes) -> Framing:
    """Choose the framing from the first bytes of ``raw``.

    Raises
    ------
    AlertRejected
        ``framing.empty`` for no bytes, ``framing.unknown_magic`` for anything that starts with
        neither the wire-format magic byte nor the container magic.
    """
    if not raw:
        raise AlertRejected("framing.empty", "zero-length message")
    if raw[:1] == WIRE_MAGIC:
        return Framing.WIRE
    if raw[:4] == CONTAINER_MAGIC:
        return Framing.CONTAINER
    raise AlertRejected("framing.unknown_magic", f"first bytes {bytes(raw[:4])!r}")


def frame_wire(schema_id: int, payload: bytes) -> bytes:
    """Prefix a schemaless Avro ``payload`` with the Confluent wire-format header."""
    return WIRE_MAGIC + schema_id.to_bytes(4, "big") + payload


def unframe_wire(raw: bytes) -> tuple[int, bytes]:
    """Split a wire-format message into ``(schema_id, schemaless Avro payload)``.

    Raises
    ------
    AlertRejected
        ``framing.unknown_magic`` if byte 0 is not 0, ``framing.truncated`` if the header is short.
    """
    if raw[:1] != WIRE_MAGIC:
        raise AlertRejected("framing.unknown_magic", f"first bytes {bytes(raw[:4])!r}")
    if len(raw) < WIRE_HEADER_BYTES:
        raise AlertRejected("framing.truncated", f"{len(raw)} bytes < 5-byte header")
    return int.from_bytes(raw[1:5], "big"), bytes(raw[5:])


@dataclass(frozen=True)
class ContainerHeader:
    """What the header of an accepted container file says."""

    schema: AlertSchema
    codec: str
    sync: bytes
    data_offset: int


class _Cursor:
    """A bounds-checked reader over bytes; every short read becomes ``framing.truncated``."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise AlertRejected(
                "framing.truncated",
                f"container wants {n} bytes at offset {self.pos} of {len(self.data)}",
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def read_long(self) -> int:
        """Read an Avro zig-zag varint long (at most 10 bytes)."""
        shift = 0
        accum = 0
        for _ in range(10):
            byte = self.read(1)[0]
            accum |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (accum >> 1) ^ -(accum & 1)
            shift += 7
        raise AlertRejected("framing.bad_container", "varint longer than 10 bytes")

    def read_bytes(self, limit: int) -> bytes:
        n = self.read_long()
        if n < 0 or n > limit:
            raise AlertRejected("framing.bad_container", f"declared length {n} out of [0, {limit}]")
        return self.read(n)

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.data)


def read_container_header(data: bytes) -> ContainerHeader:
    """Parse and check a container file header (magic, metadata, sync marker).

    Raises
    ------
    AlertRejected
        ``framing.unknown_magic``, ``framing.truncated``, ``framing.bad_container`` (malformed
        metadata), ``framing.wrong_schema`` (a writer schema that is not one of ours, e.g. a ZTF
        alert) or ``framing.unsupported_codec``.
    """
    cur = _Cursor(data)
    if cur.read(4) != CONTAINER_MAGIC:
        raise AlertRejected("framing.unknown_magic", f"first bytes {bytes(data[:4])!r}")
    meta: dict[str, bytes] = {}
    total = 0
    while True:
        count = cur.read_long()
        if count == 0:
            break
        if count < 0:  # a negative count is followed by the block's size in bytes
            count = -count
            cur.read_long()
        if count > 1000:
            raise AlertRejected("framing.bad_container", f"{count} metadata entries")
        for _ in range(count):
            key = cur.read_bytes(_MAX_METADATA_BYTES)
            value = cur.read_bytes(_MAX_METADATA_BYTES)
            total += len(key) + len(value)
            if total > _MAX_METADATA_BYTES:
                raise AlertRejected("framing.bad_container", "metadata larger than 1 MiB")
            meta[key.decode("utf-8", "replace")] = value
    sync = cur.read(_SYNC_BYTES)
    codec = meta.get("avro.codec", b"null").decode("utf-8", "replace")
    if "avro.schema" not in meta:
        raise AlertRejected("framing.bad_container", "no avro.schema in the container metadata")
    try:
        writer = json.loads(meta["avro.schema"])
        canonical = to_parsing_canonical_form(writer)
    except Exception as exc:  # hostile JSON: any parse failure is a malformed header
        raise AlertRejected("framing.bad_container", f"unreadable writer schema: {exc!r}") from exc
    schema = schema_for_canonical(canonical)
    if schema is None:
        name = writer.get("name", "?") if isinstance(writer, dict) else "?"
        namespace = writer.get("namespace", "") if isinstance(writer, dict) else ""
        raise AlertRejected(
            "framing.wrong_schema",
            f"container written with schema {namespace}.{name}, not a lenscast.candidate version",
        )
    if codec not in ("null", "deflate"):
        raise AlertRejected("framing.unsupported_codec", f"codec {codec!r}; use null or deflate")
    return ContainerHeader(schema=schema, codec=codec, sync=sync, data_offset=cur.pos)


def _inflate(block: bytes, max_bytes: int) -> bytes:
    """Raw-deflate ``block`` (Avro's deflate codec) producing at most ``max_bytes`` bytes."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(block, max_bytes)
    except zlib.error as exc:
        raise AlertRejected("framing.bad_container", f"deflate block: {exc}") from exc
    if inflater.unconsumed_tail:
        raise AlertRejected("framing.compression_bomb", f"block inflates past {max_bytes} bytes")
    return out


def _split_records(block: bytes, count: int, schema: AlertSchema, max_entries: int) -> list[bytes]:
    """Cut one block's concatenated schemaless records into ``count`` byte strings."""
    stream = io.BytesIO(block)
    records = []
    for _ in range(count):
        start = stream.tell()
        check_entries(block, start, schema.parsed, max_entries)
        try:
            schemaless_reader(stream, schema.parsed, None)
        except (EOFError, StopIteration) as exc:
            raise AlertRejected("avro.truncated", "record runs past its container block") from exc
        except Exception as exc:  # hostile bytes: any decoder failure is an invalid record
            raise AlertRejected("avro.invalid", f"container record: {exc!r}"[:300]) from exc
        end = stream.tell()
        if end > len(block):
            raise AlertRejected("avro.truncated", "record runs past its container block")
        records.append(block[start:end])
    if stream.tell() != len(block):
        raise AlertRejected("avro.invalid", "bytes left over after the block's declared records")
    return records


def split_container(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_CONTAINER_BYTES,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> list[bytes]:
    """Split an Avro container file into single-alert Confluent wire-format messages.

    Each record's Avro bytes are kept exactly as written and prefixed with the wire header of
    the schema version the container was written with, ready for ``lenscast replay`` or
    :func:`lenscast.consumer.decoding.decode_alert`.

    Parameters
    ----------
    data : bytes
        The whole container file.
    max_bytes : int
        Largest accepted file, bytes.
    max_block_bytes : int
        Largest accepted block after decompression, bytes.
    max_entries : int
        Largest accepted number of array entries in one record
        (:mod:`lenscast.consumer.avro_bounds`).

    Returns
    -------
    list of bytes
        One wire-format message per record, in file order.

    Raises
    ------
    AlertRejected
        For any malformed, foreign or oversized container (reason codes ``framing.*``,
        ``avro.*``, ``packet.too_large``); the whole file is refused, nothing is guessed.
    """
    data = bytes(data)
    if len(data) > max_bytes:
        raise AlertRejected("packet.too_large", f"container of {len(data)} > {max_bytes} bytes")
    header = read_container_header(data)
    cur = _Cursor(data, header.data_offset)
    messages: list[bytes] = []
    while not cur.at_end:
        count = cur.read_long()
        size = cur.read_long()
        if count < 0 or size < 0 or size > len(data):
            raise AlertRejected("framing.bad_container", f"block count {count}, size {size}")
        block = cur.read(size)
        if cur.read(_SYNC_BYTES) != header.sync:
            raise AlertRejected("framing.bad_container", "sync marker mismatch after a block")
        if header.codec == "deflate":
            block = _inflate(block, max_block_bytes)
        elif len(block) > max_block_bytes:
            raise AlertRejected("packet.too_large", f"block of {len(block)} bytes")
        # Every record takes at least one byte, so a larger count is a lie (and a DoS).
        if count > len(block):
            raise AlertRejected("framing.bad_container", f"{count} records in {len(block)} bytes")
        prefix = header.schema.registry_id.to_bytes(4, "big")
        messages.extend(
            WIRE_MAGIC + prefix + rec
            for rec in _split_records(block, count, header.schema, max_entries)
        )
    return messages


def read_alert_file(path: str | Path) -> list[bytes]:
    """Read an alert file (container archive or one wire-format message) as wire messages.

    Used by ``lenscast replay`` and ``lenscast process``. A container file yields one message
    per record; a file holding a single wire-format message is returned as is.

    Raises
    ------
    AlertRejected
        For an unreadable container or a file in neither framing.
    """
    data = Path(path).read_bytes()
    if detect_framing(data) is Framing.CONTAINER:
        return split_container(data)
    return [data]

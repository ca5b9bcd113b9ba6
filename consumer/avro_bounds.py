"""A bound on the array and map entries of one Avro record, checked before it is decoded.

fastavro builds a Python object for every array entry, ~1.4 us each: a 4 MiB packet can declare
over a million three-byte ``cutouts`` entries (ignored bands) and cost seconds to decode, against
~1 ms for a real alert. :func:`check_entries` walks the record's bytes along its schema, skipping
values without building them, and refuses the packet (``avro.too_many_entries``) as soon as its
arrays and maps together hold more than a bound; so decoding work is bounded by what the
pipeline uses, not by how many entries fit in the packet. The walk stops at that bound too, so it
costs at most a few dozen varint reads per entry allowed.

Bytes the walk cannot follow (cut short, a length past the end) are left for fastavro to reject
with its own reason (``avro.truncated``, ``avro.invalid``): this module says only "too many".
"""

from __future__ import annotations

from typing import Any

from consumer.alert import AlertRejected

#: Default bound on the entries of all arrays and maps of one record (a griz alert uses 4).
DEFAULT_MAX_ENTRIES = 64
_FIXED_SIZES = {"null": 0, "boolean": 1, "float": 4, "double": 8}


class _Stop(Exception):
    """The bytes end or make no sense: leave the verdict to the decoder."""


class _Walker:
    def __init__(self, data: bytes, pos: int, max_entries: int) -> None:
        self.data = data
        self.pos = pos
        self.left = max_entries
        self.named: dict[str, Any] = {}

    def long(self) -> int:
        shift = accum = 0
        for _ in range(10):
            if self.pos >= len(self.data):
                raise _Stop
            byte = self.data[self.pos]
            self.pos += 1
            accum |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (accum >> 1) ^ -(accum & 1)
            shift += 7
        raise _Stop

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise _Stop
        self.pos += n

    def entries(self, what: str) -> int:
        """Read a block count (and the byte size after a negative one); spend it."""
        count = self.long()
        if count < 0:
            count = -count
            self.long()
        self.left -= count
        if self.left < 0:
            raise AlertRejected("avro.too_many_entries", f"{what} entries past the bound")
        return count

    def value(self, schema: Any) -> None:
        if isinstance(schema, list):  # a union: the branch index, then that branch
            index = self.long()
            if not 0 <= index < len(schema):
                raise _Stop
            self.value(schema[index])
            return
        if isinstance(schema, str):
            if schema in _FIXED_SIZES:
                self.skip(_FIXED_SIZES[schema])
            elif schema in ("int", "long"):
                self.long()
            elif schema in ("bytes", "string"):
                self.skip(self.long())
            elif schema in self.named:
                self.value(self.named[schema])
            else:
                raise _Stop
            return
        kind = schema["type"]
        if "name" in schema and kind in ("record", "enum", "fixed"):
            self.named[schema["name"]] = schema
        if kind == "record":
            for f in schema["fields"]:
                self.value(f["type"])
        elif kind == "enum":
            self.long()
        elif kind == "fixed":
            self.skip(schema["size"])
        elif kind in ("array", "map"):
            items = schema["items"] if kind == "array" else schema["values"]
            while count := self.entries(kind):
                for _ in range(count):
                    if kind == "map":
                        self.skip(self.long())
                    self.value(items)
        else:
            self.value(kind)  # {"type": "long", "logicalType": ...} and the like


def check_entries(data: bytes, pos: int, schema: Any, max_entries: int) -> None:
    """Refuse a record whose arrays and maps hold more than ``max_entries`` entries in all.

    Parameters
    ----------
    data : bytes
        Buffer holding the schemaless Avro record.
    pos : int
        Offset of the record in ``data``, bytes.
    schema : dict
        The writer schema as parsed by ``fastavro.parse_schema``.
    max_entries : int
        Largest accepted total of array and map entries.

    Raises
    ------
    AlertRejected
        ``avro.too_many_entries``. Malformed bytes are not judged here (see the module docstring).
    """
    try:
        _Walker(data, pos, max_entries).value(schema)
    except _Stop:
        return

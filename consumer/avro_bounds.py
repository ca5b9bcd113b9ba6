"""A bound on the array and map entries of one Avro record, checked before it is decoded.

fastavro builds a Python object for every array entry, ~1.4 us each: a 4 MiB packet can declare
over a million three-byte ``cutouts`` entries (ignored bands) and cost seconds to decode, against
~1 ms for a real alert. :func:`check_entries` walks the record's bytes along its schema, skipping
values without building them, and refuses the packet (``avro.too_many_entries``) as soon as its
arrays and maps together hold more than a bound; so decoding work is bounded by what the
pipeline uses, not by how many entries fit in the packet. The walk stops at that bound too, so it
costs at most a few dozen varint reads per entry allowed; it follows a chain of small functions
compiled once per schema, not the schema's dicts.

Bytes the walk cannot follow (cut short, a length past the end) are left for fastavro to reject
with its own reason (``avro.truncated``, ``avro.invalid``): this module says only "too many".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lenscast.consumer.alert import AlertRejected

#: Default bound on the entries of all arrays and maps of one record (a griz alert uses 4).
DEFAULT_MAX_ENTRIES = 64


class _Stop(Exception):
    """The bytes end or make no sense: leave the verdict to the decoder."""


class _Walker:
    """A position in the record's bytes and the entries still allowed."""

    def __init__(self, data: bytes, pos: int, max_entries: int) -> None:
        self.data = data
        self.pos = pos
        self.left = max_entries

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


Skipper = Callable[[_Walker], None]


def _sized(n: int) -> Skipper:
    return lambda w: w.skip(n)


def _varint(w: _Walker) -> None:
    w.long()


def _length_prefixed(w: _Walker) -> None:
    w.skip(w.long())


_PRIMITIVES: dict[str, Skipper] = {
    "null": _sized(0),
    "boolean": _sized(1),
    "float": _sized(4),
    "double": _sized(8),
    "int": _varint,
    "long": _varint,
    "bytes": _length_prefixed,
    "string": _length_prefixed,
}


def _compile(schema: Any, named: dict[str, Skipper]) -> Skipper:
    """A function skipping one value of ``schema`` (named types resolved through ``named``)."""
    if isinstance(schema, list):  # a union: the branch index, then that branch
        branches = [_compile(b, named) for b in schema]

        def union(w: _Walker) -> None:
            index = w.long()
            if not 0 <= index < len(branches):
                raise _Stop
            branches[index](w)

        return union
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema]
        # A reference to a named type defined earlier (it may be recursive: look up late).
        return lambda w: named[schema](w)
    kind = schema["type"]
    if kind == "record":
        fields: list[Skipper] = []

        def record(w: _Walker) -> None:
            for skip in fields:
                skip(w)

        named[schema["name"]] = record
        fields.extend(_compile(f["type"], named) for f in schema["fields"])
        return record
    if kind == "enum":
        named[schema["name"]] = _varint
        return _varint
    if kind == "fixed":
        named[schema["name"]] = _sized(schema["size"])
        return named[schema["name"]]
    if kind in ("array", "map"):
        items = _compile(schema["items"] if kind == "array" else schema["values"], named)
        is_map = kind == "map"

        def many(w: _Walker) -> None:
            while count := w.entries(kind):
                for _ in range(count):
                    if is_map:
                        w.skip(w.long())
                    items(w)

        return many
    return _compile(kind, named)  # {"type": "long", "logicalType": ...} and the like


#: Compiled skippers by ``id`` of the parsed schema, kept with it (so the id stays its own).
_COMPILED: dict[int, tuple[Any, Skipper]] = {}


def _skipper(schema: Any) -> Skipper:
    """The skipper of a parsed schema, compiled once (lenscast has a handful of schemas)."""
    entry = _COMPILED.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, _compile(schema, {}))
        _COMPILED[id(schema)] = entry
    return entry[1]


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
    skip = _skipper(schema)
    try:
        skip(_Walker(data, pos, max_entries))
    except _Stop:
        return

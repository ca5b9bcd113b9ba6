"""Arbitrary text in every string field never stops the pipeline or the writer.

A hypothesis property over :func:`lenscast.consumer.pipeline.process_batch` followed by
:func:`lenscast.consumer.batch_store.write_outcome`, on SQLite and on PostgreSQL: batches of packets
whose string fields hold any text (NUL, lone surrogates, controls, every Unicode plane) —
valid alerts (every Avro string field), the same alerts made invalid, containers whose writer
schema, codec or metadata keys say anything — from a source topic that may be named anything.
Whatever the text, every packet is stored exactly once, as a result or as a rejection with its
exact bytes, and the text reads back as :func:`lenscast.db.storable_text.storable_text` made it.

Avro strings must be UTF-8, so text that is not (a lone surrogate) is written as the bytes
``surrogatepass`` gives: the packet says what a hostile producer could send.
"""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete

from harness.foreign_alerts import named_schema_container, raw_container
from harness.hostile_packets import sample_records
from harness.paths import ROOT
from harness.stored_batches import store_batch, stored_rows
from lenscast.consumer.alert_schema import load_schema
from lenscast.consumer.framing import frame_wire
from lenscast.consumer.pipeline import RawMessage
from lenscast.db.models import images_table, rejected_table, results_table
from lenscast.db.storable_text import storable_text
from lenscast.model.predictor import OnnxMassPredictor

SCHEMA_FILE = (
    ROOT
    / "consumer"
    / "schemas"
    / "lenscast.candidate"
    / "1.0"
    / "candidate.avsc"
)
#: Characters that broke or could break a driver, a log line or a quoting rule.
AWKWARD = ["\x00", "\ud800", "\udfff", "\U0010ffff", "\U0001f52d", "\u2028", "\x7f", "'", "\\"]
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=24),
    # printable text of every plane (letters, marks, numbers, symbols): what valid alerts hold
    st.text(st.characters(categories=["L", "M", "N", "P", "S", "Zs"]), min_size=1, max_size=24),
    st.lists(st.sampled_from(AWKWARD), min_size=1, max_size=6).map("".join),
)
#: The Avro string fields of a lens-candidate record (paths into the record).
STRING_FIELDS = (
    ("alertId",),
    ("candidateId",),
    ("provenance", "survey"),
    ("provenance", "broker"),
    ("provenance", "upstreamAlertId"),
    ("diaSource", "band"),
    ("cutouts", 0, "band"),
)


def _strings_as_bytes(node: Any) -> Any:
    """The schema with every ``string`` made ``bytes`` (the same binary encoding)."""
    if node == "string":
        return "bytes"
    if isinstance(node, list):
        return [_strings_as_bytes(n) for n in node]
    if isinstance(node, dict):
        return {k: _strings_as_bytes(v) for k, v in node.items()}
    return node


@cache
def _bytes_schema() -> Any:
    return fastavro.parse_schema(
        _strings_as_bytes(json.loads(SCHEMA_FILE.read_text())), named_schemas={}
    )


def _as_bytes(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, list):
        return [_as_bytes(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_bytes(v) for k, v in value.items()}
    return value


def _wire_packet(record: dict[str, Any]) -> bytes:
    """``record`` on the wire, its strings written as raw (maybe not UTF-8) bytes."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, _bytes_schema(), _as_bytes(record))
    return frame_wire(load_schema().registry_id, buffer.getvalue())


def _base_record() -> dict[str, Any]:
    """A valid sample alert with a transient and redshifts (deep enough copy to edit)."""
    record = next(r for r in sample_records() if r["diaSource"] is not None)
    return {
        **record,
        "provenance": dict(record["provenance"]),
        "diaSource": dict(record["diaSource"]),
        "cutouts": [dict(c) for c in record["cutouts"]],
    }


@st.composite
def _alert(draw: st.DrawFn, index: int) -> tuple[bytes, str | None]:
    """A sample alert with some string fields replaced; maybe broken; ``(bytes, alert id)``."""
    record = _base_record()
    for path in draw(st.lists(st.sampled_from(STRING_FIELDS), max_size=3, unique=True)):
        target: Any = record
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = draw(TEXT)
    record["alertId"] = f"{record['alertId']}#{index}"  # distinct alerts, distinct ids
    if draw(st.integers(0, 3)) == 0:
        record["ra"] = float("nan")  # invalid after the id is read
    return _wire_packet(record), record["alertId"]


@st.composite
def _container(draw: st.DrawFn) -> tuple[bytes, None]:
    """A container whose header says something arbitrary."""
    if draw(st.booleans()):
        return named_schema_container(draw(TEXT), draw(TEXT)), None
    meta = {
        "avro.schema": SCHEMA_FILE.read_bytes(),
        "avro.codec": draw(TEXT).encode("utf-8", "surrogatepass"),
    }
    key = draw(TEXT).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    meta[key] = draw(TEXT).encode("utf-8", "surrogatepass")
    return raw_container(meta, [(1, b"\x00")]), None


@st.composite
def _batch(draw: st.DrawFn) -> tuple[str, list[tuple[bytes, str | None]]]:
    size = draw(st.integers(1, 4))
    packets = [draw(st.one_of(_alert(i), _container())) for i in range(size)]
    topic = draw(st.one_of(st.just("alerts"), TEXT.map(lambda t: f"file:{t}")))
    return topic, packets


@pytest.fixture(scope="module")
def predictor(fixture_model_path: Path) -> OnnxMassPredictor:
    return OnnxMassPredictor(fixture_model_path)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=_batch())
def test_any_text_is_stored_exactly_once(
    migrated_engine: Engine,
    predictor: OnnxMassPredictor,
    reliability_report: dict[str, Any],
    batch: tuple[str, list[tuple[bytes, str | None]]],
) -> None:
    topic, packets = batch
    messages = [RawMessage(value, topic, 0, i) for i, (value, _id) in enumerate(packets)]
    with migrated_engine.begin() as conn:  # one database for all examples: start empty
        for table in (images_table, results_table, rejected_table):
            conn.execute(delete(table))

    outcome = store_batch(migrated_engine, predictor, messages)
    counts = reliability_report.setdefault("packets", {"results": 0})  # over all examples
    counts["results"] += len(outcome.results)
    for row in outcome.rejected:
        counts[row["reason"]] = counts.get(row["reason"], 0) + 1

    results, rejected = stored_rows(migrated_engine, ["source_offset", "alert_id", "source_topic"],
                                    ["source_offset", "raw", "source_topic"])  # fmt: skip
    offsets = sorted([r[0] for r in results] + [r[0] for r in rejected])
    assert offsets == list(range(len(messages)))
    for offset, alert_id, stored_topic in results:
        assert alert_id == storable_text(packets[offset][1] or "")
        assert stored_topic == storable_text(topic)
    for offset, raw, stored_topic in rejected:
        assert bytes(raw) == packets[offset][0]
        assert stored_topic == storable_text(topic)

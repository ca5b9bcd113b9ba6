"""Store one processed batch: one transaction, or row by row when the database refuses a row.

:func:`write_outcome` first writes the whole batch in one transaction
(:func:`lenscast.db.writer.write_batch`). A connectivity error (:func:`is_outage`) is raised to the
caller, which retries (the consumer pauses and backs off). Any other error — a value the database
refuses (too long for its column), or the driver refusing it before it is sent (``ValueError``,
``UnicodeEncodeError``) — means some row cannot be written as it is: the batch is then written
row by row, and a result that is refused becomes a rejected row (``db.write_error``, with the
packet's bytes); a rejected row that is refused is stored again built from its packet alone
(source, reason, bytes). Never an endless retry of the same batch, never a process that exits on
one packet, never a silently dropped alert. ``outcome`` is updated to say what was stored.

A result whose alert id is already stored from another packet (another source) does not
replace it: that packet is stored as rejected (``alert.duplicate_id``, with its bytes and the
source that holds the id), so no packet's data is lost; a redelivery of the same packet (same
topic, partition and offset) is written again as before, which keeps replays idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from lenscast.consumer.pipeline import DUPLICATE_ID, BatchOutcome, RawMessage, rejected_row
from lenscast.db.storable_text import storable_text
from lenscast.db.writer import DuplicateHandler, Source, write_batch

log = logging.getLogger(__name__)

SourceKey = tuple[str, int, int]


def is_outage(exc: BaseException) -> bool:
    """Whether a database error means "unreachable, try again" rather than "bad data"."""
    if isinstance(exc, OperationalError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _source(row: Any) -> SourceKey:
    return (row["source_topic"], row["source_partition"], row["source_offset"])


def _duplicate_handler(batch: Sequence[RawMessage]) -> DuplicateHandler:
    """Rejected rows for results whose alert id another source holds (see the docstring)."""
    # Rows reach the handler with their text made storable: look packets up the same way.
    by_source = {(storable_text(m.topic), m.partition, m.offset): m for m in batch}

    def rejection(row: Any, holder: Source) -> dict[str, Any]:
        topic, partition, offset = holder
        return rejected_row(
            by_source[_source(row)],
            DUPLICATE_ID,
            f"alert id already stored for model {row['model_version']} from "
            f"{topic}[{partition}]@{offset}; that result is kept",
            alert_id=row["alert_id"],
            model_version=row["model_version"],
        )

    return rejection


def _apply_moved(outcome: BatchOutcome, moved: Sequence[Any]) -> None:
    """Record in ``outcome`` the results that were stored as duplicates instead."""
    if not moved:
        return
    gone = {_source(r) for r in moved}
    keys = {(r["alert_id"], r["model_version"]) for r in moved}
    outcome.results[:] = [r for r in outcome.results if _source(r) not in gone]
    outcome.images[:] = [
        i for i in outcome.images if (i["alert_id"], i["model_version"]) not in keys
    ]
    outcome.rejected.extend(dict(r) for r in moved)


def _why(exc: Exception) -> str:
    # The driver's message only: the full exception text would repeat the SQL and its values.
    return f"{type(exc).__name__}: {getattr(exc, 'orig', exc)}"


def write_outcome(engine: Engine, batch: Sequence[RawMessage], outcome: BatchOutcome) -> None:
    """Store ``outcome`` (the processing of ``batch``); see the module docstring.

    Raises
    ------
    sqlalchemy.exc.SQLAlchemyError
        Only for outages (:func:`is_outage`): nothing of the batch is then known to be stored.
    """
    on_duplicate = _duplicate_handler(batch)
    try:
        moved = write_batch(
            engine,
            results=outcome.results,
            images=outcome.images,
            rejected=outcome.rejected,
            on_duplicate=on_duplicate,
        )
        _apply_moved(outcome, moved)
        return
    except Exception as exc:  # anything but an outage is about some row: find it
        if is_outage(exc):
            raise
        log.warning("batch write refused (%s); writing row by row", type(exc).__name__)
    _write_row_by_row(engine, batch, outcome, on_duplicate)


def _write_row_by_row(
    engine: Engine,
    batch: Sequence[RawMessage],
    outcome: BatchOutcome,
    on_duplicate: DuplicateHandler,
) -> None:
    by_source = {(m.topic, m.partition, m.offset): m for m in batch}
    images: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for image in outcome.images:
        images.setdefault((image["alert_id"], image["model_version"]), []).append(image)
    kept: list[dict[str, Any]] = []
    rejected: dict[SourceKey, dict[str, Any]] = {_source(r): r for r in outcome.rejected}
    for row in outcome.results:
        key = (row["alert_id"], row["model_version"])
        try:
            moved = write_batch(
                engine,
                results=[row],
                images=images.get(key, []),
                rejected=[],
                on_duplicate=on_duplicate,
            )
            if moved:  # stored as a duplicate's rejection (its text made storable)
                rejected[_source(row)] = dict(moved[0])
            else:
                kept.append(row)
        except Exception as exc:  # this row is refused: it becomes a rejection
            if is_outage(exc):
                raise
            rejected[_source(row)] = rejected_row(
                by_source[_source(row)],
                "db.write_error",
                _why(exc),
                model_version=row["model_version"],
            )
    for source, row in list(rejected.items()):
        try:
            write_batch(engine, results=[], images=[], rejected=[row])
        except Exception as exc:  # keep the packet and the reason; drop what was refused
            if is_outage(exc):
                raise
            minimal = rejected_row(
                by_source[source], "db.write_error", f"{row['reason']}: {_why(exc)}"
            )
            write_batch(engine, results=[], images=[], rejected=[minimal])
            rejected[source] = minimal
    outcome.results[:] = kept
    outcome.images[:] = [
        i for r in kept for i in images.get((r["alert_id"], r["model_version"]), [])
    ]
    outcome.rejected[:] = list(rejected.values())

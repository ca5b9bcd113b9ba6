"""Store one processed batch: one transaction, or row by row when the database refuses a row.

:func:`write_outcome` first writes the whole batch in one transaction
(:func:`lenscast.db.writer.write_batch`). A connectivity error (:func:`is_outage`) is raised to the
caller, which retries (the consumer pauses and backs off). Any other database error means some value
was refused (e.g. too long for its column): the batch is then written row by row, and a result the
database refuses becomes a rejected row (``db.write_error``, with the packet's bytes) — never an
endless retry of the same batch, never a silently dropped alert. ``outcome`` is updated to say
what was stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, SQLAlchemyError

from lenscast.consumer.pipeline import BatchOutcome, RawMessage, rejected_row
from lenscast.db.writer import write_batch

log = logging.getLogger(__name__)

SourceKey = tuple[str, int, int]


def is_outage(exc: BaseException) -> bool:
    """Whether a database error means "unreachable, try again" rather than "bad data"."""
    if isinstance(exc, OperationalError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _source(row: dict[str, Any]) -> SourceKey:
    return (row["source_topic"], row["source_partition"], row["source_offset"])


def _why(exc: SQLAlchemyError) -> str:
    # The driver's message only: the full exception text would repeat the SQL and its values.
    return f"{type(exc).__name__}: {getattr(exc, 'orig', exc)}"


def write_outcome(engine: Engine, batch: Sequence[RawMessage], outcome: BatchOutcome) -> None:
    """Store ``outcome`` (the processing of ``batch``); see the module docstring.

    Raises
    ------
    sqlalchemy.exc.SQLAlchemyError
        Only for outages (:func:`is_outage`): nothing of the batch is then known to be stored.
    """
    try:
        write_batch(
            engine, results=outcome.results, images=outcome.images, rejected=outcome.rejected
        )
        return
    except SQLAlchemyError as exc:
        if is_outage(exc):
            raise
        log.warning("batch write refused (%s); writing row by row", type(exc).__name__)
    _write_row_by_row(engine, batch, outcome)


def _write_row_by_row(engine: Engine, batch: Sequence[RawMessage], outcome: BatchOutcome) -> None:
    by_source = {(m.topic, m.partition, m.offset): m for m in batch}
    images: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for image in outcome.images:
        images.setdefault((image["alert_id"], image["model_version"]), []).append(image)
    kept: list[dict[str, Any]] = []
    rejected: dict[SourceKey, dict[str, Any]] = {_source(r): r for r in outcome.rejected}
    for row in outcome.results:
        key = (row["alert_id"], row["model_version"])
        try:
            write_batch(engine, results=[row], images=images.get(key, []), rejected=[])
            kept.append(row)
        except SQLAlchemyError as exc:
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
        except SQLAlchemyError as exc:
            if is_outage(exc):
                raise
            # Keep the packet and the reason; drop the field the database refused.
            minimal = {
                **row,
                "alert_id": None,
                "reason": "db.write_error",
                "detail": f"{row['reason']}: {_why(exc)}"[:1000],
            }
            write_batch(engine, results=[], images=[], rejected=[minimal])
            rejected[source] = minimal
    outcome.results[:] = kept
    outcome.images[:] = [
        i for r in kept for i in images.get((r["alert_id"], r["model_version"]), [])
    ]
    outcome.rejected[:] = list(rejected.values())

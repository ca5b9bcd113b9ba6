"""Idempotent writes of one processed batch, in one transaction.

Results are upserted on ``(alert_id, model_version)`` with ``INSERT ... ON CONFLICT DO UPDATE``
(PostgreSQL and SQLite share the syntax); their images are replaced (delete, then insert) in the
same transaction; rejected packets are upserted on their source ``(topic, partition, offset)``.
On PostgreSQL, results and images travel by ``COPY`` through a staging table
(:mod:`lenscast.db.postgres_copy`, several times cheaper for client and server), with the same
outcome, wherever the role may create temporary tables.
Writing a batch twice therefore leaves the database as writing it once: together with
committing Kafka offsets only after this transaction commits, every alert ends up exactly once
in ``lens_results`` or ``rejected_alerts``.

Every string value is first made storable (:mod:`lenscast.db.storable_text`: NUL and lone surrogates
escaped), so no text from a packet can make the database refuse a row. Values are always bound
parameters (never formatted into SQL), so alert fields holding SQL are
stored as text and do nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NotRequired, TypedDict, Unpack

from sqlalchemy import Connection, Engine, Table, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from lenscast.db.models import images_table, rejected_table, results_table
from lenscast.db.postgres_copy import RESULT_KEY, copy_available, copy_results_and_images
from lenscast.db.storable_text import storable_rows

Row = Mapping[str, Any]
#: Keys per DELETE statement (bound parameters stay well under every backend's limit).
_CHUNK = 400
#: Where a packet came from: ``(topic, partition, offset)``.
SOURCE_COLUMNS = ("source_topic", "source_partition", "source_offset")
Source = tuple[Any, ...]
#: Builds the rejected row of a result whose alert id is stored from another source.
DuplicateHandler = Callable[[Row, Source], Row]


class BatchRows(TypedDict):
    """The rows of one batch, as :func:`write_rows` and :func:`write_batch` take them."""

    results: Sequence[Row]
    images: Sequence[Row]
    rejected: Sequence[Row]
    on_duplicate: NotRequired[DuplicateHandler | None]


def _key(row: Row) -> tuple[Any, Any]:
    return (row["alert_id"], row["model_version"])


def claimed_elsewhere(connection: Connection, results: Sequence[Row]) -> dict[Any, Source]:
    """Result keys already stored from another source, with that source.

    A result is replaced only by a packet from the same source (a redelivery, or the same file
    processed again): a different packet under a known alert id must not erase the result.
    """
    keys = [_key(r) for r in results]
    stored: dict[Any, Source] = {}
    columns = [results_table.c[c] for c in SOURCE_COLUMNS]
    for start in range(0, len(keys), _CHUNK):
        query = select(results_table.c.alert_id, results_table.c.model_version, *columns).where(
            tuple_(results_table.c.alert_id, results_table.c.model_version).in_(
                keys[start : start + _CHUNK]
            )
        )
        stored.update({(a, v): tuple(src) for a, v, *src in connection.execute(query)})
    return {
        _key(r): stored[_key(r)]
        for r in results
        if _key(r) in stored and stored[_key(r)] != tuple(r[c] for c in SOURCE_COLUMNS)
    }


def _insert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(
        f"upserts are implemented for PostgreSQL and SQLite only, not {connection.dialect.name}"
    )


def _last_per_key(rows: Iterable[Row], key: Sequence[str]) -> list[Row]:
    """Drop earlier rows sharing a key (one statement may not update a row twice)."""
    by_key: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        by_key[tuple(row[k] for k in key)] = row
    return list(by_key.values())


def _last_image_sets(images: Iterable[Row]) -> list[Row]:
    """Each result's images from its last occurrence in the batch (a set starts at index 0)."""
    sets: dict[tuple[Any, Any], list[Row]] = {}
    for image in images:
        key = (image["alert_id"], image["model_version"])
        if image["image_index"] == 0 or key not in sets:
            sets[key] = []
        sets[key].append(image)
    return [image for group in sets.values() for image in group]


def _upsert(connection: Connection, table: Table, rows: Sequence[Row], key: Sequence[str]) -> None:
    if not rows:
        return
    # One statement executed with many parameter sets: compiled once (and cached), batched by
    # SQLAlchemy's "insertmanyvalues" into multi-row INSERTs on both backends.
    # (RETURNING makes every backend take the multi-row path; the ids are not needed.)
    statement = _insert(connection, table)
    updates = {c: statement.excluded[c] for c in rows[0] if c not in key}
    upsert = statement.on_conflict_do_update(index_elements=list(key), set_=updates)
    connection.execute(upsert.returning(table.c[key[0]]), list(rows)).close()


def write_rows(
    connection: Connection,
    *,
    results: Sequence[Row],
    images: Sequence[Row],
    rejected: Sequence[Row],
    on_duplicate: DuplicateHandler | None = None,
) -> list[Row]:
    """Write one batch on ``connection`` (the caller owns the transaction).

    Parameters
    ----------
    connection : Connection
        Inside a transaction (``engine.begin()``).
    results, images, rejected : sequence of mapping
        Rows keyed by column name, as built by :mod:`lenscast.consumer.pipeline`. Every row of one
        kind must have the same keys.
    on_duplicate : callable, optional
        When given, a result whose key is stored from another source
        (:func:`claimed_elsewhere`) is not written: ``on_duplicate(result, stored source)``
        gives the rejected row stored instead, and its images are dropped. Without it, the
        result replaces the stored one.

    Returns
    -------
    list of mapping
        The rejected rows made by ``on_duplicate`` (stored in this transaction).
    """
    results = storable_rows(_last_per_key(results, RESULT_KEY))
    images = storable_rows(_last_image_sets(images))
    moved: list[Row] = []
    if on_duplicate is not None and results:
        taken = claimed_elsewhere(connection, results)
        if taken:
            moved = [on_duplicate(r, taken[_key(r)]) for r in results if _key(r) in taken]
            results = [r for r in results if _key(r) not in taken]
            images = [i for i in images if _key(i) not in taken]
            rejected = [*rejected, *moved]
    if copy_available(connection):
        copy_results_and_images(connection, results, images)
    else:
        upsert_results_and_images(connection, results, images)
    rejected = storable_rows(
        _last_per_key(rejected, ("source_topic", "source_partition", "source_offset"))
    )
    _upsert(
        connection, rejected_table, rejected, ("source_topic", "source_partition", "source_offset")
    )
    return moved


def upsert_results_and_images(
    connection: Connection, results: Sequence[Row], images: Sequence[Row]
) -> None:
    """Upsert results and replace their images with SQLAlchemy statements (any backend)."""
    _upsert(connection, results_table, results, RESULT_KEY)
    if results:
        keys = [(r["alert_id"], r["model_version"]) for r in results]
        for start in range(0, len(keys), _CHUNK):
            connection.execute(
                delete(images_table).where(
                    tuple_(images_table.c.alert_id, images_table.c.model_version).in_(
                        keys[start : start + _CHUNK]
                    )
                )
            )
    if images:
        connection.execute(images_table.insert(), list(images))


def write_batch(engine: Engine, **batch: Unpack[BatchRows]) -> list[Row]:
    """Write one batch in its own transaction; it is committed when this returns.

    Takes the rows and ``on_duplicate`` of :func:`write_rows` and returns the rejected rows
    ``on_duplicate`` made.

    Raises
    ------
    sqlalchemy.exc.SQLAlchemyError
        When the database cannot be reached or the write fails; nothing is committed then.
    """
    with engine.begin() as connection:
        return write_rows(connection, **batch)

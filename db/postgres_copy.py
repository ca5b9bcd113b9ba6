"""Results and their images written to PostgreSQL with ``COPY``, upserted from a staging table.

A batch of a few hundred results through ``INSERT ... VALUES`` costs PostgreSQL the parsing of
tens of thousands of SQL literals and costs the client (psycopg2, holding the GIL) their quoting.
``python -m benchmarks.postgres_store --postgres-server URL`` (256-alert batches of the sample
stream, the server on the same 2-core machine, 2026-11-29), per alert: transaction wall time
0.26 ms that way against 0.065 ms this way, the writing thread's CPU 0.146 against 0.032 ms,
the server's 0.110 against 0.032 ms. Where the model and the pipeline share the cores with the
database, that difference is what the stream loses to it.

What one transaction does (:func:`copy_results_and_images`):

1. ``COPY`` the results into a temporary staging table (one per connection, created on first use,
   emptied at every commit: ``ON COMMIT DELETE ROWS``);
2. ``INSERT ... SELECT ... ON CONFLICT (alert_id, model_version) DO UPDATE`` from it, so the upsert
   semantics are those of :mod:`lenscast.db.writer` (a redelivered alert keeps its row id and
   ``stored_at``), and delete the images of those results;
3. ``COPY`` the images straight into ``lens_images`` (their old ones are gone).

Values travel in COPY's text format: floats as Python's shortest round-trip ``repr`` (what
psycopg2 sends too, so the stored doubles are identical, except that COPY keeps the sign of a
zero that an SQL literal loses), NULL as ``\\N``, strings with
backslash, tab, newline and carriage return escaped, the stream encoded as UTF-8 and declared so.
No value is formatted into SQL: the statements hold only table and column names of
:mod:`lenscast.db.models` (others are refused), quoted by the dialect.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Double,
    Integer,
    LargeBinary,
    Table,
    func,
    select,
)
from sqlalchemy.exc import CompileError, DBAPIError

from lenscast.db.models import images_table, results_table

log = logging.getLogger(__name__)

Row = Mapping[str, Any]

#: The per-connection staging table (in ``pg_temp``, so invisible to other connections).
STAGING_TABLE = "lenscast_staged_results"
#: The results key the upsert is made on.
RESULT_KEY = ("alert_id", "model_version")
#: Key of the answer of :func:`copy_available` in ``Connection.info`` (kept per DBAPI connection).
_INFO_KEY = "lenscast_copy_available"


def copy_available(connection: Connection) -> bool:
    """Whether :func:`copy_results_and_images` can run on ``connection``.

    It needs psycopg2 (for ``COPY ... FROM STDIN``) and the right to create temporary tables in
    the database, which PostgreSQL grants everyone by default but a hardened database may
    revoke; without it the caller keeps to ``INSERT ... ON CONFLICT`` (slower, same rows)
    instead of failing every batch. Asked once per database connection, and the answer kept.
    """
    if connection.dialect.driver != "psycopg2":
        return False
    if _INFO_KEY not in connection.info:
        allowed = bool(
            connection.execute(
                select(func.has_database_privilege(func.current_database(), "TEMPORARY"))
            ).scalar()
        )
        if not allowed:
            log.warning(
                "no TEMPORARY privilege on this database: results are written with "
                "INSERT ... ON CONFLICT instead of COPY (slower; grant TEMPORARY to speed it up)"
            )
        connection.info[_INFO_KEY] = allowed
    return bool(connection.info[_INFO_KEY])


def _escape_text(value: Any) -> str:
    # Backslash first: the other escapes introduce backslashes of their own.
    return (
        str(value)
        .replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def _format_bool(value: Any) -> str:
    return "t" if value else "f"


def _format_float(value: Any) -> str:
    return repr(float(value))  # numpy scalars too; 'nan'/'inf' are accepted by float8in


def _format_int(value: Any) -> str:
    return str(int(value))


def _format_timestamp(value: Any) -> str:
    return str(value.isoformat())


def _format_bytes(value: Any) -> str:
    return "\\\\x" + bytes(value).hex()  # bytea hex input, its backslash escaped for COPY


def value_formatter(column: Column[Any]) -> Callable[[Any], str]:
    """The COPY text formatter of a non-NULL value of ``column`` (chosen by the column's type)."""
    kind = column.type
    if isinstance(kind, Boolean):
        return _format_bool
    if isinstance(kind, Double):
        return _format_float
    if isinstance(kind, Integer):  # BigInteger and SmallInteger are Integers
        return _format_int
    if isinstance(kind, DateTime):
        return _format_timestamp
    if isinstance(kind, LargeBinary):
        return _format_bytes
    return _escape_text


def copy_text(table: Table, columns: Sequence[str], rows: Sequence[Row]) -> bytes:
    """``rows`` as the body of ``COPY table (columns) FROM STDIN`` in text format, UTF-8.

    Parameters
    ----------
    table : Table
        Where the rows go (its column types choose each value's format).
    columns : sequence of str
        The columns, in order; every row must have them all.
    rows : sequence of mapping
        Column name to value; None is NULL.
    """
    formats = [(name, value_formatter(table.c[name])) for name in columns]
    lines = [
        "\t".join("\\N" if (value := row[name]) is None else fmt(value) for name, fmt in formats)
        for row in rows
    ]
    lines.append("")
    return "\n".join(lines).encode("utf-8")


def _staged_columns() -> list[str]:
    """Every results column a row can carry: all but the id and the server-stamped time."""
    return [c.name for c in results_table.c if not c.primary_key and c.server_default is None]


def _copy_statement(quote: Callable[[str], str], table: str, columns: Sequence[str]) -> str:
    """``COPY table (columns) FROM STDIN`` for a quoted ``table`` and unquoted column names."""
    names = ", ".join(quote(c) for c in columns)
    return f"COPY {table} ({names}) FROM STDIN WITH (ENCODING 'UTF8')"


class _ResultStatements:
    """The SQL that stages and upserts results with the columns ``columns`` (quoted names)."""

    def __init__(self, quote: Callable[[str], str], columns: Sequence[str]) -> None:
        staged = f"pg_temp.{quote(STAGING_TABLE)}"
        results = quote(results_table.name)
        names = ", ".join(quote(c) for c in columns)
        self.create_staging = (
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staged} ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(quote(c) for c in _staged_columns())} FROM {results} WITH NO DATA"
        )
        self.copy_staging = _copy_statement(quote, staged, columns)
        updates = ", ".join(
            f"{quote(c)} = EXCLUDED.{quote(c)}" for c in columns if c not in RESULT_KEY
        )
        key = ", ".join(quote(c) for c in RESULT_KEY)
        matches = " AND ".join(f"i.{quote(c)} = s.{quote(c)}" for c in RESULT_KEY)
        self.upsert_and_clear_images = (
            f"INSERT INTO {results} ({names}) SELECT {names} FROM {staged} "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}; "
            f"DELETE FROM {quote(images_table.name)} AS i USING {staged} AS s WHERE {matches}"
        )


@contextmanager
def _wrapped_errors(connection: Connection, statement: str) -> Iterator[None]:
    """Raise driver errors as SQLAlchemy's, as ``Connection.execute`` would (the callers catch
    :class:`sqlalchemy.exc.SQLAlchemyError` and tell outages from refused values by it)."""
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        raw = connection.connection.dbapi_connection
        lost = connection.dialect.is_disconnect(exc, raw, None)
        if lost:  # the pool must not hand this connection out again
            connection.invalidate(exc)
        raise DBAPIError.instance(
            statement,
            None,
            exc,
            dbapi.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=connection.dialect,
        ) from exc


def copy_results_and_images(
    connection: Connection, results: Sequence[Row], images: Sequence[Row]
) -> None:
    """Upsert ``results`` and replace their images, on PostgreSQL, inside the caller's transaction.

    Parameters
    ----------
    connection : Connection
        A PostgreSQL (psycopg2) connection inside a transaction.
    results : sequence of mapping
        At most one row per ``(alert_id, model_version)``, all with the same keys.
    images : sequence of mapping
        The complete image sets of those results, all with the same keys.

    Raises
    ------
    sqlalchemy.exc.DBAPIError
        As :meth:`Connection.execute` raises it (``OperationalError`` for an outage,
        ``DataError`` for a value a column refuses, ...).
    sqlalchemy.exc.CompileError
        For a row key that is not a column of its table.
    """
    if not results and not images:
        return
    for table, rows in ((results_table, results), (images_table, images)):
        # Only the tables' own column names reach the SQL text (as SQLAlchemy refuses others).
        unknown = sorted(set(rows[0]) - set(table.c.keys())) if rows else []
        if unknown:
            raise CompileError(f"Unconsumed column names for {table.name}: {', '.join(unknown)}")
    quote = connection.dialect.identifier_preparer.quote
    cursor = connection.connection.cursor()
    try:
        if results:
            columns = list(results[0])
            sql = _ResultStatements(quote, columns)
            with _wrapped_errors(connection, sql.create_staging):
                cursor.execute(sql.create_staging)
            with _wrapped_errors(connection, sql.copy_staging):
                body = copy_text(results_table, columns, results)
                cursor.copy_expert(sql.copy_staging, io.BytesIO(body))
            with _wrapped_errors(connection, sql.upsert_and_clear_images):
                cursor.execute(sql.upsert_and_clear_images)
        if images:
            columns = list(images[0])
            statement = _copy_statement(quote, quote(images_table.name), columns)
            with _wrapped_errors(connection, statement):
                cursor.copy_expert(statement, io.BytesIO(copy_text(images_table, columns, images)))
    finally:
        if not cursor.closed:
            cursor.close()

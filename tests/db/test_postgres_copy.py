"""The PostgreSQL COPY write path stores exactly what the SQLAlchemy upserts store, and fails alike.

:mod:`lenscast.db.postgres_copy` replaces ``INSERT ... VALUES`` for results and images on psycopg2;
these tests write the same rows both ways and compare every stored value, then check the errors the
callers rely on (a refused value is a data error, a lost connection an outage) and that the
staging table keeps nothing from one transaction to the next.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DataError, SQLAlchemyError

from harness.result_rows import image_rows, result_row
from lenscast.consumer.batch_store import is_outage
from lenscast.db.engine import make_engine
from lenscast.db.models import images_table, rejected_table, results_table
from lenscast.db.postgres_copy import (
    STAGING_TABLE,
    copy_available,
    copy_results_and_images,
    copy_text,
)
from lenscast.db.writer import upsert_results_and_images, write_batch, write_rows

#: Strings COPY's text format must escape, and some it must not touch.
AWKWARD = [
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "\\.",
    "",
    "x'); DROP TABLE lens_results; --",
    'quote " and comma ,',
    "ünïcödé λ 天 🔭",
]


def _awkward_results() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    results, images = [], []
    for i, value in enumerate(AWKWARD):
        alert = f"a{i}-{value}"
        row = result_row(alert, theta_e=1.0 + i / 7)
        row |= {
            "candidate_id": value,
            "upstream_broker": value,
            "out_of_range": None if i % 2 else value,
            "transient_dia_source_id": 2**62 + i,
            "e1": [math.nan, math.inf, -math.inf, 5e-324, -0.0][i % 5],
            "message_timestamp": datetime(2026, 11, 29, 8, 0, i, 123456, tzinfo=UTC)
            if i % 3
            else None,
            "processed_at": datetime(2026, 11, 29, 9, 0, tzinfo=timezone(timedelta(hours=-5))),
            "has_transient": bool(i % 2),
        }
        results.append(row)
        images.extend(image_rows(alert, i % 4))
    return results, images


def _stored(engine: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    result_columns = [c for c in results_table.c if c.name not in ("id", "stored_at")]
    with engine.connect() as conn:
        results = conn.execute(select(*result_columns).order_by(results_table.c.alert_id)).all()
        images = conn.execute(
            select(images_table).order_by(images_table.c.alert_id, images_table.c.image_index)
        ).all()
    return [tuple(r) for r in results], [tuple(i) for i in images]


def _same(a: Any, b: Any) -> bool:
    # -0.0 == 0.0 here: an SQL literal (the INSERT path) loses the sign of zero, COPY keeps it.
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def test_copy_stores_what_the_upserts_store(migrated_postgres_url: str) -> None:
    engine = make_engine(migrated_postgres_url)
    results, images = _awkward_results()
    write_batch(engine, results=results, images=images, rejected=[])
    copied = _stored(engine)
    # The same rows through SQLAlchemy's INSERT ... ON CONFLICT, into the emptied tables.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM lens_results"))  # cascades to the images
        upsert_results_and_images(conn, results, images)
    inserted = _stored(engine)

    assert len(copied[0]) == len(AWKWARD)
    assert len(copied[1]) == sum(i % 4 for i in range(len(AWKWARD)))
    for got_rows, want_rows in zip(copied, inserted, strict=True):
        assert len(got_rows) == len(want_rows)
        for got, want in zip(got_rows, want_rows, strict=True):
            assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (got, want)
    assert {r[1] for r in copied[0]} == set(AWKWARD)  # candidate_id: the strings themselves
    engine.dispose()


def test_copy_text_format() -> None:
    row = {"alert_id": "a\tb\\c\nd", "image_index": 3, "x": 0.1, "y": None, "is_observed": True}
    assert copy_text(images_table, list(row), [row]) == b"a\\tb\\\\c\\nd\t3\t0.1\t\\N\tt\n"
    raw = {"raw": b"\x00\xff", "rejected_at": datetime(2026, 1, 2, tzinfo=UTC)}
    assert copy_text(rejected_table, list(raw), [raw]) == (
        b"\\\\x00ff\t2026-01-02T00:00:00+00:00\n"
    )


def test_redelivery_keeps_the_row_and_replaces_its_images(migrated_postgres_url: str) -> None:
    engine = make_engine(migrated_postgres_url)
    write_batch(engine, results=[result_row("a")], images=image_rows("a", 4), rejected=[])
    with engine.connect() as conn:
        first_id, stored_at = conn.execute(
            select(results_table.c.id, results_table.c.stored_at)
        ).one()
    write_batch(
        engine, results=[result_row("a", theta_e=2.5)], images=image_rows("a", 2), rejected=[]
    )
    with engine.connect() as conn:
        again = conn.execute(
            select(results_table.c.id, results_table.c.stored_at, results_table.c.theta_e)
        ).all()
        n_images = conn.execute(text("SELECT count(*) FROM lens_images")).scalar_one()
    assert again == [(first_id, stored_at, 2.5)]
    assert n_images == 2
    with engine.begin() as conn:
        copy_results_and_images(conn, [result_row("b")], image_rows("b", 1))
        assert conn.execute(text(f"SELECT count(*) FROM pg_temp.{STAGING_TABLE}")).scalar() == 1
    with engine.begin() as conn:  # the same pooled connection: its staging table is empty
        assert conn.execute(text(f"SELECT count(*) FROM pg_temp.{STAGING_TABLE}")).scalar() == 0
    engine.dispose()


def test_a_refused_value_is_a_data_error_not_an_outage(migrated_postgres_url: str) -> None:
    engine = make_engine(migrated_postgres_url)
    bad = result_row("a") | {"candidate_id": "c" * 300}
    with pytest.raises(SQLAlchemyError) as refused:
        write_batch(engine, results=[bad], images=[], rejected=[])
    assert isinstance(refused.value, DataError), refused.value
    assert not is_outage(refused.value)
    assert "c" * 300 not in str(refused.value)  # values are not echoed into logs
    # NUL, which PostgreSQL refuses in text, is escaped by the writer (lenscast.db.storable_text).
    write_batch(
        engine,
        results=[result_row("a") | {"candidate_id": "nul\x00byte"}],
        images=image_rows("a", 1),
        rejected=[],
    )
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT candidate_id FROM lens_results")).scalar_one()
    assert stored == "nul\\x00byte"
    engine.dispose()


def test_a_lost_connection_is_an_outage_and_the_next_write_reconnects(
    migrated_postgres_url: str,
) -> None:
    engine = make_engine(migrated_postgres_url)
    write_batch(engine, results=[result_row("a")], images=[], rejected=[])  # a pooled connection
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    killer = make_engine(migrated_postgres_url)
    conn = engine.connect()  # checked out (and pinged) before its server process is killed
    transaction = conn.begin()
    with killer.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(SQLAlchemyError) as lost:
        write_rows(conn, results=[result_row("b")], images=image_rows("b", 2), rejected=[])
    transaction.rollback()
    conn.close()
    assert is_outage(lost.value), lost.value
    write_batch(engine, results=[result_row("b")], images=image_rows("b", 2), rejected=[])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM lens_results")).scalar_one() == 2
    engine.dispose()
    killer.dispose()


def test_only_the_tables_columns_reach_the_sql(migrated_postgres_url: str) -> None:
    engine = make_engine(migrated_postgres_url)
    evil = result_row("a") | {'x") FROM STDIN; DROP TABLE lens_results; --': 1.0}
    with pytest.raises(SQLAlchemyError, match="Unconsumed column names"):
        write_batch(engine, results=[evil], images=[], rejected=[])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM lens_results")).scalar_one() == 0
    engine.dispose()


def test_without_the_temporary_privilege_the_inserts_are_used(
    migrated_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A hardened database may revoke TEMPORARY from PUBLIC: the writes must still succeed."""
    admin = make_engine(migrated_postgres_url)
    database = admin.url.database
    role = f"lenscast_no_temp_{database[-12:]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC'))
        conn.execute(text(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"'))
        conn.execute(text(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    limited = make_engine(admin.url.set(username=role))
    try:
        with limited.connect() as conn:
            assert not copy_available(conn)
        with caplog.at_level("WARNING", logger="lenscast.db.postgres_copy"):
            write_batch(limited, results=[result_row("a")], images=image_rows("a", 2), rejected=[])
        write_batch(limited, results=[result_row("a")], images=image_rows("a", 3), rejected=[])
        with limited.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM lens_images")).scalar_one() == 3
        assert "no TEMPORARY privilege" in caplog.text
        with admin.connect() as conn:
            assert copy_available(conn)  # the owner may, as every role by default
    finally:
        limited.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()

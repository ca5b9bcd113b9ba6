"""Results database: migrations on both backends match the models; upserts are idempotent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from harness.paths import ROOT
from harness.result_rows import image_rows, result_row
from lenscast.db.engine import make_engine, parse_url, redact, url_from_env
from lenscast.db.migrate import current_revision, downgrade, head_revision, upgrade
from lenscast.db.models import Base, images_table, rejected_table, results_table
from lenscast.db.writer import write_batch
from lenscast.model import parameter_spec as spec


def rejected(offset: int, reason: str = "framing.empty", alert_id: str | None = None) -> dict:
    return {
        "alert_id": alert_id,
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": offset,
        "reason": reason,
        "detail": "",
        "raw": b"\x00\x01",
        "model_version": None,
        "message_timestamp": None,
        "rejected_at": datetime.now(UTC),
    }


def test_result_columns_are_named_from_the_parameter_spec() -> None:
    columns = set(results_table.c.keys())
    assert set(spec.MASS_PARAMETER_NAMES) <= columns
    assert set(spec.SIGMA_NAMES) <= columns


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("migrated_postgres_url"))


def test_migrations_match_the_models_on_both_backends(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []
    names = {c["name"] for c in inspect(engine).get_unique_constraints("lens_results")}
    assert "uq_lens_results_alert_id_model_version" in names
    engine.dispose()


def test_downgrade_and_upgrade_again(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    assert downgrade(engine, "base") is None
    assert "lens_results" not in inspect(engine).get_table_names()
    assert upgrade(engine) == head_revision()
    engine.dispose()


def test_writes_are_idempotent_upserts(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    batch = {
        "results": [result_row("a"), result_row("b")],
        "images": image_rows("a", 4) + image_rows("b", 2),
        "rejected": [rejected(5), rejected(6)],
    }
    write_batch(engine, **batch)
    write_batch(engine, **batch)  # redelivery of the same batch
    # The same alert re-predicted (fewer images) replaces its images; a new model version adds.
    write_batch(
        engine,
        results=[result_row("a", theta_e=2.5)],
        images=image_rows("a", 2),
        rejected=[rejected(5, reason="avro.invalid")],
    )
    write_batch(
        engine,
        results=[result_row("a", version="2.0")],
        images=image_rows("a", 3, version="2.0"),
        rejected=[],
    )
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(results_table)).scalar_one()
        theta = conn.execute(
            select(results_table.c.theta_e).where(
                results_table.c.alert_id == "a", results_table.c.model_version == "1.0"
            )
        ).scalar_one()
        n_images = dict(
            conn.execute(
                select(images_table.c.model_version, func.count())
                .where(images_table.c.alert_id == "a")
                .group_by(images_table.c.model_version)
            ).all()
        )
        reasons = (
            conn.execute(select(rejected_table.c.reason).order_by(rejected_table.c.source_offset))
            .scalars()
            .all()
        )
        stamp = conn.execute(select(results_table.c.processed_at)).scalars().first()
    assert count == 3
    assert theta == 2.5
    assert n_images == {"1.0": 2, "2.0": 3}
    assert reasons == ["avro.invalid", "framing.empty"]
    assert stamp is not None
    engine.dispose()


def test_sql_in_a_field_is_stored_as_text(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    evil = "x'); DROP TABLE lens_results; --"
    write_batch(
        engine,
        results=[result_row(evil)],
        images=image_rows(evil, 1),
        rejected=[rejected(1, alert_id=evil)],
    )
    with engine.connect() as conn:
        stored = conn.execute(select(results_table.c.alert_id)).scalar_one()
        assert conn.execute(text("SELECT count(*) FROM lens_results")).scalar_one() == 1
    assert stored == evil
    engine.dispose()


def test_urls_are_redacted_and_built_from_parts(tmp_path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret\n")
    url = url_from_env(
        {
            "LENSCAST_DB_HOST": "db",
            "LENSCAST_DB_NAME": "lenscast",
            "LENSCAST_DB_USER": "u",
            "LENSCAST_DB_PASSWORD_FILE": str(secret_file),
            "LENSCAST_DB_SSLMODE": "verify-full",
        }
    )
    assert url is not None
    assert url.password == "s3cret"
    assert url.query["sslmode"] == "verify-full"
    assert "s3cret" not in redact(url)
    assert "s3cret" not in redact("postgresql://u:s3cret@h/d")
    assert url_from_env({}) is None
    assert parse_url("results.sqlite").get_backend_name() == "sqlite"


def test_migrate_cli(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from lenscast.cli import main
    from lenscast.db.migrate import head_revision

    head = head_revision()
    assert main(["migrate", "--db", sqlite_url]) == 0
    assert f"empty -> {head}" in capsys.readouterr().out
    assert main(["migrate", "--db", sqlite_url]) == 0
    assert f"{head} -> {head}" in capsys.readouterr().out


def test_migration_scripts_are_packaged() -> None:
    """A non-editable install (the Docker image) ships only packages: versions/ must be one."""

    from setuptools import find_packages

    root = ROOT
    assert "lenscast.db.migrations.versions" in find_packages(root, include=["lenscast*"])


def test_a_duplicate_alert_in_one_batch_keeps_its_last_images(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    write_batch(
        engine,
        results=[result_row("a", theta_e=1.0), result_row("a", theta_e=2.0)],
        images=image_rows("a", 4) + image_rows("a", 2),
        rejected=[],
    )
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(images_table)).scalar_one()
        theta = conn.execute(select(results_table.c.theta_e)).scalar_one()
    assert (n, theta) == (2, 2.0)
    engine.dispose()


def test_the_session_database_is_private(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    assert engine.url.database.startswith("lenscast_test_")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar_one() == engine.url.database
    engine.dispose()

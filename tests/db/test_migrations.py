"""Migration 0004 (lens evidence) on databases that already hold results, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect, text

from lenscast.db.engine import make_engine
from lenscast.db.migrate import current_revision, downgrade, head_revision, upgrade
from lenscast.db.queries import ResultFilter, fetch_results
from lenscast.db.writer import write_batch

#: Frozen 0001 column values of one stored result (the migration must not depend on the models).
_PARAMETERS = ("theta_e", "e1", "e2", "center_x", "center_y", "gamma1", "gamma2")
_EVIDENCE = ("p_lens", "p_lens_threshold", "no_lens")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("empty_postgres_url"))


def _old_row(alert_id: str, model_version: str = "0.9") -> dict:
    now = datetime.now(UTC)
    return {
        "alert_id": alert_id, "candidate_id": "c", "ra": 10.0, "dec": -5.0, "mjd": 60500.0,
        "survey": "simulation", "model_name": "m", "model_version": model_version,
        "onnx_sha256": "0" * 64, "parameter_spec_version": "1.0", "alert_schema_version": "1.0",
        **dict.fromkeys(_PARAMETERS, 0.02), **{f"sigma_{p}": 0.01 for p in _PARAMETERS},
        "has_transient": True, "processed_at": now,
    }  # fmt: skip


def _insert_at_0001(engine: Engine, rows: list[dict]) -> None:
    """Rows as a 0001 database holds them, written with that revision's columns only."""
    columns = list(rows[0])
    sql = text(
        f"INSERT INTO lens_results ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + c for c in columns)})"
    )
    image = text(
        "INSERT INTO lens_images (alert_id, model_version, image_index, x, y, magnification, "
        "is_observed, arrival_mjd) VALUES (:a, :v, 0, 1.0, -1.0, 2.5, true, 60500.0)"
    )
    with engine.begin() as conn:
        conn.execute(sql, rows)
        conn.execute(image, [{"a": r["alert_id"], "v": r["model_version"]} for r in rows])


def _stored(engine: Engine) -> dict[str, dict]:
    return {r["alert_id"]: r for r in fetch_results(engine, ResultFilter(limit=None))}


def test_upgrade_keeps_existing_results_with_null_evidence(empty_db: str) -> None:
    engine = make_engine(empty_db)
    try:
        assert upgrade(engine, "0001") == "0001"
        _insert_at_0001(engine, [_old_row("old-1"), _old_row("old-2")])
        assert upgrade(engine) == head_revision()
        columns = {c["name"]: c for c in inspect(engine).get_columns("lens_results")}
        assert all(columns[name]["nullable"] for name in _EVIDENCE)
        stored = _stored(engine)
        assert set(stored) == {"old-1", "old-2"}
        for row in stored.values():
            assert [row[name] for name in _EVIDENCE] == [None, None, None]
            assert row["theta_e"] == 0.02
            assert len(row["images"]) == 1
    finally:
        engine.dispose()


def test_new_results_beside_old_ones_and_the_filter(empty_db: str) -> None:
    engine = make_engine(empty_db)
    try:
        upgrade(engine, "0001")
        _insert_at_0001(engine, [_old_row("old-1")])
        upgrade(engine)
        new = [
            _old_row("new-lens", "1.0")
            | {"p_lens": 0.93, "p_lens_threshold": 0.5, "no_lens": False},
            _old_row("new-none", "1.0")
            | {"p_lens": 0.07, "p_lens_threshold": 0.5, "no_lens": True},
        ]
        write_batch(engine, results=new, images=[], rejected=[])
        stored = _stored(engine)
        assert stored["new-none"]["no_lens"] is True
        assert stored["new-lens"]["no_lens"] is False
        matched = fetch_results(engine, ResultFilter(min_p_lens=0.5))
        assert [r["alert_id"] for r in matched] == ["new-lens"]
        low = fetch_results(engine, ResultFilter(min_p_lens=0.05, limit=None))
        assert {r["alert_id"] for r in low} == {"new-lens", "new-none"}  # NULL never matches
    finally:
        engine.dispose()


def test_downgrade_drops_only_the_evidence(empty_db: str) -> None:
    engine = make_engine(empty_db)
    try:
        upgrade(engine)
        row = _old_row("kept", "1.0") | {"p_lens": 0.2, "p_lens_threshold": 0.5, "no_lens": True}
        write_batch(engine, results=[row], images=[], rejected=[])
        assert downgrade(engine, "0001") == "0001"
        assert current_revision(engine) == "0001"
        names = {c["name"] for c in inspect(engine).get_columns("lens_results")}
        assert not names & set(_EVIDENCE)
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM lens_results")).scalar_one()
        assert count == 1
        assert upgrade(engine) == head_revision()
    finally:
        engine.dispose()

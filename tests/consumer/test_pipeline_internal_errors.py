"""Whatever raises while one alert is handled ends with that alert rejected, never a lost batch;
an oversized packet is rejected without being stored (and so copied) whole.

Each test plants a fault where no step expects one — building an alert's row, a physics call
that raises for a whole batch, a row no driver can write — and checks that only the alert it is
about is rejected (with its bytes) and that the rest of the batch is stored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

import lenscast.consumer.pipeline as pipeline
from lenscast.consumer.batch_store import write_outcome
from lenscast.consumer.pipeline import (
    INTERNAL_ERROR,
    OVERSIZED_HEAD_BYTES,
    RawMessage,
    process_batch,
)
from lenscast.consumer.settings import PipelineSettings
from lenscast.db.models import rejected_table, results_table
from lenscast.model.predictor import OnnxMassPredictor

SETTINGS = PipelineSettings(n_mc_samples=3)


@pytest.fixture
def batch(make_alert: Any) -> list[RawMessage]:
    return [RawMessage(make_alert(i), "t", 0, i) for i in range(4)]


def _poisoned(real: Any, poison_id: str) -> Any:
    """``real`` that raises when the alert ``poison_id`` is among its alerts."""

    def call(*args: Any, **kwargs: Any) -> Any:
        alerts = args[0] if isinstance(args[0], list) else [args[0]]
        if any(getattr(getattr(a, "alert", a), "alert_id", None) == poison_id for a in alerts):
            raise RuntimeError("planted fault")
        return real(*args, **kwargs)

    return call


@pytest.mark.parametrize("step", ["_result_row", "solve_images"])
def test_a_fault_rejects_only_its_alert(
    monkeypatch: pytest.MonkeyPatch,
    fixture_model_path: Path,
    batch: list[RawMessage],
    step: str,
) -> None:
    monkeypatch.setattr(pipeline, step, _poisoned(getattr(pipeline, step), "alert-0-000002"))
    outcome = process_batch(
        batch, predictor=OnnxMassPredictor(fixture_model_path), settings=SETTINGS
    )
    assert [r["source_offset"] for r in outcome.results] == [0, 1, 3]
    assert [(r["source_offset"], r["reason"]) for r in outcome.rejected] == [(2, INTERNAL_ERROR)]
    assert outcome.rejected[0]["raw"] == batch[2].value
    assert "planted fault" in outcome.rejected[0]["detail"]


def test_a_row_no_driver_writes_is_rejected(
    migrated_engine: Engine, fixture_model_path: Path, batch: list[RawMessage]
) -> None:
    outcome = process_batch(
        batch, predictor=OnnxMassPredictor(fixture_model_path), settings=SETTINGS
    )
    outcome.results[1]["theta_e"] = object()  # neither COPY nor a driver can write this
    write_outcome(migrated_engine, batch, outcome)
    with migrated_engine.connect() as conn:
        stored = conn.execute(select(results_table.c.source_offset)).scalars().all()
        refused = conn.execute(select(rejected_table.c.source_offset, rejected_table.c.reason))
        refused_rows = refused.all()
    assert sorted(stored) == [0, 2, 3]
    assert [tuple(r) for r in refused_rows] == [(1, "db.write_error")]


def test_an_oversized_packet_is_stored_by_its_head_and_hash(
    migrated_engine: Engine, fixture_model_path: Path, make_alert: Any
) -> None:
    """40 MB over a 4 MiB limit: rejected, stored as its first 64 KiB with size and SHA-256."""
    big = make_alert(0) + bytes(40 * 2**20)
    batch = [RawMessage(big, "t", 0, 0), RawMessage(make_alert(1), "t", 0, 1)]
    outcome = process_batch(
        batch, predictor=OnnxMassPredictor(fixture_model_path), settings=SETTINGS
    )
    write_outcome(migrated_engine, batch, outcome)
    with migrated_engine.connect() as conn:
        reason, detail, raw = conn.execute(
            select(rejected_table.c.reason, rejected_table.c.detail, rejected_table.c.raw)
        ).one()
    assert reason == "packet.too_large"
    assert bytes(raw) == big[:OVERSIZED_HEAD_BYTES]
    assert hashlib.sha256(big).hexdigest() in detail
    assert str(len(big)) in detail

"""A different packet under a known alert id never replaces the stored result.

The earlier result stays; the later packet is stored as rejected (``alert.duplicate_id``) with its
bytes, so neither packet is lost. A redelivery of the same packet (same topic, partition and
offset) is still written again as a no-op, which keeps at-least-once delivery idempotent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from harness.stored_batches import store_batch, stored_rows
from lenscast.consumer.pipeline import DUPLICATE_ID, RawMessage
from lenscast.db.models import images_table
from lenscast.model.predictor import OnnxMassPredictor


@pytest.fixture(scope="module")
def predictor(fixture_model_path: Path) -> OnnxMassPredictor:
    return OnnxMassPredictor(fixture_model_path)


def _stored(engine: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    results, rejected = stored_rows(
        engine, ["alert_id", "source_offset", "theta_e"], ["source_offset", "reason", "raw"]
    )
    with engine.connect() as conn:
        images = conn.execute(select(func.count()).select_from(images_table)).scalar_one()
    return results, rejected, int(images)


def test_a_later_packet_under_a_stored_id_is_kept_as_rejected(
    migrated_engine: Engine, predictor: OnnxMassPredictor, make_alert: Any
) -> None:
    first = RawMessage(make_alert(0, alert_id="X"), "alerts", 0, 0)
    other = RawMessage(make_alert(5, alert_id="X"), "alerts", 1, 7)  # another broker's packet
    store_batch(migrated_engine, predictor, [first])
    results_before, _, images_before = _stored(migrated_engine)

    outcome = store_batch(migrated_engine, predictor, [other])
    assert outcome.results == []
    assert [r["reason"] for r in outcome.rejected] == [DUPLICATE_ID]
    results, rejected, images = _stored(migrated_engine)
    assert results == results_before  # theta_E and the source of the first packet
    assert images == images_before
    assert [(o, r) for o, r, _ in rejected] == [(7, DUPLICATE_ID)]
    assert bytes(rejected[0][2]) == other.value

    store_batch(migrated_engine, predictor, [first])  # a redelivery of the first packet: a no-op
    assert _stored(migrated_engine) == (results, rejected, images)


def test_two_packets_with_one_id_in_a_batch_keep_the_first(
    migrated_engine: Engine, predictor: OnnxMassPredictor, make_alert: Any
) -> None:
    batch = [
        RawMessage(make_alert(0, alert_id="Y"), "alerts", 0, 0),
        RawMessage(make_alert(1), "alerts", 0, 1),
        RawMessage(make_alert(5, alert_id="Y"), "alerts", 0, 2),
    ]
    store_batch(migrated_engine, predictor, batch)
    results, rejected, _ = _stored(migrated_engine)
    assert sorted((a, o) for a, o, _ in results) == [("Y", 0), ("alert-0-000001", 1)]
    assert [(o, r) for o, r, _ in rejected] == [(2, DUPLICATE_ID)]

"""Lens evidence through the real stream: Tansu, the consumer service, PostgreSQL (COPY path)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from harness.paths import ROOT
from harness.stream_helpers import (
    new_topic,
    produce,
    settings_for,
    start_service,
    stored_count,
    wait_for,
)
from lenscast.consumer.framing import read_alert_file
from lenscast.consumer.settings import PipelineSettings
from lenscast.db.engine import make_engine
from lenscast.db.models import results_table

SAMPLE = ROOT / "consumer" / "samples" / "hsc-sample.avro"


def test_consumed_results_carry_the_flag_and_the_metric_counts_it(
    kafka_broker: Any, migrated_postgres_url: str, p_lens_model_path: Path
) -> None:
    values = read_alert_file(SAMPLE)
    topic = new_topic(kafka_broker, 2)
    produce(kafka_broker.bootstrap_servers, topic, values, partitions=2)
    settings = settings_for(
        kafka_broker.bootstrap_servers,
        topic,
        migrated_postgres_url,
        p_lens_model_path,
        group=f"g-{uuid.uuid4().hex[:6]}",
        pipeline=PipelineSettings(n_mc_samples=10, p_lens_threshold=0.6),
    )
    engine = make_engine(migrated_postgres_url)
    running = start_service(settings, engine=engine)
    try:
        wait_for(lambda: sum(stored_count(engine)) >= len(values), timeout_s=90, what="the sample")
    finally:
        running.close()
    r = results_table.c
    with engine.connect() as conn:
        rows = conn.execute(select(r.p_lens, r.p_lens_threshold, r.no_lens)).all()
        flagged = conn.execute(select(func.count()).where(r.no_lens.is_(True))).scalar_one()
    engine.dispose()
    assert len(rows) == len(values)
    assert all(t == 0.6 and flag is (p < 0.6) for p, t, flag in rows)
    assert 0 < flagged < len(values)
    assert running.service.metrics.no_lens._value.get() == flagged

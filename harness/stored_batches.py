"""A batch through the pipeline into the database and back: the store tests' round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select

from lenscast.consumer.batch_store import write_outcome
from lenscast.consumer.pipeline import BatchOutcome, RawMessage, process_batch
from lenscast.consumer.settings import PipelineSettings
from lenscast.db.models import rejected_table, results_table
from lenscast.model.predictor import OnnxMassPredictor


def store_batch(
    engine: Engine,
    predictor: OnnxMassPredictor,
    batch: Sequence[RawMessage],
    *,
    n_mc_samples: int = 3,
) -> BatchOutcome:
    """Process ``batch`` (a few Monte Carlo draws: enough to store percentiles) and write it."""
    settings = PipelineSettings(n_mc_samples=n_mc_samples)
    outcome = process_batch(batch, predictor=predictor, settings=settings)
    write_outcome(engine, batch, outcome)
    return outcome


def stored_rows(
    engine: Engine, results: Sequence[str], rejected: Sequence[str]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The named columns of every stored result and of every rejected row, in table order."""
    with engine.connect() as conn:
        result_rows = conn.execute(select(*(results_table.c[name] for name in results))).all()
        rejected_rows = conn.execute(select(*(rejected_table.c[name] for name in rejected))).all()
    return [tuple(r) for r in result_rows], [tuple(r) for r in rejected_rows]

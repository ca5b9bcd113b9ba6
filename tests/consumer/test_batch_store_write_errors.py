"""A row the database refuses becomes a rejected row (``db.write_error``), the rest is stored;
text no database stores (NUL, lone surrogates) is escaped, never fatal."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from harness.foreign_alerts import named_schema_container
from harness.stored_batches import store_batch, stored_rows
from lenscast.consumer.batch_store import write_outcome
from lenscast.consumer.pipeline import RawMessage, process_batch
from lenscast.consumer.settings import PipelineSettings
from lenscast.db.engine import make_engine
from lenscast.db.storable_text import storable_text
from lenscast.model.predictor import OnnxMassPredictor

#: The columns of a rejected row that say which packet it is and why it was refused.
REFUSED = ["source_offset", "reason", "raw"]


def test_refused_rows_are_rejected_not_retried_forever(
    migrated_postgres_url: str, fixture_model_path: Path, make_alert: object
) -> None:
    predictor = OnnxMassPredictor(fixture_model_path)
    batch = [RawMessage(make_alert(i), "t", 0, i) for i in range(4)]  # type: ignore[operator]
    outcome = process_batch(batch, predictor=predictor, settings=PipelineSettings(n_mc_samples=5))
    assert len(outcome.results) == 4
    outcome.results[2]["candidate_id"] = "c" * 300  # longer than the column allows

    engine = make_engine(migrated_postgres_url)
    write_outcome(engine, batch, outcome)
    stored, refused = stored_rows(engine, ["source_offset"], REFUSED)
    assert sorted(stored) == [(0,), (1,), (3,)]
    assert [(o, r) for o, r, _ in refused] == [(2, "db.write_error")]
    assert refused[0][2] == batch[2].value
    assert [r["source_offset"] for r in outcome.rejected] == [2]
    engine.dispose()


@pytest.mark.parametrize(
    ("name", "namespace"),
    [("a\x00b", "x"), ("ok", "n\x00s"), ("a\ud800b", "x"), ("ok", "\udfff")],
)
def test_poison_schema_name_is_stored_as_rejected(
    migrated_engine: Engine,
    fixture_model_path: Path,
    make_alert: object,
    name: str,
    namespace: str,
) -> None:
    """A container whose writer-schema name holds NUL or a lone surrogate is stored, not fatal.

    Its reason detail quotes the name; the driver used to refuse that text, so the batch was
    never stored and the consumer died on it again at every restart.
    """
    poison = named_schema_container(name, namespace)
    values = [make_alert(0), poison, make_alert(2)]  # type: ignore[operator]
    batch = [RawMessage(v, "t", 0, i) for i, v in enumerate(values)]
    store_batch(migrated_engine, OnnxMassPredictor(fixture_model_path), batch, n_mc_samples=5)
    stored, refused = stored_rows(migrated_engine, ["source_offset"], [*REFUSED, "detail"])
    assert sorted(stored) == [(0,), (2,)]
    [(offset, reason, raw, detail)] = refused
    assert (offset, reason, raw) == (1, "framing.wrong_schema", poison)
    assert storable_text(f"{namespace}.{name}") in detail

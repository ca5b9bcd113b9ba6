"""process_batch: every packet ends in results or rejected, with the physics rows it implies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

import lenscast.consumer.pipeline as pipeline
import lenscast.consumer.pipeline_physics as physics
from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.pipeline import (
    MIN_OVERLAP_CHUNK,
    BatchOutcome,
    RawMessage,
    chunk_bounds,
    chunk_size,
    process_batch,
)
from lenscast.consumer.settings import PipelineSettings
from lenscast.db.engine import make_engine
from lenscast.db.migrate import upgrade
from lenscast.db.models import images_table, rejected_table, results_table
from lenscast.db.writer import write_batch
from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import MassPrediction, OnnxMassPredictor

SETTINGS = PipelineSettings(n_mc_samples=20)


@pytest.fixture(scope="module")
def predictor(fixture_model_path: Path) -> OnnxMassPredictor:
    return OnnxMassPredictor(fixture_model_path)


@pytest.fixture(scope="module")
def batch(make_stream: Callable[..., list]) -> list[RawMessage]:
    stream = make_stream(40, malformed_every=4, seed=1)
    return [RawMessage(value, "topic-a", i % 2, i) for i, (_, value) in enumerate(stream)]


@pytest.fixture(scope="module")
def outcome(batch: list[RawMessage], predictor: OnnxMassPredictor) -> BatchOutcome:
    return process_batch(batch, predictor=predictor, settings=SETTINGS)


def test_every_packet_ends_once_in_results_or_rejected(
    batch: list[RawMessage], outcome: BatchOutcome
) -> None:
    keys = [(r["source_partition"], r["source_offset"]) for r in outcome.results + outcome.rejected]
    assert sorted(keys) == sorted((m.partition, m.offset) for m in batch)
    assert len(outcome.rejected) == 10
    by_offset = {m.offset: m for m in batch}
    for row in outcome.rejected:
        assert row["raw"] == by_offset[row["source_offset"]].value
        assert row["source_topic"] == "topic-a"
        assert row["reason"].split(".")[0] in {"framing", "avro", "packet"}
    assert {r["model_version"] for r in outcome.results} == {"0.0.0-test"}
    assert all(len(r["onnx_sha256"]) == 64 for r in outcome.results)


def test_transient_alerts_get_images_delays_and_arrival_dates(outcome: BatchOutcome) -> None:
    images: dict[str, list[dict]] = {}
    for row in outcome.images:
        images.setdefault(row["alert_id"], []).append(row)
    with_z = [r for r in outcome.results if r["has_transient"] and r["z_lens"] is not None]
    assert with_z
    for result in with_z:
        rows = sorted(images[result["alert_id"]], key=lambda r: r["image_index"])
        assert result["n_images"] == len(rows) >= 1
        assert result["cosmology"] == "FlatLambdaCDM(H0=70, Om0=0.3)"
        assert rows[0]["time_delay_days"] == 0.0
        delays = [r["time_delay_days"] for r in rows]
        assert delays == sorted(delays)
        observed = [r for r in rows if r["is_observed"]]
        assert len(observed) == 1
        assert observed[0]["arrival_mjd"] == pytest.approx(result["transient_mjd"])
        assert (
            np.hypot(
                observed[0]["x"] - result["transient_x"], observed[0]["y"] - result["transient_y"]
            )
            < 1e-4
        )
        for r in rows:
            assert r["arrival_mjd"] == pytest.approx(
                result["transient_mjd"] + r["time_delay_days"] - observed[0]["time_delay_days"]
            )
            if r["time_delay_p16"] is not None:
                assert r["time_delay_p16"] <= r["time_delay_p84"]


def test_missing_redshifts_give_positions_without_delays(outcome: BatchOutcome) -> None:
    no_z = [r for r in outcome.results if r["has_transient"] and r["z_lens"] is None]
    assert no_z
    ids = {r["alert_id"] for r in no_z}
    rows = [i for i in outcome.images if i["alert_id"] in ids]
    assert rows
    assert all(i["time_delay_days"] is None and i["arrival_mjd"] is None for i in rows)
    assert all(np.isfinite(i["x"]) and np.isfinite(i["magnification"]) for i in rows)
    assert all(r["cosmology"] is None for r in no_z)


def test_without_a_transient_only_the_lens_is_stored(outcome: BatchOutcome) -> None:
    plain = [r for r in outcome.results if not r["has_transient"]]
    assert plain
    ids = {r["alert_id"] for r in plain}
    assert not [i for i in outcome.images if i["alert_id"] in ids]
    assert all(r["source_x"] is None and r["n_images"] is None for r in plain)
    assert all(np.isfinite(r["theta_e"]) and r["sigma_theta_e"] > 0 for r in plain)


def test_rows_fit_the_tables(outcome: BatchOutcome, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    write_batch(engine, results=outcome.results, images=outcome.images, rejected=outcome.rejected)
    with engine.connect() as conn:
        counts = [
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (results_table, images_table, rejected_table)
        ]
    assert counts == [len(outcome.results), len(outcome.images), len(outcome.rejected)]
    engine.dispose()


def test_a_physics_failure_rejects_only_that_alert(
    batch: list[RawMessage], predictor: OnnxMassPredictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = physics.propagate_uncertainty
    poisoned = next(m for m in batch if m.offset == 1)  # valid, with a transient
    poisoned_x = pipeline.decode_alert(poisoned.value).transient.x_arcsec
    # The alerts whose transient sits at that position (the stream reuses a few positions).
    expected = []
    for m in batch:
        try:
            transient = pipeline.decode_alert(m.value).transient
        except AlertRejected:
            continue
        if transient is not None and np.isclose(transient.x_arcsec, poisoned_x):
            expected.append(m.offset)

    def flaky(*args: object, **kwargs: object) -> object:
        if np.any(np.isclose(np.asarray(kwargs["image_x"]), poisoned_x)):
            raise FloatingPointError("solver diverged")
        return real(*args, **kwargs)

    monkeypatch.setattr(physics, "propagate_uncertainty", flaky)
    out = process_batch(batch, predictor=predictor, settings=SETTINGS)
    physics_rejected = [r for r in out.rejected if r["reason"] == "physics.error"]
    assert sorted(r["source_offset"] for r in physics_rejected) == expected
    assert 1 in expected
    assert len(expected) < len(out.results)
    assert "solver diverged" in physics_rejected[0]["detail"]
    assert out.n_messages == len(batch)


def test_non_finite_predictions_and_decoder_bugs_are_rejected(
    batch: list[RawMessage], predictor: OnnxMassPredictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NanForFirst:
        identity = predictor.identity
        input_shape = predictor.input_shape

        def predict(self, cutouts: np.ndarray) -> MassPrediction:
            out = predictor.predict(cutouts)
            mean = {k: v.copy() for k, v in out.mean.items()}
            mean["theta_e"][0] = np.nan
            return replace(out, mean=mean)

    real_decode = pipeline.decode_alert

    def buggy_decode(raw: bytes, *, settings: object = None) -> object:
        if raw == batch[2].value:
            raise KeyError("bug")
        return real_decode(raw, settings=settings)

    monkeypatch.setattr(pipeline, "decode_alert", buggy_decode)
    out = process_batch(batch, predictor=NanForFirst(), settings=SETTINGS)
    reasons = {r["source_offset"]: r["reason"] for r in out.rejected}
    assert reasons[0] == "inference.non_finite"
    assert reasons[2] == "decode.internal_error"
    assert out.n_messages == len(batch)
    assert spec.MASS_PARAMETER_NAMES[0] == "theta_e"


def _comparable(out: BatchOutcome) -> tuple[list[dict], list[dict], list[tuple]]:
    """Rows without the wall-clock columns."""
    clock = {"processed_at", "latency_s", "rejected_at"}
    results = [{k: v for k, v in r.items() if k not in clock} for r in out.results]
    rejected = [(r["source_offset"], r["reason"]) for r in out.rejected]
    return results, out.images, sorted(rejected)


def test_rows_do_not_depend_on_chunking_or_the_inference_thread(
    batch: list[RawMessage], predictor: OnnxMassPredictor, outcome: BatchOutcome
) -> None:
    # A replayed alert must be stored with the same percentiles whatever batch it lands in.
    one_call = replace(SETTINGS, inference_chunk=len(batch), overlap_inference=False)
    reference = process_batch(batch, predictor=predictor, settings=one_call)
    assert len(reference.results) + len(reference.rejected) == len(batch)
    assert reference.images
    for chunk, overlap in ((7, True), (1, True), (13, False)):
        settings = replace(SETTINGS, inference_chunk=chunk, overlap_inference=overlap)
        out = process_batch(batch, predictor=predictor, settings=settings)
        assert _comparable(out) == _comparable(reference), (chunk, overlap)
    # The alert's draws are its own: moved to another batch, the same percentiles.
    alone = process_batch(batch[-5:], predictor=predictor, settings=SETTINGS)
    ids = {r["alert_id"] for r in alone.results}
    assert [i for i in alone.images] == [i for i in reference.images if i["alert_id"] in ids]
    assert outcome.timings_s["total"] > 0
    assert outcome.timings_s["infer"] > 0


def test_a_failing_model_call_rejects_its_chunk_only(
    batch: list[RawMessage], predictor: OnnxMassPredictor
) -> None:
    calls = []

    class FailsSecondCall:
        identity = predictor.identity
        input_shape = predictor.input_shape

        def predict(self, cutouts: np.ndarray) -> MassPrediction:
            calls.append(len(cutouts))
            if len(calls) == 2:
                raise RuntimeError("onnxruntime: out of memory")
            return predictor.predict(cutouts)

    settings = replace(SETTINGS, inference_chunk=10, overlap_inference=True)
    out = process_batch(batch, predictor=FailsSecondCall(), settings=settings)
    failed = [r for r in out.rejected if r["reason"] == "inference.error"]
    second = chunk_bounds(len(batch), 10)[1]
    assert len(calls) == len(chunk_bounds(len(batch), 10))
    assert len(failed) == calls[1]
    assert {r["source_offset"] for r in failed} <= set(range(*second))
    assert "out of memory" in failed[0]["detail"]
    assert out.n_messages == len(batch)


def test_small_batches_are_cut_up_so_the_model_still_overlaps() -> None:
    threaded = replace(SETTINGS, inference_chunk=32, overlap_inference=True)
    assert chunk_size(256, threaded) == 32  # full batches: the configured chunk
    assert chunk_size(100, threaded) == 25
    assert chunk_size(18, threaded) == 5  # a low-load batch: about four calls, not one
    assert chunk_size(3, threaded) == MIN_OVERLAP_CHUNK  # too small to cut: one call
    assert len(chunk_bounds(18, chunk_size(18, threaded))) > 1
    serial = replace(threaded, overlap_inference=False)
    assert chunk_size(18, serial) == 32  # nothing to overlap with: one call


@pytest.mark.parametrize("size", [1, 2, 7, 32])
@pytest.mark.parametrize("n", [0, 1, 5, 31, 32, 33, 40, 41, 256, 257])
def test_chunks_cover_the_batch_once_with_short_ends(n: int, size: int) -> None:
    bounds = chunk_bounds(n, size)
    assert [i for a, b in bounds for i in range(a, b)] == list(range(n))
    lengths = [b - a for a, b in bounds]
    assert all(0 < k <= size for k in lengths)
    if n > size:  # overlapped batches: the model's first and last calls are short
        assert lengths[0] == lengths[-1] == max(1, size // 4)
        assert all(k == size for k in lengths[1:-2])

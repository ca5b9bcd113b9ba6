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


def test_images_are_placed_on_the_sky_through_the_cutout_wcs(outcome: BatchOutcome) -> None:
    from astropy.coordinates import SkyCoord

    results = {r["alert_id"]: r for r in outcome.results}
    assert outcome.images
    mas = 1e-3 / 3600.0
    for row in outcome.images:
        result = results[row["alert_id"]]
        if row["is_observed"]:  # the image the transient was seen in: the transient's position
            assert row["ra"] == pytest.approx(result["transient_ra"], abs=mas)
            assert row["dec"] == pytest.approx(result["transient_dec"], abs=mas)
        # x east, y north of the cutout centre: the same separation and direction on the sky.
        centre = SkyCoord(result["ra"], result["dec"], unit="deg")
        image = SkyCoord(row["ra"], row["dec"], unit="deg")
        x, y = centre.spherical_offsets_to(image)
        assert x.arcsec == pytest.approx(row["x"], abs=1e-3)
        assert y.arcsec == pytest.approx(row["y"], abs=1e-3)
        assert row["ra_p16"] <= row["ra_p84"]
        assert row["dec_p16"] <= row["dec_p84"]
        # 1 arcsec of x is 1/cos(Dec) arcsec of RA.
        ra_width = (row["ra_p84"] - row["ra_p16"]) * 3600 * np.cos(np.radians(row["dec"]))
        assert ra_width == pytest.approx(row["x_p84"] - row["x_p16"], abs=1e-3)
        assert (row["dec_p84"] - row["dec_p16"]) * 3600 == pytest.approx(
            row["y_p84"] - row["y_p16"], abs=1e-3
        )


def test_missing_redshifts_come_from_the_prior_and_are_flagged(outcome: BatchOutcome) -> None:
    no_z = [r for r in outcome.results if r["has_transient"] and r["z_lens"] is None]
    assert no_z
    for r in no_z:
        assert (r["z_lens_origin"], r["z_source_origin"]) == ("prior", "prior")
        assert 0 < r["z_lens_used"] < r["z_source_used"]
        assert r["cosmology"] == "FlatLambdaCDM(H0=70, Om0=0.3)"
    ids = {r["alert_id"] for r in no_z}
    rows = [i for i in outcome.images if i["alert_id"] in ids]
    assert rows
    later = [i for i in rows if not i["is_observed"]]
    assert later
    for i in later:
        assert i["arrival_mjd_p16"] < i["arrival_mjd_p84"]
        assert i["time_delay_days"] is not None


def test_measured_redshifts_are_flagged_and_used(outcome: BatchOutcome) -> None:
    with_z = [r for r in outcome.results if r["has_transient"] and r["z_lens"] is not None]
    for r in with_z:
        assert (r["z_lens_origin"], r["z_source_origin"]) == ("measured", "measured")
        assert (r["z_lens_used"], r["z_source_used"]) == (r["z_lens"], r["z_source"])
    plain = [r for r in outcome.results if not r["has_transient"]]
    # Nothing was computed from the redshifts of alerts without a transient: no prior used.
    assert all(r["z_source_origin"] in (None, "measured") for r in plain)
    assert all(r["time_delay_distance_mpc"] is None for r in plain)


def test_stored_fermat_potential_and_distance_give_the_delays(outcome: BatchOutcome) -> None:
    from lenscast.model.cosmology import delay_days_per_arcsec2

    distance = {r["alert_id"]: r["time_delay_distance_mpc"] for r in outcome.results}
    rows = [i for i in outcome.images if i["time_delay_days"] is not None]
    assert rows
    for i in rows:
        factor = float(delay_days_per_arcsec2(distance[i["alert_id"]]))
        assert i["time_delay_days"] == pytest.approx(factor * i["fermat_potential_arcsec2"])


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


def test_photometric_lens_redshift_without_source_gets_flagged_bounds(
    make_alert: Callable[..., bytes], predictor: OnnxMassPredictor
) -> None:
    """zLens ± zLensErr and no zSource: the lens is measured, the source from the prior."""
    import io

    from fastavro import schemaless_reader

    from lenscast.consumer.alert_schema import schema_for_id
    from lenscast.consumer.framing import unframe_wire
    from lenscast.tools.alert_encoding import encode_record

    messages = []
    for i in range(6):
        schema_id, payload = unframe_wire(make_alert(i, transient=True, seed=7))
        schema = schema_for_id(schema_id)
        assert schema is not None
        record = schemaless_reader(io.BytesIO(payload), schema.parsed)
        record |= {"zLensErr": 0.045, "zSource": None, "zSourceErr": None}
        messages.append(RawMessage(encode_record(record, schema_version=schema.version), "t", 0, i))
    outcome = process_batch(messages, predictor=predictor, settings=SETTINGS)
    assert len(outcome.results) == 6
    for r in outcome.results:
        assert (r["z_lens_origin"], r["z_source_origin"]) == ("measured", "prior")
        assert r["z_lens_used"] == r["z_lens"]
        assert r["z_source_used"] > r["z_lens"]
    later = [i for i in outcome.images if not i["is_observed"]]
    assert later
    assert all(i["arrival_mjd_p16"] < i["arrival_mjd_p84"] for i in later)
@pytest.mark.parametrize(("x", "accepted"), [(7.0, True), (9.5, False)])
def test_a_transient_outside_the_cutout_is_imaged_within_three_einstein_radii(
    predictor: OnnxMassPredictor, x: float, accepted: bool
) -> None:
    from lenscast.tools.alert_encoding import TransientSpec, encode_alert

    class Fixed:  # theta_e = 3": reach 9" from the centre at (0.1, 0)
        identity = predictor.identity
        input_shape = predictor.input_shape

        def predict(self, cutouts: np.ndarray) -> MassPrediction:
            n = len(cutouts)
            mean = {p: np.zeros(n) for p in spec.MASS_PARAMETER_NAMES}
            mean["theta_e"] += 3.0
            mean["center_x"] += 0.1
            sigma = {p: np.full(n, 0.02) for p in spec.MASS_PARAMETER_NAMES}
            return MassPrediction(mean=mean, sigma=sigma)

    images = np.random.default_rng(0).normal(1.0, 0.1, (4, 64, 64)).astype(np.float32)
    raw = encode_alert(
        alert_id="far", candidate_id="c", ra=150.0, dec=2.0, mjd=61000.0, images=images,
        z_lens=0.5, z_source=2.0, transient=TransientSpec(1, x, 0.0, 61000.0, "i", 1000.0),
    )  # fmt: skip
    out = process_batch([RawMessage(raw, "t", 0, 0)], predictor=Fixed(), settings=SETTINGS)
    if not accepted:
        (row,) = out.rejected
        assert row["reason"] == "transient.far_from_lens"
        assert 'beyond 3 theta_E = 9.00"' in row["detail"]
        return
    (result,) = out.results
    assert result["n_images"] >= 1
    observed = [i for i in out.images if i["is_observed"]]
    assert observed[0]["x"] == pytest.approx(x, abs=1e-3)  # outside the 5.4" half-width

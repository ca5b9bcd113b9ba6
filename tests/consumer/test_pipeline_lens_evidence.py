"""Lens evidence end to end: the optional ``p_lens`` output, its threshold, flag, storage and query.

The model with ``p_lens`` is the test-only fixture of ``conftest.py`` (the shipped graph with an
output computed from its own sigma(theta_E)), or a trained model named by
``LENSCAST_TEST_P_LENS_MODEL`` (then the tests that need the fixture's known output still use the
fixture); the shipped model has no ``p_lens`` and must keep working with NULL lens evidence and
nothing flagged.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.paths import ROOT
from lenscast.cli import main
from lenscast.consumer.framing import read_alert_file
from lenscast.consumer.pipeline import (
    BatchOutcome,
    RawMessage,
    lens_evidence_fields,
    p_lens_threshold,
    process_batch,
)
from lenscast.consumer.settings import PipelineSettings, consumer_settings_from_env
from lenscast.db.engine import make_engine
from lenscast.db.migrate import upgrade
from lenscast.db.queries import ResultFilter, fetch_results
from lenscast.db.writer import write_batch
from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import MassPrediction, OnnxMassPredictor
from lenscast.plotting.plot_data import load_picture
from lenscast.plotting.plot_text import summary_lines
from lenscast.tools.demo_summary import is_lens, load_truths, non_lens_lines

SAMPLES = ROOT / "consumer" / "samples"
SAMPLE, SAMPLE_TRUTHS = SAMPLES / "hsc-sample.avro", SAMPLES / "hsc-sample-truths.jsonl"
SETTINGS = PipelineSettings(n_mc_samples=8)


@pytest.fixture(scope="module")
def with_p_lens(p_lens_model_path: Path) -> OnnxMassPredictor:
    return OnnxMassPredictor(p_lens_model_path)


@pytest.fixture(scope="module")
def without_p_lens(fixture_model_path: Path) -> OnnxMassPredictor:
    """A model without the lens-evidence output (the shipped one has it)."""
    return OnnxMassPredictor(fixture_model_path)


@pytest.fixture(scope="module")
def sample() -> list[RawMessage]:
    values = read_alert_file(SAMPLE)
    return [RawMessage(v, f"file:{SAMPLE}", 0, i) for i, v in enumerate(values)]


@pytest.fixture(scope="module")
def outcome(sample: list[RawMessage], with_p_lens: OnnxMassPredictor) -> BatchOutcome:
    return process_batch(sample, predictor=with_p_lens, settings=SETTINGS)


# -- the predictor ---------------------------------------------------------------------------


def test_predictor_reads_p_lens_from_the_graph(
    p_lens_fixture_model_path: Path, p_lens_of_sigma: Callable[[np.ndarray], np.ndarray]
) -> None:
    fixture = OnnxMassPredictor(p_lens_fixture_model_path)
    cutouts = np.random.default_rng(0).normal(1.0, 0.5, (5, 4, 64, 64))
    prediction = fixture.predict(cutouts)
    assert fixture.has_p_lens
    assert prediction.p_lens is not None
    assert prediction.p_lens.shape == (5,)
    expected = p_lens_of_sigma(prediction.sigma["theta_e"])
    np.testing.assert_allclose(prediction.p_lens, expected, rtol=1e-5, atol=1e-6)
    assert fixture.default_p_lens_threshold == 0.4  # the card's, not the 0.5 fallback


def test_models_without_p_lens_keep_working(without_p_lens: OnnxMassPredictor) -> None:
    prediction = without_p_lens.predict(np.ones((2, 4, 64, 64)))
    assert not without_p_lens.has_p_lens
    assert prediction.p_lens is None
    assert without_p_lens.default_p_lens_threshold == spec.DEFAULT_P_LENS_THRESHOLD


def _copy_model(source: Path, target: Path, card_change: dict) -> Path:
    shutil.copy(source, target)
    card = json.loads(source.with_suffix(".json").read_text())
    target.with_suffix(".json").write_text(json.dumps(card | card_change))
    return target


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lens_evidence": {"default_threshold": 1.5}}, r"not in \[0, 1\]"),
        ({"lens_evidence": {"default_threshold": "high"}}, "must be a number"),
        ({"lens_evidence": {"output": "score"}}, "service reads 'p_lens'"),
    ],
)
def test_a_bad_lens_evidence_card_is_refused(
    p_lens_model_path: Path, tmp_path: Path, change: dict, message: str
) -> None:
    path = _copy_model(p_lens_model_path, tmp_path / "m.onnx", change)
    with pytest.raises(ValueError, match=message):
        OnnxMassPredictor(path)


def test_a_card_claiming_p_lens_needs_the_output(
    fixture_model_path: Path, tmp_path: Path
) -> None:
    path = _copy_model(
        fixture_model_path, tmp_path / "m.onnx", {"lens_evidence": {"output": "p_lens"}}
    )
    with pytest.raises(ValueError, match="no 'p_lens' output"):
        OnnxMassPredictor(path)


# -- the pipeline: stored, flagged, kept -----------------------------------------------------


def test_every_result_carries_p_lens_and_the_flag(
    outcome: BatchOutcome, sample: list[RawMessage], with_p_lens: OnnxMassPredictor
) -> None:
    from lenscast.consumer.decoding import decode_alert

    assert len(outcome.results) == len(sample)
    assert not outcome.rejected
    # What the model says for each cutout alone (the pipeline called it in chunks).
    alerts = [decode_alert(m.value) for m in sample]
    direct = with_p_lens.predict(np.stack([a.cutouts for a in alerts])).p_lens
    assert direct is not None
    expected = dict(zip((a.alert_id for a in alerts), direct.tolist(), strict=True))
    threshold = with_p_lens.default_p_lens_threshold
    for row in outcome.results:
        assert row["p_lens"] == pytest.approx(expected[row["alert_id"]], abs=1e-5)
        assert row["p_lens_threshold"] == threshold
        assert row["no_lens"] is (row["p_lens"] < threshold)


def test_flagged_transient_alerts_keep_their_images(outcome: BatchOutcome) -> None:
    flagged = [r for r in outcome.results if r["no_lens"] and r["has_transient"]]
    assert flagged, "the sample needs a transient alert below the threshold"
    for row in flagged:
        images = [i for i in outcome.images if i["alert_id"] == row["alert_id"]]
        assert len(images) == row["n_images"] >= 1
        assert any(i["arrival_mjd"] is not None for i in images)


def test_the_threshold_setting_overrides_the_card(
    sample: list[RawMessage], with_p_lens: OnnxMassPredictor
) -> None:
    strict = replace(SETTINGS, p_lens_threshold=0.99)
    assert p_lens_threshold(strict, with_p_lens) == 0.99
    assert p_lens_threshold(SETTINGS, with_p_lens) == with_p_lens.default_p_lens_threshold
    rows = process_batch(sample[:6], predictor=with_p_lens, settings=strict).results
    assert {r["p_lens_threshold"] for r in rows} == {0.99}
    assert [r["no_lens"] for r in rows] == [r["p_lens"] < 0.99 for r in rows]


def test_without_p_lens_nothing_is_flagged(
    sample: list[RawMessage], without_p_lens: OnnxMassPredictor
) -> None:
    settings = replace(SETTINGS, p_lens_threshold=0.9)
    rows = process_batch(sample[:4], predictor=without_p_lens, settings=settings).results
    assert len(rows) == 4
    for row in rows:
        assert (row["p_lens"], row["p_lens_threshold"], row["no_lens"]) == (None, None, None)
    assert lens_evidence_fields(None, 0.5) == {
        "p_lens": None,
        "p_lens_threshold": None,
        "no_lens": None,
    }


class _Rigged:
    """A predictor whose ``p_lens`` is set by the test (for values a real model must not give)."""

    def __init__(self, real: OnnxMassPredictor, p_lens: float) -> None:
        self.real, self.value = real, p_lens
        self.identity = real.identity
        self.default_p_lens_threshold = 0.5

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.real.input_shape

    def predict(self, cutouts: np.ndarray) -> MassPrediction:
        prediction = self.real.predict(cutouts)
        return replace(prediction, p_lens=np.full(len(cutouts), self.value))


def test_a_non_finite_p_lens_rejects_the_alert(
    sample: list[RawMessage], without_p_lens: OnnxMassPredictor
) -> None:
    rigged = _Rigged(without_p_lens, float("nan"))
    out = process_batch(sample[:2], predictor=rigged, settings=SETTINGS)
    assert not out.results
    assert {r["reason"] for r in out.rejected} == {"inference.non_finite"}
    assert all("p_lens" in r["detail"] for r in out.rejected)


def test_a_p_lens_outside_its_range_is_marked(
    sample: list[RawMessage], without_p_lens: OnnxMassPredictor
) -> None:
    rigged = _Rigged(without_p_lens, 1.5)
    rows = process_batch(sample[:2], predictor=rigged, settings=SETTINGS).results
    assert all("p_lens" in (r["out_of_range"] or "").split(",") for r in rows)
    assert all(r["no_lens"] is False for r in rows)


# -- settings --------------------------------------------------------------------------------


def test_threshold_from_the_environment_and_checked() -> None:
    env = {
        "LENSCAST_KAFKA_BOOTSTRAP_SERVERS": "localhost:9092",
        "LENSCAST_DB_URL": "sqlite:///x.sqlite",
    }
    assert consumer_settings_from_env(env).pipeline.p_lens_threshold is None
    settings = consumer_settings_from_env(env | {"LENSCAST_P_LENS_THRESHOLD": "0.7"})
    assert settings.pipeline.p_lens_threshold == 0.7
    assert settings.redacted()["p_lens_threshold"] == 0.7
    for bad in ("1.2", "nan", "-0.1", "high"):
        with pytest.raises(ValueError, match=r"p_lens_threshold|could not convert"):
            consumer_settings_from_env(env | {"LENSCAST_P_LENS_THRESHOLD": bad})


def test_consume_option_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from lenscast.consumer.consume_cli import build_settings, configure

    monkeypatch.setenv("LENSCAST_P_LENS_THRESHOLD", "0.7")
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(
        ["--bootstrap-servers", "h:1", "--db", "sqlite:///x", "--p-lens-threshold", "0.2"]
    )
    assert build_settings(args).pipeline.p_lens_threshold == 0.2


# -- storage, query, plot text: the non-lens sample alert ------------------------------------


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory, p_lens_model_path: Path) -> str:
    """The whole sample through ``lenscast process`` with the p_lens model, into SQLite."""
    url = f"sqlite:///{tmp_path_factory.mktemp('evidence') / 'r.sqlite'}"
    assert (
        main(
            [
                "process",
                str(SAMPLE),
                "--db",
                url,
                "--model",
                str(p_lens_model_path),
                "--mc-samples",
                "8",
                "--no-progress",
            ]
        )  # fmt: skip
        == 0
    )
    return url


def _non_lens_with_transient() -> dict:
    truths = load_truths(SAMPLE_TRUTHS)
    found = [t for t in truths.values() if not is_lens(t) and t["transient_x"] is not None]
    assert found, "the sample stream must hold a non-lens alert with a transient"
    return found[0]


def test_the_sample_holds_an_honest_non_lens(sample: list[RawMessage]) -> None:
    from lenscast.consumer.decoding import decode_alert

    truth = _non_lens_with_transient()
    assert truth["image_x"] == []
    assert truth["theta_e"] is None
    assert truth["transient_image"] is None
    alert = next(
        a for a in (decode_alert(m.value) for m in sample) if a.alert_id == truth["alert_id"]
    )
    assert alert.transient is not None
    assert (alert.transient.x_arcsec, alert.transient.y_arcsec) == pytest.approx(
        (truth["transient_x"], truth["transient_y"]), abs=1e-6
    )


def test_the_non_lens_alert_is_stored_flagged_and_shown(
    processed: str, with_p_lens: OnnxMassPredictor, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = _non_lens_with_transient()
    engine = make_engine(processed)
    try:
        (row,) = fetch_results(engine, ResultFilter(alert_id=truth["alert_id"]))
        picture = load_picture(engine, truth["alert_id"])
    finally:
        engine.dispose()
    assert row["has_transient"]
    assert row["images"]
    threshold = with_p_lens.default_p_lens_threshold
    assert row["p_lens"] is not None
    assert row["p_lens_threshold"] == threshold
    assert row["no_lens"] is (row["p_lens"] < threshold)
    text = "\n".join(summary_lines(picture))
    assert f"p_lens = {row['p_lens']:.2f}" in text
    if row["no_lens"]:
        assert "THE MODEL SEES NO LENS" in text
        assert "(no lens) MJD" in text
    else:
        assert "no lens" not in text.lower()
    capsys.readouterr()
    assert main(["query", "--db", processed, "--alert-id", truth["alert_id"], "--images"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[-1] == "no_lens"
    assert {line.split()[-1] for line in table[1:-1]} == {str(row["no_lens"])}
    lines = non_lens_lines([picture])
    assert lines[-1] == f"non-lenses flagged no_lens: {int(row['no_lens'])}/1"


def test_query_min_p_lens(processed: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(processed)
    try:
        everything = fetch_results(engine, ResultFilter(limit=None))
        likely = fetch_results(engine, ResultFilter(min_p_lens=0.5, limit=None))
    finally:
        engine.dispose()
    expected = {r["alert_id"] for r in everything if r["p_lens"] >= 0.5}
    assert 0 < len(expected) < len(everything)
    assert {r["alert_id"] for r in likely} == expected
    capsys.readouterr()
    assert main(["query", "--db", processed, "--min-p-lens", "0.5", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["alert_id"] for r in rows} == expected
    assert all(r["p_lens"] >= 0.5 for r in rows)
    assert all(r["no_lens"] is (r["p_lens"] < r["p_lens_threshold"]) for r in rows)
    with pytest.raises(SystemExit) as exc:
        main(["query", "--db", processed, "--min-p-lens", "1.5"])
    assert exc.value.code == 2


def test_min_p_lens_excludes_results_without_evidence(
    sample: list[RawMessage], without_p_lens: OnnxMassPredictor, sqlite_url: str
) -> None:
    out = process_batch(sample[:3], predictor=without_p_lens, settings=SETTINGS)
    engine = make_engine(sqlite_url)
    try:
        upgrade(engine)
        write_batch(engine, results=out.results, images=out.images, rejected=out.rejected)
        assert len(fetch_results(engine, ResultFilter())) == 3
        assert fetch_results(engine, ResultFilter(min_p_lens=0.0)) == []
    finally:
        engine.dispose()


def test_process_reports_the_flagged(
    tmp_path: Path, p_lens_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    argv = ["process", str(SAMPLE), "--db", url, "--model", str(p_lens_model_path),
            "--mc-samples", "0", "--no-progress", "--p-lens-threshold", "1.0"]  # fmt: skip
    assert main(argv) == 0
    n = len(read_alert_file(SAMPLE))
    assert f"{n} flagged no_lens (p_lens < 1)" in capsys.readouterr().out
    assert main([*argv[:-1], "2.0"]) == 2
    assert "p_lens_threshold must be in [0, 1]" in capsys.readouterr().err


def test_demo_refuses_a_threshold_outside_0_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--workdir", str(tmp_path), "--p-lens-threshold", "1.5"]) == 2
    assert "must be in [0, 1]" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before anything started


def test_plot_text_of_a_result_without_evidence(processed: str) -> None:
    engine = make_engine(processed)
    try:
        picture = load_picture(engine, "lenscast-sim-11-000000")
    finally:
        engine.dispose()
    unrated = replace(picture, p_lens=None, p_lens_threshold=None, no_lens=None)
    lines = summary_lines(unrated)
    assert "p_lens: n/a (the model has no lens-evidence output)" in lines
    assert not any("(no lens)" in line for line in lines)

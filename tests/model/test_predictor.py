"""The models shipped in ``model/weights``: files, cards and the symmetry the default one has.

The default graph averages the network over the four quarter turns of the cutout, so its answer
for a turned cutout is the turned lens, exactly; the fast graph (two views, a half turn) has that
property for the half turn only. Both carry the lens-evidence output ``p_lens`` and its card
section. Checked on real sample alerts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.paths import ROOT
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.framing import read_alert_file
from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import (
    DEFAULT_MODEL_PATH,
    DEFAULT_RUN_BATCH,
    FAST_MODEL_PATH,
    OnnxMassPredictor,
    file_sha256,
)

SAMPLE = ROOT / "consumer" / "samples" / "hsc-sample.avro"
#: The fast graph with int8 convolutions (``lenscast quantize``).
INT8_MODEL_PATH = FAST_MODEL_PATH.with_name("lenscast-hsc-fast-int8.onnx")


def _sample_cutouts(n: int = 8) -> np.ndarray:
    return np.stack([decode_alert(raw).cutouts for raw in read_alert_file(SAMPLE)[:n]])


@pytest.mark.parametrize(
    ("path", "views"), [(DEFAULT_MODEL_PATH, 4), (FAST_MODEL_PATH, 2), (INT8_MODEL_PATH, 2)]
)
def test_shipped_model_matches_its_card(path: Path, views: int) -> None:
    card = json.loads(path.with_suffix(".json").read_text())
    assert path.stat().st_size <= 20e6
    assert card["onnx"]["sha256"] == file_sha256(path)
    assert card["architecture"]["test_time_views"] == views
    assert path.with_suffix(".md").exists()
    predictor = OnnxMassPredictor(path)
    out = predictor.predict(_sample_cutouts(4))
    assert all(np.all(np.isfinite(out.mean[n])) for n in spec.MASS_PARAMETER_NAMES)
    assert all(np.all(out.sigma[n] > 0) for n in spec.MASS_PARAMETER_NAMES)


def test_default_model_turns_with_the_sky() -> None:
    card = json.loads(DEFAULT_MODEL_PATH.with_suffix(".json").read_text())
    offset = np.array([card["mean_calibration"]["offsets"][n] for n in spec.MASS_PARAMETER_NAMES])
    predictor = OnnxMassPredictor(DEFAULT_MODEL_PATH)

    def means(cutouts: np.ndarray) -> np.ndarray:
        out = predictor.predict(np.ascontiguousarray(cutouts)).mean
        return np.stack([out[n] for n in spec.MASS_PARAMETER_NAMES], -1) + offset

    cutouts = _sample_cutouts()
    plain = means(cutouts)
    # np.rot90 over (row, column) moves the pixel at sky (x, y) to (-y, x) (columns run west):
    # the sky turns by +90 degrees. The centre turns with it, e and gamma (spin 2, turned by
    # 180 degrees) change sign, theta_E stays.
    quarter = means(np.rot90(cutouts, 1, axes=(2, 3)))
    np.testing.assert_allclose(quarter[:, 0], plain[:, 0], atol=1e-4)
    for i in (1, 2, 5, 6):
        np.testing.assert_allclose(quarter[:, i], -plain[:, i], atol=1e-4)
    np.testing.assert_allclose(quarter[:, 3], -plain[:, 4], atol=1e-4)
    np.testing.assert_allclose(quarter[:, 4], plain[:, 3], atol=1e-4)


@pytest.mark.parametrize("path", [DEFAULT_MODEL_PATH, FAST_MODEL_PATH])
def test_shipped_models_give_a_calibrated_p_lens(path: Path) -> None:
    import onnxruntime as ort

    card = json.loads(path.with_suffix(".json").read_text())
    section = card["lens_evidence"]
    assert section["output"] == "p_lens"
    assert 0.0 < section["default_threshold"] < 1.0
    assert section["evaluation"]["roc_auc"] > 0.5
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cutouts = _sample_cutouts(4)
    (p_lens,) = session.run(["p_lens"], {spec.ONNX_INPUT_NAME: cutouts})
    assert p_lens.shape == (4,)
    assert np.all((p_lens >= 0.0) & (p_lens <= 1.0))


@pytest.mark.parametrize("run_batch", [1, 3, 8])
def test_a_batch_run_in_slices_gives_the_outputs_of_one_call(run_batch: int) -> None:
    cutouts = _sample_cutouts(11)  # not a multiple of any slice: a short last run
    whole = OnnxMassPredictor(FAST_MODEL_PATH, run_batch=None).predict(cutouts)
    sliced = OnnxMassPredictor(FAST_MODEL_PATH, run_batch=run_batch).predict(cutouts)
    for name in spec.MASS_PARAMETER_NAMES:
        np.testing.assert_allclose(sliced.mean[name], whole.mean[name], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sliced.sigma[name], whole.sigma[name], rtol=1e-5, atol=1e-6)
    assert whole.p_lens is not None
    assert sliced.p_lens is not None
    np.testing.assert_allclose(sliced.p_lens, whole.p_lens, rtol=1e-5, atol=1e-6)


def test_run_batch_defaults_to_slices_on_one_thread_and_whole_calls_on_more() -> None:
    assert OnnxMassPredictor(FAST_MODEL_PATH).run_batch == DEFAULT_RUN_BATCH
    assert OnnxMassPredictor(FAST_MODEL_PATH, intra_op_threads=2).run_batch is None
    with pytest.raises(ValueError, match="run_batch"):
        OnnxMassPredictor(FAST_MODEL_PATH, run_batch=0)

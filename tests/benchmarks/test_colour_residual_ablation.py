"""The colour-residual ablation: the copy answers as the network without its planes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import colour_residual_ablation as ablation
from lenscast.model.predictor import OnnxMassPredictor
from lenscast.trainer.network import LensCNN, NetworkConfig
from lenscast.trainer.training.export import export_onnx, parity_inputs

SMALL = {"widths": [8, 8, 16, 16, 16], "blocks": [0, 0, 0, 1], "head_channels": 8,
         "hidden": 32, "evidence": True}


def _exported(tmp_path: Path, config: dict, views: int) -> tuple[LensCNN, Path]:
    torch.manual_seed(1)
    model = LensCNN(NetworkConfig.from_dict(config))
    if model.stem_residuals is not None:
        with torch.no_grad():
            model.stem_residuals.weight.normal_(0.0, 0.5)
    model.test_views = views
    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    # The card fields the predictor reads, as `lenscast export` writes them.
    card = json.loads((Path(__file__).parents[2] / "model/weights/lenscast-hsc.json").read_text())
    card.update(name="tiny", version="0.1.0")
    path.with_suffix(".json").write_text(json.dumps(card))
    return model, path


@pytest.mark.parametrize("views", [1, 2])
def test_the_copy_answers_as_the_network_without_its_planes(tmp_path: Path, views: int) -> None:
    model, path = _exported(tmp_path, {**SMALL, "colour_residuals": True}, views)
    report = ablation.ablate(path, tmp_path / "off.onnx")
    assert min(report["planes_weight_rms_per_plane"]) > 0.3  # drawn with sigma 0.5
    assert len(report["stem_weight_rms_per_band"]) == 4

    cutouts = parity_inputs(5, seed=2)
    with torch.no_grad():
        model.stem_residuals.weight.zero_()
        expected = model.eval()(torch.from_numpy(cutouts))
    got = OnnxMassPredictor(tmp_path / "off.onnx").predict(cutouts)
    np.testing.assert_allclose(np.stack(list(got.mean.values()), -1), expected[0].numpy(),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got.p_lens, expected[2].numpy(), rtol=1e-4, atol=1e-5)
    before = OnnxMassPredictor(path).predict(cutouts)
    assert not np.allclose(before.mean["theta_e"], got.mean["theta_e"])  # the planes mattered
    card = json.loads((tmp_path / "off.json").read_text())
    assert card["version"] == "0.1.0-no-planes"


def test_a_model_without_planes_is_refused(tmp_path: Path) -> None:
    _, path = _exported(tmp_path, SMALL, 1)
    with pytest.raises(ValueError, match="no colour-residual planes"):
        ablation.ablate(path, tmp_path / "off.onnx")

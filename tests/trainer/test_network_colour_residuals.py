"""Colour residuals (lens light removed by its colour) and warm starts that keep the function."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lenscast.model import parameter_spec as spec
from lenscast.trainer.network import LensCNN, NetworkConfig, colour_residuals, count_flops
from lenscast.trainer.training.export import (
    PARITY_TOLERANCE,
    export_onnx,
    parity_error,
    parity_inputs,
)
from lenscast.trainer.training.warm_start import model_from_onnx

SMALL = {"widths": [8, 8, 16, 16, 16], "blocks": [0, 0, 0, 1], "head_channels": 8,
         "hidden": 32, "evidence": True}
#: griz flux of a red lens galaxy and of a bluer lensed arc, per unit of their profiles.
LENS_COLOURS = np.array([0.2, 0.5, 1.0, 1.3])
ARC_COLOURS = np.array([1.0, 0.9, 0.8, 0.7])


def _radius() -> np.ndarray:
    axis = np.arange(spec.CUTOUT_SIZE_PIX) - (spec.CUTOUT_SIZE_PIX - 1) / 2
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    return np.hypot(xx + 3.0, yy - 2.0)  # a lens off the cutout centre


def test_light_of_one_colour_cancels_and_a_bluer_arc_remains() -> None:
    radius = _radius()
    lens = 50.0 * np.exp(-((radius / 4.0) ** 0.5))  # peaked, with an extended envelope
    arc = 0.5 * np.exp(-0.5 * ((radius - 10.0) / 1.0) ** 2)
    alone = torch.tensor((LENS_COLOURS[:, None, None] * lens)[None], dtype=torch.float32)
    assert colour_residuals(alone).abs().max() < 1e-5 * lens.max()

    both = LENS_COLOURS[:, None, None] * lens + ARC_COLOURS[:, None, None] * arc
    residual = colour_residuals(torch.tensor(both[None], dtype=torch.float32))[0].numpy()
    on_arc = np.abs(radius - 10.0) < 0.5
    # g, r, z: the arc minus the lens colour's share of its i flux.
    expected = (ARC_COLOURS[[0, 1, 3]] - LENS_COLOURS[[0, 1, 3]] * ARC_COLOURS[2])[:, None]
    np.testing.assert_allclose(residual[:, on_arc], expected * arc[on_arc], rtol=0.1, atol=0.02)
    # Where the lens is bright its light is gone to a per cent of its peak.
    assert np.abs(residual[:, radius < 2.0]).max() < 0.01 * lens.max()


def test_the_colour_ratio_is_held_to_its_range() -> None:
    profile = torch.tensor(np.exp(-0.5 * (_radius() / 3.0) ** 2), dtype=torch.float32)
    cutout = torch.stack([-profile, profile, profile, 9.0 * profile])[None]
    residual = colour_residuals(cutout)[0]
    torch.testing.assert_close(residual[0], -profile)  # ratio -1 held at 0
    torch.testing.assert_close(residual[1], torch.zeros_like(profile), atol=1e-6, rtol=0)
    torch.testing.assert_close(residual[2], 4.0 * profile)  # ratio 9 held at 5


def test_a_network_with_the_planes_starts_as_the_one_without() -> None:
    torch.manual_seed(0)
    plain = LensCNN(NetworkConfig.from_dict(SMALL)).eval()
    planes = LensCNN(NetworkConfig.from_dict({**SMALL, "colour_residuals": True})).eval()
    missing = planes.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["stem_residuals.weight"]
    cutouts = torch.from_numpy(parity_inputs(4, seed=1))
    with torch.no_grad():
        for a, b in zip(plain(cutouts), planes(cutouts), strict=True):
            torch.testing.assert_close(a, b)
    # The planes' convolution is counted: 3 planes x 9 taps x 8 channels x 64 x 64 more.
    extra = count_flops(planes)["macs"] - count_flops(plain)["macs"]
    assert extra == 3 * 9 * 8 * spec.CUTOUT_SIZE_PIX**2


def _exported(tmp_path: Path, config: NetworkConfig, seed: int) -> tuple[LensCNN, Path]:
    """A network with random weights everywhere (planes and evidence head included), exported."""
    torch.manual_seed(seed)
    model = LensCNN(config)
    with torch.no_grad():
        if model.stem_residuals is not None:
            model.stem_residuals.weight.normal_(0.0, 0.3)
        model.evidence_scale.fill_(0.8)
        model.evidence_shift.fill_(-0.3)
        model.train()
        for _ in range(3):  # BatchNorm statistics of cutout-like inputs
            model(torch.from_numpy(parity_inputs(32, seed=seed)))
    path = tmp_path / f"net{seed}.onnx"
    export_onnx(model, path)
    return model, path


def _rebuilt(path: Path, config: NetworkConfig, platt_from: LensCNN) -> LensCNN:
    rebuilt = model_from_onnx(path, config, parity_inputs(256, seed=5))
    # Platt constants are fitted again at every export, so the warm start leaves them out.
    rebuilt.evidence_scale.copy_(platt_from.evidence_scale)
    rebuilt.evidence_shift.copy_(platt_from.evidence_shift)
    return rebuilt.eval()


def test_warm_start_keeps_the_evidence_head_and_the_planes(tmp_path: Path) -> None:
    config = NetworkConfig.from_dict({**SMALL, "colour_residuals": True})
    model, path = _exported(tmp_path, config, seed=2)
    rebuilt = _rebuilt(path, config, model)
    assert rebuilt.stem_residuals is not None
    torch.testing.assert_close(rebuilt.stem_residuals.weight, model.stem_residuals.weight)
    # p_lens is one of the outputs compared: the evidence head came back too.
    assert parity_error(rebuilt, path, parity_inputs(8, seed=3)) <= PARITY_TOLERANCE


def test_planes_added_to_a_graph_without_them_start_at_zero(tmp_path: Path) -> None:
    model, path = _exported(tmp_path, NetworkConfig.from_dict(SMALL), seed=4)
    with_planes = NetworkConfig.from_dict({**SMALL, "colour_residuals": True})
    rebuilt = _rebuilt(path, with_planes, model)
    assert rebuilt.stem_residuals is not None
    assert not rebuilt.stem_residuals.weight.any()
    assert parity_error(rebuilt, path, parity_inputs(8, seed=3)) <= PARITY_TOLERANCE

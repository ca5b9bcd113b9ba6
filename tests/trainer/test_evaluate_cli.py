"""Evaluation statistics (exact on perfect predictions) and the evaluate CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lenscast.cli import main
from lenscast.model import parameter_spec as spec
from lenscast.model.image_prediction import predict_images
from lenscast.trainer.dataset import write_manifest, write_shard
from lenscast.trainer.network import LensCNN, NetworkConfig
from lenscast.trainer.simulation.simulator import SimulationConfig, simulate_batch
from lenscast.trainer.training.evaluation import (
    deepen_noise,
    evaluate,
    image_error_budget,
    match_images,
    predicted_mass_model,
    psf_leakage,
    summary,
)
from lenscast.trainer.training.export import export_onnx
from lenscast.trainer.training.model_card import build_card, write_card


def _systems(n: int, seed: int) -> dict[str, np.ndarray]:
    """Random SIE + shear systems with images and delays from the physics core."""
    rng = np.random.default_rng(seed)
    truths = {
        "theta_e": rng.uniform(0.6, 3.0, n), "e1": rng.uniform(-0.2, 0.2, n),
        "e2": rng.uniform(-0.2, 0.2, n), "center_x": rng.uniform(-0.3, 0.3, n),
        "center_y": rng.uniform(-0.3, 0.3, n), "gamma1": rng.uniform(-0.05, 0.05, n),
        "gamma2": rng.uniform(-0.05, 0.05, n), "z_lens": np.full(n, 0.5),
        "z_source": np.full(n, 2.0),
    }
    truths["source_x"] = truths["center_x"] + rng.uniform(-0.2, 0.2, n) * truths["theta_e"]
    truths["source_y"] = truths["center_y"] + rng.uniform(-0.2, 0.2, n) * truths["theta_e"]
    images = predict_images(predicted_mass_model(spec.as_array(truths)),
                            source_x=truths["source_x"], source_y=truths["source_y"],
                            z_lens=truths["z_lens"], z_source=truths["z_source"])
    truths.update(image_x=images.x, image_y=images.y, time_delay_days=images.time_delay_days)
    return truths


def test_summary_percentiles() -> None:
    stats = summary(np.r_[np.arange(101.0), np.nan])
    assert stats["n"] == 101
    assert stats["median"] == 50.0
    assert stats["half_width_68"] == pytest.approx(34.0)


def test_perfect_prediction_gives_zero_offsets() -> None:
    truths = _systems(40, seed=1)
    mean = spec.as_array(truths)
    sigma = np.full_like(mean, 0.01)
    report = evaluate(mean, sigma, truths)
    for name in spec.MASS_PARAMETER_NAMES:
        assert report["parameters"]["all"][name]["half_width_68"] == 0.0
        assert report["parameters"]["all"][name]["coverage_1sigma"] == 1.0
    for mode in ("from_true_source", "from_first_image"):
        images = report["images"][mode]
        assert images["fraction_same_image_count"] == 1.0
        for key in ("image_dx", "image_dy", "fractional_delay"):
            assert abs(images[key]["median"]) < 1e-6
            assert images[key]["half_width_68"] < 1e-6
    json.dumps(report)  # serialisable as written by the CLI


def test_matching_pairs_shuffled_images() -> None:
    """Predicted images in another order and shifted by 0.1" are paired with the right ones."""
    truths = _systems(10, seed=2)
    model = predicted_mass_model(spec.as_array(truths))
    prediction = predict_images(model, source_x=truths["source_x"], source_y=truths["source_y"],
                                z_lens=0.5, z_source=2.0)
    shifted = prediction.__class__(**{**prediction.__dict__, "x": prediction.x + 0.1})
    comparison = match_images(shifted, true_x=truths["image_x"], true_y=truths["image_y"],
                              true_delay=truths["time_delay_days"])
    np.testing.assert_allclose(comparison.dx, 0.1, atol=1e-9)
    np.testing.assert_allclose(comparison.dy, 0.0, atol=1e-9)


@pytest.fixture(scope="module")
def tiny_model_and_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    batch = simulate_batch(24, seed=np.random.SeedSequence(7),
                           config=SimulationConfig(split="test"))
    data = root / "test"
    data.mkdir()
    write_shard(data / "shard_00000.npz", images=batch.images, truths=batch.truths)
    write_manifest(data, {"complete": True})
    config = NetworkConfig(widths=(8, 8, 16, 16, 16), blocks=(0, 0, 0, 1), head_channels=8,
                           hidden=32)
    model = LensCNN(config).eval()
    onnx_path = root / "weights" / "lenscast-hsc.onnx"
    export_onnx(model, onnx_path)
    checkpoint = {
        "model": model.state_dict(), "network_config": config.to_dict(), "train_config": {},
        "data": {}, "state": {"history": [], "command": "test", "seed": 0, "epoch": 0,
                              "step": 0, "elapsed_s": 0.0},
    }
    card = build_card(name="lenscast-hsc", version="0.0.0", checkpoint=checkpoint,
                      flops={"macs": 1, "flops": 2, "parameters": 3}, onnx_sha256="x",
                      onnx_bytes=1, parity=0.0, note="untrained")
    write_card(card, onnx_path)
    return onnx_path, data


def test_evaluate_cli_writes_report_and_card(tiny_model_and_data: tuple[Path, Path],
                                             tmp_path: Path) -> None:
    torch.set_num_threads(1)
    onnx_path, data = tiny_model_and_data
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(onnx_path), "--data", str(data), "--out", str(out),
                 "--update-card", "--threads", "1"]) == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["n_systems"] == 24
    assert set(report["parameters"]["all"]) == set(spec.MASS_PARAMETER_NAMES)
    assert (out / "residuals_vs_theta_e.png").stat().st_size > 1000
    assert (out / "images_vs_theta_e.png").stat().st_size > 1000
    assert "| Δtheta_e |" in (out / "evaluation.md").read_text()
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    assert card["evaluation"]["command"].startswith("lenscast evaluate")
    assert "Δcenter_x" in onnx_path.with_suffix(".md").read_text()


def test_deepen_noise_scales_background_rms() -> None:
    rng = np.random.default_rng(5)
    rms = np.array([[0.04, 0.06, 0.08, 0.16]] * 3)
    images = (rng.normal(size=(3, 4, 64, 64)) * rms[:, :, None, None]).astype(np.float32)
    truths = {f"background_rms_{b}": rms[:, i] for i, b in enumerate(spec.BANDS)}
    noisy = deepen_noise(images, truths, factor=1.5)
    np.testing.assert_allclose(noisy.std(axis=(2, 3)), 1.5 * rms, rtol=0.05)
    with pytest.raises(ValueError, match="factor"):
        deepen_noise(images, truths, factor=0.5)


def test_psf_leakage_recovers_an_injected_slope_and_is_reported() -> None:
    truths = _systems(400, seed=8)
    rng = np.random.default_rng(9)
    truths["psf_e1"], truths["psf_e2"] = rng.uniform(-0.1, 0.1, (2, 400))
    mean = spec.as_array(truths).copy()
    mean[:, spec.MASS_PARAMETER_NAMES.index("e1")] += 0.4 * truths["psf_e1"]
    mean += rng.normal(0.0, 0.002, mean.shape)  # measurement noise
    leak = psf_leakage(mean, truths)
    assert leak["e1"]["slope"] == pytest.approx(0.4, abs=4 * leak["e1"]["slope_error"])
    assert abs(leak["e2"]["slope"]) < 4 * leak["e2"]["slope_error"] + 1e-3
    assert leak["gamma1"]["psf_component"] == "psf_e1"
    assert "psf_leakage" in evaluate(mean, np.full_like(mean, 0.01), truths)
    round_psf = {**truths, "psf_e1": np.zeros(400), "psf_e2": np.zeros(400)}
    assert "psf_leakage" not in evaluate(mean, np.full_like(mean, 0.01), round_psf)


def test_image_error_budget_points_at_the_noisy_parameter() -> None:
    truths = _systems(200, seed=11)
    mean = spec.as_array(truths).copy()
    rng = np.random.default_rng(12)
    mean[:, spec.MASS_PARAMETER_NAMES.index("theta_e")] += rng.normal(0.0, 0.05, 200)
    budget = {row["exact"]: row["half_width_68"]
              for row in image_error_budget(mean, truths, np.ones(200, dtype=bool))}
    assert budget["none"] > 0.02
    assert budget["theta_e"] < 1e-6  # the only error removed: images exact again
    for group in ("e1, e2", "gamma1, gamma2", "center"):
        assert budget[group] == pytest.approx(budget["none"], rel=0.2)


def test_theta_e_bins_are_configurable() -> None:
    truths = _systems(60, seed=7)
    mean = spec.as_array(truths) + 0.01
    sigma = np.full_like(mean, 0.05)
    report = evaluate(mean, sigma, truths, theta_e_bins=(0.5, 1.5, 3.0))
    edges = [(b["low"], b["high"]) for b in report["binned_by_theta_e"]]
    assert edges == [(0.5, 1.5), (1.5, 3.0)]
    assert sum(b["n"] for b in report["binned_by_theta_e"]) == 60
    image_bins = report["images"]["binned_by_theta_e"]["from_true_source"]
    assert {(b["low"], b["high"]) for b in image_bins} <= set(edges)


def test_evaluate_cli_rejects_bad_theta_e_bins(tmp_path: Path) -> None:
    for bad in ("1,0.5", "a,b", "1"):
        with pytest.raises(SystemExit):
            main(["evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                  "--theta-e-bins", bad])

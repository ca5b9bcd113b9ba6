"""The CNN, its loss and its sigma calibration (fast unit tests on synthetic tensors)."""

from __future__ import annotations

import json

import numpy as np
import torch

from harness.paths import ROOT
from lenscast.model import parameter_spec as spec
from lenscast.trainer.network import LensCNN, NetworkConfig, count_flops
from lenscast.trainer.training.calibration import (
    ONE_SIGMA,
    coverage,
    median_offsets,
    sigma_scale_factors,
)
from lenscast.trainer.training.loop import TrainConfig
from lenscast.trainer.training.loss import beta_nll
from lenscast.trainer.training.shards import background_noise

SMALL = NetworkConfig(widths=(8, 8, 16, 16, 16), blocks=(0, 0, 0, 1), head_channels=8, hidden=32)


def test_outputs_are_physical_and_sigma_positive() -> None:
    model = LensCNN(SMALL).eval()
    mean, sigma = model(torch.randn(3, 4, 64, 64))
    assert mean.shape == sigma.shape == (3, spec.N_PARAMETERS)
    assert torch.all(sigma > 0)
    # An untrained head outputs ~0 in standardised units: the middle of each spec range.
    mid = torch.tensor([0.5 * (p.low + p.high) for p in spec.MASS_PARAMETERS])
    half = torch.tensor([0.5 * (p.high - p.low) for p in spec.MASS_PARAMETERS])
    assert torch.all((mean - mid).abs() < 2 * half)


def test_standardise_inverts_the_output_mapping() -> None:
    model = LensCNN(SMALL)
    values = torch.tensor([[p.low for p in spec.MASS_PARAMETERS],
                           [p.high for p in spec.MASS_PARAMETERS]])
    z = model.standardise(values)
    torch.testing.assert_close(z, torch.tensor([[-1.0] * 7, [1.0] * 7]))


def test_normalisation_is_asinh_of_flux_over_noise() -> None:
    model = LensCNN(SMALL, noise_scale=[0.04, 0.06, 0.08, 0.16])
    flux = torch.tensor([-1.5, -0.3, 0.0, 0.05, 2.0, 3e4]).reshape(1, 1, 1, 6).expand(1, 4, 1, 6)
    scale = torch.tensor([0.04, 0.06, 0.08, 0.16], dtype=torch.float64).reshape(1, 4, 1, 1)
    expected = torch.asinh(flux.double() / scale) / 3
    torch.testing.assert_close(model.normalise(flux).double(), expected, rtol=0, atol=2e-4)
    # Bad pixels far below the sky are clamped at -50 sigma, never -inf or NaN.
    low = model.normalise(torch.full((1, 4, 1, 1), -1e6))
    torch.testing.assert_close(low.double(), torch.full_like(low, -np.arcsinh(50.0) / 3).double(),
                               rtol=0, atol=2e-4)


def test_sigma_scale_multiplies_sigma_only() -> None:
    model = LensCNN(SMALL).eval()
    x = torch.randn(2, 4, 64, 64)
    mean0, sigma0 = model(x)
    model.sigma_scale.copy_(torch.arange(1.0, 8.0))
    mean1, sigma1 = model(x)
    torch.testing.assert_close(mean0, mean1)
    torch.testing.assert_close(sigma1, sigma0 * torch.arange(1.0, 8.0))


def test_mean_offset_shifts_mean_only() -> None:
    model = LensCNN(SMALL).eval()
    x = torch.randn(2, 4, 64, 64)
    mean0, sigma0 = model(x)
    model.mean_offset.copy_(torch.linspace(-0.1, 0.1, 7))
    mean1, sigma1 = model(x)
    torch.testing.assert_close(mean1, mean0 - torch.linspace(-0.1, 0.1, 7))
    torch.testing.assert_close(sigma1, sigma0)


def test_median_offsets() -> None:
    truth = np.zeros((101, 2))
    mean = np.stack([np.arange(101.0), -np.arange(101.0)], axis=1)
    np.testing.assert_allclose(median_offsets(mean, truth), [50.0, -50.0])


def test_flop_count_by_hand() -> None:
    config = NetworkConfig(widths=(4, 8), blocks=(0,), head_channels=2, hidden=3)
    counted = count_flops(LensCNN(config))
    convs = 64 * 64 * 4 * (4 * 9 + 2 * 9) + 32 * 32 * 8 * (4 * 9) + 32 * 32 * 2 * 8
    linears = (2 * 32 * 32) * 3 + 3 * 14
    assert counted["macs"] == convs + linears
    assert counted["flops"] == 2 * counted["macs"]


def test_beta_nll_gradients() -> None:
    """β = 0 is the Gaussian NLL; β = 0.5 scales the mean gradient by sigma (detached)."""
    mean = torch.tensor([[0.3]], requires_grad=True)
    sigma = torch.tensor([[2.0]], requires_grad=True)
    target = torch.tensor([[0.0]])
    beta_nll(mean, sigma, target, beta=0.0).sum().backward()
    assert mean.grad is not None
    np.testing.assert_allclose(mean.grad.item(), 0.3 / 4.0)
    nll_value = beta_nll(mean, sigma, target, beta=0.0).item()
    np.testing.assert_allclose(nll_value, np.log(2.0) + 0.5 * 0.09 / 4.0)
    mean.grad = None
    beta_nll(mean, sigma, target, beta=0.5).sum().backward()
    np.testing.assert_allclose(mean.grad.item(), 0.3 / 4.0 * 2.0)


def test_calibration_reaches_68_percent() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(20000, 3))
    mean = truth + rng.normal(size=truth.shape) * np.array([1.0, 2.0, 0.5])
    sigma = np.ones_like(truth)  # wrong by 1x, 2x, 0.5x
    scale = sigma_scale_factors(mean, sigma, truth)
    np.testing.assert_allclose(scale, [1.0, 2.0, 0.5], rtol=0.03)
    np.testing.assert_allclose(coverage(mean, sigma * scale, truth), ONE_SIGMA, atol=1e-3)
    np.testing.assert_allclose(coverage(mean, sigma * scale, truth, n_sigma=2.0), 0.9545,
                               atol=0.01)


def test_background_noise_from_border() -> None:
    rng = np.random.default_rng(1)
    images = rng.normal(size=(50, 4, 64, 64)) * np.array([0.04, 0.06, 0.08, 0.16])[:, None, None]
    images[:, :, 20:44, 20:44] += 100.0  # a bright lens does not leak into the estimate
    np.testing.assert_allclose(background_noise(images), [0.04, 0.06, 0.08, 0.16], rtol=0.05)


def test_shipped_config_loads(tmp_path) -> None:
    config = TrainConfig.from_file(ROOT / "trainer" / "configs" / "hsc.json")
    assert config.beta == 0.5
    round_trip = tmp_path / "c.json"
    round_trip.write_text(json.dumps(config.to_dict()))
    assert TrainConfig.from_file(round_trip) == config

"""The θ_E-dependent sigma correction: its fit recovers a known dependence and flattens coverage."""

from __future__ import annotations

import numpy as np

from lenscast.model import parameter_spec as spec
from lenscast.trainer.training.theta_e_sigma import (
    apply_theta_e_dependence,
    coverage_by_bin,
    fit_theta_e_dependence,
)

THETA = spec.MASS_PARAMETER_NAMES.index("theta_e")
CENTRE = spec.MASS_PARAMETER_NAMES.index("center_x")


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Errors whose true width falls as theta_e^-0.7 for the centre and is constant otherwise,
    while the predicted sigma is flat: the centre's coverage then depends on theta_e."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, spec.N_PARAMETERS))
    truth[:, THETA] = rng.uniform(0.5, 5.0, n)
    width = np.full((n, spec.N_PARAMETERS), 0.05)
    width[:, CENTRE] = 0.01 * truth[:, THETA] ** -0.7
    mean = truth + width * rng.standard_normal((n, spec.N_PARAMETERS))
    sigma = np.full((n, spec.N_PARAMETERS), 0.05)
    sigma[:, CENTRE] = 0.01  # right on average, wrong at both ends
    return mean, sigma, truth


def test_the_fit_recovers_the_dependence_and_flattens_the_coverage() -> None:
    mean, sigma, truth = synthetic(40_000, seed=1)
    factors, slopes = fit_theta_e_dependence(mean, sigma, truth)
    assert abs(slopes[CENTRE] + 0.7) < 0.05
    others = [i for i in range(spec.N_PARAMETERS) if i != CENTRE]
    # theta_e's own error is measured against a noisy predicted theta_e: no dependence either.
    assert np.all(np.abs(slopes[others]) < 0.05)
    np.testing.assert_allclose(factors[others], 1.0, atol=0.05)

    # On fresh data: before, the centre's coverage runs from far below to far above 68 %;
    # after, every bin of true theta_e is within 3 points of it.
    mean, sigma, truth = synthetic(40_000, seed=2)
    before = [row["coverage_1sigma"]["center_x"] for row in coverage_by_bin(mean, sigma, truth)]
    corrected = apply_theta_e_dependence(mean, sigma, factors, slopes)
    after = [row["coverage_1sigma"]["center_x"] for row in coverage_by_bin(mean, corrected, truth)]
    assert min(before) < 0.55
    assert max(before) > 0.8
    assert all(abs(c - 0.6827) < 0.03 for c in after), after


def test_a_wild_theta_e_prediction_is_clipped() -> None:
    mean = np.zeros((2, spec.N_PARAMETERS))
    mean[:, THETA] = [-3.0, 80.0]
    sigma = np.ones((2, spec.N_PARAMETERS))
    out = apply_theta_e_dependence(mean, sigma, np.ones(7), np.full(7, -1.0))
    np.testing.assert_allclose(out[:, 0], [1 / 0.3, 1 / 6.0])


def test_a_single_theta_e_fits_a_plain_scale() -> None:
    mean, sigma, truth = synthetic(2_000, seed=3)
    mean[:, THETA] = 9.0  # every prediction clipped to the same bound
    factors, slopes = fit_theta_e_dependence(mean, sigma, truth)
    np.testing.assert_array_equal(slopes, 0.0)
    assert np.all(np.isfinite(factors))

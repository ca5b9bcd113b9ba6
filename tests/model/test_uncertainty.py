"""Monte Carlo propagation of mass-model uncertainties to images and delays."""

from __future__ import annotations

import numpy as np
import pytest

from harness.mass_means import THREE_SYSTEMS
from lenscast.model.image_prediction import predict_images
from lenscast.model.mass_model import MassModel
from lenscast.model.parameter_spec import MASS_PARAMETER_NAMES
from lenscast.model.uncertainty import propagate_uncertainty

MEAN = THREE_SYSTEMS
SOURCE = {"source_x": np.array([0.03, 0.45, 0.02]), "source_y": np.array([0.02, 0.3, 0.06])}


def sigmas(value: float) -> dict[str, np.ndarray]:
    return {k: np.full(3, value) for k in MASS_PARAMETER_NAMES}


def test_zero_sigma_reproduces_the_nominal_prediction() -> None:
    u = propagate_uncertainty(MEAN, sigmas(0.0), **SOURCE, z_lens=0.5, z_source=2.0, n_samples=8)
    nominal = predict_images(MassModel.from_mapping(MEAN), **SOURCE, z_lens=0.5, z_source=2.0)
    for p in range(3):
        np.testing.assert_allclose(u.x[..., p], nominal.x, atol=1e-12)
        np.testing.assert_allclose(u.time_delay_days[..., p], nominal.time_delay_days, atol=1e-9)
    np.testing.assert_array_equal(u.image_count_mismatch_fraction, 0.0)
    present = np.isfinite(nominal.x)
    np.testing.assert_array_equal(u.matched_fraction[present], 1.0)
    assert u.x.shape == (3, nominal.x.shape[1], 3)


def test_percentiles_are_ordered_and_cover_nominal() -> None:
    u = propagate_uncertainty(MEAN, sigmas(0.01), **SOURCE, z_lens=0.5, z_source=2.0, seed=3)
    ok = np.isfinite(u.x[..., 1])
    assert np.all(u.x[..., 0][ok] <= u.x[..., 1][ok])
    assert np.all(u.x[..., 1][ok] <= u.x[..., 2][ok])
    # Small sigma: the nominal image lies inside (or very near) its 16-84 % interval.
    nominal = u.nominal.x[ok]
    width = u.x[..., 2][ok] - u.x[..., 0][ok]
    assert np.all(np.abs(nominal - u.x[..., 1][ok]) < width + 1e-3)
    assert np.all(u.time_delay_days[:, 0, :] == 0)


def test_sis_theta_e_sigma_maps_to_image_radius() -> None:
    """Round SIS, only theta_E uncertain: both images move by exactly d(theta_E)."""
    mean = {k: np.zeros(1) for k in MASS_PARAMETER_NAMES} | {"theta_e": np.array([1.0])}
    sigma = {k: np.zeros(1) for k in MASS_PARAMETER_NAMES} | {"theta_e": np.array([0.05])}
    u = propagate_uncertainty(
        mean, sigma, source_x=0.3, source_y=0.0, z_lens=0.5, z_source=2.0, n_samples=2000
    )
    half_width = 0.5 * (u.x[0, :2, 2] - u.x[0, :2, 0])
    np.testing.assert_allclose(half_width, 0.05, rtol=0.1)


def test_transient_keeps_the_observed_image_fixed() -> None:
    nominal = predict_images(MassModel.from_mapping(MEAN), **SOURCE, z_lens=0.5, z_source=2.0)
    ix, iy = nominal.x[:, 0], nominal.y[:, 0]
    u = propagate_uncertainty(
        MEAN, sigmas(0.02), image_x=ix, image_y=iy, z_lens=0.5, z_source=2.0, n_samples=50
    )
    col = u.nominal.observed_index
    assert np.all(col >= 0)
    rows = np.arange(3)
    for p in range(3):
        np.testing.assert_allclose(u.x[rows, col, p], ix, atol=1e-9)
        np.testing.assert_allclose(u.y[rows, col, p], iy, atol=1e-9)


def test_covariance_variant_and_reported_mismatch() -> None:
    cov = np.diag(np.full(7, 0.01**2))
    u = propagate_uncertainty(MEAN, covariance=cov, **SOURCE, z_lens=0.5, z_source=2.0)
    assert u.x.shape[0] == 3
    # A source near a caustic with a large sigma: some samples lose or gain the bright pair,
    # which is reported, not hidden.
    wide = propagate_uncertainty(MEAN, sigmas(0.1), **SOURCE, z_lens=0.5, z_source=2.0)
    assert np.all(
        (wide.image_count_mismatch_fraction >= 0) & (wide.image_count_mismatch_fraction <= 1)
    )
    assert wide.image_count_mismatch_fraction.max() > 0
    with pytest.raises(ValueError, match="sigma or covariance"):
        propagate_uncertainty(MEAN, **SOURCE, z_lens=0.5, z_source=2.0)


def test_empty_batch() -> None:
    empty = {k: np.zeros(0) for k in MASS_PARAMETER_NAMES}
    u = propagate_uncertainty(
        empty, empty, image_x=np.zeros(0), image_y=np.zeros(0), z_lens=np.zeros(0),
        z_source=np.zeros(0),
    )  # fmt: skip
    assert u.x.shape[0] == 0
    assert u.image_count_mismatch_fraction.shape == (0,)


def test_delays_after_a_later_observed_image_are_taken_per_draw() -> None:
    # Observe the *last*-arriving image: its own offset is exactly zero in every draw, and each
    # other image's nominal offset lies inside the percentiles of the per-draw offsets.
    nominal = predict_images(MassModel.from_mapping(MEAN), **SOURCE, z_lens=0.5, z_source=2.0)
    last = nominal.n_images - 1
    rows = np.arange(3)
    ix, iy = nominal.x[rows, last], nominal.y[rows, last]
    u = propagate_uncertainty(
        MEAN, sigmas(0.02), image_x=ix, image_y=iy, z_lens=0.5, z_source=2.0, n_samples=200
    )
    col = u.nominal.observed_index
    after = u.delay_after_observed_days
    np.testing.assert_array_equal(after[rows, col], 0.0)
    expected = u.nominal.time_delay_days - u.nominal.time_delay_days[rows, col][:, None]
    for i in rows:
        for k in range(int(u.nominal.n_images[i])):
            if k == col[i]:
                continue
            p16, p50, p84 = after[i, k]
            assert p16 < p50 < p84
            # The nominal offset sits inside its own 16-84 % interval, unlike the shifted
            # difference of marginal percentiles this replaces.
            assert p16 - 1e-9 <= expected[i, k] <= p84 + 1e-9


def test_delays_after_observed_are_nan_when_solved_from_a_source() -> None:
    u = propagate_uncertainty(MEAN, sigmas(0.02), **SOURCE, z_lens=0.5, z_source=2.0, n_samples=20)
    assert np.all(np.isnan(u.delay_after_observed_days))


def test_latin_hypercube_draws_fill_every_stratum_once() -> None:
    from scipy.special import ndtr

    from lenscast.model.uncertainty import latin_hypercube_normal

    rngs = [np.random.default_rng([4, k]) for k in range(3)]
    z = latin_hypercube_normal(rngs, 64, 7)
    assert z.shape == (3, 64, 7)
    assert np.all(np.isfinite(z))
    strata = np.floor(ndtr(z) * 64).astype(int)
    for s in range(3):
        for j in range(7):  # each parameter visits each of the 64 strata exactly once
            np.testing.assert_array_equal(np.sort(strata[s, :, j]), np.arange(64))
        # ... in an independent order per parameter (identical orders would correlate them).
        assert len({tuple(strata[s, :, j]) for j in range(7)}) == 7
    # A system's draws depend only on its own generator.
    alone = latin_hypercube_normal([np.random.default_rng([4, 1])], 64, 7)
    np.testing.assert_array_equal(alone[0], z[1])


def test_stratified_draws_are_the_default_and_random_draws_remain_available() -> None:
    kwargs = dict(**SOURCE, z_lens=0.5, z_source=2.0, n_samples=32, seed=1)
    latin = propagate_uncertainty(MEAN, sigmas(0.02), **kwargs)
    again = propagate_uncertainty(MEAN, sigmas(0.02), sampling="latin", **kwargs)
    random = propagate_uncertainty(MEAN, sigmas(0.02), sampling="random", **kwargs)
    np.testing.assert_array_equal(latin.x, again.x)
    ok = np.isfinite(latin.x)
    assert not np.array_equal(latin.x[ok], random.x[ok])
    with pytest.raises(ValueError, match="sampling"):
        propagate_uncertainty(MEAN, sigmas(0.02), sampling="sobol", **kwargs)


def test_stratified_theta_e_sigma_gives_the_exact_percentiles_with_few_draws() -> None:
    """Round SIS, only theta_E uncertain: images move by d(theta_E), and with one draw per
    stratum the 16-84 % half-width of 64 draws is near the value the stratum centres give."""
    mean = {k: np.zeros(1) for k in MASS_PARAMETER_NAMES} | {"theta_e": np.array([1.0])}
    sigma = {k: np.zeros(1) for k in MASS_PARAMETER_NAMES} | {"theta_e": np.array([0.05])}
    u = propagate_uncertainty(
        mean, sigma, source_x=0.3, source_y=0.0, z_lens=0.5, z_source=2.0, n_samples=64
    )
    half_width = 0.5 * (u.x[0, :2, 2] - u.x[0, :2, 0])
    # 0.973 sigma: numpy's percentile of the 64 stratum-centre quantiles. Independent draws
    # scatter the half-width by ~10 % at 64 draws; one draw per stratum keeps it within ~3 %.
    np.testing.assert_allclose(half_width, 0.05 * 0.973, rtol=0.04)

"""Redshift errors and priors in the Monte Carlo, and rescaling stored delays to new redshifts."""

from __future__ import annotations

import numpy as np
import pytest

from harness.mass_means import THREE_SYSTEMS
from lenscast.model import redshift_prior as prior
from lenscast.model.cosmology import (
    delay_days_per_arcsec2,
    flat_lcdm,
    time_delay_distance_interpolated_mpc,
    time_delay_distance_mpc,
)
from lenscast.model.parameter_spec import MASS_PARAMETER_NAMES
from lenscast.model.redshifts import Redshifts
from lenscast.model.uncertainty import propagate_uncertainty

MEAN = THREE_SYSTEMS
SIGMA = {k: np.full(3, 0.02) for k in MASS_PARAMETER_NAMES}
IMAGE = {"image_x": np.array([1.25, 1.6, 0.3]), "image_y": np.array([0.35, -0.4, 0.95])}


def test_exact_redshifts_give_the_same_draws_as_before() -> None:
    """Zero errors draw nothing more: every percentile is bit-identical to no errors at all."""
    plain = propagate_uncertainty(MEAN, SIGMA, **IMAGE, z_lens=0.5, z_source=2.0, seed=4)
    zero = propagate_uncertainty(
        MEAN, SIGMA, **IMAGE, z_lens=0.5, z_source=2.0, z_lens_err=0.0, z_source_err=0.0,
        redshift_prior=True, seed=4,
    )  # fmt: skip
    for name in ("x", "y", "time_delay_days", "delay_after_observed_days"):
        np.testing.assert_array_equal(getattr(zero, name), getattr(plain, name))


def test_redshift_errors_widen_delays_but_not_positions() -> None:
    common = {"z_lens": 0.5, "z_source": 2.0, "seed": 4, "n_samples": 2000}
    sigma = {k: v / 4 for k, v in SIGMA.items()}
    plain = propagate_uncertainty(MEAN, sigma, **IMAGE, **common)
    wide = propagate_uncertainty(MEAN, sigma, **IMAGE, **common, z_lens_err=0.1)
    np.testing.assert_array_equal(wide.x, plain.x)
    width = wide.time_delay_days[..., 2] - wide.time_delay_days[..., 0]
    plain_width = plain.time_delay_days[..., 2] - plain.time_delay_days[..., 0]
    later = np.isfinite(width) & (plain_width > 0)
    # A ~25 % spread of D_dt (z_l 0.5 +- 0.1) on top of the mass model's: wider on the whole
    # (not for each image: a factor near 1 on a delay spread about 0 can narrow it).
    assert np.median(width[later] / plain_width[later]) > 1.1


def test_rescaling_the_stored_factors_reproduces_a_run_with_new_redshifts() -> None:
    """``dt' = D_dt(z') / c * fermat_potential`` equals solving again at ``z'``, percentiles too."""
    cosmology = flat_lcdm(67.7, 0.31)
    run = propagate_uncertainty(
        MEAN, SIGMA, **IMAGE, z_lens=0.5, z_source=1.5, cosmology=cosmology, seed=2
    )
    new_z = {"z_lens": np.array([0.4, 0.6, 0.3]), "z_source": np.array([2.5, 1.2, 3.0])}
    again = propagate_uncertainty(MEAN, SIGMA, **IMAGE, **new_z, cosmology=cosmology, seed=2)
    d_new = time_delay_distance_mpc(new_z["z_lens"], new_z["z_source"], cosmology)
    rescaled = delay_days_per_arcsec2(d_new)[:, None] * run.nominal.fermat_potential
    ok = np.isfinite(again.nominal.time_delay_days)
    np.testing.assert_allclose(rescaled[ok], again.nominal.time_delay_days[ok], rtol=1e-10)
    # With exact redshifts the draws share one distance: percentiles scale by the same ratio.
    ratio = (d_new / run.nominal.time_delay_distance_mpc)[:, None, None]
    got = run.time_delay_days * ratio
    np.testing.assert_allclose(got[np.isfinite(got)], again.time_delay_days[np.isfinite(got)],
                               rtol=1e-10, atol=1e-12)  # fmt: skip


def test_missing_source_redshift_uses_the_prior_median_and_quantiles() -> None:
    """Exact lens, no mass sigma: the delay percentiles are the prior's z_s quantiles mapped."""
    mean = {k: v[:1] for k, v in MEAN.items()}
    sigma = {k: np.zeros(1) for k in MASS_PARAMETER_NAMES}
    u = propagate_uncertainty(
        mean, sigma, **{k: v[:1] for k, v in IMAGE.items()}, z_lens=0.5, z_source=np.nan,
        redshift_prior=True, n_samples=4000,
    )  # fmt: skip
    assert u.z_source[0] == pytest.approx(float(prior.source_redshift_quantile(0.5, 0.5)))
    tau = u.nominal.fermat_potential[0, 1]
    # D_dt falls as z_s grows: the 16th delay percentile belongs to the 84th z_s quantile.
    zs = prior.source_redshift_quantile(np.array([0.84, 0.5, 0.16]), 0.5)
    expected = delay_days_per_arcsec2(time_delay_distance_mpc(0.5, zs)) * tau
    np.testing.assert_allclose(u.time_delay_days[0, 1], expected, rtol=2e-3)


def test_without_the_prior_a_missing_redshift_still_means_no_delays() -> None:
    u = propagate_uncertainty(
        MEAN, SIGMA, **IMAGE, z_lens=0.5, z_source=np.nan, z_lens_err=0.05, seed=1
    )
    assert np.all(np.isnan(u.time_delay_days[:, 1:]))
    assert np.all(np.isfinite(u.x[:, 0]))


def test_draws_stay_physical_and_ordered() -> None:
    rng = np.random.default_rng(0)
    z = Redshifts.of(
        4, z_lens=[0.5, np.nan, 0.9, 0.05], z_source=[np.nan, np.nan, 0.95, 1.0],
        z_lens_err=[0.2, 0.0, 0.3, 0.2], z_source_err=[0.0, 0.0, 0.0, 0.5],
    )  # fmt: skip
    z_l, z_s = z.draw(rng.random((4, 5000, 2)))
    assert np.all(z_l >= prior.MIN_REDSHIFT)
    assert np.all(z_s >= z_l + prior.MIN_SEPARATION - 1e-12)
    assert np.all(z_s <= prior.MAX_REDSHIFT)
    # An exact z_s is never moved; the lens draws below it keep the minimum gap.
    np.testing.assert_array_equal(z_s[2], 0.95)
    assert z_l[2].max() <= 0.95 - prior.MIN_SEPARATION + 1e-12
    assert list(z.lens_from_prior) == [False, True, False, False]
    # A source too near for the gap: its uncertain lens stays at the smallest redshift.
    tight = Redshifts.of(1, z_lens=0.02, z_source=0.05, z_lens_err=0.05)
    z_l, _ = tight.draw(rng.random((1, 100, 2)))
    np.testing.assert_array_equal(z_l, prior.MIN_REDSHIFT)
    assert list(z.source_from_prior) == [True, True, False, False]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"z_lens": 0.5, "z_source": 2.0, "z_lens_err": -0.1}, ">= 0"),
        ({"z_lens": 0.0, "z_source": 2.0}, "> 0"),
        ({"z_lens": 0.5, "z_source": 0.4}, "exceed"),
    ],
)
def test_bad_redshifts_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Redshifts.of(1, **kwargs)


def test_truncated_normal_quantiles() -> None:
    q = prior.truncated_normal_quantile([0.16, 0.5, 0.84], 1.0, 0.1, -np.inf)
    np.testing.assert_allclose(q, [0.90055, 1.0, 1.09945], atol=1e-4)
    # Truncated at the mean: the median moves to the upper half's median.
    assert float(prior.truncated_normal_quantile(0.5, 1.0, 0.1, 1.0)) == pytest.approx(
        1.0 + 0.1 * 0.6744897, rel=1e-6
    )
    assert float(prior.truncated_normal_quantile(0.3, 1.0, 0.0, 2.0)) == 1.0


def test_sl2s_table_and_priors() -> None:
    table = np.array(prior.SL2S_REDSHIFTS)
    assert table.shape == (53, 2)
    assert np.isfinite(table[:, 0]).sum() == 52
    assert np.isfinite(table[:, 1]).sum() == 36
    # Behind a nearby lens the truncation (3 sigma below the mean) barely moves the median.
    assert float(prior.source_redshift_quantile(0.5, 0.3)) == pytest.approx(
        np.expm1(prior.SOURCE_LOG_MEAN), rel=1e-3
    )
    # Behind a distant lens the prior starts above it.
    lowest = float(prior.source_redshift_quantile(0.0, 2.5))
    assert lowest == pytest.approx(2.5 + prior.MIN_SEPARATION, rel=1e-9)


def test_interpolated_distance_matches_astropy() -> None:
    rng = np.random.default_rng(1)
    z_l = rng.uniform(0.01, 3.0, 5000)
    z_s = z_l + rng.uniform(prior.MIN_SEPARATION, 6.0, 5000)
    cosmology = flat_lcdm(73.0, 0.27)
    exact = time_delay_distance_mpc(z_l, z_s, cosmology)
    fast = time_delay_distance_interpolated_mpc(z_l, z_s, cosmology)
    np.testing.assert_allclose(fast, exact, rtol=1e-5)
    assert np.isnan(time_delay_distance_interpolated_mpc(1.0, 0.5))

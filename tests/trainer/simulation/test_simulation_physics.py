"""Simulator physics against oracles: lenstronomy, astropy, analytic integrals."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM

from lenscast.trainer.simulation.cosmology import (
    distance_table,
    fermat_to_days,
    sis_einstein_radius,
    sis_velocity_dispersion,
)
from lenscast.trainer.simulation.mass import (
    SieShear,
    ellipticity_to_phi_q,
    phi_q_to_ellipticity,
    sie_shear_deflection,
    sie_shear_potential,
)
from lenscast.trainer.simulation.observing import draw_conditions
from lenscast.trainer.simulation.profiles import sersic_ellipse
from lenscast.trainer.simulation.psf import moffat_kernel
from lenscast.trainer.simulation.truths import MASS_KEYS, solve_batch

MASS_CASES = [
    dict(theta_e=1.3, e1=0.2, e2=-0.1, center_x=0.2, center_y=-0.3, gamma1=0.05, gamma2=-0.03),
    dict(theta_e=0.5, e1=0.0, e2=0.0, center_x=0.0, center_y=0.0, gamma1=0.0, gamma2=0.0),
    dict(theta_e=2.0, e1=1e-9, e2=0.0, center_x=-0.6, center_y=0.1, gamma1=0.1, gamma2=0.0),
    dict(theta_e=4.8, e1=0.45, e2=0.1, center_x=0.5, center_y=0.5, gamma1=-0.15, gamma2=0.15),
]


def _lenstronomy_kwargs(p):
    return [
        {
            "theta_E": p["theta_e"],
            "e1": p["e1"],
            "e2": p["e2"],
            "center_x": p["center_x"],
            "center_y": p["center_y"],
        },
        {"gamma1": p["gamma1"], "gamma2": p["gamma2"]},
    ]


@pytest.mark.parametrize("params", MASS_CASES)
def test_deflection_and_potential_match_lenstronomy(params):
    from lenstronomy.LensModel.lens_model import LensModel

    model = LensModel(["SIE", "SHEAR"])
    x, y = np.random.default_rng(0).normal(scale=2.5, size=(2, 2000))
    ax, ay = sie_shear_deflection(x, y, lens=SieShear(**params))
    ref_x, ref_y = model.alpha(x, y, _lenstronomy_kwargs(params))
    np.testing.assert_allclose(ax, ref_x, atol=1e-7)
    np.testing.assert_allclose(ay, ref_y, atol=1e-7)
    psi = sie_shear_potential(x, y, lens=SieShear(**params))
    np.testing.assert_allclose(psi, model.potential(x, y, _lenstronomy_kwargs(params)), atol=1e-6)


def test_deflection_is_the_gradient_of_the_potential():
    lens = SieShear(**MASS_CASES[0])
    x, y = np.random.default_rng(1).normal(scale=2.0, size=(2, 200))
    h = 1e-6
    def psi(dx: float, dy: float) -> np.ndarray:
        return sie_shear_potential(x + dx, y + dy, lens=lens)

    gx, gy = (psi(h, 0) - psi(-h, 0)) / (2 * h), (psi(0, h) - psi(0, -h)) / (2 * h)
    ax, ay = sie_shear_deflection(x, y, lens=lens)
    np.testing.assert_allclose(gx, ax, atol=1e-6)
    np.testing.assert_allclose(gy, ay, atol=1e-6)


def test_ellipticity_round_trip():
    phi, q = np.array([0.1, 1.2, -0.7]), np.array([0.4, 0.9, 0.99])
    e1, e2 = phi_q_to_ellipticity(phi=phi, q=q)
    phi2, q2 = ellipticity_to_phi_q(e1=e1, e2=e2)
    np.testing.assert_allclose(q2, q)
    np.testing.assert_allclose(np.cos(2 * phi2), np.cos(2 * phi))
    np.testing.assert_allclose(np.sin(2 * phi2), np.sin(2 * phi))


@pytest.mark.parametrize(("n", "q"), [(1.0, 1.0), (4.0, 0.6), (0.7, 0.4)])
def test_sersic_total_flux(n, q):
    """The docstring's normalisation: the profile integrates to ``flux``."""
    e1, _ = phi_q_to_ellipticity(phi=0.0, q=q)
    axis = np.linspace(-15, 15, 3001)
    x, y = np.meshgrid(axis, axis)
    sb = sersic_ellipse(
        x, y, flux=2.5, r_sersic=0.5, n_sersic=n, e1=float(e1), e2=0.0, center_x=0.0, center_y=0.0
    )
    assert sb.sum() * (axis[1] - axis[0]) ** 2 == pytest.approx(2.5, rel=2e-2)


def test_moffat_kernel_fwhm_and_normalisation():
    kernel = moffat_kernel(fwhm=0.7, beta=3.0, pixel_scale=0.042)  # fine pixels to measure
    assert kernel.sum() == pytest.approx(1.0)
    half = kernel[kernel.shape[0] // 2]
    above = np.nonzero(half >= 0.5 * half.max())[0]
    assert (above[-1] - above[0] + 1) * 0.042 == pytest.approx(0.7, abs=0.05)


@pytest.mark.parametrize(("e1", "e2", "major", "minor"), [
    (0.2, 0.0, (0, 1), (1, 0)),  # major axis east-west: along the rows
    (-0.2, 0.0, (1, 0), (0, 1)),  # north-south: along the columns
    (0.0, 0.2, (1, -1), (1, 1)),  # phi = 45 deg: north-east, i.e. up and to the left
])
def test_elliptical_moffat_kernel_follows_the_lens_convention(e1, e2, major, minor):
    kernel = moffat_kernel(fwhm=0.7, beta=3.0, pixel_scale=0.042, e1=e1, e2=e2)
    assert kernel.sum() == pytest.approx(1.0)
    c, k = kernel.shape[0] // 2, 6
    along = kernel[c + k * major[0], c + k * major[1]]
    across = kernel[c + k * minor[0], c + k * minor[1]]
    assert along > 1.2 * across  # (dx, dy) steps in (row, column); x east = -column


def test_gaussian_psf_is_the_large_beta_limit_of_the_moffat():
    gaussian = moffat_kernel(fwhm=0.7, beta=np.inf, pixel_scale=0.042)
    assert gaussian.sum() == pytest.approx(1.0)
    half = gaussian[gaussian.shape[0] // 2]
    above = np.nonzero(half >= 0.5 * half.max())[0]
    assert (above[-1] - above[0] + 1) * 0.042 == pytest.approx(0.7, abs=0.05)
    # The Moffat approaches it as beta grows (the difference falls roughly as 1 / beta).
    gaps = [np.abs(moffat_kernel(fwhm=0.7, beta=b, pixel_scale=0.042) - gaussian).max()
            for b in (3.0, 30.0, 300.0)]
    assert gaps[0] > 5 * gaps[1] > 25 * gaps[2] > 0.0
    # Fewer wings: beyond 1" (1.4 FWHM) a beta = 3 Moffat holds over 10x the Gaussian's light.
    coarse = moffat_kernel(fwhm=0.7, beta=np.inf, pixel_scale=0.168)
    offsets = np.arange(coarse.shape[0]) - coarse.shape[0] // 2
    wings = np.hypot(*np.meshgrid(offsets, offsets)) * 0.168 > 1.0
    moffat = moffat_kernel(fwhm=0.7, beta=3.0, pixel_scale=0.168)
    assert moffat[wings].sum() > 10 * coarse[wings].sum()
    with pytest.raises(ValueError, match="beta"):
        moffat_kernel(fwhm=0.7, beta=1.0, pixel_scale=0.168)


def test_a_gaussian_psf_fraction_switches_whole_systems_and_draws_nothing_when_zero():
    rng_a, rng_b = np.random.default_rng(6), np.random.default_rng(6)
    draw_conditions(rng_a)
    draw_conditions(rng_b, gaussian_psf_fraction=0.0)
    assert rng_a.uniform() == rng_b.uniform()  # same random stream: existing sets unchanged
    draws = [draw_conditions(np.random.default_rng(s), gaussian_psf_fraction=0.5)
             for s in range(400)]
    gaussian = [all(np.isinf(c[f"psf_beta_{b}"]) for b in "griz") for c in draws]
    moffat = [all(2.5 <= c[f"psf_beta_{b}"] <= 4.5 for b in "griz") for c in draws]
    assert all(g != m for g, m in zip(gaussian, moffat, strict=True))  # all bands alike
    assert 0.42 < np.mean(gaussian) < 0.58
    assert all(np.isinf(c["psf_beta_r"]) for c in (
        draw_conditions(np.random.default_rng(s), gaussian_psf_fraction=1.0) for s in range(20)))


def test_round_psf_draws_nothing_extra_and_elliptical_psf_has_the_asked_ellipticity():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    round_psf = draw_conditions(rng_a)
    assert round_psf["psf_e1"] == round_psf["psf_e2"] == 0.0
    draw_conditions(rng_b, psf_ellipticity=(0.0, 0.0))
    assert rng_a.uniform() == rng_b.uniform()  # same random stream: training sets unchanged
    tilted = draw_conditions(np.random.default_rng(4), psf_ellipticity=(0.08, 0.08))
    assert np.hypot(tilted["psf_e1"], tilted["psf_e2"]) == pytest.approx(0.08)
    sizes = [np.hypot(c["psf_e1"], c["psf_e2"]) for c in (
        draw_conditions(np.random.default_rng(s), psf_ellipticity=(0.0, 0.1)) for s in range(200))]
    assert 0.0 <= min(sizes) < 0.01
    assert 0.09 < max(sizes) <= 0.1
    with pytest.raises(ValueError, match="ellipticity"):
        moffat_kernel(fwhm=0.7, beta=3.0, pixel_scale=0.168, e1=1.0)


def test_distance_table_matches_astropy():
    table = distance_table()
    cosmo = FlatLambdaCDM(H0=70, Om0=0.3)
    for z_l, z_s in [(0.2, 0.8), (0.5, 2.0), (0.9, 3.0)]:
        d_l = cosmo.angular_diameter_distance(z_l).value
        d_s = cosmo.angular_diameter_distance(z_s).value
        d_ls = (cosmo.comoving_distance(z_s).value - cosmo.comoving_distance(z_l).value) / (1 + z_s)
        ref = (1 + z_l) * d_l * d_s / d_ls
        assert table.time_delay_distance(z_lens=z_l, z_source=z_s) == pytest.approx(ref, rel=1e-5)


def test_velocity_dispersion_round_trip():
    table = distance_table()
    sigma = sis_velocity_dispersion(theta_e=1.2, z_lens=0.4, z_source=1.5, table=table)
    assert 200 < sigma < 350  # a massive elliptical
    assert sis_einstein_radius(
        sigma_v=sigma, z_lens=0.4, z_source=1.5, table=table
    ) == pytest.approx(1.2)


def test_fermat_to_days_scale():
    # 1 arcsec^2 at D_dt = 3000 Mpc: 9.257e22 km / 299792 km/s * (4.8481e-6)^2 = 84.0 days.
    assert fermat_to_days(1.0, d_dt_mpc=3000.0) == pytest.approx(84.0, rel=1e-3)


def test_physics_core_and_lenstronomy_solvers_agree():
    """Recorded truths do not depend on the solver: positions, delays, magnifications."""
    rng = np.random.default_rng(3)
    n = 12
    mass = {k: np.array([c[k] for c in MASS_CASES] * 3) for k in MASS_KEYS}
    mass["theta_e"] = rng.uniform(0.6, 4.5, n)
    sx = mass["center_x"] + rng.uniform(-0.4, 0.4, n) * mass["theta_e"]
    sy = mass["center_y"] + rng.uniform(-0.4, 0.4, n) * mass["theta_e"]
    common = dict(
        mass=mass,
        source_x=sx,
        source_y=sy,
        z_lens=np.full(n, 0.5),
        z_source=np.full(n, 2.0),
        table=distance_table(),
    )
    core = solve_batch(**common, solver="model")
    ref = solve_batch(**common, solver="lenstronomy")
    # lenstronomy's analytical solver returns no image for an exactly round, unsheared lens
    # (case 1); there the SIS answer is known: images at beta +- theta_e along beta.
    sis = np.arange(n) % len(MASS_CASES) == 1
    assert np.all(ref["n_images"][sis] == 0)
    general = ~sis
    np.testing.assert_array_equal(core["n_images"][general], ref["n_images"][general])
    for name, atol in [("image_x", 1e-6), ("image_y", 1e-6), ("time_delay_days", 1e-3)]:
        np.testing.assert_allclose(
            core[name][general], ref[name][general], atol=atol, equal_nan=True
        )
    np.testing.assert_allclose(
        core["image_magnification"][general],
        ref["image_magnification"][general],
        rtol=1e-4,
        equal_nan=True,
    )
    beta = np.hypot(sx[sis], sy[sis])
    radii = np.sort(np.hypot(core["image_x"][sis, :2], core["image_y"][sis, :2]), axis=1)
    np.testing.assert_allclose(radii[:, 0], mass["theta_e"][sis] - beta, atol=1e-6)
    np.testing.assert_allclose(radii[:, 1], mass["theta_e"][sis] + beta, atol=1e-6)


@pytest.mark.parametrize(("h0", "om0", "name"), [(-70.0, 0.3, "H0"), (70.0, float("nan"), "Om0")])
def test_distance_table_refuses_a_cosmology_out_of_range(h0: float, om0: float, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        distance_table(h0=h0, om0=om0)

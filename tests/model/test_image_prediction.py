"""Lens-equation solver: lenstronomy as the oracle on a subsample, invariants and limits.

The full 10,000-system comparison is ``benchmarks/solver_agreement.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from lenscast.model import lens_quantities as lq
from lenscast.model.critical_curves import critical_curves
from lenscast.model.image_prediction import predict_images
from lenscast.model.lens_equation import MAX_IMAGES, solve_images
from lenscast.model.mass_model import MassModel

pytest.importorskip("lenstronomy")

# The input is a seed: shrinking it teaches nothing and costs minutes on a failure.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


def residual(images, model: MassModel, bx, by) -> np.ndarray:
    px, py = lq.ray_shoot(images.x, images.y, model=model)
    return np.hypot(px - np.reshape(bx, (-1, 1)), py - np.reshape(by, (-1, 1)))


@pytest.mark.slow
def test_agreement_with_lenstronomy_subsample() -> None:
    """Same image counts (or ours provably right), positions, magnifications and delays."""
    from benchmarks.solver_agreement import compare

    result = compare(300, seed=12345)
    assert result["mismatch_lenstronomy_right"] == 0, result["mismatch_examples"]
    assert result["image_count_agreement"] > 0.95
    assert result["max_position_error_arcsec"] < 1e-5
    assert result["max_magnification_relative_error"] < 1e-4
    assert result["max_time_delay_relative_error"] < 1e-6


def random_models(draw_rng: np.random.Generator, n: int, slope: bool) -> MassModel:
    q = draw_rng.uniform(0.3, 1.0, n)
    pa = draw_rng.uniform(0, np.pi, n)
    e = (1 - q) / (1 + q)
    g = draw_rng.uniform(0, 0.15, n)
    gpa = draw_rng.uniform(0, np.pi, n)
    return MassModel(
        theta_e=draw_rng.uniform(0.3, 5, n), e1=e * np.cos(2 * pa), e2=e * np.sin(2 * pa),
        center_x=draw_rng.uniform(-0.5, 0.5, n), center_y=draw_rng.uniform(-0.5, 0.5, n),
        gamma=draw_rng.uniform(1.7, 2.3, n) if slope else 2.0,
        gamma1=g * np.cos(2 * gpa), gamma2=g * np.sin(2 * gpa),
    )  # fmt: skip


@settings(max_examples=25, deadline=None, phases=NO_SHRINK)
@given(seed=st.integers(0, 2**32 - 1), slope=st.booleans())
def test_solve_then_ray_shoot_recovers_both_coordinates(seed: int, slope: bool) -> None:
    rng = np.random.default_rng(seed)
    m = random_models(rng, 20, slope)
    r = m.theta_e * np.sqrt(rng.uniform(0, 1, 20))
    a = rng.uniform(0, 2 * np.pi, 20)
    bx, by = m.center_x + r * np.cos(a), m.center_y + r * np.sin(a)
    im = solve_images(bx, by, model=m)
    px, py = lq.ray_shoot(im.x, im.y, model=m)
    found = np.isfinite(im.x)
    assert np.all(found.sum(axis=1) == im.n_images)
    # Each coordinate separately (not just the distance, not just x).
    scale = np.maximum(1.0, m.theta_e)[:, None]
    assert np.all(np.abs(px - bx[:, None])[found] < 1e-10 * np.broadcast_to(scale, px.shape)[found])
    assert np.all(np.abs(py - by[:, None])[found] < 1e-10 * np.broadcast_to(scale, py.shape)[found])
    assert np.all(im.n_images >= 1)
    # Arrival order: Fermat potential increasing along each row.
    tau = im.fermat_potential
    both = found[:, 1:] & found[:, :-1]
    assert np.all(tau[:, 1:][both] >= tau[:, :-1][both])


@settings(max_examples=25, deadline=None, phases=NO_SHRINK)
@given(seed=st.integers(0, 2**32 - 1))
def test_transient_round_trip_recovers_observed_image(seed: int) -> None:
    """image -> source -> all images: the observed image is among them, source consistent."""
    rng = np.random.default_rng(seed)
    m = random_models(rng, 10, slope=False)
    ang = rng.uniform(0, 2 * np.pi, 10)
    rad = m.theta_e * rng.uniform(0.6, 1.6, 10)
    ix, iy = m.center_x + rad * np.cos(ang), m.center_y + rad * np.sin(ang)
    pred = predict_images(m, image_x=ix, image_y=iy, z_lens=0.5, z_source=2.0)
    assert np.all(pred.observed_index >= 0)
    rows = np.arange(10)
    np.testing.assert_allclose(pred.x[rows, pred.observed_index], ix, atol=1e-9)
    np.testing.assert_allclose(pred.y[rows, pred.observed_index], iy, atol=1e-9)
    sx, sy = lq.ray_shoot(ix, iy, model=m)
    np.testing.assert_allclose(pred.source_x, sx)
    np.testing.assert_allclose(pred.source_y, sy)
    assert np.all(pred.time_delay_days[:, 0] == 0)
    assert np.all(np.nan_to_num(pred.time_delay_days, nan=0.0) >= 0)


def test_quad_parities_and_shapes() -> None:
    """A quad: two minima (mu > 0) and two saddles (mu < 0); arrays padded to MAX_IMAGES."""
    m = MassModel(theta_e=1.2, e1=0.1, e2=-0.05, center_x=0.0, center_y=0.0, gamma1=0.03)
    im = solve_images(0.02, 0.01, model=m)
    assert im.x.shape == (1, MAX_IMAGES)
    assert im.n_images[0] == 4
    mu = im.magnification[0, :4]
    assert (mu > 0).sum() == 2
    assert (mu < 0).sum() == 2
    # The first image to arrive is a minimum of the arrival time.
    assert mu[0] > 0


@pytest.mark.parametrize("q", [1.0, 1.0 - 1e-12, 1.0 - 1e-7])
def test_round_limit_double(q: float) -> None:
    """q -> 1, no shear: images on the source's line through the centre, r = |beta| +- theta_E."""
    e = (1 - q) / (1 + q)
    m = MassModel(theta_e=1.0, e1=e, e2=0.0, center_x=0.0, center_y=0.0)
    im = solve_images(0.3, 0.4, model=m)
    assert im.n_images[0] == 2
    r = np.sort(np.hypot(im.x[0, :2], im.y[0, :2]))
    np.testing.assert_allclose(r, [0.5, 1.5], atol=5e-6 if q < 1 - 1e-8 else 1e-10)
    assert np.all(residual(im, m, 0.3, 0.4)[0, :2] < 1e-12)


def test_zero_shear_and_epl_round_limit() -> None:
    """Round EPL: images on the source's line; outer radius solves r - theta_E^t r^(1-t) = beta."""
    m = MassModel(theta_e=1.0, e1=0.0, e2=0.0, center_x=0.1, center_y=0.0, gamma=2.2)
    im = solve_images(0.35, 0.0, model=m)
    assert im.n_images[0] == 2
    r = np.sort(np.abs(im.x[0, :2] - 0.1))[::-1]
    t = 1.2
    np.testing.assert_allclose(r[0] - r[0] ** (1 - t), 0.25, atol=1e-12)
    np.testing.assert_allclose(im.y[0, :2], 0.0, atol=1e-12)


def test_source_on_optical_axis_gives_ring_not_crash() -> None:
    m = MassModel(theta_e=[1.0, 1.0, 1.0], e1=[0.0, 0.0, 0.2], e2=0.0, center_x=0.2, center_y=0.1,
                  gamma=[2.0, 1.8, 2.0])  # fmt: skip
    im = solve_images(0.2, 0.1, model=m)
    assert im.ring.tolist() == [True, True, False]
    assert im.n_images.tolist()[:2] == [0, 0]
    # Elliptical lens with the source on the axis: the four-image cross, not a ring.
    assert im.n_images[2] == 4
    pred = predict_images(m, source_x=0.2, source_y=0.1, z_lens=0.5, z_source=2.0)
    assert pred.ring.tolist() == [True, True, False]


@pytest.mark.parametrize("slope", [2.0, 2.2, 1.8])
def test_source_exactly_on_caustic(slope: float) -> None:
    """On the caustic: a finite, clear answer (valid images, a huge |mu| or the pair gone)."""
    m = MassModel(theta_e=1.2, e1=0.2, e2=0.05, center_x=0.1, center_y=0.0, gamma=slope,
                  gamma1=0.05, gamma2=0.02)  # fmt: skip
    c = critical_curves(m)
    for k in (200, 437):  # fold points
        bx, by = c.tangential_caustic_x[k], c.tangential_caustic_y[k]
        im = solve_images(bx, by, model=m)
        n = im.n_images[0]
        assert n in (2, 3, 4)
        assert np.all(residual(im, m, bx, by)[0, :n] < 1e-8)
        # A hair inside the fold (towards the lens centre) the merging pair exists, very
        # bright; a hair outside it does not.
        inside = solve_images(bx * (1 - 1e-4) + 0.1 * 1e-4, by * (1 - 1e-4), model=m)
        outside = solve_images(bx * (1 + 1e-4) - 0.1 * 1e-4, by * (1 + 1e-4), model=m)
        assert inside.n_images[0] == outside.n_images[0] + 2
        assert np.nanmax(np.abs(inside.magnification)) > 100


def test_critical_curve_is_critical_and_sis_radius() -> None:
    m = MassModel(theta_e=[1.3, 1.0], e1=[0.0, 0.15], e2=[0.0, -0.1], center_x=0.0, center_y=0.0,
                  gamma=[2.0, 1.85], gamma1=[0.0, 0.04])  # fmt: skip
    sis = critical_curves(m, index=0)
    np.testing.assert_allclose(np.hypot(sis.tangential_x, sis.tangential_y), 1.3, rtol=1e-10)
    np.testing.assert_allclose(np.hypot(sis.cut_x, sis.cut_y), 1.3, rtol=1e-6)
    epl = critical_curves(m, index=1)
    assert epl.radial_x.size > 0
    assert epl.cut_x.size == 0
    one = m.take([1])
    for xs, ys in ((epl.tangential_x, epl.tangential_y), (epl.radial_x, epl.radial_y)):
        fxx, fxy, fyy = lq.hessian(xs, ys, model=one)
        det = (1 - fxx) * (1 - fyy) - fxy**2
        assert np.max(np.abs(det)) < 1e-9


def test_batch_equals_one_by_one() -> None:
    rng = np.random.default_rng(7)
    m = random_models(rng, 12, slope=True)
    bx, by = m.center_x + 0.1 * m.theta_e, m.center_y - 0.05 * m.theta_e
    batch = solve_images(bx, by, model=m)
    for i in range(12):
        one = solve_images(bx[i], by[i], model=m.take([i]))
        assert one.n_images[0] == batch.n_images[i]
        np.testing.assert_allclose(one.x[0], batch.x[i], atol=1e-12)


def test_source_exactly_on_the_sie_cut() -> None:
    """On the pseudo-caustic the inner saddle sits on the centre: dropped, or mu -> 0."""
    m = MassModel(theta_e=1.2, e1=0.3, e2=0.05, center_x=0.1, center_y=0.0, gamma1=0.05)
    c = critical_curves(m)
    for k in (0, 250, 500):
        im = solve_images(c.cut_x[k], c.cut_y[k], model=m)
        n = im.n_images[0]
        assert n in (1, 2, 3)
        assert np.all(residual(im, m, c.cut_x[k], c.cut_y[k])[0, :n] < 1e-8)
        # The bright outer image survives; an inner one, if listed, is vanishingly faint.
        mags = np.sort(np.abs(im.magnification[0, :n]))
        assert mags[-1] > 0.5
        if n == 2:
            assert mags[0] < 1e-3

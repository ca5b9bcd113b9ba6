"""EPL/SIE + shear profiles: lenstronomy as the oracle, derivatives, limits, the container."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenscast.model import epl
from lenscast.model import lens_quantities as lq
from lenscast.model.cosmology import (
    default_cosmology,
    delay_days_per_arcsec2,
    time_delay_distance_mpc,
)
from lenscast.model.mass_model import FIELD_NAMES, MassModel

lenstronomy_lens_model = pytest.importorskip("lenstronomy.LensModel.lens_model")

# A grid over the ranges the solver must cover (theta_e 0.3-5", q 0.3-1, slope 1.7-2.3), with
# the limits: round (q = 1), nearly round, no shear.
THETA_E = (0.3, 1.7, 5.0)
Q = (0.3, 0.7, 1.0 - 1e-9, 1.0)
SLOPE = (1.7, 2.0, 2.3)
SHEAR = ((0.0, 0.0), (0.1, -0.08))


def grid_models() -> list[MassModel]:
    out = []
    for theta_e, q, slope, (g1, g2) in itertools.product(THETA_E, Q, SLOPE, SHEAR):
        e = (1 - q) / (1 + q)
        out.append(
            MassModel(
                theta_e=theta_e, e1=e * np.cos(0.8), e2=e * np.sin(0.8), center_x=0.2,
                center_y=-0.1, gamma=slope, gamma1=g1, gamma2=g2,
            )
        )  # fmt: skip
    return out


def points(model: MassModel, k: int = 40, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    r = model.theta_e[0] * rng.uniform(0.05, 3.0, k)
    a = rng.uniform(0, 2 * np.pi, k)
    return model.center_x[0] + r * np.cos(a), model.center_y[0] + r * np.sin(a)


def oracle(model: MassModel):
    lm = lenstronomy_lens_model.LensModel(["EPL", "SHEAR"])
    kwargs = [
        {
            "theta_E": model.theta_e[0], "gamma": model.gamma[0], "e1": model.e1[0],
            "e2": model.e2[0], "center_x": model.center_x[0], "center_y": model.center_y[0],
        },
        {"gamma1": model.gamma1[0], "gamma2": model.gamma2[0]},
    ]  # fmt: skip
    return lm, kwargs


@pytest.mark.parametrize(
    "model", grid_models(), ids=lambda m: f"g{m.gamma[0]}q{m.axis_ratio[0]:.3g}"
)
def test_profiles_match_lenstronomy(model: MassModel) -> None:
    x, y = points(model)
    lm, kw = oracle(model)
    ax, ay = lq.deflection(x, y, model=model)
    lax, lay = lm.alpha(x, y, kw)
    scale = model.theta_e[0]
    assert np.max(np.abs(ax - lax)) < 1e-12 * scale
    assert np.max(np.abs(ay - lay)) < 1e-12 * scale
    fxx, fxy, fyy = lq.hessian(x, y, model=model)
    lxx, lxy, _, lyy = lm.hessian(x, y, kw)
    assert np.allclose([fxx, fxy, fyy], [lxx, lxy, lyy], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lq.convergence(x, y, model=model), lm.kappa(x, y, kw), rtol=1e-12)
    # Potentials agree up to a constant (time delays use differences only).
    diff = lq.potential(x, y, model=model) - lm.potential(x, y, kw)
    assert np.ptp(diff) < 1e-11 * scale**2
    np.testing.assert_allclose(
        lq.magnification(x, y, model=model), lm.magnification(x, y, kw), rtol=1e-9
    )


@pytest.mark.parametrize("model", grid_models()[::3])
def test_numerical_derivatives_match_analytic(model: MassModel) -> None:
    x, y = points(model, seed=2)
    h = 1e-6 * model.theta_e[0]
    ax, ay = lq.deflection(x, y, model=model)
    # alpha = grad psi
    dpx = (lq.potential(x + h, y, model=model) - lq.potential(x - h, y, model=model)) / (2 * h)
    dpy = (lq.potential(x, y + h, model=model) - lq.potential(x, y - h, model=model)) / (2 * h)
    np.testing.assert_allclose(dpx, ax, atol=1e-7 * model.theta_e[0])
    np.testing.assert_allclose(dpy, ay, atol=1e-7 * model.theta_e[0])
    # H = grad alpha (symmetric), kappa = tr(H)/2
    fxx, fxy, fyy = lq.hessian(x, y, model=model)
    axp, ayp = lq.deflection(x + h, y, model=model)
    axm, aym = lq.deflection(x - h, y, model=model)
    bxp, byp = lq.deflection(x, y + h, model=model)
    bxm, bym = lq.deflection(x, y - h, model=model)
    np.testing.assert_allclose((axp - axm) / (2 * h), fxx, atol=1e-6)
    np.testing.assert_allclose((ayp - aym) / (2 * h), fxy, atol=1e-6)
    np.testing.assert_allclose((bxp - bxm) / (2 * h), fxy, atol=1e-6)
    np.testing.assert_allclose((byp - bym) / (2 * h), fyy, atol=1e-6)
    np.testing.assert_allclose(0.5 * (fxx + fyy), lq.convergence(x, y, model=model), rtol=1e-12)


def test_sie_closed_form_equals_series() -> None:
    """gamma = 2 takes the arctan/arctanh path; the TM15 series must give the same."""
    rng = np.random.default_rng(3)
    xp, yp = rng.normal(size=200), rng.normal(size=200)
    for q in (0.2, 0.5, 0.999999, 1.0):
        b = np.full(200, 1.3)
        closed = epl.sie_frame_deflection(xp, yp, b=b, q=np.full(200, q))
        series = epl.epl_frame_deflection(xp, yp, b=b, q=np.full(200, q), t=np.full(200, 1.0))
        np.testing.assert_allclose(closed, series, rtol=1e-13, atol=1e-14)


def test_round_sis_limit() -> None:
    """q = 1, no shear, slope 2: alpha = theta_E r_hat, kappa = theta_E/2r, mu = r/(r - theta_E)."""
    m = MassModel(theta_e=1.5, e1=0.0, e2=0.0, center_x=0.0, center_y=0.0)
    x, y = np.array([0.3, 2.0, -4.0]), np.array([0.4, 0.0, 3.0])
    r = np.hypot(x, y)
    ax, ay = lq.deflection(x, y, model=m)
    np.testing.assert_allclose(ax, 1.5 * x / r, rtol=1e-14)
    np.testing.assert_allclose(ay, 1.5 * y / r, rtol=1e-14)
    np.testing.assert_allclose(lq.convergence(x, y, model=m), 0.75 / r, rtol=1e-14)
    np.testing.assert_allclose(lq.magnification(x, y, model=m), r / (r - 1.5), rtol=1e-12)


def test_batched_shapes_broadcast() -> None:
    m = MassModel(theta_e=[1.0, 2.0], e1=[0.1, 0.0], e2=0.0, center_x=0.0, center_y=0.0)
    x = np.array([[0.5, 1.0, 1.5], [0.5, 1.0, 1.5]])
    ax, _ = lq.deflection(x, np.zeros_like(x), model=m)
    assert ax.shape == (2, 3)
    single = lq.deflection(x[1], np.zeros(3), model=m.take([1]))[0]
    np.testing.assert_allclose(ax[1], single)


def test_time_delay_distance_matches_lenstronomy() -> None:
    lens_cosmo = pytest.importorskip("lenstronomy.Cosmo.lens_cosmo")
    from lenstronomy.Util import constants

    zl, zs = np.array([0.2, 0.5, 1.1]), np.array([1.0, 2.0, 3.5])
    ddt = time_delay_distance_mpc(zl, zs)
    cosmo = default_cosmology()
    ref = [lens_cosmo.LensCosmo(a, b, cosmo=cosmo).ddt for a, b in zip(zl, zs, strict=True)]
    np.testing.assert_allclose(ddt, ref, rtol=1e-10)
    np.testing.assert_allclose(
        delay_days_per_arcsec2(ddt), constants.delay_arcsec2days(1.0, ddt), rtol=1e-8
    )
    assert np.all(np.isnan(time_delay_distance_mpc([0.5, -1.0], [0.4, 1.0])))
    # A curved universe takes astropy's general path.
    from astropy.cosmology import LambdaCDM

    curved = LambdaCDM(H0=70, Om0=0.3, Ode0=0.6)
    ref = [lens_cosmo.LensCosmo(a, b, cosmo=curved).ddt for a, b in zip(zl, zs, strict=True)]
    np.testing.assert_allclose(time_delay_distance_mpc(zl, zs, curved), ref, rtol=1e-10)


finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.01, 10), st.floats(-0.9, 0.9), st.floats(-0.9, 0.9), finite, finite,
            st.floats(1.1, 2.9), st.floats(-0.5, 0.5), st.floats(-0.5, 0.5),
        ),
        min_size=1, max_size=8,
    )
)  # fmt: skip
def test_mass_model_round_trips(rows: list[tuple[float, ...]]) -> None:
    columns = {name: np.array([r[i] for r in rows]) for i, name in enumerate(FIELD_NAMES)}
    m = MassModel.from_mapping(columns)
    assert len(m) == len(rows)
    again = MassModel.from_mapping(m.as_mapping())
    for name in FIELD_NAMES:
        np.testing.assert_array_equal(getattr(again, name), columns[name])
    idx = np.arange(len(rows))[::-1]
    for name in FIELD_NAMES:
        np.testing.assert_array_equal(getattr(m.take(idx), name), columns[name][idx])
        np.testing.assert_array_equal(getattr(m[1:], name), columns[name][1:])
    # e <-> (q, phi) round trip
    q, phi = m.axis_ratio, m.position_angle
    e = (1 - q) / (1 + q)
    np.testing.assert_allclose(e * np.cos(2 * phi), m.e1, atol=1e-12)
    np.testing.assert_allclose(e * np.sin(2 * phi), m.e2, atol=1e-12)


def test_mass_model_defaults_and_validation() -> None:
    m = MassModel.from_mapping(
        {"theta_e": [1.0, -1.0, 1.0, 1.0], "e1": [0, 0, 0.99, 0], "e2": [0, 0, 0.5, 0],
         "center_x": 0.0, "center_y": [0, 0, 0, np.nan], "sigma_theta_e": 9.0}
    )  # fmt: skip
    assert np.all(m.gamma == 2.0)
    assert np.all(m.gamma1 == 0.0)
    assert m.is_isothermal
    reasons = m.invalid_reasons()
    assert reasons[0] is None
    assert "theta_e" in reasons[1]
    assert "ellipticity" in reasons[2]
    assert "non-finite" in reasons[3]
    with pytest.raises(KeyError):
        MassModel.from_mapping({"theta_e": 1.0})


def test_sie_matches_lenstronomy_sie_profile() -> None:
    """lenstronomy's own SIE (an NIE with a 1e-10 core, numerically differentiated Hessian)."""
    m = MassModel(theta_e=1.4, e1=0.15, e2=-0.1, center_x=0.1, center_y=-0.05, gamma1=0.04)
    x, y = points(m, seed=4)
    lm = lenstronomy_lens_model.LensModel(["SIE", "SHEAR"])
    kw = [
        {"theta_E": 1.4, "e1": 0.15, "e2": -0.1, "center_x": 0.1, "center_y": -0.05},
        {"gamma1": 0.04, "gamma2": 0.0},
    ]
    ax, ay = lq.deflection(x, y, model=m)
    lax, lay = lm.alpha(x, y, kw)
    np.testing.assert_allclose(ax, lax, atol=1e-8)
    np.testing.assert_allclose(ay, lay, atol=1e-8)
    # Compare det(A) = 1/mu: near critical curves mu itself amplifies their difference quotient.
    np.testing.assert_allclose(
        1 / lq.magnification(x, y, model=m), 1 / lm.magnification(x, y, kw), rtol=2e-5, atol=2e-5
    )

"""Shared by the solver benchmarks and tests: random systems and lenstronomy as the oracle.

lenstronomy is imported here (benchmarks/tests only), never by ``model/``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from model.mass_model import MassModel

FloatArray = NDArray[np.float64]


def random_systems(
    n: int, *, seed: int = 0, slopes: tuple[float, float] | None = (1.7, 2.3), sie_fraction=0.5
) -> tuple[MassModel, FloatArray, FloatArray]:
    """``n`` random EPL/SIE + shear systems and sources, in the issue's ranges.

    theta_e 0.3-5", q 0.3-1, |gamma_ext| <= 0.15, slopes uniform in ``slopes`` for a fraction
    ``1 - sie_fraction`` (the rest exactly 2), centres within 0.5", sources uniform in a disc of
    radius 0.6 theta_e about the lens centre (inside and outside the caustics).
    """
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.3, 1.0, n)
    pa = rng.uniform(0.0, np.pi, n)
    e = (1 - q) / (1 + q)
    g = 0.15 * np.sqrt(rng.uniform(0.0, 1.0, n))
    gpa = rng.uniform(0.0, np.pi, n)
    gamma = np.full(n, 2.0)
    if slopes is not None:
        epl = rng.uniform(0.0, 1.0, n) >= sie_fraction
        gamma[epl] = rng.uniform(slopes[0], slopes[1], int(epl.sum()))
    model = MassModel(
        theta_e=rng.uniform(0.3, 5.0, n),
        e1=e * np.cos(2 * pa),
        e2=e * np.sin(2 * pa),
        center_x=rng.uniform(-0.5, 0.5, n),
        center_y=rng.uniform(-0.5, 0.5, n),
        gamma=gamma,
        gamma1=g * np.cos(2 * gpa),
        gamma2=g * np.sin(2 * gpa),
    )
    rad = 0.6 * model.theta_e * np.sqrt(rng.uniform(0.0, 1.0, n))
    ang = rng.uniform(0.0, 2 * np.pi, n)
    return model, model.center_x + rad * np.cos(ang), model.center_y + rad * np.sin(ang)


def lenstronomy_kwargs(model: MassModel, i: int) -> tuple[list[str], list[dict[str, float]]]:
    """lenstronomy model list and kwargs for system ``i`` (EPL, analytic Hessian, even at 2)."""
    main = {
        "theta_E": float(model.theta_e[i]),
        "gamma": float(model.gamma[i]),
        "e1": float(model.e1[i]),
        "e2": float(model.e2[i]),
        "center_x": float(model.center_x[i]),
        "center_y": float(model.center_y[i]),
    }
    shear = {"gamma1": float(model.gamma1[i]), "gamma2": float(model.gamma2[i])}
    return ["EPL", "SHEAR"], [main, shear]

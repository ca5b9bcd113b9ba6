"""Shared by the solver benchmarks and tests: random systems and lenstronomy as the oracle.

lenstronomy is imported here (benchmarks/tests only), never by ``model/``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from lenscast.model.mass_model import MassModel

FloatArray = NDArray[np.float64]


def random_systems(
    n: int,
    *,
    seed: int = 0,
    slopes: tuple[float, float] | None = (1.7, 2.3),
    sie_fraction: float = 0.5,
) -> tuple[MassModel, FloatArray, FloatArray]:
    """``n`` random EPL/SIE + shear systems and sources, over the ranges the solver must cover.

    theta_e 0.3-5", q 0.3-1, |gamma_ext| <= 0.15, slopes uniform in ``slopes`` for a fraction
    ``1 - sie_fraction`` (the rest exactly 2), centres within 0.5", sources uniform in a disc of
    radius theta_e about the lens centre (inside and outside the caustics).
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
    rad = model.theta_e * np.sqrt(rng.uniform(0.0, 1.0, n))
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


def redshifts(n: int, *, seed: int = 0) -> tuple[FloatArray, FloatArray]:
    """Random lens (0.1-1.2) and source (lens + 0.3-2.5) redshifts."""
    rng = np.random.default_rng(seed + 7919)
    z_lens = rng.uniform(0.1, 1.2, n)
    return z_lens, z_lens + rng.uniform(0.3, 2.5, n)


class Oracle:
    """lenstronomy's EPL + SHEAR (analytic Hessian also at slope 2) and its solvers.

    lenstronomy's ``SIE`` differentiates its deflection numerically (~1e-5 relative Hessian
    error), so the EPL profile at ``gamma = 2`` is the sharper reference for magnifications.
    """

    def __init__(self) -> None:
        from lenstronomy.LensModel.lens_model import LensModel
        from lenstronomy.LensModel.Solver.lens_equation_solver import LensEquationSolver

        self.lens_model = LensModel(["EPL", "SHEAR"])
        self.solver = LensEquationSolver(self.lens_model)

    def images(
        self, model: MassModel, i: int, source_x: float, source_y: float, solver: str
    ) -> tuple[FloatArray, FloatArray]:
        """Image positions from lenstronomy's solver (``"analytical"`` or ``"lenstronomy"``)."""
        _, kwargs = lenstronomy_kwargs(model, i)
        x, y = self.solver.image_position_from_source(
            source_x, source_y, kwargs, solver=solver, arrival_time_sort=True
        )
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def quantities(
        self, model: MassModel, i: int, x: FloatArray, y: FloatArray, sx: float, sy: float
    ) -> dict[str, FloatArray]:
        """Residual, magnification, Fermat potential and 'is maximum' at given images."""
        _, kwargs = lenstronomy_kwargs(model, i)
        bx, by = self.lens_model.ray_shooting(x, y, kwargs)
        fxx, fxy, _, fyy = self.lens_model.hessian(x, y, kwargs)
        mag = 1.0 / ((1 - fxx) * (1 - fyy) - fxy * fxy)
        return {
            "residual": np.hypot(np.asarray(bx) - sx, np.asarray(by) - sy),
            "magnification": np.asarray(mag, dtype=np.float64),
            "fermat": np.asarray(self.lens_model.fermat_potential(x, y, kwargs, sx, sy)),
            "maximum": (mag > 0) & (np.asarray(fxx) + np.asarray(fyy) > 2.0),
        }

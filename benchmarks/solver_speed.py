"""Speed of lenscast's lens-equation solver against lenstronomy's, on the same SIE + shear systems.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.solver_speed --n 10000 --n-lenstronomy 300 --repeats 5

lenscast solves the whole batch in one call (how the stream and the Monte Carlo use it);
lenstronomy's ``LensEquationSolver`` is called per system, with its default grid solver and
with ``solver='analytical'`` (after one warm-up call that JIT-compiles its numba code). The
lenstronomy timings use the first ``--n-lenstronomy`` (``--n-default``) of the same systems.
Prints one JSON object: microseconds per system and systems per second (median of repeats) and
the speed-up ratios. The EPL (slope != 2) path of lenscast is timed too, for information.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import numpy as np

from benchmarks.solver_oracle import random_systems
from lenscast.model.lens_equation import solve_images
from lenscast.model.mass_model import MassModel


def _median_seconds(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _lenstronomy_call(model: MassModel, bx: np.ndarray, by: np.ndarray, count: int, solver: str):
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LensModel.Solver.lens_equation_solver import LensEquationSolver

    lens_solver = LensEquationSolver(LensModel(["SIE", "SHEAR"]))
    kwargs = [
        [
            {
                "theta_E": float(model.theta_e[i]), "e1": float(model.e1[i]),
                "e2": float(model.e2[i]), "center_x": float(model.center_x[i]),
                "center_y": float(model.center_y[i]),
            },
            {"gamma1": float(model.gamma1[i]), "gamma2": float(model.gamma2[i])},
        ]
        for i in range(count)
    ]  # fmt: skip

    def run() -> None:
        for i in range(count):
            lens_solver.image_position_from_source(bx[i], by[i], kwargs[i], solver=solver)

    return run


def _rate(seconds: float, count: int) -> dict[str, float]:
    return {"us_per_system": seconds / count * 1e6, "systems_per_s": count / seconds}


def benchmark(n: int, n_lt: int, n_default: int, repeats: int, seed: int) -> dict[str, Any]:
    """Time all three solvers; return the JSON-able summary."""
    model, bx, by = random_systems(n, seed=seed, slopes=None)
    solve_images(bx[:50], by[:50], model=model.take(np.arange(50)))  # imports, caches
    ours = _median_seconds(lambda: solve_images(bx, by, model=model), repeats)

    n_epl = min(n, 2000)
    epl_model, ex, ey = random_systems(n_epl, seed=seed + 1, slopes=(1.7, 2.3), sie_fraction=0)
    ours_epl = _median_seconds(lambda: solve_images(ex, ey, model=epl_model), max(1, repeats // 2))

    analytical = _lenstronomy_call(model, bx, by, n_lt, "analytical")
    t0 = time.perf_counter()
    _lenstronomy_call(model, bx, by, 1, "analytical")()  # numba JIT compile
    jit_s = time.perf_counter() - t0
    lt_analytical = _median_seconds(analytical, repeats)
    lt_default = _median_seconds(_lenstronomy_call(model, bx, by, n_default, "lenstronomy"), 3)

    r_ours = _rate(ours, n)
    r_an = _rate(lt_analytical, n_lt)
    r_def = _rate(lt_default, n_default)
    return {
        "systems": 'SIE + external shear, theta_e 0.3-5", q 0.3-1, |gamma_ext| <= 0.15',
        "n_lenscast_batch": n,
        "n_lenstronomy_analytical": n_lt,
        "n_lenstronomy_default": n_default,
        "repeats": repeats,
        "lenscast": r_ours,
        "lenscast_epl_slopes_1.7_2.3": _rate(ours_epl, len(ex)),
        "lenstronomy_analytical": r_an,
        "lenstronomy_default": r_def,
        "lenstronomy_analytical_jit_seconds": jit_s,
        "speedup_vs_analytical": r_an["us_per_system"] / r_ours["us_per_system"],
        "speedup_vs_default": r_def["us_per_system"] / r_ours["us_per_system"],
        "target_us_per_system": 40.0,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="systems in lenscast's batch")
    parser.add_argument("--n-lenstronomy", type=int, default=300, help="for solver='analytical'")
    parser.add_argument("--n-default", type=int, default=40, help="for the default grid solver")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = benchmark(args.n, args.n_lenstronomy, args.n_default, args.repeats, args.seed)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Agreement of lenscast's lens-equation solver with lenstronomy on random EPL/SIE + shear systems.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.solver_agreement --n 10000 --seed 0

Prints one JSON object: image-count agreement (and, where the counts differ, which solver is
right, judged by the lens-equation residual that lenstronomy itself computes for every image
either solver returned), the largest position error (arcsec), and the largest relative errors
of magnifications and time delays over matched images. Reference: lenstronomy's ``analytical``
solver on ``EPL + SHEAR``; maxima of the arrival time (central images) are dropped on both
sides, as lenscast drops them.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from benchmarks.solver_oracle import Oracle, random_systems, redshifts
from lenscast.model.cosmology import default_cosmology
from lenscast.model.image_prediction import predict_images

#: An image is real when it maps back onto the source to this (arcsec).
VALID_RESIDUAL = 1e-8
#: Images of the two solvers closer than this are the same image (arcsec).
MATCH_TOL = 1e-4
#: Delays shorter than this (days) are compared in absolute terms only.
MIN_DELAY_DAYS = 1e-3


def compare(n: int, seed: int = 0, *, solver: str = "analytical") -> dict[str, Any]:
    """Run both solvers on ``n`` random systems; return the agreement summary."""
    from lenstronomy.Cosmo.lens_cosmo import LensCosmo
    from lenstronomy.Util.constants import delay_arcsec2days

    model, bx, by = random_systems(n, seed=seed)
    z_lens, z_source = redshifts(n, seed=seed)
    t0 = time.perf_counter()
    pred = predict_images(model, source_x=bx, source_y=by, z_lens=z_lens, z_source=z_source)
    ours_s = time.perf_counter() - t0
    oracle = Oracle()
    cosmo = default_cosmology()
    pos_err, mag_err, delay_rel, delay_abs = [], [], [], []
    mismatches: list[dict[str, Any]] = []
    hist_ours: dict[int, int] = {}
    hist_lt: dict[int, int] = {}
    t0 = time.perf_counter()
    for i in range(n):
        lx, ly = oracle.images(model, i, bx[i], by[i], solver)
        lq = oracle.quantities(model, i, lx, ly, bx[i], by[i])
        keep = ~lq["maximum"]
        lx, ly = lx[keep], ly[keep]
        lq = {k: v[keep] for k, v in lq.items()}
        k = int(pred.n_images[i])
        ox, oy = pred.x[i, :k], pred.y[i, :k]
        hist_ours[k] = hist_ours.get(k, 0) + 1
        hist_lt[lx.size] = hist_lt.get(lx.size, 0) + 1
        dist = np.hypot(ox[:, None] - lx[None, :], oy[:, None] - ly[None, :])
        if k != lx.size or (k and np.any(dist.min(axis=1) > MATCH_TOL)):
            mismatches.append(_judge(oracle, model, i, bx[i], by[i], ox, oy, lx, ly, dist))
            continue
        if k == 0:
            continue
        j = dist.argmin(axis=1)
        pos_err.append(float(dist[np.arange(k), j].max()))
        mag_err.append(
            float(np.max(np.abs(pred.magnification[i, :k] / lq["magnification"][j] - 1)))
        )
        ddt = LensCosmo(z_lens[i], z_source[i], cosmo=cosmo).ddt
        lt_delay = delay_arcsec2days(lq["fermat"][j] - lq["fermat"].min(), ddt)
        ours = pred.time_delay_days[i, :k]
        delay_abs.append(float(np.max(np.abs(ours - lt_delay))))
        long = np.abs(lt_delay) > MIN_DELAY_DAYS
        if np.any(long):
            delay_rel.append(float(np.max(np.abs(ours[long] / lt_delay[long] - 1))))
    lt_s = time.perf_counter() - t0
    ours_right = sum(m["verdict"] == "lenscast" for m in mismatches)
    by_counts: dict[str, int] = {}
    for m in mismatches:
        key = f"lenscast {m['n_lenscast']} vs lenstronomy {m['n_lenstronomy']}"
        by_counts[key] = by_counts.get(key, 0) + 1
    extra_mags = [abs(v) for m in mismatches for v in m["only_lenscast_magnifications"]]
    return {
        "n_systems": n,
        "seed": seed,
        "reference": f"lenstronomy EPL+SHEAR, solver={solver!r}",
        "n_sie": int(np.sum(model.gamma == 2.0)),
        "n_epl": int(np.sum(model.gamma != 2.0)),
        "image_count_histogram": {
            "lenscast": dict(sorted(hist_ours.items())),
            "lenstronomy": dict(sorted(hist_lt.items())),
        },
        "image_count_agreement": 1.0 - len(mismatches) / n,
        "n_mismatch": len(mismatches),
        "mismatch_lenscast_right": ours_right,
        "mismatch_lenstronomy_right": sum(m["verdict"] == "lenstronomy" for m in mismatches),
        "mismatch_by_counts": dict(sorted(by_counts.items())),
        "max_abs_magnification_of_images_only_lenscast_finds": max(extra_mags, default=0.0),
        # Cases lenscast gets wrong first: they are the ones to look at.
        "mismatch_examples": sorted(mismatches, key=lambda m: m["verdict"] == "lenscast")[:12],
        "max_position_error_arcsec": max(pos_err, default=0.0),
        "max_magnification_relative_error": max(mag_err, default=0.0),
        "p999_magnification_relative_error": float(np.quantile(mag_err, 0.999)) if mag_err else 0,
        "max_time_delay_relative_error": max(delay_rel, default=0.0),
        "max_time_delay_abs_error_days": max(delay_abs, default=0.0),
        "lenscast_seconds": ours_s,
        "lenstronomy_seconds": lt_s,
        "targets": {"position": 1e-5, "time_delay_rel": 1e-6, "magnification_rel": 1e-4},
    }


def _judge(
    oracle: Oracle,
    model: Any,
    i: int,
    sx: float,
    sy: float,
    ox: np.ndarray,
    oy: np.ndarray,
    lx: np.ndarray,
    ly: np.ndarray,
    dist: np.ndarray,
) -> dict[str, Any]:
    """Which solver is right for a system whose image sets differ (by lenstronomy's residual)."""
    only_ours = dist.min(axis=1) > MATCH_TOL if lx.size else np.ones(ox.size, bool)
    only_lt = dist.min(axis=0) > MATCH_TOL if ox.size else np.ones(lx.size, bool)
    q_ours = oracle.quantities(model, i, ox[only_ours], oy[only_ours], sx, sy)
    q_lt = oracle.quantities(model, i, lx[only_lt], ly[only_lt], sx, sy)
    res_ours, res_lt = q_ours["residual"], q_lt["residual"]
    ours_valid = bool(np.all(res_ours < VALID_RESIDUAL))
    lt_valid = bool(np.all(res_lt < VALID_RESIDUAL))
    # Right = every image it has beyond the other is real and it misses no real image.
    if ours_valid and not (lt_valid and only_lt.any()):
        verdict = "lenscast"
    elif lt_valid and not (ours_valid and only_ours.any()):
        verdict = "lenstronomy"
    else:
        verdict = "neither"
    return {
        "system": i,
        "gamma": float(model.gamma[i]),
        "q": float(model.axis_ratio[i]),
        "n_lenscast": int(ox.size),
        "n_lenstronomy": int(lx.size),
        "only_lenscast_residuals": [float(r) for r in res_ours],
        "only_lenstronomy_residuals": [float(r) for r in res_lt],
        "only_lenscast_magnifications": [float(m) for m in q_ours["magnification"]],
        "only_lenstronomy_magnifications": [float(m) for m in q_lt["magnification"]],
        "verdict": verdict,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of random systems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solver", default="analytical", choices=["analytical", "lenstronomy"])
    args = parser.parse_args(argv)
    print(json.dumps(compare(args.n, args.seed, solver=args.solver), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

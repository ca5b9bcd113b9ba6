"""Simulated systems per second on this machine (``lenscast simulate``'s inner loop).

Prints one JSON object: accepted systems per second of wall time with ``--workers`` processes
(each simulating its own batch, as the CLI's shards do), per-process CPU rate, acceptance rate
and the load average (the machine is shared: compare the CPU rate when others are busy).

    OMP_NUM_THREADS=1 python -m benchmarks.simulation_speed --n 400 --workers 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

import numpy as np

from lenscast.trainer.simulation.cosmology import distance_table
from lenscast.trainer.simulation.hudf import hudf_catalogue
from lenscast.trainer.simulation.simulator import SimulationConfig, simulate_batch
from lenscast.trainer.simulation.truths import warm_up


def _one(args: tuple[int, int, str]) -> dict:
    n, index, solver = args
    cpu = time.process_time()
    batch = simulate_batch(
        n,
        seed=np.random.SeedSequence(99, spawn_key=(index,)),
        config=SimulationConfig(image_solver=solver),
    )
    return {"cpu_s": time.process_time() - cpu, "attempts": batch.attempts["total"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="accepted systems per worker")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-solver", default="model", choices=("model", "lenstronomy"))
    args = parser.parse_args()
    warm_up(args.image_solver, table=distance_table())
    hudf_catalogue()
    _one((20, 10_000, args.image_solver))  # first-call costs (caches, FFT plans) out of the timing
    jobs = [(args.n, k, args.image_solver) for k in range(args.workers)]
    start = time.perf_counter()
    if args.workers == 1:
        results = [_one(jobs[0])]
    else:
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            results = pool.map(_one, jobs)
    wall = time.perf_counter() - start
    total = args.n * args.workers
    cpu = sum(r["cpu_s"] for r in results)
    print(
        json.dumps(
            {
                "benchmark": "simulation_speed",
                "systems": total,
                "workers": args.workers,
                "image_solver": args.image_solver,
                "wall_s": round(wall, 2),
                "systems_per_second": round(total / wall, 1),
                "cpu_systems_per_second_per_process": round(total / cpu, 1),
                "acceptance_rate": round(total / sum(r["attempts"] for r in results), 3),
                "load_average_1min": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

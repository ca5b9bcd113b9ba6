"""The pipeline's rate at CPython's default GIL switch interval and at the one lenscast sets.

With the model on its own thread (:mod:`lenscast.consumer.inference_thread`), every model call ends
with that thread waiting for the GIL, which the pipeline's thread (decoding, physics) holds until
the interpreter's switch interval makes it let go: 5 ms by default, a noticeable part of a ~35 ms
call. Making the inference pool sets the interval to
:data:`lenscast.consumer.inference_thread.GIL_SWITCH_INTERVAL_S`. This script runs
:func:`lenscast.consumer.pipeline.process_batch` alone (no broker, no database) on batches of the
shipped sample stream, alternating the intervals given in one process, and reports the median
alerts/s of each and their ratio to the first (the default).

Run::

    python -m benchmarks.gil_switch_interval --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.json_report import emit
from benchmarks.stream_throughput import sample_batches
from lenscast.consumer.inference_thread import GIL_SWITCH_INTERVAL_S
from lenscast.consumer.pipeline import process_batch
from lenscast.consumer.settings import PipelineSettings
from lenscast.model.predictor import DEFAULT_MODEL_PATH, OnnxMassPredictor

DEFAULT_INTERVAL_S = 0.005  # CPython's own default (sys.getswitchinterval() at start)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; print (and write) the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=6, help="batches per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the intervals")
    parser.add_argument(
        "--intervals",
        type=float,
        nargs="+",
        default=[DEFAULT_INTERVAL_S, GIL_SWITCH_INTERVAL_S],
        metavar="S",
        help="switch intervals to alternate, seconds (the first is the reference)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    predictor = OnnxMassPredictor(args.model, intra_op_threads=1)
    settings = PipelineSettings()
    batches = sample_batches(args.batches, args.batch_size, "gil")
    n_alerts = sum(len(batch) for batch in batches)
    process_batch(batches[0], predictor=predictor, settings=settings)  # warm up, make the pool
    rates: dict[float, list[float]] = {interval: [] for interval in args.intervals}
    for _ in range(args.rounds):
        for interval in args.intervals:
            sys.setswitchinterval(interval)
            start = time.perf_counter()
            for batch in batches:
                process_batch(batch, predictor=predictor, settings=settings)
            rates[interval].append(n_alerts / (time.perf_counter() - start))
    medians = {interval: statistics.median(r) for interval, r in rates.items()}
    reference = args.intervals[0]
    report = {
        "command": "python -m benchmarks.gil_switch_interval " + " ".join(sys.argv[1:]),
        "cpus": os.cpu_count(),
        "model": predictor.identity.name + " " + predictor.identity.version,
        "alerts_per_measurement": n_alerts,
        "rounds": args.rounds,
        "pipeline_alerts_per_s": {
            f"{interval * 1000:g} ms": {
                "median": round(medians[interval]),
                "runs": [round(r) for r in rates[interval]],
                "over_default": round(medians[interval] / medians[reference], 3),
            }
            for interval in args.intervals
        },
    }
    emit(report, args.out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The pipeline alone (no broker, no database): alerts/s and CPU per step, side by side.

:func:`lenscast.consumer.pipeline.process_batch` runs with the model on its own thread, as in the
service, on batches of the shipped sample stream re-keyed with unique ids, their cutout headers
written in each ``--styles`` style (:mod:`benchmarks.header_styles`). Each configuration
(``--configs``) is a chunk size and a model run size:

* ``CHUNK`` — packets per model call (``inference_chunk``), the model sliced into runs of
  :data:`lenscast.model.predictor.DEFAULT_RUN_BATCH` (the defaults are one such configuration);
* ``CHUNKw`` — the same chunk, the model called once per chunk (``run_batch=None``).

Configurations are interleaved within each of ``--rounds`` rounds; per configuration and style
the median over rounds is reported of the wall-clock rate (alerts/s, both cores) and, from the
same runs, of this thread's CPU per alert (decoding, physics and rows: the work that competes
with the broker and the database for the second core in the service) and the model thread's
time per alert. Output: one JSON object::

    python -m benchmarks.pipeline_alone --configs 32w 32 64 --rounds 5 \
        --out runs/pipeline_alone.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.header_styles import STYLES, rekeyed_packets
from benchmarks.json_report import emit
from lenscast.consumer.pipeline import RawMessage, process_batch
from lenscast.consumer.settings import PipelineSettings
from lenscast.model.predictor import FAST_MODEL_PATH, OnnxMassPredictor


def style_batches(style: str, n_batches: int, batch_size: int) -> list[list[RawMessage]]:
    """``n_batches`` batches of re-keyed sample packets with headers in ``style``."""
    packets = rekeyed_packets(n_batches * batch_size, f"alone-{style}-{time.time_ns()}", style)
    return [
        [
            RawMessage(value, "bench", 0, b * batch_size + i)
            for i, value in enumerate(packets[b * batch_size : (b + 1) * batch_size])
        ]
        for b in range(n_batches)
    ]


def parse_config(text: str) -> tuple[int, bool]:
    """``"64"`` -> (64, sliced); ``"32w"`` -> (32, whole)."""
    whole = text.endswith("w")
    return int(text.removesuffix("w")), not whole


def run_once(
    batches: Sequence[Sequence[RawMessage]], predictor: OnnxMassPredictor, chunk: int
) -> dict[str, float]:
    """One pass over ``batches``: alerts/s, this thread's CPU ms per alert, model ms per alert."""
    settings = PipelineSettings(inference_chunk=chunk)
    n = sum(len(batch) for batch in batches)
    infer = 0.0
    cpu, start = time.thread_time(), time.perf_counter()
    for batch in batches:
        outcome = process_batch(batch, predictor=predictor, settings=settings)
        infer += outcome.timings_s["infer"]
    wall = time.perf_counter() - start
    return {
        "alerts_per_s": n / wall,
        "pipeline_thread_cpu_ms_per_alert": 1000 * (time.thread_time() - cpu) / n,
        "model_thread_ms_per_alert": 1000 * infer / n,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; print (and write) the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=FAST_MODEL_PATH)
    parser.add_argument("--configs", nargs="+", default=["32w", "32", "64"])
    parser.add_argument("--styles", nargs="+", default=list(STYLES), choices=STYLES)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=4, help="batches per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    predictors = {
        True: OnnxMassPredictor(args.model, intra_op_threads=1),
        False: OnnxMassPredictor(args.model, intra_op_threads=1, run_batch=None),
    }
    configs = {text: parse_config(text) for text in args.configs}
    batches = {style: style_batches(style, args.batches, args.batch_size) for style in args.styles}
    for style in args.styles:  # warm up caches and make the inference thread
        process_batch(batches[style][0], predictor=predictors[True], settings=PipelineSettings())
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        c: {s: [] for s in args.styles} for c in configs
    }
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for style in args.styles:
            for text, (chunk, sliced) in configs.items():
                runs[text][style].append(run_once(batches[style], predictors[sliced], chunk))
        load.append(os.getloadavg()[0])
    first = args.configs[0]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for text in configs:
        results[text] = {}
        for style in args.styles:
            medians = {
                key: round(statistics.median(run[key] for run in runs[text][style]), 3)
                for key in runs[text][style][0]
            }
            reference = statistics.median(r["alerts_per_s"] for r in runs[first][style])
            medians["alerts_per_s"] = round(medians["alerts_per_s"], 1)
            medians[f"over_{first}"] = round(medians["alerts_per_s"] / reference, 3)
            results[text][style] = medians
    report = {
        "command": "python -m benchmarks.pipeline_alone " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1m": {
                "min": min(load),
                "median": statistics.median(load),
                "max": max(load),
            },
        },
        "model": predictors[True].identity.name + " " + predictors[True].identity.version,
        "alerts_per_measurement": args.batches * args.batch_size,
        "rounds": args.rounds,
        "configs": results,
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

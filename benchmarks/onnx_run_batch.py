"""Alerts/s of one onnxruntime call per run size, and of the predictor that slices its batches.

With one intra-op thread, a call's cost per cutout depends on how many cutouts it holds: a run
small enough for its activations to stay in the core's caches is faster per cutout than a large
one, and a very small run pays the call's fixed cost too often. This script measures, for each
graph given, the model alone on real sample cutouts:

* **runs**: alerts/s of ``InferenceSession.run`` on ``n`` cutouts at a time, for each run size;
* **predictor**: alerts/s of :meth:`lenscast.model.predictor.OnnxMassPredictor.predict` on the
  pipeline's chunk sizes, whole (``run_batch=None``, one call per chunk) and sliced into runs of
  :data:`lenscast.model.predictor.DEFAULT_RUN_BATCH` (the consumer's default), and their ratio.

Sizes are interleaved within each round and the median over rounds is reported, so a change in
the machine's load during the run touches every size alike. Output: one JSON object::

    python -m benchmarks.onnx_run_batch --rounds 5 --out runs/onnx_run_batch.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.header_styles import SAMPLE
from benchmarks.json_report import emit
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.framing import read_alert_file
from lenscast.model.predictor import (
    DEFAULT_MODEL_PATH,
    DEFAULT_RUN_BATCH,
    FAST_MODEL_PATH,
    OnnxMassPredictor,
)

RUN_SIZES = (1, 2, 4, 8, 16, 32, 64)
CHUNK_SIZES = (32, 64, 256)


def sample_cutouts(n: int) -> np.ndarray:
    """``n`` cutouts (float32, (n, 4, 64, 64)) from the shipped sample stream, repeated."""
    cutouts = np.stack([decode_alert(raw).cutouts for raw in read_alert_file(SAMPLE)])
    return np.resize(cutouts, (n, *cutouts.shape[1:])).astype(np.float32)


def rate(call: Callable[[], object], per_call: int, seconds: float) -> float:
    """Alerts/s of ``call`` (``per_call`` alerts each) repeated for ``seconds`` of wall time."""
    call()  # warm up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        done += per_call
    return done / (time.perf_counter() - start)


def measure(path: Path, rounds: int, seconds: float) -> dict:
    """The runs and predictor figures of one graph."""
    whole = OnnxMassPredictor(path, intra_op_threads=1, run_batch=None)
    sliced = OnnxMassPredictor(path, intra_op_threads=1)
    session, outputs, name = whole._session, whole._outputs, whole._session.get_inputs()[0].name
    cutouts = sample_cutouts(max(*RUN_SIZES, *CHUNK_SIZES))
    runs: dict[int, list[float]] = {n: [] for n in RUN_SIZES}
    chunks: dict[int, dict[str, list[float]]] = {
        n: {"whole": [], "sliced": []} for n in CHUNK_SIZES
    }
    for _ in range(rounds):
        for n in RUN_SIZES:
            feed = {name: cutouts[:n]}
            runs[n].append(rate(lambda feed=feed: session.run(outputs, feed), n, seconds))
        for n in CHUNK_SIZES:
            for label, predictor in (("whole", whole), ("sliced", sliced)):
                chunk = cutouts[:n]
                chunks[n][label].append(rate(lambda p=predictor, c=chunk: p.predict(c), n, seconds))
    median_runs = {str(n): round(statistics.median(v), 1) for n, v in runs.items()}
    best = max(runs, key=lambda n: statistics.median(runs[n]))
    by_chunk: dict[str, dict[str, float]] = {}
    for n, by in chunks.items():
        w, s = statistics.median(by["whole"]), statistics.median(by["sliced"])
        by_chunk[str(n)] = {
            "whole_alerts_per_s": round(w, 1),
            f"runs_of_{DEFAULT_RUN_BATCH}_alerts_per_s": round(s, 1),
            "sliced_over_whole": round(s / w, 3),
        }
    return {
        "model": whole.identity.name,
        "version": whole.identity.version,
        "runs_alerts_per_s": median_runs,
        "fastest_run_size": best,
        "predictor_by_chunk": by_chunk,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print (and write) the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, nargs="+", default=[DEFAULT_MODEL_PATH, FAST_MODEL_PATH]
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=1.0, help="wall time per measurement")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    report = {
        "command": "python -m benchmarks.onnx_run_batch " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        },
        "intra_op_threads": 1,
        "default_run_batch": DEFAULT_RUN_BATCH,
        "rounds": args.rounds,
        "graphs": [measure(path, args.rounds, args.seconds) for path in args.model],
    }
    report["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

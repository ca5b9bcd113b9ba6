"""What do redshift draws cost the pipeline? Its rate with and without them, side by side.

The same packets (the shipped sample stream re-keyed, as ``benchmarks/stream_throughput.py``
uses) in two redshift variants:

* ``exact``: both redshifts, no errors, as the sample carries them: no redshift draws, the
  Monte Carlo as it was before they existed;
* ``photometric``: ``zLensErr`` = 0.03 (1 + zLens) and no ``zSource``: both redshifts drawn
  with the mass model (the source from the SL2S prior).

Each round runs :func:`lenscast.consumer.pipeline.process_batch` (decode, ONNX inference on its
thread, physics with the same ``--mc-samples`` draws, rows) over ``--batches`` batches of
``--batch-size`` packets per variant, the variants alternating, in the order AB then BA, so
that a shared machine's drift hits both alike; the rate is alerts per wall-clock second of
those calls, and the CPU time per alert is the process's (all threads: the model's too) over
the same calls, which a machine shared with other work disturbs less than the wall clock.
Prints one JSON object: per variant the median rate, CPU time and physics time per alert over
``--rounds`` rounds, the ratios of the medians (``photometric / exact``), and the medians of
the ratios within each round (the two variants measured back to back: the estimate least
disturbed by the machine's drift)::

    python -m benchmarks.redshift_cost --out benchmarks/results/redshift_cost.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.header_styles import sample_records
from benchmarks.json_report import emit
from lenscast.consumer.pipeline import RawMessage, process_batch
from lenscast.consumer.settings import PipelineSettings
from lenscast.model.predictor import OnnxMassPredictor
from lenscast.tools.alert_encoding import encode_record

ROOT = Path(__file__).resolve().parents[1]
FAST_MODEL = ROOT / "model" / "weights" / "lenscast-hsc-fast.onnx"
VARIANTS = ("exact", "photometric")


def _redshifts(record: dict[str, Any], variant: str) -> dict[str, Any]:
    if variant == "exact":
        return {"zLensErr": None, "zSourceErr": None}
    return {"zLensErr": 0.03 * (1.0 + record["zLens"]), "zSource": None, "zSourceErr": None}


def batches(variant: str, n_batches: int, batch_size: int) -> list[list[RawMessage]]:
    """The sample stream's records, cycled, with unique ids and the variant's redshifts."""
    records = sample_records()
    run = uuid.uuid4().hex[:8]
    out = []
    for b in range(n_batches):
        batch = []
        for i in range(batch_size):
            version, record = records[(b * batch_size + i) % len(records)]
            fields = {**record, "alertId": f"zcost-{run}-{b}-{i}", **_redshifts(record, variant)}
            batch.append(RawMessage(encode_record(fields, schema_version=version), "bench", 0, i))
        out.append(batch)
    return out


def paired(values: dict[str, list[float]]) -> float:
    """Median over rounds of ``photometric / exact`` measured in the same round."""
    return float(np.median(np.divide(values["photometric"], values["exact"])))


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print (and optionally write) the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=FAST_MODEL, help="default: the fast graph")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--mc-samples", type=int, default=64)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    predictor = OnnxMassPredictor(args.model)
    settings = PipelineSettings(n_mc_samples=args.mc_samples)
    packets = {v: batches(v, args.batches, args.batch_size) for v in VARIANTS}
    process_batch(packets["exact"][0], predictor=predictor, settings=settings)  # warm-up
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    physics_ms: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu_ms: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds):
        for variant in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
            alerts, physics = 0, 0.0
            started, cpu_started = time.perf_counter(), time.process_time()
            for batch in packets[variant]:
                outcome = process_batch(batch, predictor=predictor, settings=settings)
                alerts += outcome.n_messages
                physics += outcome.timings_s["physics"]
            rates[variant].append(alerts / (time.perf_counter() - started))
            cpu_ms[variant].append(1e3 * (time.process_time() - cpu_started) / alerts)
            physics_ms[variant].append(1e3 * physics / alerts)
    median = {v: float(np.median(rates[v])) for v in VARIANTS}
    cpu = {v: float(np.median(cpu_ms[v])) for v in VARIANTS}
    result = {
        "machine": platform.processor() or platform.machine(),
        "model": f"{predictor.identity.name} {predictor.identity.version}",
        "mc_samples": args.mc_samples,
        "alerts_per_round_and_variant": args.batches * args.batch_size,
        "rounds": args.rounds,
        "median_alerts_per_s": median,
        "median_cpu_ms_per_alert": cpu,
        "median_physics_ms_per_alert": {v: float(np.median(physics_ms[v])) for v in VARIANTS},
        "rate_ratio_photometric_over_exact": median["photometric"] / median["exact"],
        "cpu_ratio_photometric_over_exact": cpu["photometric"] / cpu["exact"],
        "median_paired_rate_ratio": paired(rates),
        "median_paired_cpu_ratio": paired(cpu_ms),
        "load_average_1min_at_end": os.getloadavg()[0],
        "alerts_per_s_each_round": rates,
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

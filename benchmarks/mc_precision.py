"""How precise are the Monte Carlo percentiles of image positions and delays, per draw count?

The pipeline reports 16/50/84 percentiles of every image's position, delay and arrival date from
``n`` draws of the predicted Gaussian (:mod:`lenscast.model.uncertainty`). This script measures the
sampling error of those percentiles for independent (``random``) and Latin-hypercube
(``latin``) draws at several ``n``, on the transient alerts of the shipped sample stream with
the shipped model's predictions:

* reference: the same percentiles from ``--reference-draws`` independent draws;
* error: ``(estimate - reference) / half-width``, with half-width ``(p84 - p16) / 2`` of the
  reference, root-mean-square over all images of all alerts and over ``--repeats`` seeds,
  for each percentile of ``x``, ``y``, the delay and the delay after the observed image;
  and the rms error of the image-count mismatch fraction (absolute);
* cost: CPU milliseconds per alert of :func:`lenscast.model.uncertainty.propagate_uncertainty`.

Prints one JSON object. The shipped sample stream has only 19 transient alerts; the committed
figures (``benchmarks/results/mc_precision.json``) come from 400 held-out systems, each with a
transient::

    lenscast simulate --split test --n 500 --seed 21 --out data/mc-sim --workers 2
    lenscast make-stream --data data/mc-sim --n 400 --transient-fraction 1.0 --seed 21 \
        --out data/mc-stream.avro --truths data/mc-stream-truths.jsonl
    python -m benchmarks.mc_precision --sample data/mc-stream.avro \
        --out benchmarks/results/mc_precision.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lenscast.consumer.alert import LensCandidateAlert
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.framing import read_alert_file
from lenscast.consumer.pipeline_physics import alert_seed
from lenscast.model.cosmology import flat_lcdm
from lenscast.model.predictor import DEFAULT_MODEL_PATH, OnnxMassPredictor
from lenscast.model.uncertainty import ImageUncertainty, propagate_uncertainty

SAMPLE = Path(__file__).resolve().parents[1] / "consumer" / "samples" / "hsc-sample.avro"
#: Percentile arrays compared (attributes of ImageUncertainty).
QUANTITIES = ("x", "y", "time_delay_days", "delay_after_observed_days")


def transient_alerts(path: Path) -> list[LensCandidateAlert]:
    """The decoded alerts of an archive that carry a transient (the ones with images)."""
    alerts = [decode_alert(raw) for raw in read_alert_file(path)]
    return [a for a in alerts if a.transient is not None]


def propagate(
    alerts: Sequence[LensCandidateAlert],
    mean: dict[str, np.ndarray],
    sigma: dict[str, np.ndarray],
    *,
    n_samples: int,
    sampling: str,
    seed: int,
) -> ImageUncertainty:
    """The pipeline's propagation (cosmology, per-alert seeds) with the given draws."""
    return propagate_uncertainty(
        mean,
        sigma,
        image_x=np.array([a.transient.x_arcsec for a in alerts if a.transient]),
        image_y=np.array([a.transient.y_arcsec for a in alerts if a.transient]),
        z_lens=np.array([np.nan if a.z_lens is None else a.z_lens for a in alerts]),
        z_source=np.array([np.nan if a.z_source is None else a.z_source for a in alerts]),
        cosmology=flat_lcdm(70.0, 0.3),
        n_samples=n_samples,
        seed=seed,
        system_seeds=np.array([alert_seed(a.alert_id) for a in alerts], dtype=np.int64),
        sampling=sampling,
    )


def errors(estimate: ImageUncertainty, reference: ImageUncertainty) -> dict[str, Any]:
    """Squared errors in units of the reference half-width, per quantity and percentile."""
    out: dict[str, Any] = {}
    for name in QUANTITIES:
        est, ref = getattr(estimate, name), getattr(reference, name)
        half = 0.5 * (ref[..., 2] - ref[..., 0])
        # The observed image's own offset is exactly 0 (no width): nothing to estimate there.
        ok = np.isfinite(half) & (half > 1e-9) & np.all(np.isfinite(est), axis=-1)
        out[name] = [((est[..., j] - ref[..., j])[ok] / half[ok]) ** 2 for j in range(3)]
    diff = estimate.image_count_mismatch_fraction - reference.image_count_mismatch_fraction
    out["mismatch"] = diff**2
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    alerts = transient_alerts(args.sample)
    prediction = OnnxMassPredictor(args.model).predict(np.stack([a.cutouts for a in alerts]))
    mean, sigma = prediction.mean, prediction.sigma
    reference = propagate(
        alerts, mean, sigma, n_samples=args.reference_draws, sampling="random", seed=10_000
    )
    rows: dict[str, Any] = {}
    for sampling in ("random", "latin"):
        for n in args.draws:
            squares: dict[str, list[list[np.ndarray]]] = {}
            mismatch: list[np.ndarray] = []
            cpu: list[float] = []
            for seed in range(args.repeats):
                start = time.process_time()
                estimate = propagate(alerts, mean, sigma, n_samples=n, sampling=sampling, seed=seed)
                cpu.append(time.process_time() - start)
                err = errors(estimate, reference)
                for name in QUANTITIES:
                    for j, sq in enumerate(err[name]):
                        squares.setdefault(name, [[], [], []])[j].append(sq)
                mismatch.append(err["mismatch"])
            rows[f"{sampling}_{n}"] = {
                "rms_error_in_half_widths_p16_p50_p84": {
                    name: [round(float(np.sqrt(np.mean(np.concatenate(s)))), 4) for s in per_p]
                    for name, per_p in squares.items()
                },
                "mismatch_fraction_rms_error": round(
                    float(np.sqrt(np.mean(np.concatenate(mismatch)))), 4
                ),
                "cpu_ms_per_alert_median": round(1e3 * float(np.median(cpu)) / len(alerts), 3),
            }
    return {
        "command": "python -m benchmarks.mc_precision " + " ".join(sys.argv[1:]),
        "model": prediction_identity(args.model),
        "alerts": len(alerts),
        "reference_draws": args.reference_draws,
        "repeats": args.repeats,
        "results": rows,
        "machine": {"cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]},
    }


def prediction_identity(path: Path) -> dict[str, str]:
    identity = OnnxMassPredictor(path).identity
    return {"name": identity.name, "version": identity.version}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="alert archive (Avro)")
    parser.add_argument("--draws", type=int, nargs="+", default=[100, 64, 50])
    parser.add_argument("--reference-draws", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=4, help="seeds per configuration")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = measure(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

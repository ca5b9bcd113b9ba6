"""``lenscast evaluate``: run an exported ONNX model on simulated shards and report.

Inference goes through :class:`lenscast.model.predictor.OnnxMassPredictor`, so the shipped artefact
itself is evaluated. Example::

    lenscast evaluate --model model/weights/lenscast-hsc.onnx --data data/test \
        --out docs/evaluation --update-card
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from lenscast.model.predictor import DEFAULT_MODEL_PATH


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options to ``parser``."""
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="ONNX file")
    parser.add_argument("--data", type=Path, required=True, help="test shard directory")
    parser.add_argument("--out", type=Path, required=True, help="report directory")
    parser.add_argument("--limit", type=int, default=None, help="use the first N systems")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    parser.add_argument("--update-card", action="store_true",
                        help="write the evaluation into the model card beside --model")
    parser.add_argument("--noise-factor", type=float, default=1.0,
                        help="robustness check: add Gaussian noise so that each cutout's "
                             "background rms becomes this multiple of its simulated one")


def run(args: argparse.Namespace) -> int:
    """Evaluate; write evaluation.json, evaluation.md and the plot; return 0."""
    import numpy as np
    from tqdm import tqdm

    from lenscast.model import parameter_spec as spec
    from lenscast.model.predictor import OnnxMassPredictor, load_model_card
    from lenscast.trainer.dataset import load_shards
    from lenscast.trainer.training.evaluation import deepen_noise, evaluate
    from lenscast.trainer.training.evaluation_report import (
        full_markdown,
        markdown_table,
        plot_binned,
        plot_images_binned,
    )
    from lenscast.trainer.training.model_card import write_card

    command = _command_line(args)
    data = load_shards(args.data, limit=args.limit)
    if args.noise_factor != 1.0:
        data.images[:] = deepen_noise(data.images, data.truths, factor=args.noise_factor)
    predictor = OnnxMassPredictor(args.model, intra_op_threads=args.threads)
    means, sigmas = [], []
    for start in tqdm(range(0, len(data.images), 256), desc="inference", unit="batch"):
        prediction = predictor.predict(data.images[start : start + 256])
        means.append(spec.as_array(prediction.mean))
        sigmas.append(spec.as_array(prediction.sigma))
    mean, sigma = np.concatenate(means), np.concatenate(sigmas)
    report = evaluate(mean, sigma, data.truths)
    report["model"] = {"path": str(args.model), "name": predictor.identity.name,
                       "version": predictor.identity.version,
                       "onnx_sha256": predictor.identity.onnx_sha256}
    report["data"] = {"path": str(args.data), "n": len(data.images),
                      "split": sorted({str(s) for s in np.unique(data.truths.get("split", []))})}
    report["command"] = command
    report["noise_factor"] = args.noise_factor

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_binned(report, args.out / "residuals_vs_theta_e.png")
    plot_images_binned(report, args.out / "images_vs_theta_e.png")
    (args.out / "evaluation.md").write_text(
        full_markdown(report, command=command, model=str(args.model), data=str(args.data)))
    print(markdown_table(report))
    if args.update_card:
        card = load_model_card(args.model)
        card["evaluation"] = {
            "command": command, "data": report["data"],
            "parameters": report["parameters"], "images": report["images"],
            "targets": report["targets"], "markdown_table": markdown_table(report),
        }
        write_card(card, args.model)
    return 0


def _command_line(args: argparse.Namespace) -> str:
    words = ["lenscast", "evaluate", "--model", str(args.model), "--data", str(args.data),
             "--out", str(args.out)]
    if args.limit is not None:
        words += ["--limit", str(args.limit)]
    if args.noise_factor != 1.0:
        words += ["--noise-factor", f"{args.noise_factor:g}"]
    if args.update_card:
        words.append("--update-card")
    return shlex.join(words)

"""``lenscast quantize``: an int8 version of an exported model, with its own card.

Quantizes the convolutions (:mod:`lenscast.trainer.training.int8`) with activation ranges from
calibration cutouts, and writes the graph with a card copied from the float model's under a new
name and version, the quantization recorded and the evaluation cleared. The sigma then needs
recalibrating on the int8 outputs and the model evaluating. Example::

    lenscast quantize --model model/weights/lenscast-hsc-fast.onnx --calibration data/val_psf \
        --out model/weights/lenscast-hsc-fast-int8.onnx --name lenscast-hsc-fast-int8 \
        --version 1.4.1
    lenscast recalibrate --model model/weights/lenscast-hsc-fast-int8.onnx --data data/val_psf \
        --out model/weights/lenscast-hsc-fast-int8.onnx --version 1.4.1
    lenscast evaluate --model model/weights/lenscast-hsc-fast-int8.onnx --data data/test \
        --out docs/evaluation/fast_int8 --update-card
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``quantize`` options to ``parser``."""
    parser.add_argument("--model", type=Path, required=True, help="float32 ONNX file in")
    parser.add_argument("--calibration", type=Path, required=True,
                        help="shard directory whose first cutouts set the activation ranges "
                             "(validation data, never the test set)")
    parser.add_argument("--n-calibration", type=int, default=512, help="cutouts used")
    parser.add_argument("--out", type=Path, required=True, help="int8 ONNX file out")
    parser.add_argument("--name", required=True, help="model name of the result")
    parser.add_argument("--version", required=True, help="model version of the result")
    parser.add_argument("--keep-float", default="stem",
                        help="comma-separated name parts of convolutions kept in float32")
    parser.add_argument("--note", default=None, help="replace the card's free-text note")


def run(args: argparse.Namespace) -> int:
    """Quantize and write the graph and its card; return 0."""
    from lenscast.model.predictor import file_sha256, load_model_card
    from lenscast.trainer.dataset import load_shards
    from lenscast.trainer.training.int8 import quantize_int8
    from lenscast.trainer.training.model_card import write_card

    card = load_model_card(args.model)
    if card.get("sigma_theta_e_calibration"):
        raise SystemExit("quantize the graph before `lenscast recalibrate`: the sigma "
                         "correction is fitted on the int8 outputs afterwards")
    cutouts = load_shards(args.calibration, limit=args.n_calibration).images
    args.out.parent.mkdir(parents=True, exist_ok=True)
    keep = [k for k in args.keep_float.split(",") if k]
    kept = quantize_int8(args.model, args.out, cutouts, keep)
    card["quantized_from"] = {"name": card["name"], "version": card["version"],
                              "sha256": file_sha256(args.model)}
    card["name"], card["version"] = args.name, args.version
    if args.note is not None:
        card["note"] = args.note
    card["quantization"] = {
        "method": "onnxruntime quantize_static, QDQ, convolutions only: per-channel int8 "
                  "weights, uint8 activations (min/max on the calibration cutouts); "
                  "trainer/training/int8.py",
        "float32_convolutions": kept,
        "calibration": {"path": str(args.calibration), "n": len(cutouts)},
        "command": _command_line(args),
        "parity": "none: an approximation of the trained network, evaluated on its own",
    }
    card["onnx"] = {**card["onnx"], "sha256": file_sha256(args.out),
                    "bytes": args.out.stat().st_size,
                    "parity_max_abs_torch_vs_onnxruntime": None}
    card["evaluation"] = None
    write_card(card, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB); float32 convolutions: "
          f"{kept}; next: lenscast recalibrate, then lenscast evaluate --update-card")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    words = ["lenscast", "quantize", "--model", str(args.model), "--calibration",
             str(args.calibration), "--n-calibration", str(args.n_calibration), "--out",
             str(args.out), "--name", args.name, "--version", args.version,
             "--keep-float", args.keep_float]
    if args.note is not None:
        words += ["--note", args.note]
    return shlex.join(words)

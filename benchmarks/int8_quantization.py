"""Would post-training int8 quantization make the CNN fast enough, and at what accuracy?

The shipped network is float32. onnxruntime can run an int8 version on CPUs with VNNI/AMX; this
script measures, in one run on this machine, what post-training static quantization (QDQ,
per-channel int8 weights, uint8 activations calibrated by min/max on training cutouts) does:

* speed: images per second, one intra-op thread, batch 1 and 32, float32 and int8 side by side
  (medians over repeats);
* accuracy: the 68 % half-width of predicted - true for every parameter on held-out systems,
  float32 and int8 on the same cutouts, and the rms difference between the two predictions.

Only Conv nodes are quantized (the normalisation and the heads stay float32), and Conv nodes
whose name contains one of ``--keep-float`` stay float32 too (the stem by default: it sees the
raw dynamic range of the pixels).

Usage::

    python -m benchmarks.int8_quantization --calibration data/val_psf --data data/test \
        --out runs/int8_quantization.json --save-int8 runs/int8/lenscast-hsc.onnx
    lenscast evaluate --model runs/int8/lenscast-hsc.onnx --data data/test --out runs/int8/eval
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from benchmarks.json_report import emit
from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import DEFAULT_MODEL_PATH
from lenscast.trainer.dataset import load_shards
from lenscast.trainer.training.int8 import quantize_int8


def load_set(directory: Path, n: int) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """The first ``n`` cutouts (float32) and true parameters (spec order) of a shard directory."""
    data = load_shards(directory, limit=n)
    truths = np.stack([data.truths[k] for k in spec.MASS_PARAMETER_NAMES], -1)
    return data.images, truths.astype(np.float64)


def session(path: Path) -> ort.InferenceSession:
    """A one-thread CPU session (how the consumer runs the model)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, cutouts: NDArray[np.float32]) -> NDArray[np.float64]:
    """Predicted means, shape (n, 7), in batches of 64."""
    out = [sess.run([spec.ONNX_MEAN_NAME], {spec.ONNX_INPUT_NAME: cutouts[i : i + 64]})[0]
           for i in range(0, len(cutouts), 64)]  # fmt: skip
    return np.concatenate(out).astype(np.float64)


def rate(sess: ort.InferenceSession, cutouts: NDArray[np.float32], batch: int) -> float:
    """Images per second over ~1 s of back-to-back calls."""
    sess.run(None, {spec.ONNX_INPUT_NAME: cutouts[:batch]})
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < 1.0:
        at = (calls * batch) % (len(cutouts) - batch)
        sess.run(None, {spec.ONNX_INPUT_NAME: cutouts[at : at + batch]})
        calls += 1
    return calls * batch / (time.perf_counter() - started)


def half_widths(pred: NDArray[np.float64], truth: NDArray[np.float64]) -> dict[str, float]:
    """68 % half-width of predicted - true per parameter."""
    lo, hi = np.percentile(pred - truth, [16.0, 84.0], axis=0)
    return {
        k: round(float(w), 4) for k, w in zip(spec.MASS_PARAMETER_NAMES, (hi - lo) / 2, strict=True)
    }


def main(argv: list[str] | None = None) -> int:
    """Quantize, time and evaluate; print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--calibration", type=Path, required=True, help="shards for min/max")
    parser.add_argument("--n-calibration", type=int, default=512)
    parser.add_argument("--data", type=Path, required=True, help="held-out test shards")
    parser.add_argument("--n-eval", type=int, default=3000)
    parser.add_argument("--keep-float", default="stem", help="comma-separated name parts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--save-int8",
        type=Path,
        metavar="ONNX",
        help="also keep the int8 model here, with the float model's card beside it, so that "
        "`lenscast evaluate --model ONNX` gives its full report (its sigma calibration is the "
        "float model's)",
    )
    args = parser.parse_args(argv)

    calibration, _ = load_set(args.calibration, args.n_calibration)
    cutouts, truth = load_set(args.data, args.n_eval)
    with tempfile.TemporaryDirectory() as tmp:
        int8_path = Path(tmp) / "int8.onnx"
        kept = quantize_int8(
            args.model, int8_path, calibration, [k for k in args.keep_float.split(",") if k]
        )
        if args.save_int8:
            args.save_int8.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(int8_path, args.save_int8)
            shutil.copyfile(args.model.with_suffix(".json"), args.save_int8.with_suffix(".json"))
        sessions = {"float32": session(args.model), "int8": session(int8_path)}
        preds = {name: predict(s, cutouts) for name, s in sessions.items()}
        speeds: dict[str, dict[int, list[float]]] = {n: {1: [], 32: []} for n in sessions}
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            for name, sess in sessions.items():
                for batch in (1, 32):
                    speeds[name][batch].append(rate(sess, cutouts, batch))
    report: dict[str, Any] = {
        "command": "python -m benchmarks.int8_quantization " + " ".join(argv or sys.argv[1:]),
        "model": str(args.model),
        "float_conv_nodes": kept,
        "eval_systems": len(cutouts),
        "images_per_s": {
            n: {str(b): round(statistics.median(v)) for b, v in s.items()}
            for n, s in speeds.items()
        },  # fmt: skip
        "half_width_68": {n: half_widths(p, truth) for n, p in preds.items()},
        "rms_int8_minus_float32": {
            k: round(float(v), 4)
            for k, v in zip(
                spec.MASS_PARAMETER_NAMES,
                np.sqrt(np.mean((preds["int8"] - preds["float32"]) ** 2, 0)),
                strict=True,
            )
        },
    }
    report["speed_ratio_int8_over_float32"] = {
        b: round(report["images_per_s"]["int8"][b] / report["images_per_s"]["float32"][b], 2)
        for b in ("1", "32")
    }
    emit(report, args.out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

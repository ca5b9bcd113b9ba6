"""``lenscast recalibrate``: give an exported model's sigma a θ_E-dependent correction.

Sets with non-lenses (truth ``is_lens``) are fitted on their lenses only.

Fits the correction of :mod:`lenscast.trainer.training.theta_e_sigma` on simulated validation
shards, appends it to the graph (the means are untouched), checks the new graph against the NumPy
formula, and writes the ONNX file and its card (new version, the fit recorded, the evaluation
cleared: run ``lenscast evaluate --update-card`` next). Example::

    lenscast recalibrate --model model/weights/lenscast-hsc.onnx --data data/val_psf \
        --out model/weights/lenscast-hsc.onnx --version 1.4.1
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import tempfile
from pathlib import Path

from lenscast.model.predictor import DEFAULT_MODEL_PATH

#: Largest relative difference accepted between the graph's sigma and the NumPy formula
#: (float32 arithmetic in the graph).
SIGMA_RTOL = 1e-5


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``recalibrate`` options to ``parser``."""
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="ONNX file in")
    parser.add_argument("--data", type=Path, required=True,
                        help="validation shard directory (never the test set)")
    parser.add_argument("--out", type=Path, required=True,
                        help="ONNX file out (may be --model itself)")
    parser.add_argument("--version", required=True, help="model version of the result")
    parser.add_argument("--note", default=None, help="replace the card's free-text note")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")


def run(args: argparse.Namespace) -> int:
    """Fit, append, check, write; return 0 (1 if the graph disagrees with the formula)."""
    import numpy as np
    import onnx
    from tqdm import tqdm

    from lenscast.model import parameter_spec as spec
    from lenscast.model.predictor import OnnxMassPredictor, file_sha256, load_model_card
    from lenscast.trainer.dataset import load_shards
    from lenscast.trainer.training.model_card import write_card
    from lenscast.trainer.training.theta_e_sigma import (
        N_BINS,
        THETA_E_CLIP,
        append_to_graph,
        apply_theta_e_dependence,
        coverage_by_bin,
        fit_theta_e_dependence,
    )

    def predict(path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        predictor = OnnxMassPredictor(path, intra_op_threads=args.threads)
        means, sigmas = [], []
        for start in tqdm(range(0, len(images), 256), desc=path.name, unit="batch"):
            prediction = predictor.predict(images[start : start + 256])
            means.append(spec.as_array(prediction.mean))
            sigmas.append(spec.as_array(prediction.sigma))
        return np.concatenate(means), np.concatenate(sigmas)

    data = load_shards(args.data)
    if "is_lens" in data.truths:
        # The mass model's sigma is fitted on lenses: a non-lens's truths are prior draws.
        lenses = data.truths["is_lens"] == 1
        data.images = data.images[lenses]
        data.truths = {k: v[lenses] for k, v in data.truths.items()}
    truth = spec.as_array({k: data.truths[k] for k in spec.MASS_PARAMETER_NAMES})
    card = load_model_card(args.model)
    source_sha = file_sha256(args.model)
    mean, sigma = predict(args.model, data.images)
    factors, slopes = fit_theta_e_dependence(mean, sigma, truth)
    graph = append_to_graph(onnx.load(str(args.model)), factors, slopes)

    # Checked in a scratch directory (the predictor wants a card beside the graph) before the
    # output, possibly the input itself, is replaced.
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch) / args.out.name
        onnx.save(graph, str(staging))
        write_card(card, staging)
        new_mean, new_sigma = predict(staging, data.images[:512])
        expected = apply_theta_e_dependence(mean[:512], sigma[:512], factors, slopes)
        worst = float(np.max(np.abs(new_sigma / expected - 1.0)))
        if not np.array_equal(new_mean, mean[:512]) or worst > SIGMA_RTOL:
            print(f"the appended graph disagrees with the formula (sigma rel. {worst:.1e})")
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staging, args.out)

    corrected = apply_theta_e_dependence(mean, sigma, factors, slopes)
    card["recalibrated_from"] = {"version": card["version"], "sha256": source_sha}
    card["version"] = args.version
    if args.note is not None:
        card["note"] = args.note
    card["sigma_theta_e_calibration"] = {
        "method": "sigma_k *= c_k * clip(predicted theta_e, "
                  f"{THETA_E_CLIP[0]}, {THETA_E_CLIP[1]})^b_k; b_k the slope of log(68.27th "
                  f"percentile of |mean - truth| / sigma) against log(predicted theta_e) over "
                  f"{N_BINS} equal-count bins, c_k restoring 68.27 % overall "
                  "(trainer/training/theta_e_sigma.py)",
        "factors": dict(zip(spec.MASS_PARAMETER_NAMES, factors.tolist(), strict=True)),
        "slopes": dict(zip(spec.MASS_PARAMETER_NAMES, slopes.tolist(), strict=True)),
        "data": {"path": str(args.data), "n": len(data.images)},
        "command": _command_line(args),
        "coverage_1sigma_by_true_theta_e_before": coverage_by_bin(mean, sigma, truth),
        "coverage_1sigma_by_true_theta_e_after": coverage_by_bin(mean, corrected, truth),
    }
    card["onnx"] = {**card["onnx"], "sha256": file_sha256(args.out),
                    "bytes": args.out.stat().st_size}
    card["evaluation"] = None  # the sigma changed: evaluate again (--update-card)
    write_card(card, args.out)
    print("theta_e slopes: " + ", ".join(f"{k} {v:+.3f}" for k, v in
                                          zip(spec.MASS_PARAMETER_NAMES, slopes, strict=True)))
    print(f"wrote {args.out} (version {args.version}); now run lenscast evaluate --update-card")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    words = ["lenscast", "recalibrate", "--model", str(args.model), "--data", str(args.data),
             "--out", str(args.out), "--version", args.version]
    if args.note is not None:
        words += ["--note", args.note]
    return shlex.join(words)

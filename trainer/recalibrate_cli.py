"""``lenscast recalibrate``: correct an exported model's sigma on validation data.

Two corrections, each fitted on simulated validation shards and appended to the graph (the means
are untouched):

* by default the θ_E-dependent factor of :mod:`lenscast.trainer.training.theta_e_sigma`, fitted
  on the lenses of the set (a non-lens's truths are prior draws);
* with ``--evidence-spread``, the widening below the ``p_lens`` threshold of
  :mod:`lenscast.trainer.training.evidence_sigma`, fitted on the set's non-lenses (the model needs
  the ``p_lens`` output).

The new graph is checked against the NumPy formula before the ONNX file and its card are written
(new version, the fit recorded, the evaluation cleared: run ``lenscast evaluate --update-card``
next). Example::

    lenscast recalibrate --model model/weights/lenscast-hsc.onnx --data data/val_psf \
        --out model/weights/lenscast-hsc.onnx --version 1.4.1
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lenscast.model.predictor import DEFAULT_MODEL_PATH

#: Largest relative difference accepted between the graph's sigma and the NumPy formula
#: (float32 arithmetic in the graph).
SIGMA_RTOL = 1e-5


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``recalibrate`` options to ``parser``."""
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="ONNX file in")
    parser.add_argument("--data", type=Path, required=True, nargs="+", metavar="DIR",
                        help="validation shard directory, or several fitted as one set "
                             "(never a test set)")
    parser.add_argument("--out", type=Path, required=True,
                        help="ONNX file out (may be --model itself)")
    parser.add_argument("--version", required=True, help="model version of the result")
    parser.add_argument("--note", default=None, help="replace the card's free-text note")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    parser.add_argument("--evidence-spread", action="store_true",
                        help="widen sigma below the p_lens threshold until it covers the prior "
                             "(needs p_lens) instead of the theta_E-dependent factor")


def run(args: argparse.Namespace) -> int:
    """Fit, append, check, write; return 0 (1 if the graph disagrees with the formula)."""
    import numpy as np
    import onnx
    from tqdm import tqdm

    from lenscast.model import parameter_spec as spec
    from lenscast.model.predictor import OnnxMassPredictor, file_sha256, load_model_card
    from lenscast.trainer.dataset import load_sets
    from lenscast.trainer.training.model_card import write_card

    def predict(path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        predictor = OnnxMassPredictor(path, intra_op_threads=args.threads)
        means, sigmas, p_lens = [], [], []
        for start in tqdm(range(0, len(images), 256), desc=path.name, unit="batch"):
            prediction = predictor.predict(images[start : start + 256])
            means.append(spec.as_array(prediction.mean))
            sigmas.append(spec.as_array(prediction.sigma))
            p_lens.append(prediction.p_lens if prediction.p_lens is not None
                          else np.ones(len(prediction.sigma["theta_e"])))
        return np.concatenate(means), np.concatenate(sigmas), np.concatenate(p_lens)

    data = load_sets(args.data)
    where = ", ".join(str(d) for d in args.data)
    if args.evidence_spread:
        if "is_lens" not in data.truths:
            print(f"{where} holds no non-lenses (truth is_lens): nothing to fit the "
                  "evidence spread on")
            return 1
    elif "is_lens" in data.truths:
        # The mass model's sigma is fitted on lenses: a non-lens's truths are prior draws.
        lenses = data.truths["is_lens"] == 1
        data.images = data.images[lenses]
        data.truths = {k: v[lenses] for k, v in data.truths.items()}
    truth = spec.as_array({k: data.truths[k] for k in spec.MASS_PARAMETER_NAMES})
    card = load_model_card(args.model)
    source_sha = file_sha256(args.model)
    mean, sigma, p_lens = predict(args.model, data.images)
    if args.evidence_spread:
        if "lens_evidence" not in card:
            print(f"{args.model} has no p_lens output to widen sigma by")
            return 1
        threshold = float(card["lens_evidence"]["default_threshold"])
        graph, corrected, section = _evidence_spread(
            onnx.load(str(args.model)), mean, sigma, p_lens, truth, data.truths["is_lens"],
            threshold=threshold)
        key = "sigma_evidence_spread"
    else:
        graph, corrected, section = _theta_e_dependence(
            onnx.load(str(args.model)), mean, sigma, truth)
        key = "sigma_theta_e_calibration"

    # Checked in a scratch directory (the predictor wants a card beside the graph) before the
    # output, possibly the input itself, is replaced.
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch) / args.out.name
        onnx.save(graph, str(staging))
        write_card(card, staging)
        new_mean, new_sigma, _ = predict(staging, data.images[:512])
        worst = float(np.max(np.abs(new_sigma / corrected[:512] - 1.0)))
        if not np.array_equal(new_mean, mean[:512]) or worst > SIGMA_RTOL:
            print(f"the appended graph disagrees with the formula (sigma rel. {worst:.1e})")
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staging, args.out)

    card["recalibrated_from"] = {"version": card["version"], "sha256": source_sha}
    card["version"] = args.version
    if args.note is not None:
        card["note"] = args.note
    paths = [str(d) for d in args.data]
    card[key] = {**section, "data": {"path": paths[0] if len(paths) == 1 else paths,
                                     "n": len(data.images)},
                 "command": _command_line(args)}
    card["onnx"] = {**card["onnx"], "sha256": file_sha256(args.out),
                    "bytes": args.out.stat().st_size}
    card["evaluation"] = None  # the sigma changed: evaluate again (--update-card)
    write_card(card, args.out)
    print(f"wrote {args.out} (version {args.version}); now run lenscast evaluate --update-card")
    return 0


def _theta_e_dependence(graph: Any, mean: Any, sigma: Any, truth: Any
                        ) -> tuple[Any, Any, dict[str, Any]]:
    """The θ_E-dependent factor: new graph, corrected sigma and the card section."""
    from lenscast.model import parameter_spec as spec
    from lenscast.trainer.training.theta_e_sigma import (
        N_BINS,
        THETA_E_CLIP,
        append_to_graph,
        apply_theta_e_dependence,
        coverage_by_bin,
        fit_theta_e_dependence,
    )

    factors, slopes = fit_theta_e_dependence(mean, sigma, truth)
    corrected = apply_theta_e_dependence(mean, sigma, factors, slopes)
    print("theta_e slopes: " + ", ".join(f"{k} {v:+.3f}" for k, v in
                                          zip(spec.MASS_PARAMETER_NAMES, slopes, strict=True)))
    return append_to_graph(graph, factors, slopes), corrected, {
        "method": "sigma_k *= c_k * clip(predicted theta_e, "
                  f"{THETA_E_CLIP[0]}, {THETA_E_CLIP[1]})^b_k; b_k the slope of log(68.27th "
                  f"percentile of |mean - truth| / sigma) against log(predicted theta_e) over "
                  f"{N_BINS} equal-count bins, c_k restoring 68.27 % overall "
                  "(trainer/training/theta_e_sigma.py)",
        "factors": dict(zip(spec.MASS_PARAMETER_NAMES, factors.tolist(), strict=True)),
        "slopes": dict(zip(spec.MASS_PARAMETER_NAMES, slopes.tolist(), strict=True)),
        "coverage_1sigma_by_true_theta_e_before": coverage_by_bin(mean, sigma, truth),
        "coverage_1sigma_by_true_theta_e_after": coverage_by_bin(mean, corrected, truth),
    }


def _evidence_spread(graph: Any, mean: Any, sigma: Any, p_lens: Any, truth: Any, is_lens: Any,
                     *, threshold: float) -> tuple[Any, Any, dict[str, Any]]:
    """The widening below the p_lens threshold: new graph, widened sigma and the card section."""
    from lenscast.model import parameter_spec as spec
    from lenscast.trainer.training.evidence_sigma import (
        append_to_graph,
        coverage_report,
        fit_evidence_spread,
        widened_sigma,
    )

    fit = fit_evidence_spread(mean, sigma, p_lens, truth, is_lens, threshold=threshold)
    widened = widened_sigma(sigma, p_lens, threshold=threshold, **fit)

    def named(values: Any) -> dict[str, float]:
        return dict(zip(spec.MASS_PARAMETER_NAMES, values.tolist(), strict=True))

    before = coverage_report(mean, sigma, truth, is_lens)
    after = coverage_report(mean, widened, truth, is_lens)
    print(f"theta_e 1-sigma coverage, non-lenses: {before['non_lenses']['theta_e']:.3f} -> "
          f"{after['non_lenses']['theta_e']:.3f}; lenses {after['lenses']['theta_e']:.3f}")
    return append_to_graph(graph, threshold=threshold, **fit), widened, {
        "method": "sigma_k <- sqrt(sigma_k^2 + w_k r^2 s_k^2), r = clip((t - p_lens) / t, 0, 1) "
                  "with t the default p_lens threshold; s_k the spread of the non-lenses' prior "
                  "draws, w_k such that 1 sigma covers 68.27 % of the non-lenses' prior draws "
                  "(trainer/training/evidence_sigma.py)",
        "threshold": threshold, "spread": named(fit["spread"]), "weights": named(fit["weights"]),
        "coverage_1sigma_before": before, "coverage_1sigma_after": after,
    }


def _command_line(args: argparse.Namespace) -> str:
    words = ["lenscast", "recalibrate", "--model", str(args.model), "--data",
             *(str(d) for d in args.data), "--out", str(args.out), "--version", args.version]
    if args.note is not None:
        words += ["--note", args.note]
    if args.evidence_spread:
        words.append("--evidence-spread")
    return shlex.join(words)

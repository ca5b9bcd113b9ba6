"""``lenscast evaluate``: run an exported ONNX model on simulated shards and report.

Inference goes through :class:`lenscast.model.predictor.OnnxMassPredictor`, so the shipped artefact
itself is evaluated. Sets with non-lenses (truth ``is_lens``) are evaluated on their lenses for
the mass model; a graph with the ``p_lens`` output is also evaluated for lens evidence on the
whole set (both classes needed) at the card's default threshold. Example::

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
    parser.add_argument("--theta-e-bins", type=_bin_edges, default=None, metavar="EDGES",
                        help="true-θ_E bin edges of the binned tables, arcsec, comma-separated "
                             "(default 0.5,0.8,1.2,1.6,2,2.5,3,4,5)")


def run(args: argparse.Namespace) -> int:
    """Evaluate; write evaluation.json, evaluation.md and the plot; return 0."""
    import numpy as np
    from tqdm import tqdm

    from lenscast.model import parameter_spec as spec
    from lenscast.model.predictor import OnnxMassPredictor, load_model_card
    from lenscast.trainer.dataset import load_shards
    from lenscast.trainer.training.evaluation import THETA_E_BINS, deepen_noise, evaluate
    from lenscast.trainer.training.evaluation_report import (
        full_markdown,
        markdown_table,
        plot_binned,
        plot_images_binned,
    )
    from lenscast.trainer.training.lens_evidence import (
        above_by_arc_snr,
        below_by_kind,
        evidence_report,
        has_p_lens,
        non_lens_sigma,
        one_class_report,
        onnx_p_lens,
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
    card = load_model_card(args.model)
    evidence = None
    labels = data.truths.get("is_lens")
    if has_p_lens(args.model) and labels is not None:
        threshold = float((card.get("lens_evidence") or {}).get("default_threshold", 0.5))
        p_lens = onnx_p_lens(args.model, data.images, threads=args.threads)
        if 0 < labels.sum() < len(labels):
            evidence = evidence_report(p_lens, labels, threshold=threshold)
            if "non_lens_kind" in data.truths:
                evidence["non_lenses_below_threshold_by_kind"] = below_by_kind(
                    p_lens, labels, data.truths["non_lens_kind"], threshold=threshold)
            if "arc_snr" in data.truths:
                evidence["lenses_above_threshold_by_arc_snr"] = above_by_arc_snr(
                    p_lens, labels, data.truths["arc_snr"], threshold=threshold)
        else:
            evidence = one_class_report(p_lens, labels, threshold=threshold)
    lenses = np.ones(len(mean), dtype=bool) if labels is None else labels == 1
    if not lenses.any():
        return _non_lenses_only(args, evidence, command)
    truths = {k: v[lenses] for k, v in data.truths.items()}
    report = evaluate(
        mean[lenses], sigma[lenses], truths, theta_e_bins=args.theta_e_bins or THETA_E_BINS
    )
    report["model"] = {"path": str(args.model), "name": predictor.identity.name,
                       "version": predictor.identity.version,
                       "onnx_sha256": predictor.identity.onnx_sha256}
    report["data"] = {"path": str(args.data), "n": len(data.images),
                      "n_lenses_evaluated": int(lenses.sum()),
                      "split": sorted({str(s) for s in np.unique(data.truths.get("split", []))})}
    report["command"] = command
    report["noise_factor"] = args.noise_factor
    if evidence is not None:
        report["lens_evidence"] = evidence
    if labels is not None and (~lenses).any() and np.isfinite(data.truths["theta_e"]).all():
        report["non_lenses"] = non_lens_sigma(mean[~lenses], sigma[~lenses],
                                              {k: v[~lenses] for k, v in data.truths.items()})

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_binned(report, args.out / "residuals_vs_theta_e.png")
    plot_images_binned(report, args.out / "images_vs_theta_e.png")
    (args.out / "evaluation.md").write_text(
        full_markdown(report, command=command, model=str(args.model), data=str(args.data)))
    print(markdown_table(report))
    if evidence is not None:
        print(json.dumps({k: v for k, v in evidence.items() if k != "reliability"}))
    if args.update_card:
        if evidence is not None and "roc_auc" in evidence:
            card["lens_evidence"] = {**card.get("lens_evidence", {}),
                                     "evaluation": {"command": command, "data": report["data"],
                                                    **evidence}}
        card["evaluation"] = {
            "command": command, "data": report["data"],
            "parameters": report["parameters"], "images": report["images"],
            "targets": report["targets"], "markdown_table": markdown_table(report),
        }
        write_card(card, args.model)
    return 0


def _non_lenses_only(args: argparse.Namespace, evidence: dict | None, command: str) -> int:
    """A set without lenses: only the lens evidence is evaluated (no mass model to score)."""
    import json

    if evidence is None:
        print(f"{args.data} holds no lenses and {args.model} has no p_lens output: "
              "nothing to evaluate")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"command": command, "data": {"path": str(args.data)}, "lens_evidence": evidence}
    (args.out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(evidence))
    return 0


def _command_line(args: argparse.Namespace) -> str:
    words = ["lenscast", "evaluate", "--model", str(args.model), "--data", str(args.data),
             "--out", str(args.out)]
    if args.limit is not None:
        words += ["--limit", str(args.limit)]
    if args.noise_factor != 1.0:
        words += ["--noise-factor", f"{args.noise_factor:g}"]
    if args.theta_e_bins is not None:
        words += ["--theta-e-bins", ",".join(f"{edge:g}" for edge in args.theta_e_bins)]
    if args.update_card:
        words.append("--update-card")
    return shlex.join(words)


def _bin_edges(text: str) -> tuple[float, ...]:
    """Parse ``"0.5,0.8,1"`` into increasing bin edges (argparse type)."""
    try:
        edges = tuple(float(word) for word in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"bin edges must be numbers: {text!r}") from error
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise argparse.ArgumentTypeError(f"need at least two increasing edges, got {text!r}")
    return edges

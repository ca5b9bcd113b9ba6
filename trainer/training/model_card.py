"""The model card beside the shipped ONNX file: JSON (read by the predictor) and Markdown.

Keys follow ``docs/architecture.md``; :class:`lenscast.model.predictor.OnnxMassPredictor` reads
``name``, ``version``, ``parameter_spec_version``, ``input.bands``, ``input.size_pix`` and
``outputs[].name``. The evaluation section is written by ``lenscast evaluate --update-card``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lenscast.model import parameter_spec as spec

#: Pixel orientation of the training cutouts (the simulator's, HSC/FITS north up east left).
ORIENTATION = ("array[band, row, col]; x = -(col - c) * scale (east left), "
               "y = (row - c) * scale (north up), c = (size - 1) / 2")


def _views_text(count: int) -> str:
    """How the graph's test-time views are described in the Markdown card."""
    described = {
        2: "the cutout and the cutout turned by 180 degrees",
        4: "the cutout turned by 0, 90, 180 and 270 degrees",
        8: "the cutout turned by 0, 90, 180 and 270 degrees, and the mirror images of those",
    }
    if count not in described:
        return "."
    return (f" ({count} views in the graph, {described[count]}; each answer is mapped back "
            "to the cutout's frame and the answers are averaged).")


def build_card(*, name: str, version: str, checkpoint: dict[str, Any], flops: dict[str, int],
               onnx_sha256: str, onnx_bytes: int, parity: float, note: str,
               views: int = 1) -> dict[str, Any]:
    """Assemble the card JSON for an exported checkpoint.

    Parameters
    ----------
    name, version : str
        Model identity recorded with every prediction.
    checkpoint : dict
        The training checkpoint (see :mod:`lenscast.trainer.training.loop`).
    flops : dict
        From :func:`lenscast.trainer.network.count_flops`.
    onnx_sha256 : str
        Hex digest of the ONNX file.
    onnx_bytes : int
    parity : float
        Largest |torch - onnxruntime| difference measured at export.
    note : str
        Free text, e.g. whether this is an early or the final model.
    views : int
        Views averaged in the graph (1, or 2 with the cutout turned by 180 degrees); ``flops``
        already counts them.
    """
    state = checkpoint["state"]
    history = state["history"]
    return {
        "name": name,
        "version": version,
        "note": note,
        "parameter_spec_version": spec.PARAMETER_SPEC_VERSION,
        "input": {
            "name": spec.ONNX_INPUT_NAME,
            "bands": list(spec.BANDS),
            "size_pix": spec.CUTOUT_SIZE_PIX,
            "pixel_scale_arcsec": spec.PIXEL_SCALE_ARCSEC,
            "zeropoint_ab": spec.PIXEL_ZEROPOINT_AB,
            "unit": "calibrated coadd flux, mag = 27 - 2.5 log10(flux)",
            "orientation": ORIENTATION,
            "normalisation": "inside the graph: asinh(flux / s_band) / 3",
        },
        "outputs": [
            {"name": p.name, "unit": p.unit, "low": p.low, "high": p.high,
             "description": p.description}
            for p in spec.MASS_PARAMETERS
        ],
        "onnx_outputs": {
            spec.ONNX_MEAN_NAME: "float32 (batch, 7), spec order and units",
            spec.ONNX_SIGMA_NAME: "float32 (batch, 7), calibrated Gaussian 1-sigma",
        },
        "architecture": {
            "type": "residual CNN, strided 3x3 conv + BatchNorm + ReLU, CoordConv input"
                    + (", colour-residual input planes"
                       if checkpoint["network_config"].get("colour_residuals") else ""),
            **checkpoint["network_config"],
            "parameters": flops["parameters"],
            "macs_per_image": flops["macs"],
            "flops_per_image": flops["flops"],
            "test_time_views": views,
        },
        "sigma_calibration": {
            "method": "per-parameter factor k = 68.27th percentile of |mean - truth| / sigma "
                      "on the validation set, multiplied into the sigma output",
            "factors": dict(zip(spec.MASS_PARAMETER_NAMES,
                                checkpoint["model"]["sigma_scale"].tolist(), strict=True)),
        },
        "mean_calibration": {
            "method": "per-parameter median of mean - truth on the validation set, "
                      "subtracted from the mean output (0 = not fitted)",
            "offsets": dict(zip(spec.MASS_PARAMETER_NAMES,
                                checkpoint["model"]["mean_offset"].tolist(), strict=True)),
        },
        "training": {
            "command": state["command"],
            "resumed_with": state.get("resumes", []),
            "initialised_from": state.get("initialised_from"),
            "seed": state["seed"],
            "config": checkpoint["train_config"],
            "data": checkpoint["data"],
            "epochs_completed": state["epoch"],
            "steps": state["step"],
            "wall_minutes": round(state["elapsed_s"] / 60.0, 1),
            "device": checkpoint.get("device", "cpu"),
            "loss": "beta-NLL, beta = 0.5 (Seitzer et al. 2022), standardised targets",
            "augmentation": "random D4 sky symmetry (90 deg rotations, flips) per sample",
            "last_validation": (history[-1].get("val") or history[-1].get("calibration"))
            if history else None,
        },
        "onnx": {"opset": 17, "sha256": onnx_sha256, "bytes": onnx_bytes,
                 "parity_max_abs_torch_vs_onnxruntime": parity},
        "evaluation": None,
    }


def write_card(card: dict[str, Any], onnx_path: Path) -> None:
    """Write ``card`` as ``<stem>.json`` and ``<stem>.md`` beside ``onnx_path``."""
    onnx_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    onnx_path.with_suffix(".md").write_text(render_markdown(card))


def _theta_e_sigma_lines(card: dict[str, Any]) -> list[str]:
    """The θ_E-dependent sigma correction (``lenscast recalibrate``), if the graph has one."""
    fit = card.get("sigma_theta_e_calibration")
    if not fit:
        return []
    return [
        "",
        "Then θ_E-dependent (`" + fit["command"] + "`): " + fit["method"] + ".",
        "c: " + ", ".join(f"{k} {v:.3f}" for k, v in fit["factors"].items()),
        "b: " + ", ".join(f"{k} {v:+.3f}" for k, v in fit["slopes"].items()),
    ]


def _evidence_spread_lines(card: dict[str, Any]) -> list[str]:
    """The sigma widened below the p_lens threshold (``recalibrate --evidence-spread``)."""
    fit = card.get("sigma_evidence_spread")
    if not fit:
        return []
    before, after = fit["coverage_1sigma_before"], fit["coverage_1sigma_after"]
    return [
        "",
        "Then widened below the p_lens threshold (`" + fit["command"] + "`): " + fit["method"]
        + ".",
        "s: " + ", ".join(f"{k} {v:.3f}" for k, v in fit["spread"].items()),
        "w: " + ", ".join(f"{k} {v:.3f}" for k, v in fit["weights"].items()),
        f"θ_E ±1σ coverage on the fit's non-lenses {before['non_lenses']['theta_e']:.1%} → "
        f"{after['non_lenses']['theta_e']:.1%}, on its lenses {before['lenses']['theta_e']:.1%} "
        f"→ {after['lenses']['theta_e']:.1%}.",
    ]


def _parity_text(card: dict[str, Any]) -> str:
    parity = card["onnx"]["parity_max_abs_torch_vs_onnxruntime"]
    if parity is None:  # a quantized graph approximates the network: no parity to check
        return "no torch parity (quantized; evaluated on its own)."
    return f"torch vs onnxruntime max |diff| {parity:.2e}."


def _quantization_lines(card: dict[str, Any]) -> list[str]:
    """The int8 quantization (``lenscast quantize``), if the graph is quantized."""
    quant = card.get("quantization")
    if not quant:
        return []
    source = card["quantized_from"]
    return [
        "",
        f"Quantized from {source['name']} {source['version']} (sha256 `{source['sha256']}`) "
        f"by `{quant['command']}`: {quant['method']}; float32 convolutions: "
        f"{', '.join(quant['float32_convolutions']) or 'none'}.",
    ]


def _lens_evidence_lines(card: dict[str, Any]) -> list[str]:
    """The ``p_lens`` output (``lenscast export`` of a network with the evidence head)."""
    section = card.get("lens_evidence")
    if not section:
        return []
    fit = section["calibration"]
    lines = [
        "",
        "## Lens evidence (`p_lens`: float32 (batch,))",
        f"{section['meaning']}. Default threshold {section['default_threshold']:.2f}. "
        f"{fit['method']}: a {fit['a']:.4f}, b {fit['b']:+.4f} on `{fit['data']}` "
        f"({fit['n']} systems, lens fraction {fit['lens_fraction']:.2f}).",
    ]
    held_out = section.get("evaluation")
    if held_out:
        lines.append(
            f"Held out (`{held_out['command']}`): ROC AUC {held_out['roc_auc']:.4f}; "
            f"non-lenses below the threshold {held_out['non_lenses_below_threshold']:.1%}, "
            f"lenses above {held_out['lenses_above_threshold']:.1%}; precision "
            f"{held_out['precision_at_threshold']:.1%} for a stream of "
            f"{held_out['stream_lens_fraction']:.0%} lenses; largest |stated − observed| "
            f"in bins of ≥ 50 systems {held_out['max_abs_gap_bins_ge_50']:.3f}.")
    return lines


def render_markdown(card: dict[str, Any]) -> str:
    """Human-readable model card."""
    arch, training, inp = card["architecture"], card["training"], card["input"]
    lines = [
        f"# {card['name']} {card['version']}",
        "",
        card["note"],
        "",
        "## Input",
        f"- `{inp['name']}`: float32 (batch, {len(inp['bands'])}, {inp['size_pix']}, "
        f"{inp['size_pix']}), bands {''.join(inp['bands'])}, {inp['pixel_scale_arcsec']}\"/px",
        f"- unit: {inp['unit']} (AB zeropoint {inp['zeropoint_ab']})",
        f"- orientation: {inp['orientation']}",
        f"- normalisation: {inp['normalisation']}",
        "",
        "## Outputs (`mean`, `sigma`: float32 (batch, 7), this order)",
        "| # | name | unit | training range | meaning |",
        "|---|---|---|---|---|",
    ]
    for i, out in enumerate(card["outputs"]):
        lines.append(f"| {i} | {out['name']} | {out['unit'] or '-'} | "
                     f"[{out['low']}, {out['high']}] | {out['description']} |")
    lines += [
        "",
        "`sigma` is calibrated: " + card["sigma_calibration"]["method"] + ".",
        "Factors: " + ", ".join(f"{k} {v:.3f}"
                                for k, v in card["sigma_calibration"]["factors"].items()),
        *_theta_e_sigma_lines(card),
        *_evidence_spread_lines(card),
        *_lens_evidence_lines(card),
        "",
        "`mean` is offset-corrected: " + card["mean_calibration"]["method"] + ". Offsets: "
        + ", ".join(f"{k} {v:+.4f}" for k, v in card["mean_calibration"]["offsets"].items()),
        "",
        "## Architecture",
        f"{arch['type']}; widths {arch['widths']}, residual blocks {arch['blocks']}; "
        f"{arch['parameters']:,} parameters, {arch['macs_per_image'] / 1e6:.1f} M MAC = "
        f"{arch['flops_per_image'] / 1e6:.1f} MFLOP per image"
        + _views_text(arch.get("test_time_views", 1)),
        "",
        "## Training",
        f"- command: `{training['command']}`",
        *([f"- started from the weights of `{training['initialised_from']['onnx']}` "
           f"(sha256 `{training['initialised_from']['sha256']}`)"]
          if training.get("initialised_from") else []),
        *[f"- resumed at epoch {r['at_epoch']}: `{r['command']}`"
          for r in training.get("resumed_with", [])],
        f"- seed {training['seed']}; {training['epochs_completed']} epochs, "
        f"{training['steps']} steps, {training['wall_minutes']} min wall"
        + ("" if training.get("device", "cpu") == "cpu" else
           f" on {training['device']} (`trainer/scripts/gpu_refine.sh`, "
           "docs/training-on-a-gpu.md)"),
        f"- data: {training['data']}",
        f"- loss: {training['loss']}; augmentation: {training['augmentation']}",
        "",
        f"ONNX opset {card['onnx']['opset']}, sha256 `{card['onnx']['sha256']}`, "
        f"{card['onnx']['bytes']:,} bytes; " + _parity_text(card),
        *_quantization_lines(card),
        "",
        "## Evaluation",
    ]
    evaluation = card.get("evaluation")
    if not evaluation:
        lines.append("Not evaluated yet (`lenscast evaluate --update-card`).")
    else:
        lines.append(f"Command: `{evaluation['command']}`")
        lines.append("")
        lines.append(evaluation["markdown_table"])
    return "\n".join(lines) + "\n"

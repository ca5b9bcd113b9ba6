"""A model with its colour-residual planes switched off: how much of its answers they carry.

A network trained with the colour-residual input planes (``NetworkConfig.colour_residuals``,
:func:`lenscast.trainer.network.colour_residuals`) reads them through one convolution,
``stem_residuals.weight``. This writes a copy of the ONNX graph with that weight set to zero,
everything else (calibrations included) unchanged, and its card with the version suffixed
``-no-planes``, so ``lenscast evaluate`` and :mod:`benchmarks.real_lens_light_compare` run both
on the same sets. It prints the size of the planes' weights beside the stem's own (rms over
the weights, per input plane). Output: one JSON object::

    python -m benchmarks.colour_residual_ablation --model runs/lenscast-hsc-2.2.0-rc3.onnx \
        --out runs/lenscast-hsc-2.2.0-rc3-no-planes.onnx
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from benchmarks.json_report import emit
from lenscast.trainer.training.model_card import write_card

#: The initializer of the planes' convolution in an exported graph.
PLANES_WEIGHT = "stem_residuals.weight"
#: Suffix of the ablated copy's version.
SUFFIX = "-no-planes"


def _rms(weights: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(weights, dtype=np.float64))))


def _stem_weight(graph: onnx.GraphProto) -> np.ndarray | None:
    """The first convolution's weight (the stem, BatchNorm folded in), if it reads the input."""
    tensors = {t.name: t for t in graph.initializer}
    # A multi-view graph reads weights through Identity aliases.
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    for node in graph.node:
        name = alias.get(node.input[1], node.input[1]) if node.op_type == "Conv" else None
        if name in tensors and name != PLANES_WEIGHT:
            weight = numpy_helper.to_array(tensors[name])
            if weight.shape[1] == 4:  # griz in: the stem (the coordinate term has 2)
                return weight
    return None


def ablate(model: Path, out: Path) -> dict[str, Any]:
    """Write ``out``: ``model`` with the planes' weight zeroed, and its card; return the sizes.

    Raises
    ------
    ValueError
        If the graph has no colour-residual planes.
    """
    graph_model = onnx.load(str(model))
    found = [t for t in graph_model.graph.initializer if t.name == PLANES_WEIGHT]
    if not found:
        raise ValueError(f"{model} has no colour-residual planes ({PLANES_WEIGHT})")
    weight = numpy_helper.to_array(found[0])
    found[0].CopyFrom(numpy_helper.from_array(np.zeros_like(weight), PLANES_WEIGHT))
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph_model, str(out))
    card = json.loads(model.with_suffix(".json").read_text())
    card["version"] = f"{card['version']}{SUFFIX}"
    card["note"] = (f"{model.name} with its colour-residual planes switched off "
                    f"({PLANES_WEIGHT} = 0; benchmarks.colour_residual_ablation)")
    card["evaluation"] = None
    write_card(card, out)
    stem = _stem_weight(graph_model.graph)
    return {
        "model": str(model),
        "out": str(out),
        "planes_weight_rms_per_plane": [_rms(weight[:, k]) for k in range(weight.shape[1])],
        "stem_weight_rms_per_band": (None if stem is None
                                     else [_rms(stem[:, k]) for k in range(stem.shape[1])]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write the ablated copy; print (and with ``--report`` write) the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="ONNX model with the planes")
    parser.add_argument("--out", type=Path, required=True, help="ablated ONNX file to write")
    parser.add_argument("--report", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)
    emit(ablate(args.model, args.out), args.report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

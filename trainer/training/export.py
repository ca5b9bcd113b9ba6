"""Export a checkpoint to ONNX and check it against PyTorch.

The graph holds everything between the alert's pixels and physical answers: the asinh input
stretch, the network, the de-standardisation to spec units and the calibrated sigma. Input
``cutout`` float32 ``(batch, 4, 64, 64)``; outputs ``mean`` and ``sigma`` float32
``(batch, 7)`` in :data:`lenscast.model.parameter_spec.MASS_PARAMETER_NAMES` order and, for a
network with the lens-evidence head, ``p_lens`` float32 ``(batch,)``, the calibrated probability
that the cutout shows a galaxy-scale strong lens; the batch axis is dynamic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from lenscast.model import parameter_spec as spec
from lenscast.trainer.network import P_LENS_OUTPUT, LensCNN

#: ONNX opset used (supported by onnxruntime >= 1.17).
OPSET = 17
#: Largest allowed |torch - onnxruntime| difference on either output, spec units.
PARITY_TOLERANCE = 1e-4


def export_onnx(model: torch.nn.Module, path: Path) -> None:
    """Write ``model`` (switched to eval mode) to ``path`` as ONNX with a dynamic batch axis."""
    model.eval()
    example = torch.zeros(1, len(spec.BANDS), spec.CUTOUT_SIZE_PIX, spec.CUTOUT_SIZE_PIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {0: "batch"}
    outputs = output_names(model)
    torch.onnx.export(
        model, (example,), str(path), dynamo=False, opset_version=OPSET,
        input_names=[spec.ONNX_INPUT_NAME], output_names=outputs,
        dynamic_axes={spec.ONNX_INPUT_NAME: batch, **{name: batch for name in outputs}},
    )


def output_names(model: torch.nn.Module) -> list[str]:
    """The graph's outputs: ``mean``, ``sigma`` and, with the evidence head, ``p_lens``.

    Any network with lenscast's output contract is exported (e.g. a peer network rebuilt for a
    comparison); only a :class:`LensCNN` may carry the evidence head.
    """
    names = [spec.ONNX_MEAN_NAME, spec.ONNX_SIGMA_NAME]
    has_evidence = isinstance(model, LensCNN) and model.evidence is not None
    return [*names, P_LENS_OUTPUT] if has_evidence else names


def parity_inputs(n: int = 16, *, seed: int = 0) -> np.ndarray:
    """Cutout-like test inputs: sky noise plus a bright central blob and a faint ring.

    Realistic dynamic range (negative sky to flux ~100) matters more for parity than the
    exact content, because the asinh stretch and BatchNorm folding act on it.
    """
    rng = np.random.default_rng(seed)
    size = spec.CUTOUT_SIZE_PIX
    axis = np.arange(size) - (size - 1) / 2
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    radius = np.hypot(xx, yy)
    images = rng.normal(0.0, 0.08, (n, len(spec.BANDS), size, size))
    amplitude = rng.uniform(5, 100, (n, 1, 1, 1))
    ring_radius = rng.uniform(4, 15, (n, 1, 1, 1))
    images += amplitude * np.exp(-0.5 * (radius / 2.5) ** 2)
    images += 0.5 * np.exp(-0.5 * ((radius - ring_radius) / 1.0) ** 2)
    return images.astype(np.float32)


def parity_error(model: torch.nn.Module, path: Path, inputs: np.ndarray) -> float:
    """Largest |torch - onnxruntime| over every output for ``inputs`` (spec units)."""
    model.eval()
    with torch.no_grad():
        expected = [t.numpy() for t in model(torch.from_numpy(inputs))]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(output_names(model), {spec.ONNX_INPUT_NAME: inputs})
    return float(max(np.abs(e - g).max() for e, g in zip(expected, got, strict=True)))

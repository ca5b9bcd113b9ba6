"""Rebuild a trainable :class:`~lenscast.trainer.network.LensCNN` from an exported ONNX model.

Export folds every BatchNorm into the convolution before it (``W' = W g / s``, ``b' = beta -
g mu / s``), so the original BatchNorm parameters are gone. A folded layer is put back as the
convolution ``W'`` followed by a BatchNorm that reproduces ``x + b'`` exactly in eval mode and
approximately in train mode: its running statistics are the mean ``m`` and variance ``v`` of
``W' x`` measured on real cutouts, its scale is ``sqrt(v + eps)`` and its shift ``m + b'``, so
batch statistics close to ``(m, v)`` give back ``W' x + b'``. Fine-tuning therefore starts from
the exported network's function, not from a perturbed one.

The lens-evidence head's layers are copied when both the graph and the network have it (its
Platt constants are not: a model that goes on training fits them again at its export). The
colour-residual convolution is copied when the graph has it; a network that adds it to a graph
without it keeps it at zero, so it starts as the exported network.

The calibration (``sigma_scale``, ``mean_offset``) of the exported graph is left out: a model
that goes on training is calibrated again at its own export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from lenscast.trainer.network import LensCNN, NetworkConfig

#: Exported buffers copied as they are (the input stretch and the target standardisation).
_BUFFERS = ("noise_scale", "target_mid", "target_half")


def _folded_layers(model: LensCNN) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Every (convolution, BatchNorm) pair of the network, in the order the graph runs them."""
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []
    pending: nn.Conv2d | None = None
    for module in model.modules():
        if module is model.stem_coords or module is model.stem_residuals:
            continue  # no BatchNorm: exported under their own names
        if isinstance(module, nn.Conv2d):
            pending = module
        elif isinstance(module, nn.BatchNorm2d):
            if pending is None:
                raise ValueError("a BatchNorm without a convolution before it")
            pairs.append((pending, module))
            pending = None
    return pairs


def _graph_tensors(path: Path) -> tuple[dict[str, NDArray[np.float32]], list[tuple[str, str]]]:
    """Initializers by name, and (weight, bias) names of the biased convolutions in graph order."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    # A multi-view graph reads a layer's weights a second time through Identity aliases.
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    convs: list[tuple[str, str]] = []
    for node in graph.node:
        if node.op_type == "Conv" and len(node.input) == 3:
            weight, bias = node.input[1], node.input[2]
            pair = (alias.get(weight, weight), alias.get(bias, bias))
            if pair not in convs:  # a multi-view graph may run a layer more than once
                convs.append(pair)
    return tensors, convs


def _tensor(array: NDArray[np.float32]) -> torch.Tensor:
    """A writable torch copy of an initializer (ONNX hands out read-only arrays)."""
    return torch.from_numpy(np.array(array, dtype=np.float32))


def _running_stats(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The running mean and variance buffers of ``norm`` (LensCNN's BatchNorms track them)."""
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError("a BatchNorm without running statistics cannot be warm-started")
    return norm.running_mean, norm.running_var


@torch.no_grad()
def model_from_onnx(path: Path, config: NetworkConfig, cutouts: NDArray[np.floating]
                    ) -> LensCNN:
    """A :class:`LensCNN` (train mode) whose eval-mode output equals the exported network's.

    Parameters
    ----------
    path : Path
        ONNX file written by ``lenscast export`` with the architecture ``config``.
    config : NetworkConfig
        The architecture the graph was exported from (its card's ``architecture``).
    cutouts : ndarray, shape (n, 4, 64, 64)
        Calibrated training cutouts (a few hundred) to measure the BatchNorm statistics on.

    Raises
    ------
    ValueError
        If the graph's layers do not match ``config``.
    """
    tensors, convs = _graph_tensors(path)
    model = LensCNN(config, noise_scale=tensors["noise_scale"].ravel().tolist())
    for name in _BUFFERS:
        getattr(model, name).copy_(_tensor(tensors[name].reshape(
            getattr(model, name).shape)))
    pairs = _folded_layers(model)
    if len(pairs) != len(convs):
        raise ValueError(f"{path}: {len(convs)} folded convolutions, the network has "
                         f"{len(pairs)}")
    biases = []
    for (conv, norm), (w_name, b_name) in zip(pairs, convs, strict=True):
        weight = _tensor(tensors[w_name])
        if weight.shape != conv.weight.shape:
            raise ValueError(f"{path}: {w_name} is {tuple(weight.shape)}, the network's "
                             f"layer {tuple(conv.weight.shape)}")
        conv.weight.copy_(weight)
        biases.append(_tensor(tensors[b_name]))
        # Identity BatchNorm plus the folded bias, exact in eval mode: x + b'.
        running_mean, running_var = _running_stats(norm)
        running_mean.zero_()
        running_var.fill_(1.0 - norm.eps)
        norm.weight.fill_(1.0)
        norm.bias.copy_(biases[-1])
    model.stem_coords.weight.copy_(_tensor(tensors["stem_coords.weight"]))
    for name, parameter in model.head.named_parameters():
        parameter.copy_(_tensor(tensors[f"head.{name}"]))
    if model.stem_residuals is not None and "stem_residuals.weight" in tensors:
        model.stem_residuals.weight.copy_(_tensor(tensors["stem_residuals.weight"]))
    if model.evidence is not None and "evidence.1.weight" in tensors:
        for name, parameter in model.evidence.named_parameters():
            parameter.copy_(_tensor(tensors[f"evidence.{name}"]))

    # The input of every BatchNorm is W' x: measure its per-channel mean and variance.
    moments: dict[nn.Module, list[torch.Tensor]] = {}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], _: torch.Tensor) -> None:
        x = inputs[0].double()
        moments.setdefault(module, []).append(torch.stack([
            x.mean(dim=(0, 2, 3)), (x * x).mean(dim=(0, 2, 3))]))

    model.eval()
    hooks = [norm.register_forward_hook(record) for _, norm in pairs]
    try:
        batch = torch.as_tensor(np.asarray(cutouts, dtype=np.float32))
        for start in range(0, len(batch), 128):
            model.forward_standardised(batch[start:start + 128])
    finally:
        for hook in hooks:
            hook.remove()
    for (_, norm), bias in zip(pairs, biases, strict=True):
        first, second = torch.stack(moments[norm]).mean(dim=0)
        mean, var = first, (second - first**2).clamp(min=1e-12)
        running_mean, running_var = _running_stats(norm)
        running_mean.copy_(mean.float())
        running_var.copy_(var.float())
        norm.weight.copy_(torch.sqrt(var + norm.eps).float())
        norm.bias.copy_((mean + bias.double()).float())
    model.train()
    return model

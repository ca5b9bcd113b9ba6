"""The HOLISMOKES IX residual network, rebuilt in PyTorch from its published weights.

Our own implementation of the architecture the release's checkpoint (``final.t7``, a PyTorch
``{"net": state_dict, "loss", "epoch"}``) describes; parameter names match the checkpoint's
keys so the state dict loads as it is:

* stem: 3×3 convolution (4 → 16 channels, bias), BatchNorm, ReLU, on the raw griz pixels
  (HSC coadd flux, zeropoint 27; no input scaling);
* three stages of two residual blocks (16 → 24 with stride 2, → 32, → 64), each block
  ``conv3x3-BN-ReLU-conv3x3-BN`` plus a shortcut (``conv3x3`` with stride + BN wherever the
  width or resolution changes), ReLU after the sum; every convolution has a bias;
* 8×8 average pooling of the 32×32×64 map (4×4×64 = 1024 features), one linear layer to 14
  outputs, sigmoid: 7 means and 7 sigmas on ``[0, 1]`` (see :mod:`.conventions`).

:class:`LenscastGraph` wraps it with the release's range mapping and 1σ factors and with the
mirror into lenscast's frame and spec order, so the exported ONNX file has lenscast's input
and output contract (``cutout`` → ``mean``, ``sigma``) and runs through
:class:`lenscast.model.predictor.OnnxMassPredictor` like our own models.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.holismokes9 import conventions

#: Channel widths: stem, then the three stages.
WIDTHS = (16, 24, 32, 64)
#: Stride of the first block of each stage.
STRIDES = (2, 1, 1)
BLOCKS_PER_STAGE = 2
N_OUTPUTS = 2 * len(conventions.THEIR_NAMES)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1)


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and a (projected where needed) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = (nn.Sequential(_conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


def _stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """One stage: a block that changes width/resolution, then blocks that keep them."""
    blocks = [ResidualBlock(c_in, c_out, stride)]
    blocks += [ResidualBlock(c_out, c_out, 1) for _ in range(BLOCKS_PER_STAGE - 1)]
    return nn.Sequential(*blocks)


class Holismokes9Net(nn.Module):
    """The network itself: raw griz pixels in, 14 sigmoid outputs (their order) out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = _conv3x3(4, WIDTHS[0])
        self.bn = nn.BatchNorm2d(WIDTHS[0])
        self.layer1 = _stage(WIDTHS[0], WIDTHS[1], STRIDES[0])
        self.layer2 = _stage(WIDTHS[1], WIDTHS[2], STRIDES[1])
        self.layer3 = _stage(WIDTHS[2], WIDTHS[3], STRIDES[2])
        self.pool = nn.AvgPool2d(8)
        self.fc = nn.Linear(WIDTHS[-1] * 4 * 4, N_OUTPUTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn(self.conv(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return torch.sigmoid(self.fc(torch.flatten(self.pool(out), 1)))


class LenscastGraph(nn.Module):
    """:class:`Holismokes9Net` with physical, lenscast-convention outputs.

    ``forward(cutout)`` returns ``(mean, sigma)``, each ``(batch, 7)`` in
    :data:`lenscast.model.parameter_spec.MASS_PARAMETER_NAMES` order (arcsec, x east), sigma the
    release's calibrated 1σ.
    """

    low: torch.Tensor
    width: torch.Tensor
    sigma_scale: torch.Tensor
    index: torch.Tensor
    sign: torch.Tensor

    def __init__(self, net: Holismokes9Net) -> None:
        super().__init__()
        self.net = net
        n = len(conventions.THEIR_NAMES)
        low = torch.tensor([r[0] for r in conventions.THEIR_RANGES], dtype=torch.float64)
        low[list(conventions.CENTRE_COLUMNS)] -= conventions.ORIGIN_SHIFT
        low = low.float()
        width = torch.tensor([r[1] - r[0] for r in conventions.THEIR_RANGES],
                             dtype=torch.float32)
        index, sign = conventions.permutation_and_signs()
        self.n = n
        self.register_buffer("low", low)
        self.register_buffer("width", width)
        self.register_buffer("sigma_scale", torch.tensor(conventions.SIGMA_SCALE,
                                                         dtype=torch.float32) * width)
        self.register_buffer("index", torch.as_tensor(index))
        self.register_buffer("sign", torch.as_tensor(sign, dtype=torch.float32))

    def forward(self, cutout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        unit = self.net(cutout)
        mean = self.low + self.width * unit[:, : self.n]  # origin shift folded into low
        sigma = torch.clamp(unit[:, self.n :], min=conventions.RAW_SIGMA_FLOOR) * self.sigma_scale
        return mean[:, self.index] * self.sign, sigma[:, self.index]


def load_checkpoint(path: str) -> Holismokes9Net:
    """The network with the release's weights, in eval mode.

    Parameters
    ----------
    path : str
        The release's ``final.t7``. Loaded with ``weights_only=True`` (tensors and plain
        containers only; no code from the file runs).

    Raises
    ------
    ValueError
        If the file holds no ``"net"`` state dict or its tensors do not fit the architecture.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "net" not in checkpoint:
        raise ValueError(f"{path}: expected a checkpoint dict with a 'net' state dict")
    net = Holismokes9Net()
    try:
        net.load_state_dict(checkpoint["net"], strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit the HOLISMOKES IX architecture: "
                         f"{error}") from error
    return net.eval()

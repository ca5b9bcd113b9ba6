"""The mass-model CNN: griz cutout pixels in, SIE + shear mean and sigma out (spec order).

Everything the deployed model needs lives inside the module, so the exported ONNX graph takes
pixels exactly as the alerts carry them and returns physical units:

* **Input normalisation** — a fixed per-band ``asinh(flux / s_b)`` stretch, with ``s_b`` the
  typical background noise of band ``b`` in calibrated flux (zeropoint 27), measured once on the
  training set and stored as a buffer. asinh is linear below the noise (keeps the faint arcs) and
  logarithmic above it (keeps the bright lens core from dominating); a fixed transform avoids
  per-cutout statistics that a neighbour or a transient would shift.
* **Target standardisation** — the network predicts ``z = (v - mid) / half`` with ``mid`` and
  ``half`` the centre and half-width of each parameter's range in
  :mod:`lenscast.model.parameter_spec`, so every output is order one and the loss weighs parameters
  comparably.
* **Calibration** — a per-parameter factor ``k`` multiplies the predicted sigma and an optional
  per-parameter offset is subtracted from the mean (1 and 0 until
  :mod:`lenscast.trainer.training.calibration` fits them on validation data), so the exported
  outputs are already calibrated.

* **Lens evidence** (optional, ``NetworkConfig.evidence``) — a second small head on the same
  features gives the logit that the cutout shows a galaxy-scale strong lens; the exported graph
  turns it into the calibrated probability ``p_lens = sigmoid(a * logit + b)`` (Platt 1999),
  ``a`` and ``b`` fitted on validation data (:mod:`lenscast.trainer.training.lens_evidence`).

* **Colour residuals** (optional, ``NetworkConfig.colour_residuals``) — the g, r and z images minus
  the multiple of the i image that matches each best over the cutout (least squares), as three
  more input planes. A lens galaxy's light has nearly one colour across its face, so it largely
  cancels there whatever its profile, while the bluer lensed arcs remain: the arcs are offered
  in a form that depends little on the exact light of the lens galaxy, which real galaxies do
  not share with simulated ones. The planes enter through their own convolution, added after
  the stem's BatchNorm like the CoordConv term and zero at initialisation, so a network
  warm-started from one without them begins as exactly that network.

Architecture: a small residual CNN (strided 3x3 convolutions, BatchNorm, ReLU). The last
4x4 feature map is flattened rather than globally pooled, because the lens centre is an
absolute position and global pooling throws position away. Constant coordinate channels
(CoordConv, Liu et al. 2018) give the first layers the absolute position too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lenscast.model import parameter_spec as spec
from lenscast.trainer.views import back_transforms, views

#: sigma floor in standardised units: keeps the NLL finite (1e-3 half range: 2 mas on θ_E).
SIGMA_FLOOR = 1e-3
#: Name of the exported lens-evidence output (the service contract).
P_LENS_OUTPUT = "p_lens"
#: Hidden width of the lens-evidence head.
EVIDENCE_HIDDEN = 64
#: Band the colour residuals subtract (index in ``spec.BANDS``: i, where an LRG's light has the
#: best signal-to-noise), and the bands they are taken of (g, r, z).
RESIDUAL_REFERENCE_BAND = 2
RESIDUAL_BANDS = (0, 1, 3)
#: Range the fitted colour ratio (band flux / i flux) is held to: LRGs give ~0.15 (g) to ~1.3
#: (z); an empty or negative cutout must not give an unbounded plane.
RESIDUAL_RATIO_RANGE = (0.0, 5.0)


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture hyper-parameters (stored in every checkpoint).

    Parameters
    ----------
    widths : sequence of int
        Channels of the stem and of each downsampling stage (64 -> 32 -> 16 -> 8 -> 4 pixels
        for five entries).
    blocks : sequence of int
        Residual blocks (two 3x3 convolutions each) after each stride-2 convolution, one entry
        per downsampling stage (``len(widths) - 1`` entries).
    head_channels : int
        Channels of the 1x1 reduction before flattening the final 4x4 map.
    hidden : int
        Width of the fully connected layer before the output.
    evidence : bool
        Add the lens-evidence head (a logit per cutout, exported as ``p_lens``).
    colour_residuals : bool
        Add the colour-residual planes (:func:`colour_residuals`) as input.
    """

    widths: tuple[int, ...] = (16, 24, 48, 96, 128)
    blocks: tuple[int, ...] = (0, 1, 1, 1)
    head_channels: int = 32
    hidden: int = 256
    evidence: bool = False
    colour_residuals: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> NetworkConfig:
        """Build from a JSON-like mapping (lists become tuples)."""
        values = dict(values)
        for key in ("widths", "blocks"):
            if key in values:
                raw = values[key]
                if not isinstance(raw, list | tuple):
                    raise ValueError(f"network {key} must be a list of integers, got {raw!r}")
                values[key] = tuple(int(w) for w in raw)
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form."""
        out = asdict(self)
        out["widths"] = list(self.widths)
        out["blocks"] = list(self.blocks)
        return out


def colour_residuals(cutout: torch.Tensor) -> torch.Tensor:
    """g, r, z minus the multiple of i that matches each best over the cutout.

    Parameters
    ----------
    cutout : Tensor, shape (n, 4, ny, nx)
        griz calibrated flux (AB zeropoint 27).

    Returns
    -------
    Tensor, shape (n, 3, ny, nx)
        ``b - k_b i`` for b in g, r, z, calibrated flux, with ``k_b = sum(b i) / sum(i i)``
        (the least-squares colour ratio, dominated by the brightest object: the lens galaxy)
        held to :data:`RESIDUAL_RATIO_RANGE`.
    """
    reference = cutout[:, RESIDUAL_REFERENCE_BAND : RESIDUAL_REFERENCE_BAND + 1]
    bands = torch.cat([cutout[:, b : b + 1] for b in RESIDUAL_BANDS], dim=1)
    power = (reference * reference).sum(dim=(2, 3), keepdim=True)
    ratio = (bands * reference).sum(dim=(2, 3), keepdim=True) / (power + 1e-12)
    return bands - torch.clamp(ratio, *RESIDUAL_RATIO_RANGE) * reference


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class _ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity skip (He et al. 2016)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(channels, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.bn2(self.conv2(self.conv1(x))))


class LensCNN(nn.Module):
    """Heteroscedastic CNN for the SIE + external shear parameters.

    Parameters
    ----------
    config : NetworkConfig
        Architecture.
    noise_scale : sequence of float, length 4, optional
        Per-band asinh softening ``s_b`` in calibrated flux (zeropoint 27); typically the
        background noise per pixel. Defaults to 0.05 in every band until measured.
    """

    # Buffers, registered in __init__ (and the test_views setter); declared here because
    # nn.Module's __getattr__ types every registered attribute as ``Tensor | Module``.
    noise_scale: torch.Tensor
    target_mid: torch.Tensor
    target_half: torch.Tensor
    sigma_scale: torch.Tensor
    mean_offset: torch.Tensor
    coords: torch.Tensor
    view_back: torch.Tensor
    # Only with the lens-evidence head (``config.evidence``).
    evidence_scale: torch.Tensor
    evidence_shift: torch.Tensor

    def __init__(self, config: NetworkConfig | None = None, *,
                 noise_scale: Sequence[float] | None = None) -> None:
        super().__init__()
        self.config = config or NetworkConfig()
        n_bands = len(spec.BANDS)
        size = spec.CUTOUT_SIZE_PIX
        scale = torch.full((n_bands,), 0.05) if noise_scale is None else torch.tensor(
            [float(s) for s in noise_scale])
        self.register_buffer("noise_scale", scale.reshape(1, n_bands, 1, 1))
        mid = [0.5 * (p.high + p.low) for p in spec.MASS_PARAMETERS]
        half = [0.5 * (p.high - p.low) for p in spec.MASS_PARAMETERS]
        self.register_buffer("target_mid", torch.tensor(mid))
        self.register_buffer("target_half", torch.tensor(half))
        self.register_buffer("sigma_scale", torch.ones(spec.N_PARAMETERS))
        self.register_buffer("mean_offset", torch.zeros(spec.N_PARAMETERS))
        # Pixel-centre coordinates in [-1, 1] (row, column); fixed, so exported as constants.
        axis = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) / ((size - 1) / 2)
        grid_r, grid_c = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer("coords", torch.stack([grid_r, grid_c])[None])
        self.test_views = 1

        widths = self.config.widths
        self.stem = nn.Sequential(nn.Conv2d(n_bands, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]))
        # CoordConv as a separate convolution of the constant coordinate planes, added after
        # the stem's BatchNorm: its output is a constant that the ONNX export folds into one
        # addition, and the stem's Conv + BatchNorm still fuse.
        self.stem_coords = nn.Conv2d(2, widths[0], 3, padding=1, bias=False)
        self.stem_residuals: nn.Conv2d | None = None
        if self.config.colour_residuals:
            # Zero at first: a warm start from a network without the planes is that network.
            self.stem_residuals = nn.Conv2d(len(RESIDUAL_BANDS), widths[0], 3, padding=1,
                                            bias=False)
            nn.init.zeros_(self.stem_residuals.weight)
        layers: list[nn.Module] = [nn.ReLU(inplace=True)]
        stages = zip(widths[:-1], widths[1:], self.config.blocks, strict=True)
        for c_in, c_out, n_blocks in stages:
            layers.append(_conv_bn(c_in, c_out, stride=2))
            layers.extend(_ResidualBlock(c_out) for _ in range(n_blocks))
        layers.append(nn.Conv2d(widths[-1], self.config.head_channels, 1, bias=False))
        layers.append(nn.BatchNorm2d(self.config.head_channels))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        final = size // 2 ** (len(widths) - 1)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.config.head_channels * final * final, self.config.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(self.config.hidden, 2 * spec.N_PARAMETERS),
        )
        self.evidence: nn.Sequential | None = None
        if self.config.evidence:
            self.evidence = nn.Sequential(
                nn.Flatten(),
                nn.Linear(self.config.head_channels * final * final, EVIDENCE_HIDDEN),
                nn.ReLU(inplace=True),
                nn.Linear(EVIDENCE_HIDDEN, 1),
            )
            # Platt calibration of the logit, p = sigmoid(a logit + b); fitted at export.
            self.register_buffer("evidence_scale", torch.ones(()))
            self.register_buffer("evidence_shift", torch.zeros(()))

    @property
    def test_views(self) -> int:
        """Views averaged by :meth:`forward` in eval mode (:mod:`.views`: 1, 2, 4, 8).

        Set at export; training never uses it. Setting it stores the views' back-transforms
        as a (non-persistent) buffer, so the exported graph holds them as constants.
        """
        return self._test_views

    @test_views.setter
    def test_views(self, count: int) -> None:
        views(count)  # rejects an unknown count
        self._test_views = count
        back = torch.tensor(back_transforms(count), dtype=torch.float32)
        self.register_buffer("view_back", back, persistent=False)

    def normalise(self, cutout: torch.Tensor, scale: torch.Tensor | None = None
                  ) -> torch.Tensor:
        """Fixed asinh stretch of calibrated flux, divided by 3 to keep values order one.

        ``scale`` is the softening per plane, shape (1, planes, 1, 1); the bands' noise
        (``noise_scale``) by default.
        """
        # asinh written out (the ONNX exporter has no aten::asinh) as log(x + sqrt(x^2 + 1)).
        # That form cancels catastrophically for large negative x, so x is clamped at -50
        # (50 sigma below the sky is a bad pixel, not signal); at -50 the error is 3e-4.
        softening = self.noise_scale if scale is None else scale
        x = torch.clamp(cutout / softening, min=-50.0)
        return torch.log(x + torch.sqrt(x * x + 1.0)) / 3.0

    def forward_standardised(self, cutout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mean and the (uncalibrated) sigma in standardised target units.

        Parameters
        ----------
        cutout : Tensor, shape (n, 4, 64, 64)
            griz calibrated flux, AB zeropoint 27.

        Returns
        -------
        mean_z, sigma_z : Tensor, shape (n, 7)
            ``(value - mid) / half`` per spec parameter, and its 1-sigma width.
        """
        mean_z, sigma_z, _ = self._standardised(cutout, self.stem_coords(self.coords))
        return mean_z, sigma_z

    def forward_training(self, cutout: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`forward_standardised` plus the raw lens-evidence logit, shape (n,) (None
        without the head)."""
        return self._standardised(cutout, self.stem_coords(self.coords))

    def _standardised(self, cutout: torch.Tensor, coord_term: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`forward_training` with the (constant) CoordConv term given."""
        x = self.stem(self.normalise(cutout)) + coord_term
        if self.stem_residuals is not None:
            residual = colour_residuals(cutout)
            scale = torch.cat([self.noise_scale[:, b : b + 1] for b in RESIDUAL_BANDS], dim=1)
            x = x + self.stem_residuals(self.normalise(residual, scale))
        features = self.features(x)
        # The head runs in float32 even under bf16 autocast: its outputs are the regression
        # values themselves, and bf16's 3 significant digits would quantise them.
        logit = None
        with torch.autocast(x.device.type, enabled=False):
            out = self.head(features.float())
            if self.evidence is not None:
                logit = self.evidence(features.float())[:, 0]
        mean_z = out[:, : spec.N_PARAMETERS]
        sigma_z = nn.functional.softplus(out[:, spec.N_PARAMETERS :]) + SIGMA_FLOOR
        return mean_z, sigma_z, logit

    def p_lens(self, logit: torch.Tensor) -> torch.Tensor:
        """Calibrated lens probability from the raw logit (Platt constants of the network)."""
        return torch.sigmoid(self.evidence_scale * logit + self.evidence_shift)

    def forward(self, cutout: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the mean and the calibrated sigma in physical units (spec order and units),
        and with the evidence head the calibrated ``p_lens``, shape (n,), as a third output.

        With ``test_views > 1`` (eval mode only) the network also sees the cutout turned (and
        mirrored) by symmetries of the square (:mod:`lenscast.trainer.views`); the answers, mapped
        back to the cutout's frame, are averaged: test-time use of the symmetries the training
        augmentation teaches. The sigma is the mean of the views' sigmas: their errors are
        correlated, and the calibration factor fitted afterwards on validation data sets its
        final scale. The views run as one batch, so the graph holds the network once. The
        lens-evidence logits of the views are averaged before the calibration.
        """
        # The CoordConv term is the same for every view: computed once (and counted once by
        # count_flops, as the exported graph computes it once).
        coord_term = self.stem_coords(self.coords)
        count = 1 if self.training else self.test_views
        if count == 1:
            mean_z, sigma_z, logit = self._standardised(cutout, coord_term)
            mean = self.target_mid + self.target_half * mean_z - self.mean_offset
            sigma = self.target_half * self.sigma_scale * sigma_z
            return (mean, sigma) if logit is None else (mean, sigma, self.p_lens(logit))
        batch = torch.cat([view.apply(cutout) for view in views(count)])
        mean_z, sigma_z, logit = self._standardised(batch, coord_term)
        shape = (count, cutout.shape[0], spec.N_PARAMETERS)
        mean_v = (self.target_mid + self.target_half * mean_z).reshape(shape)
        sigma_v = (self.target_half * sigma_z).reshape(shape)
        back = self.view_back
        mean = torch.matmul(mean_v, back).mean(dim=0) - self.mean_offset
        sigma = torch.matmul(sigma_v, back.abs()).mean(dim=0) * self.sigma_scale
        if logit is None:
            return mean, sigma
        return mean, sigma, self.p_lens(logit.reshape(count, cutout.shape[0]).mean(dim=0))

    def standardise(self, values: torch.Tensor) -> torch.Tensor:
        """Map physical targets of shape (n, 7) to standardised units."""
        return (values - self.target_mid) / self.target_half


def count_flops(model: LensCNN) -> dict[str, int]:
    """Count multiply-accumulates of one forward pass per image (conv + linear layers).

    Returns
    -------
    dict
        ``macs`` per image, ``flops`` (= 2 x macs, the usual convention) and ``parameters``.
    """
    macs = 0
    hooks = []

    def conv_hook(module: nn.Conv2d, _inp: object, out: torch.Tensor) -> None:
        nonlocal macs
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        # Times the batch: the test-time views of one image run as one batch.
        macs += int(out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] * k)

    def linear_hook(module: nn.Linear, _inp: object, out: torch.Tensor) -> None:
        nonlocal macs
        macs += out.shape[0] * module.in_features * module.out_features

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, len(spec.BANDS), spec.CUTOUT_SIZE_PIX, spec.CUTOUT_SIZE_PIX))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    params = sum(p.numel() for p in model.parameters())
    return {"macs": macs, "flops": 2 * macs, "parameters": params}

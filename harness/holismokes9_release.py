"""A stand-in for the HOLISMOKES IX release in its layout, for tests (CI cannot fetch it).

Random network weights in the release's checkpoint layout and synthetic cutouts in its
8-HDU FITS layout; never the release's own files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from astropy.io import fits

from benchmarks.holismokes9 import conventions
from benchmarks.holismokes9.network import Holismokes9Net


def random_checkpoint(path: Path, seed: int = 0) -> Holismokes9Net:
    """A network with random weights and BatchNorm statistics saved in the release's layout."""
    torch.manual_seed(seed)
    net = Holismokes9Net()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    torch.save({"net": net.state_dict(), "loss": 0.0, "epoch": 1}, path)
    return net.eval()


def write_fake_release(directory: Path, *, lenses: np.ndarray, arcs: np.ndarray,
                       net: Holismokes9Net | None = None) -> Path:
    """A release folder in the real one's layout (IDs, 8-HDU FITS cutouts, weights, predictions).

    ``lenses`` and ``arcs`` are (n, 4, 64, 64); the mock is their sum. The predictions are
    those of ``net`` (random weights when None), in their order and frame.
    """
    (directory / "images").mkdir(parents=True)
    ids = [str(k + 1) for k in range(len(lenses))]
    (directory / "IDs.txt").write_text("\n".join(ids) + "\n")
    for name, lens, arc in zip(ids, lenses, arcs, strict=True):
        hdus = [fits.PrimaryHDU()]
        for band in range(4):
            hdus += [fits.ImageHDU((lens[band] + arc[band]).astype(np.float64)),
                     fits.ImageHDU(arc[band].astype(np.float64))]
        fits.HDUList(hdus).writeto(directory / "images" / f"lens_{name}.fits")
    if net is None:
        net = random_checkpoint(directory / "final.t7")
    else:
        torch.save({"net": net.state_dict(), "loss": 0.0, "epoch": 1}, directory / "final.t7")
    mocks = torch.from_numpy((lenses + arcs).astype(np.float32))
    with torch.no_grad():
        unit = net.eval()(mocks).numpy()
    median, sigma = conventions.from_unit_interval(unit[:, :7], unit[:, 7:])
    np.save(directory / "pred_median.npy", median)
    np.save(directory / "pred_sigma.npy", sigma)
    return directory

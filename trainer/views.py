"""Test-time views: the network's answer averaged over turned and mirrored copies of the cutout.

A lens turned or mirrored on the sky by a symmetry of the square is again an SIE + shear lens
whose parameters follow from the original's (:mod:`lenscast.trainer.training.augmentation`), and the
training augmentation teaches the network exactly these symmetries. At test time the network
can therefore look at the cutout in several orientations, map each answer back to the cutout's
frame and average: the views' errors are partly independent, so the average scatters less.

``count`` views are the first ``count`` of: the cutout itself, turned by 180 degrees, by 90 and
270 degrees (4: the rotations), and the mirror images of those four (8: the whole group). Each
view costs one more pass of the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from numpy.typing import NDArray

from lenscast.model import parameter_spec as spec
from lenscast.trainer.training.augmentation import (
    SKY_SYMMETRIES,
    pixel_permutation,
    transform_parameters,
)

#: Numbers of views a graph may average.
VIEW_COUNTS = (1, 2, 4, 8)


@dataclass(frozen=True)
class View:
    """One orientation of the pixel array: mirrored left-right first, then quarter-turned.

    Attributes
    ----------
    quarter_turns : int
        ``torch.rot90`` turns over the (row, column) axes, 0-3.
    mirrored : bool
        Columns reversed before turning.
    """

    quarter_turns: int
    mirrored: bool

    def apply(self, cutouts: torch.Tensor) -> torch.Tensor:
        """This view of a batch ``(n, bands, rows, columns)``.

        ``torch.rot90`` written as flips and transposes (the ONNX exporter has no rot90).
        """
        out = torch.flip(cutouts, dims=(3,)) if self.mirrored else cutouts
        turns = self.quarter_turns % 4
        if turns == 1:
            return torch.flip(out, dims=(3,)).transpose(2, 3)
        if turns == 2:
            return torch.flip(out, dims=(2, 3))
        if turns == 3:
            return torch.flip(out.transpose(2, 3), dims=(3,))
        return out

    def sky_symmetry(self, size: int = spec.CUTOUT_SIZE_PIX) -> NDArray[np.int_]:
        """The sky symmetry (one of ``SKY_SYMMETRIES``) that this pixel operation performs."""
        index = np.arange(size * size).reshape(size, size)
        if self.mirrored:
            index = index[:, ::-1]
        moved = np.rot90(index, self.quarter_turns, axes=(0, 1)).ravel()
        for matrix in SKY_SYMMETRIES:
            if np.array_equal(pixel_permutation(matrix, size=size), moved):
                return matrix
        raise AssertionError(f"{self} is not a symmetry of the square")  # unreachable


_ORDER = (View(0, False), View(2, False), View(1, False), View(3, False),
          View(0, True), View(2, True), View(1, True), View(3, True))  # fmt: skip


def views(count: int) -> tuple[View, ...]:
    """The first ``count`` views (``count`` in :data:`VIEW_COUNTS`)."""
    if count not in VIEW_COUNTS:
        raise ValueError(f"views must be one of {VIEW_COUNTS}, not {count}")
    return _ORDER[:count]


@cache
def back_transforms(count: int) -> NDArray[np.float64]:
    """Per view, the matrix taking its predicted parameters back to the cutout's frame.

    Returns
    -------
    ndarray, shape (count, 7, 7)
        ``A_v`` with ``params = params_v @ A_v`` (spec order, physical units). A view made by
        the sky symmetry ``M`` shows the lens ``T_M(params)``; ``A_v`` is the matrix of the
        linear map ``T_{M^-1}``. Its absolute value maps the sigmas (it only permutes and
        changes signs of parameters).
    """
    out = []
    for view in views(count):
        inverse = np.linalg.inv(view.sky_symmetry()).round().astype(int)
        out.append(transform_parameters(np.eye(spec.N_PARAMETERS), inverse))
    return np.stack(out)

"""Augmentation by the symmetries of the square: 90° rotations and flips of cutout and truths.

An SIE + shear lens rotated on the sky by an angle ``a`` (from +x east towards +y north) is
again an SIE + shear lens: its centre rotates by ``a``, and the ellipticity and shear, being spin-2
quantities (``e1 + i e2 = |e| exp(2 i phi)``), rotate by ``2a``. A mirror image ``y -> -y`` maps
``phi -> -phi``: ``e2`` and ``gamma2`` change sign. Every element of the dihedral group D4 is
``M = R(a)`` or ``M = R(a) diag(1, -1)`` with ``a`` a multiple of 90°, so its action on the
parameters follows from those two rules. θ_E does not change.

The cutout is transformed consistently by moving each pixel's sky position with ``M``. How pixel
indices map to sky axes is the simulator's business (lenstronomy's ``transform_pix2angle``):
arrays are indexed ``[row, column]`` and the sky offset of a pixel is
``(x, y) = T @ (column - c, row - c)``. With the HSC/FITS orientation (north up, east left),
``T = diag(-1, 1)`` times the pixel scale. Only the signs and axis order of ``T`` matter here.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from lenscast.model import parameter_spec as spec

_ROTATIONS = tuple(
    np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).round().astype(int)
    for a in np.deg2rad([0, 90, 180, 270])
)
_FLIP_Y = np.array([[1, 0], [0, -1]])

#: The 8 sky symmetries of D4 as integer 2x2 matrices acting on (x, y); index 0 is the identity.
SKY_SYMMETRIES: tuple[NDArray[np.int_], ...] = _ROTATIONS + tuple(r @ _FLIP_Y for r in _ROTATIONS)

#: Sky axes per pixel axes: (x, y) = T (column - c, row - c), signs only. HSC/FITS cutouts
#: (north up, east left) and the simulator's lenstronomy grid use x decreasing with column.
PIX_TO_SKY_HSC: NDArray[np.int_] = np.array([[-1, 0], [0, 1]])

_CENTRE = ("center_x", "center_y")
_SPIN2 = (("e1", "e2"), ("gamma1", "gamma2"))


def transform_parameters(values: NDArray[np.floating], matrix: NDArray[np.int_]
                         ) -> NDArray[np.float64]:
    """Apply a sky symmetry to mass parameters.

    Parameters
    ----------
    values : ndarray, shape (n, 7)
        Parameters in :data:`lenscast.model.parameter_spec.MASS_PARAMETER_NAMES` order (physical
        units).
    matrix : ndarray, shape (2, 2)
        One of :data:`SKY_SYMMETRIES`, acting on sky (x, y) offsets in arcsec.

    Returns
    -------
    ndarray, shape (n, 7)
        Parameters of the transformed lens: centre ``M @ (x, y)``; ``(e1, e2)`` and
        ``(gamma1, gamma2)`` rotated by twice the rotation angle of ``M`` (after ``e2 -> -e2``,
        ``gamma2 -> -gamma2`` when ``det M = -1``).
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.array(values, dtype=np.float64)  # a copy, typed float64
    index = {name: i for i, name in enumerate(spec.MASS_PARAMETER_NAMES)}
    ix, iy = index[_CENTRE[0]], index[_CENTRE[1]]
    out[:, [ix, iy]] = values[:, [ix, iy]] @ np.asarray(matrix, dtype=np.float64).T
    reflect = round(np.linalg.det(matrix)) < 0
    # M = R(a) or R(a) diag(1, -1): the first column of M is (cos a, sin a) in both cases.
    angle = np.arctan2(matrix[1][0], matrix[0][0])
    cos2, sin2 = np.cos(2 * angle).round(), np.sin(2 * angle).round()
    for n1, n2 in _SPIN2:
        c1 = values[:, index[n1]]
        c2 = -values[:, index[n2]] if reflect else values[:, index[n2]]
        out[:, index[n1]] = cos2 * c1 - sin2 * c2
        out[:, index[n2]] = sin2 * c1 + cos2 * c2
    return out


def pixel_permutation(matrix: NDArray[np.int_], *, size: int = spec.CUTOUT_SIZE_PIX,
                      pix_to_sky: NDArray[np.int_] = PIX_TO_SKY_HSC) -> NDArray[np.int64]:
    """Flat source-pixel index for every output pixel of a sky symmetry.

    Parameters
    ----------
    matrix : ndarray, shape (2, 2)
        Sky symmetry (one of :data:`SKY_SYMMETRIES`).
    size : int
        Cutout side in pixels (even or odd; the centre is ``(size - 1) / 2``).
    pix_to_sky : ndarray, shape (2, 2)
        Signs and order of the sky axes per (column, row) offset (see module docstring).

    Returns
    -------
    ndarray, shape (size * size,)
        ``new.reshape(-1) = old.reshape(-1)[perm]``: output pixel ``p`` takes the value of the
        input pixel whose sky position ``M`` maps onto ``p``'s.
    """
    t = np.asarray(pix_to_sky, dtype=np.float64)
    pixel_matrix = np.linalg.inv(t) @ np.asarray(matrix, dtype=np.float64) @ t
    inverse = np.linalg.inv(pixel_matrix).round().astype(np.int64)
    twice_centre = size - 1  # work in doubled offsets so half-pixel centres stay integers
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    du, dv = 2 * cols.ravel() - twice_centre, 2 * rows.ravel() - twice_centre
    su = inverse[0, 0] * du + inverse[0, 1] * dv
    sv = inverse[1, 0] * du + inverse[1, 1] * dv
    src_cols, src_rows = (su + twice_centre) // 2, (sv + twice_centre) // 2
    return (src_rows * size + src_cols).astype(np.int64)


class SymmetryAugmenter:
    """Apply a random D4 sky symmetry per sample to a batch of cutouts and truths.

    Parameters
    ----------
    pix_to_sky : ndarray, shape (2, 2)
        Pixel-to-sky axis signs of the training cutouts (see module docstring).
    """

    def __init__(self, *, pix_to_sky: NDArray[np.int_] = PIX_TO_SKY_HSC) -> None:
        perms = [pixel_permutation(m, pix_to_sky=pix_to_sky) for m in SKY_SYMMETRIES]
        self._perms = torch.from_numpy(np.stack(perms))
        # transform_parameters is linear: its 7x7 matrix per symmetry (entries 0 and +-1, so
        # exact in float32) lets the truths move with one batched product on any device.
        identity = np.eye(spec.N_PARAMETERS)
        self._maps = torch.from_numpy(np.stack(
            [transform_parameters(identity, m).T for m in SKY_SYMMETRIES])).float()

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, choice: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform each sample by the symmetry ``SKY_SYMMETRIES[choice[i]]``.

        Works on whichever device the tensors are on (CPU or an accelerator).

        Parameters
        ----------
        images : Tensor, shape (n, bands, size, size)
        targets : Tensor, shape (n, 7)
            Physical parameters in spec order.
        choice : Tensor of int, shape (n,)
            Symmetry index per sample, 0..7, on the tensors' device.

        Returns
        -------
        images, targets : Tensor
            Transformed copies.
        """
        if self._perms.device != images.device:
            self._perms = self._perms.to(images.device)
            self._maps = self._maps.to(images.device)
        n, bands = images.shape[:2]
        index = self._perms[choice].unsqueeze(1).expand(n, bands, -1)
        flat = images.reshape(n, bands, -1)
        new_images = torch.gather(flat, 2, index).reshape(images.shape)
        maps = self._maps[choice].to(targets.dtype)
        new_targets = torch.bmm(maps, targets.unsqueeze(-1)).squeeze(-1)
        return new_images, new_targets

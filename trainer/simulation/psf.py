"""Moffat point-spread functions, pixel-integrated, for the HSC bands.

``I(r) ∝ (1 + (r / alpha)^2)^(-beta)`` (Moffat 1969) with ``alpha = FWHM / (2 sqrt(2^(1/beta)
- 1))``. Ground-based PSFs have wings between a Gaussian and ``beta ~ 2.5``; HSC coadd PSFs
are well described by ``beta ~ 3-4`` in the core.

An elliptical PSF (axis ratio ``q``, position angle ``phi``) replaces ``r^2`` by
``q x'^2 + y'^2 / q`` in the frame rotated by ``phi``, so the FWHM stays the geometric mean of
the two axes. Its ellipticity ``(e1, e2) = (1 - q)/(1 + q) (cos 2 phi, sin 2 phi)`` follows the
lens convention: x east, y north, ``phi`` from x towards y. Real coadd PSFs have ``|e| ~
0.01-0.1``; models up to 1.1.0 were trained on round PSFs, 1.2.0 on ``|e|`` uniform in 0-0.1.

``beta = inf`` is the Gaussian of the same FWHM (the Moffat's limit as ``beta`` grows:
``(1 + x / beta)^(-beta) -> exp(-x)``), the PSF many simulation codes assume: a training set can
mix the two so that the network does not learn one family's wings.
"""

from __future__ import annotations

import numpy as np

#: PSF kernel side, pixels (3.9" at 0.168"/px: holds > 99 % of a 1.2" FWHM beta = 2.5 Moffat).
KERNEL_SIZE = 23
#: Sub-pixels per pixel axis used to integrate the profile over each pixel.
_KERNEL_SUPERSAMPLE = 3


def moffat_kernel(*, fwhm: float, beta: float, pixel_scale: float,
                  size: int = KERNEL_SIZE, e1: float = 0.0, e2: float = 0.0) -> np.ndarray:
    """Pixel-integrated Moffat PSF, centred on the central pixel, normalised to sum 1.

    Parameters
    ----------
    fwhm : float
        Full width at half maximum, arcsec.
    beta : float
        Moffat power index (> 1); ``inf`` gives the Gaussian of the same FWHM.
    pixel_scale : float
        Arcsec per pixel.
    size : int
        Kernel side in pixels (odd).
    e1, e2 : float
        PSF ellipticity, ``|e| < 1`` (0: round). Pixel rows run north, columns west (north
        up, east left, as the cutouts), so x east is minus the column offset.

    Returns
    -------
    ndarray, shape (size, size)
    """
    if size % 2 != 1:
        raise ValueError(f"kernel size must be odd, got {size}")
    e = float(np.hypot(e1, e2))
    if not e < 1.0:
        raise ValueError(f"PSF ellipticity must be below 1, got {e}")
    if not beta > 1.0:
        raise ValueError(f"Moffat beta must exceed 1, got {beta}")
    s = _KERNEL_SUPERSAMPLE
    axis = (np.arange(size * s) - (size * s - 1) / 2.0) * pixel_scale / s
    y = axis[:, None]  # rows: north
    x = -axis[None, :]  # columns: west, so east is minus the column offset
    q = (1.0 - e) / (1.0 + e)
    phi = 0.5 * np.arctan2(e2, e1)
    along = x * np.cos(phi) + y * np.sin(phi)
    across = -x * np.sin(phi) + y * np.cos(phi)
    r2 = q * along**2 + across**2 / q
    if np.isinf(beta):
        fine = np.exp(-4.0 * np.log(2.0) * r2 / fwhm**2)  # half maximum at r = FWHM / 2
    else:
        alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
        fine = (1.0 + r2 / alpha**2) ** (-beta)
    kernel = fine.reshape(size, s, size, s).sum(axis=(1, 3))
    return kernel / kernel.sum()


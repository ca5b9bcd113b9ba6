"""What real HSC coadds add to a cutout beyond white noise and a one-component PSF.

Drawn per system for ``--lens-light realistic`` sets (the default sets draw none of it):

* **PSF wings**: the coadd PSF is a Moffat core plus a faint broad component, here a fraction
  ``psf_wing_fraction`` (2-10 %) of the light in a ``beta = 2`` Moffat
  ``psf_wing_scale`` (2.5-4.5) times wider than the core.
* **Correlated noise**: warping and coadding resample the pixels, so neighbouring pixels' noise
  correlates. White noise is convolved with a Gaussian of ``noise_correlation_pix``
  (0.3-0.9 px) normalised to unit L2 norm, which keeps the per-pixel variance unchanged.
* **Sky-subtraction residuals**: a constant offset (N(0, 0.3) background rms per band) and a
  linear gradient across the cutout (amplitude N(0, 0.3) rms at the cutout edge, one direction
  for all bands).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lenscast.trainer.simulation.psf import moffat_kernel

WING_FRACTION_RANGE = (0.02, 0.10)
WING_SCALE_RANGE = (2.5, 4.5)
WING_BETA = 2.0
CORRELATION_RANGE_PIX = (0.3, 0.9)
SKY_OFFSET_RMS = 0.3
SKY_GRADIENT_RMS = 0.3
_KERNEL_HALF = 3


def draw(rng: np.random.Generator) -> dict[str, float]:
    """Draw the coadd effects of one system (keys as in the module docstring)."""
    out = {
        "psf_wing_fraction": float(rng.uniform(*WING_FRACTION_RANGE)),
        "psf_wing_scale": float(rng.uniform(*WING_SCALE_RANGE)),
        "noise_correlation_pix": float(rng.uniform(*CORRELATION_RANGE_PIX)),
        "sky_gradient_angle": float(rng.uniform(0.0, 2.0 * np.pi)),
    }
    for band in "griz":
        out[f"sky_offset_{band}"] = float(rng.normal(0.0, SKY_OFFSET_RMS))
        out[f"sky_gradient_{band}"] = float(rng.normal(0.0, SKY_GRADIENT_RMS))
    return out


def add_wings(core: np.ndarray, *, fwhm: float, pixel_scale: float, fraction: float,
              scale: float) -> np.ndarray:
    """``(1 - fraction) core + fraction wing``: the core kernel with a broad Moffat added.

    Parameters
    ----------
    core : ndarray, shape (k, k)
        Normalised core kernel.
    fwhm : float
        Core FWHM, arcsec.
    pixel_scale : float
        Arcsec per pixel.
    fraction : float
        Light in the wing, 0-1.
    scale : float
        Wing FWHM over core FWHM.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"PSF wing fraction must lie in [0, 1), got {fraction}")
    wing = moffat_kernel(fwhm=fwhm * scale, beta=WING_BETA, pixel_scale=pixel_scale,
                         size=core.shape[0])
    return (1.0 - fraction) * core + fraction * wing


def correlation_kernel(sigma_pix: float) -> np.ndarray:
    """Gaussian kernel of ``sigma_pix`` (pixels) with unit L2 norm (variance-preserving)."""
    if not sigma_pix > 0.0:
        raise ValueError(f"noise correlation length must be positive, got {sigma_pix}")
    axis = np.arange(-_KERNEL_HALF, _KERNEL_HALF + 1)
    profile = np.exp(-0.5 * (axis / sigma_pix) ** 2)
    kernel = np.outer(profile, profile)
    return kernel / np.sqrt((kernel**2).sum())


def correlated_normal(rng: np.random.Generator, shape: tuple[int, ...],
                      sigma_pix: float) -> np.ndarray:
    """Unit-variance Gaussian noise of ``shape`` (..., n, n), correlated over ``sigma_pix``."""
    white = rng.standard_normal(shape)
    kernel = correlation_kernel(sigma_pix)
    flat = white.reshape(-1, *shape[-2:])
    out = np.stack([ndimage.convolve(plane, kernel, mode="wrap") for plane in flat])
    return out.reshape(shape)


def sky_residual(effects: dict[str, float], background_rms: np.ndarray,
                 size: int) -> np.ndarray:
    """Offset plus gradient per band, shape (4, size, size), coadd flux units."""
    axis = (np.arange(size) - (size - 1) / 2.0) / ((size - 1) / 2.0)
    rows, cols = np.meshgrid(axis, axis, indexing="ij")
    angle = effects["sky_gradient_angle"]
    ramp = np.cos(angle) * cols + np.sin(angle) * rows
    offsets = np.array([effects[f"sky_offset_{b}"] for b in "griz"])[:, None, None]
    slopes = np.array([effects[f"sky_gradient_{b}"] for b in "griz"])[:, None, None]
    return np.asarray(background_rms)[:, None, None] * (offsets + slopes * ramp[None])

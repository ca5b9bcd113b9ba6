"""Where a real lens galaxy's light sits in its cutout, its shape, brightness and the noise.

Pure functions on one griz cutout (coadd flux, zeropoint 27; ``array[band, row, col]`` north
up, east left: ``x = -(col - 31.5) * 0.168"``, ``y = (row - 31.5) * 0.168"``), used to place an
SIE on a real galaxy as HOLISMOKES IV did: mass centre on the light, axis ratio and angle
from the light.

* Centre: the brightest pixel of the lightly smoothed i band within :data:`SEARCH_RADIUS_PIX`
  of the cutout centre (real LRG cutouts sit up to ~0.75" off it, and a brighter companion
  may lie further out), refined by Gaussian-weighted centroids.
* Shape: adaptive (elliptical-Gaussian-weighted) second moments of the i band about that
  centre, less a round PSF's, ``chi = (Qxx - Qyy, 2 Qxy) / (Qxx + Qyy)`` turned into
  lenstronomy's ``(e1, e2) = (1 - q)/(1 + q) (cos 2 phi, sin 2 phi)`` by
  ``e = chi / (1 + sqrt(1 - |chi|^2))`` (exact for elliptical isophotes).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from model.parameter_spec import PIXEL_SCALE_ARCSEC, PIXEL_ZEROPOINT_AB

#: Band index of the i band in griz.
I_BAND = 2
#: Largest distance of the light centre from the cutout centre, pixels (1.34").
SEARCH_RADIUS_PIX = 8.0
#: Gaussian weight of the centroid refinement and the starting weight of the moments, pixels.
CENTROID_WEIGHT_PIX = 2.0
MOMENT_WEIGHT_PIX = 4.0
MOMENT_ITERATIONS = 30
#: Bound on the weight's second moments, pixels^2 (keeps the weight on the galaxy, off the frame).
MAX_MOMENT_PIX2 = 150.0
#: PSF FWHM assumed in the moments' PSF correction: HSC Wide's median i-band seeing, arcsec.
PSF_FWHM_ARCSEC = 0.58
#: Radius of the aperture magnitudes, arcsec.
APERTURE_ARCSEC = 2.0
#: Width of the cutout frame used for the background noise, pixels.
BORDER_PIX = 4


def _grid(shape: tuple[int, int]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return rows.astype(np.float64), cols.astype(np.float64)


def pixel_to_sky(row: float, col: float, *, size: int) -> tuple[float, float]:
    """Sky offset (x east, y north; arcsec from the cutout centre) of a pixel position."""
    c = (size - 1) / 2.0
    return -(col - c) * PIXEL_SCALE_ARCSEC, (row - c) * PIXEL_SCALE_ARCSEC


def light_centre(band_image: NDArray[np.floating]) -> tuple[float, float]:
    """Light centre (row, col), pixels, of the galaxy near the middle of ``band_image``.

    Raises
    ------
    ValueError
        If there is no positive flux within :data:`SEARCH_RADIUS_PIX` of the centre.
    """
    image = np.asarray(band_image, dtype=np.float64)
    rows, cols = _grid(image.shape)
    c_row, c_col = (image.shape[0] - 1) / 2.0, (image.shape[1] - 1) / 2.0
    smooth = ndimage.gaussian_filter(image, 1.0)
    near = np.hypot(rows - c_row, cols - c_col) <= SEARCH_RADIUS_PIX
    if not np.any(smooth[near] > 0):
        raise ValueError("no positive flux near the cutout centre: not a galaxy cutout")
    peak = np.argmax(np.where(near, smooth, -np.inf))
    row, col = float(rows.flat[peak]), float(cols.flat[peak])
    for _ in range(5):
        weight = np.exp(-0.5 * ((rows - row) ** 2 + (cols - col) ** 2) / CENTROID_WEIGHT_PIX**2)
        flux = weight * np.clip(image, 0.0, None)
        row, col = float((flux * rows).sum() / flux.sum()), float((flux * cols).sum() / flux.sum())
    return row, col


def light_ellipticity(band_image: NDArray[np.floating], *, row: float, col: float,
                      psf_fwhm_arcsec: float = PSF_FWHM_ARCSEC) -> tuple[float, float]:
    """Ellipticity (e1, e2) of the light about (row, col), lenstronomy convention, x east.

    Adaptive second moments (Bernstein & Jarvis 2002, Sect. 3: an elliptical Gaussian weight
    iterated to the shape of the light, which removes a round weight's rounding), minus the
    second moments of a round Gaussian PSF of FWHM ``psf_fwhm_arcsec`` (first-order PSF
    correction; the cutouts carry no PSF model).
    """
    image = np.clip(np.asarray(band_image, dtype=np.float64), 0.0, None)
    rows, cols = _grid(image.shape)
    d = np.stack([-(cols - col), rows - row])  # (x east, y north) in pixels
    covariance = np.eye(2) * MOMENT_WEIGHT_PIX**2
    for _ in range(MOMENT_ITERATIONS):
        inverse = np.linalg.inv(covariance)
        weight = np.exp(-0.5 * np.einsum("iab,ij,jab->ab", d, inverse, d))
        flux = image * weight
        q = np.einsum("iab,jab,ab->ij", d, d, flux) / flux.sum()
        # A Gaussian light profile weighted by a Gaussian of its own covariance has
        # half that covariance: the fixed point of M = 2 Q is the light's covariance.
        updated = 2.0 * q
        if np.linalg.det(updated) <= 0:
            break
        covariance = np.clip(updated, -MAX_MOMENT_PIX2, MAX_MOMENT_PIX2)
    psf_sigma_pix = psf_fwhm_arcsec / 2.3548 / PIXEL_SCALE_ARCSEC
    light = covariance - np.eye(2) * psf_sigma_pix**2
    if np.linalg.det(light) <= 0 or np.trace(light) <= 0:
        return 0.0, 0.0  # unresolved: no measurable shape
    qxx, qyy, qxy = light[0, 0], light[1, 1], light[0, 1]
    chi1, chi2 = (qxx - qyy) / (qxx + qyy), 2.0 * qxy / (qxx + qyy)
    scale = 1.0 / (1.0 + np.sqrt(max(1.0 - chi1**2 - chi2**2, 0.0)))
    return float(chi1 * scale), float(chi2 * scale)


def background_rms(image: NDArray[np.floating]) -> NDArray[np.float64]:
    """Per-band background noise, ``1.4826 MAD`` of the cutout's frame, coadd flux; shape (4,)."""
    image = np.asarray(image, dtype=np.float64)
    mask = np.ones(image.shape[-2:], dtype=bool)
    mask[BORDER_PIX:-BORDER_PIX, BORDER_PIX:-BORDER_PIX] = False
    frame = image[:, mask]
    mad = np.median(np.abs(frame - np.median(frame, axis=1, keepdims=True)), axis=1)
    return 1.4826 * mad


def aperture_magnitudes(image: NDArray[np.floating], *, row: float, col: float
                        ) -> NDArray[np.float64]:
    """AB magnitudes within :data:`APERTURE_ARCSEC` of (row, col), per band (inf if <= 0)."""
    image = np.asarray(image, dtype=np.float64)
    rows, cols = _grid(image.shape[-2:])
    inside = np.hypot(rows - row, cols - col) * PIXEL_SCALE_ARCSEC <= APERTURE_ARCSEC
    flux = image[:, inside].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, PIXEL_ZEROPOINT_AB - 2.5 * np.log10(flux), np.inf)


def dihedral(image: NDArray[np.floating], orientation: int) -> NDArray[np.floating]:
    """One of the 8 rotations/mirrorings of a (..., rows, cols) cutout.

    ``orientation`` 0-3 rotates by 90° that many times, 4-7 also mirrors the columns; every
    result is as valid a north-up, east-left sky image as the original.
    """
    if not 0 <= orientation < 8:
        raise ValueError(f"orientation must be 0..7, got {orientation}")
    out = np.rot90(image, orientation % 4, axes=(-2, -1))
    if orientation >= 4:
        out = out[..., ::-1]
    return np.ascontiguousarray(out)

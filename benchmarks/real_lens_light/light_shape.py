"""Where a real lens galaxy's light sits in its cutout, its shape, brightness and the noise.

Pure functions on one griz cutout (coadd flux, zeropoint 27; ``array[band, row, col]`` north
up, east left: ``x = -(col - 31.5) * 0.168"``, ``y = (row - 31.5) * 0.168"``), used to place an
SIE on a real galaxy as HOLISMOKES IV did: mass centre on the light, axis ratio and angle
from the light.

* Centre: the brightest pixel of the lightly smoothed i band within :data:`SEARCH_RADIUS_PIX`
  of the cutout centre (real LRG cutouts sit up to ~0.75" off it, and a brighter companion
  may lie further out), refined by Gaussian-weighted centroids.
* Shape: a PSF-convolved de Vaucouleurs profile fitted to the i band about that centre
  (:func:`light_ellipticity`), seeded by adaptive second moments; second moments alone
  read a real LRG's ellipticity ~30 % low at HSC seeing (the PSF rounds the cuspy core).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, optimize

from lenscast.model.parameter_spec import PIXEL_SCALE_ARCSEC, PIXEL_ZEROPOINT_AB
from lenscast.trainer.simulation.profiles import sersic_ellipse
from lenscast.trainer.simulation.psf import moffat_kernel
from lenscast.trainer.simulation.render import bin_pixels, convolve_bands
from lenscast.trainer.simulation.survey import pixel_grid

#: Band index of the i band in griz.
I_BAND = 2
#: Largest distance of the light centre from the cutout centre, pixels (1.34").
SEARCH_RADIUS_PIX = 8.0
#: Gaussian weight of the centroid refinement and size of the moments' weight, pixels.
CENTROID_WEIGHT_PIX = 2.0
MOMENT_WEIGHT_PIX = 4.0
MOMENT_ITERATIONS = 20
#: PSF of the shape fit, a Moffat of this beta whose FWHM is fitted too (the release's
#: cutouts carry no PSF model), starting from HSC Wide's median i-band seeing, within the
#: survey's accepted range (arcsec).
PSF_FWHM_ARCSEC = 0.58
PSF_FWHM_RANGE = (0.38, 1.0)
PSF_BETA = 3.5
#: Pixels within this distance of the centre enter the shape fit, arcsec.
FIT_RADIUS_ARCSEC = 2.5
#: Sub-pixels per pixel axis of the fitted profile (the de Vaucouleurs core is cuspy).
FIT_SUPERSAMPLE = 2
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


def moment_ellipticity(band_image: NDArray[np.floating], *, row: float, col: float
                       ) -> tuple[float, float]:
    """Ellipticity (e1, e2) of the PSF-blurred light from adaptive second moments, x east.

    An elliptical Gaussian weight iterated to the shape of the light (Bernstein & Jarvis 2002,
    Sect. 3; a matched weight keeps an elliptical profile's axis ratio). The PSF makes it
    rounder than the galaxy: :func:`light_ellipticity` starts from it and removes that.
    """
    image = np.clip(np.asarray(band_image, dtype=np.float64), 0.0, None)
    rows, cols = _grid(image.shape)
    d = np.stack([-(cols - col), rows - row])  # (x east, y north) in pixels
    covariance = np.eye(2) * MOMENT_WEIGHT_PIX**2
    q = covariance
    for _ in range(MOMENT_ITERATIONS):
        weight = np.exp(-0.5 * np.einsum("iab,ij,jab->ab", d, np.linalg.inv(covariance), d))
        flux = image * weight
        q = np.einsum("iab,jab,ab->ij", d, d, flux) / flux.sum()
        if np.linalg.det(q) <= 0:
            return 0.0, 0.0
        # Same shape as the light, fixed size: the weight stays on the galaxy.
        covariance = q / np.sqrt(np.linalg.det(q)) * MOMENT_WEIGHT_PIX**2
    chi1, chi2 = (q[0, 0] - q[1, 1]) / np.trace(q), 2.0 * q[0, 1] / np.trace(q)
    scale = 1.0 / (1.0 + np.sqrt(max(1.0 - chi1**2 - chi2**2, 0.0)))
    return float(chi1 * scale), float(chi2 * scale)


def light_ellipticity(band_image: NDArray[np.floating], *, row: float, col: float,
                      noise: float) -> tuple[float, float]:
    """Ellipticity (e1, e2) of the galaxy about (row, col), lenstronomy convention, x east.

    Least-squares fit of a de Vaucouleurs profile (Sérsic n = 4; flux, half-light radius,
    e1, e2 free; centre fixed) convolved with a Moffat PSF (beta :data:`PSF_BETA`, FWHM
    free in :data:`PSF_FWHM_RANGE`: a wrong seeing would bias the shape) to the pixels within
    :data:`FIT_RADIUS_ARCSEC` of the centre, with a robust (soft-L1) loss so that neighbours
    pull less; seeded by :func:`moment_ellipticity`.

    Parameters
    ----------
    band_image : ndarray, shape (64, 64)
        One band, coadd flux.
    row, col : float
        Light centre, pixels.
    noise : float
        Background rms of the band, coadd flux (the residuals' scale).
    """
    image = np.asarray(band_image, dtype=np.float64)
    size = image.shape[-1]
    x, y = pixel_grid(size=size, pixel_scale=PIXEL_SCALE_ARCSEC, supersample=FIT_SUPERSAMPLE)
    centre_x, centre_y = pixel_to_sky(row, col, size=size)
    rows, cols = _grid(image.shape)
    inside = np.hypot(rows - row, cols - col) * PIXEL_SCALE_ARCSEC <= FIT_RADIUS_ARCSEC
    sub_area = (PIXEL_SCALE_ARCSEC / FIT_SUPERSAMPLE) ** 2

    def model(p: NDArray[np.float64]) -> NDArray[np.float64]:
        fine = sersic_ellipse(x, y, flux=np.exp(p[0]), r_sersic=np.exp(p[1]), n_sersic=4.0,
                              e1=p[2], e2=p[3], center_x=centre_x, center_y=centre_y)
        coarse = bin_pixels(fine * sub_area, supersample=FIT_SUPERSAMPLE)
        kernel = moffat_kernel(fwhm=p[4], beta=PSF_BETA, pixel_scale=PIXEL_SCALE_ARCSEC)
        return convolve_bands(coarse[None], kernel[None])[0]

    def residuals(p: NDArray[np.float64]) -> NDArray[np.float64]:
        return (model(p) - image)[inside] / noise

    e1, e2 = moment_ellipticity(image, row=row, col=col)
    flux = max(float(np.clip(image[inside], 0.0, None).sum()), 1e-3)
    start = np.array([np.log(flux), np.log(1.0), e1, e2, PSF_FWHM_ARCSEC])
    # Finite-difference steps well above the float32 precision of the FFT convolution.
    fit = optimize.least_squares(
        residuals, start, loss="soft_l1", f_scale=3.0, diff_step=1e-3,
        x_scale=[0.1, 0.1, 0.05, 0.05, 0.05],
        bounds=([-10.0, np.log(0.1), -0.7, -0.7, PSF_FWHM_RANGE[0]],
                [20.0, np.log(10.0), 0.7, 0.7, PSF_FWHM_RANGE[1]]))
    return float(fit.x[2]), float(fit.x[3])


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

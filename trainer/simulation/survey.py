"""HSC Wide observing conditions: bands, pixel grid, seeing, depth and noise model.

Numbers are the HSC-SSP Wide layer's (Aihara et al. 2018, 2019 "PDR2", Table 2/3): median
seeing g 0.77", r 0.76", i 0.58", z 0.68"; 5-sigma point-source depths g 26.6, r 26.2,
i 26.2, z 25.3 (AB); exposure 10 min in g, r and 20 min in i, z, in 200 s visits.
Pixels are calibrated coadd fluxes with AB zeropoint 27 (``mag = 27 - 2.5 log10 flux``).

The per-pixel background rms below follows from the depth: a Gaussian PSF of FWHM ``w`` has a
noise-equivalent area ``4 pi (w / 2.355)^2``, and a 5-sigma point source of flux ``F5`` has
``sigma_pix = F5 / 5 / sqrt(NEA / pixel_area)``. The effective gain (electrons per coadd flux
unit) sets the source Poisson noise: ``exposure * 10^(0.4 (zp_e - 27))`` with the HSC
zeropoints for 1 e-/s (~28.4 in i).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lenscast.model.parameter_spec import (
    BANDS,
    CUTOUT_SIZE_PIX,
    PIXEL_SCALE_ARCSEC,
    PIXEL_ZEROPOINT_AB,
)

__all__ = [
    "BANDS",
    "CUTOUT_SIZE_PIX",
    "PIXEL_SCALE_ARCSEC",
    "PIXEL_ZEROPOINT_AB",
    "BandConditions",
    "HSC_WIDE",
    "pixel_grid",
    "flux_from_mag",
    "mag_from_flux",
]


@dataclass(frozen=True)
class BandConditions:
    """Distribution of observing conditions in one band.

    Attributes
    ----------
    band : str
        Filter name, one of :data:`BANDS`.
    seeing_median, seeing_sigma : float
        PSF FWHM median and log-normal scatter (arcsec, dex-like fraction).
    seeing_min, seeing_max : float
        Truncation of the FWHM draw, arcsec (HSC Wide's accepted range).
    background_rms : float
        Median per-pixel background noise (sky + read), coadd flux units.
    gain : float
        Effective electrons per coadd flux unit (source Poisson noise).
    n_visits : int
        Number of 200 s visits (read noise bookkeeping).
    """

    band: str
    seeing_median: float
    seeing_sigma: float
    seeing_min: float
    seeing_max: float
    background_rms: float
    gain: float
    n_visits: int


#: HSC Wide per-band conditions, in :data:`BANDS` order.
HSC_WIDE: tuple[BandConditions, ...] = (
    BandConditions("g", 0.77, 0.14, 0.45, 1.2, 0.042, 700.0, 3),
    BandConditions("r", 0.76, 0.14, 0.45, 1.2, 0.061, 900.0, 3),
    BandConditions("i", 0.58, 0.15, 0.38, 1.0, 0.080, 2600.0, 6),
    BandConditions("z", 0.68, 0.15, 0.40, 1.1, 0.157, 1300.0, 6),
)

#: HSC detector read noise, electrons per pixel per visit.
READ_NOISE_E = 4.5


def pixel_grid(*, size: int = CUTOUT_SIZE_PIX, pixel_scale: float = PIXEL_SCALE_ARCSEC,
               supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sky coordinates of (sub)pixel centres, north up east left.

    ``array[row, col]`` has ``x = -(col - c) * scale`` (east to the left, as on the sky and in a
    standard FITS WCS with ``CDELT1 < 0``) and ``y = (row - c) * scale`` (north up when drawn
    with ``origin="lower"``), ``c = (size - 1) / 2``; that is lenstronomy's
    ``transform_pix2angle = diag(-scale, scale)`` about the cutout centre.

    Parameters
    ----------
    size : int
        Pixels per side.
    pixel_scale : float
        Arcsec per pixel.
    supersample : int
        Sub-pixels per pixel per axis; sub-pixel ``(r, c)`` lies in pixel ``(r // s, c // s)``.

    Returns
    -------
    x, y : ndarray, shape (size * supersample, size * supersample)
        Arcsec from the cutout centre.
    """
    n = size * supersample
    step = pixel_scale / supersample
    axis = (np.arange(n) - (n - 1) / 2.0) * step
    y, xr = np.meshgrid(axis, axis, indexing="ij")
    return -xr, y


def flux_from_mag(mag):
    """Coadd flux (zeropoint 27) of an AB magnitude."""
    return 10.0 ** (-0.4 * (np.asarray(mag) - PIXEL_ZEROPOINT_AB))


def mag_from_flux(flux):
    """AB magnitude of a coadd flux (zeropoint 27); non-positive flux gives ``inf``."""
    flux = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, PIXEL_ZEROPOINT_AB - 2.5 * np.log10(flux), np.inf)

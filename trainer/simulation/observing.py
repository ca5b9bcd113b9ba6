"""Per-band observing conditions of one simulated cutout, and the noise they imply.

Seeing (PSF FWHM) is log-normal about the HSC Wide median of each band, truncated to the range
the survey accepts; the Moffat index is uniform on 2.5-4.5; the PSF is round unless the run
asks for an ellipticity range (then one size and random orientation per system, shared by the
bands, as a field's optics and guiding impose), and a Moffat unless the run asks for a fraction
of Gaussian PSFs (``beta = inf``; chosen per system, for all bands); the background rms scatters by
12 % between fields about the depth-derived median (``survey.HSC_WIDE``).

Noise model (per pixel, coadd flux units): ``var = sky + read + max(model, 0) / gain``, with
``read = n_visits * READ_NOISE_E^2 / gain^2`` and ``sky = background_rms^2 - read`` so the
total background matches the depth; the source and lens Poisson term uses the effective gain.
"""

from __future__ import annotations

import numpy as np

from lenscast.trainer.simulation import coadd_effects
from lenscast.trainer.simulation.psf import moffat_kernel
from lenscast.trainer.simulation.survey import HSC_WIDE, PIXEL_SCALE_ARCSEC, READ_NOISE_E

#: Spread of the coadd depth between fields (fractional scatter of the background rms).
BACKGROUND_SCATTER = 0.12
MOFFAT_BETA_RANGE = (2.5, 4.5)


def draw_conditions(rng: np.random.Generator, *,
                    psf_ellipticity: tuple[float, float] = (0.0, 0.0),
                    gaussian_psf_fraction: float = 0.0) -> dict[str, float]:
    """Draw ``seeing_{b}`` (FWHM, arcsec), ``psf_beta_{b}``, ``background_rms_{b}`` and
    ``psf_e1``, ``psf_e2``.

    Parameters
    ----------
    rng : numpy.random.Generator
    psf_ellipticity : (float, float)
        Range of the PSF's ``|e|`` (uniform; equal ends: that one value), at a uniform random
        orientation; ``(0, 0)`` (round) draws nothing extra, so round-PSF sets keep the random
        stream they had before elliptical PSFs existed.
    gaussian_psf_fraction : float
        Probability that the system's PSFs are Gaussians of the drawn FWHMs (``psf_beta_{b}``
        set to ``inf``); 0 draws nothing extra, keeping the random stream as before.
    """
    out: dict[str, float] = {}
    for cond in HSC_WIDE:
        while True:
            fwhm = cond.seeing_median * np.exp(rng.normal(0.0, cond.seeing_sigma))
            if cond.seeing_min <= fwhm <= cond.seeing_max:
                break
        out[f"seeing_{cond.band}"] = float(fwhm)
        out[f"psf_beta_{cond.band}"] = float(rng.uniform(*MOFFAT_BETA_RANGE))
        out[f"background_rms_{cond.band}"] = float(
            cond.background_rms * np.exp(rng.normal(0.0, BACKGROUND_SCATTER)))
    out["psf_e1"] = out["psf_e2"] = 0.0
    low, high = psf_ellipticity
    if high > 0.0:
        size = low if low == high else rng.uniform(low, high)
        angle = 2.0 * rng.uniform(0.0, np.pi)  # 2 phi: spin-2
        out["psf_e1"] = float(size * np.cos(angle))
        out["psf_e2"] = float(size * np.sin(angle))
    if gaussian_psf_fraction > 0.0 and rng.uniform() < gaussian_psf_fraction:
        for cond in HSC_WIDE:
            out[f"psf_beta_{cond.band}"] = np.inf
    return out


def psf_kernels(conditions: dict[str, float]) -> np.ndarray:
    """PSF kernels of the drawn conditions (Moffat or Gaussian), shape (4, k, k), griz order.

    Conditions carrying ``psf_wing_fraction`` (``coadd_effects.draw``) get its broad wing added.
    """
    kernels = []
    for c in HSC_WIDE:
        fwhm = conditions[f"seeing_{c.band}"]
        kernel = moffat_kernel(fwhm=fwhm, beta=conditions[f"psf_beta_{c.band}"],
                               pixel_scale=PIXEL_SCALE_ARCSEC, e1=conditions.get("psf_e1", 0.0),
                               e2=conditions.get("psf_e2", 0.0))
        if "psf_wing_fraction" in conditions:
            kernel = coadd_effects.add_wings(kernel, fwhm=fwhm, pixel_scale=PIXEL_SCALE_ARCSEC,
                                             fraction=conditions["psf_wing_fraction"],
                                             scale=conditions["psf_wing_scale"])
        kernels.append(kernel)
    return np.stack(kernels)


def pixel_variance(model: np.ndarray, conditions: dict[str, float]) -> np.ndarray:
    """Per-pixel noise variance (coadd flux^2) for a noiseless ``model`` of shape (4, n, n)."""
    gain = np.array([c.gain for c in HSC_WIDE])[:, None, None]
    background = np.array([conditions[f"background_rms_{c.band}"] for c in HSC_WIDE])
    read = np.array([c.n_visits * READ_NOISE_E**2 / c.gain**2 for c in HSC_WIDE])
    sky = np.maximum(background**2 - read, 0.0)
    return (sky + read)[:, None, None] + np.maximum(model, 0.0) / gain


def add_noise(rng: np.random.Generator, model: np.ndarray,
              conditions: dict[str, float]) -> np.ndarray:
    """Noisy float32 image: ``model`` plus Gaussian noise of :func:`pixel_variance`.

    The Gaussian approximation of Poisson noise is exact enough here: every HSC coadd pixel
    holds thousands of sky electrons. Conditions carrying ``noise_correlation_pix``
    (``coadd_effects.draw``) get correlated noise of the same per-pixel variance and a
    sky-subtraction residual.
    """
    sigma = np.sqrt(pixel_variance(model, conditions))
    if "noise_correlation_pix" not in conditions:
        return (model + sigma * rng.standard_normal(model.shape)).astype(np.float32)
    noise = coadd_effects.correlated_normal(rng, model.shape, conditions["noise_correlation_pix"])
    background = np.array([conditions[f"background_rms_{c.band}"] for c in HSC_WIDE])
    sky = coadd_effects.sky_residual(conditions, background, model.shape[-1])
    return (model + sigma * noise + sky).astype(np.float32)

"""Noiseless rendering of one lens system: ray tracing, light profiles, binning, PSF.

The scene is evaluated on a grid supersampled ``SUPERSAMPLE`` times per axis: the lens and
neighbours at the image-plane positions, the source at the ray-traced source-plane positions
``beta = theta - alpha(theta)`` (SIE + shear, ``mass.sie_shear_deflection``). Sub-pixel fluxes
(surface brightness x sub-pixel area) are summed into 0.168" pixels and convolved with each
band's pixel-integrated PSF by FFT. This is the same sequence as lenstronomy's ``ImageModel``
with ``supersampling_factor=SUPERSAMPLE`` and a pixelised PSF, vectorised in NumPy for speed;
``tests/trainer/simulation/test_render.py`` checks that both give the same image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft, ndimage

from lenscast.trainer.simulation.hudf import Catalogue, GalaxyStamp
from lenscast.trainer.simulation.mass import (
    SieShear,
    ellipticity_to_phi_q,
    sie_shear_deflection,
)
from lenscast.trainer.simulation.profiles import gaussian_clumps, sersic_ellipse
from lenscast.trainer.simulation.real_galaxies import RealGalaxyStamp
from lenscast.trainer.simulation.survey import (
    CUTOUT_SIZE_PIX,
    PIXEL_SCALE_ARCSEC,
    flux_from_mag,
    pixel_grid,
)

#: Sub-pixels per pixel and axis on which the scene is evaluated before binning.
SUPERSAMPLE = 2
#: Bands of the rendered cube, in its order.
_BANDS = "griz"


@dataclass(frozen=True)
class RenderedScene:
    """Noiseless PSF-convolved components, coadd flux per pixel, shape (4, 64, 64) each.

    Attributes
    ----------
    foreground : ndarray
        Lens galaxy plus neighbours.
    lensed_source : ndarray
        The lensed background source alone.
    magnification : float
        Lensed i-band source flux inside the cutout over the intrinsic flux.
    """

    foreground: np.ndarray
    lensed_source: np.ndarray
    magnification: float

    @property
    def total(self) -> np.ndarray:
        return self.foreground + self.lensed_source


@lru_cache(maxsize=2)
def _grid(supersample: int) -> tuple[np.ndarray, np.ndarray]:
    return pixel_grid(size=CUTOUT_SIZE_PIX, pixel_scale=PIXEL_SCALE_ARCSEC, supersample=supersample)


def bin_pixels(fine: np.ndarray, *, supersample: int) -> np.ndarray:
    """Sum sub-pixels into pixels along the last two axes."""
    # Strided slices summed pairwise: several times faster than a reshaped multi-axis sum.
    out = fine[..., ::supersample, ::supersample].copy()
    for i in range(supersample):
        for j in range(supersample):
            if i or j:
                out += fine[..., i::supersample, j::supersample]
    return out


def convolve_bands(images: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Convolve ``images[..., b, :, :]`` with ``kernels[b]`` ("same" size, zero padded, FFT).

    Parameters
    ----------
    images : ndarray, shape (..., 4, n, n)
    kernels : ndarray, shape (4, k, k), k odd, centred

    Returns
    -------
    ndarray, shape (..., 4, n, n)
    """
    n = images.shape[-1]
    k = kernels.shape[-1]
    size = fft.next_fast_len(n + k - 1, real=True)
    # Single precision is ample (the noise is ~1e-3 of the peak) and twice as fast.
    spectrum = fft.rfft2(images.astype(np.float32), s=(size, size)) * fft.rfft2(
        kernels.astype(np.float32), s=(size, size))
    full = fft.irfft2(spectrum, s=(size, size)).astype(np.float64)
    h = k // 2
    return full[..., h:h + n, h:h + n]


def _stamp_surface(stamp: GalaxyStamp | RealGalaxyStamp, dx: np.ndarray, dy: np.ndarray, *,
                   scale: float, rotation: float, mirror: bool) -> np.ndarray:
    """Bilinear stamp flux-per-pixel at offsets (arcsec) from the stamp's light centre.

    Returns shape (4, *dx.shape) in stamp-pixel flux units; multiply by
    ``sub-pixel area / scale^2`` to get the flux landing in each sub-pixel.
    """
    cos, sin = np.cos(rotation), np.sin(rotation)
    u = (cos * dx + sin * dy) / scale
    v = (-sin * dx + cos * dy) / scale
    if mirror:
        u = -u
    griz = stamp.griz
    r = stamp.centre[0] + v
    c = stamp.centre[1] + u
    h, w = griz.shape[1:]
    inside = (r > -1) & (r < h) & (c > -1) & (c < w)
    out = np.zeros((4, *dx.shape))
    if inside.any():
        coords = np.stack([r[inside], c[inside]])
        for b in range(4):
            out[b][inside] = ndimage.map_coordinates(griz[b], coords, order=1, mode="constant",
                                                     cval=0.0, prefilter=False)
    return out


def _band_fluxes(mags) -> np.ndarray:
    return flux_from_mag(np.asarray(mags, dtype=np.float64))[:, None, None]


def _source_light(bx: np.ndarray, by: np.ndarray, *, source: dict, catalogue: Catalogue,
                  sub_area: float) -> np.ndarray:
    """Flux per sub-pixel (4, ny, nx) of the source evaluated at source-plane positions."""
    dx = bx - source["source_x"]
    dy = by - source["source_y"]
    mags = [source[f"source_mag_{b}"] for b in _BANDS]
    if source["galaxy_id"] >= 0:
        stamp = catalogue.stamps[source["galaxy_id"]]
        scale = source["source_pixel_scale"]
        surface = _stamp_surface(stamp, dx, dy, scale=scale, rotation=source["source_rotation"],
                                 mirror=bool(source["source_mirror"]))
        # Stamp bands are relative to i = 1; the recorded magnitudes hold the colours already.
        return surface * (sub_area / scale**2) * _band_fluxes([mags[2]] * 4)
    clumps = source["clumps"]
    fraction = source["clump_fraction"]
    disc = sersic_ellipse(dx, dy, flux=1.0, r_sersic=source["source_r_eff"],
                          n_sersic=source["source_n_sersic"], e1=source["source_e1"],
                          e2=source["source_e2"], center_x=0.0, center_y=0.0)
    light = (1.0 - fraction) * disc[None] * _band_fluxes(mags)
    if source["n_clumps"]:
        blob = gaussian_clumps(dx, dy, flux=clumps["fraction"], sigma=clumps["sigma"],
                               center_x=clumps["dx"], center_y=clumps["dy"])
        clump_mags = np.asarray(mags) + clumps["blue_shift"]
        light = light + blob[None] * _band_fluxes(clump_mags)
    return light * sub_area


def intrinsic_source_flux(source: dict) -> np.ndarray:
    """Total unlensed source flux per band, coadd units (clumps included)."""
    mags = np.array([source[f"source_mag_{b}"] for b in _BANDS])
    if source["galaxy_id"] >= 0 or not source["n_clumps"]:
        return flux_from_mag(mags)
    fraction = source["clump_fraction"]
    return flux_from_mag(mags) * (1.0 - fraction) + flux_from_mag(
        mags + source["clumps"]["blue_shift"]) * fraction


def _neighbour_light(x: np.ndarray, y: np.ndarray, neighbours: list[dict], *,
                     catalogue: Catalogue, sub_area: float) -> np.ndarray:
    out = np.zeros((4, *x.shape))
    for nb in neighbours:
        if nb["kind"] == "star":
            # A point source: all its flux in the nearest sub-pixel (the PSF does the rest).
            row = int(np.argmin(np.abs(y[:, 0] - nb["y"])))
            col = int(np.argmin(np.abs(x[0, :] - nb["x"])))
            out[:, row, col] += flux_from_mag(nb["mags"])
        elif nb["kind"] in ("hudf", "real"):
            # A galaxy stamp (HUDF, or a real galaxy of real_galaxies that carries its own):
            # bands relative to its i flux, scaled to the i magnitude.
            stamp = nb["stamp"] if nb["kind"] == "real" else catalogue.stamps[nb["galaxy_id"]]
            surface = _stamp_surface(stamp, x - nb["x"], y - nb["y"], scale=nb["scale"],
                                     rotation=nb["rotation"], mirror=nb.get("mirror", False))
            out += surface * (sub_area / nb["scale"] ** 2) * _band_fluxes([nb["mags"][2]] * 4)
        elif nb["kind"] == "ring":
            out += _ring(x, y, nb)[None] * _band_fluxes(nb["mags"])
        elif nb["kind"] == "trail":
            # A satellite trail: a straight line across the cutout, mags per arcsec of length.
            along = np.cos(nb["angle"]) * (y - nb["y"]) - np.sin(nb["angle"]) * (x - nb["x"])
            width = nb["width"]
            profile = np.exp(-0.5 * (along / width) ** 2) / (np.sqrt(2.0 * np.pi) * width)
            out += profile[None] * sub_area * _band_fluxes(nb["mags"])
        else:
            profile = sersic_ellipse(x, y, flux=1.0, r_sersic=nb["r_eff"], n_sersic=nb["n_sersic"],
                                     e1=nb["e1"], e2=nb["e2"], center_x=nb["x"], center_y=nb["y"])
            out += profile[None] * sub_area * _band_fluxes(nb["mags"])
    return out


def _ring(x: np.ndarray, y: np.ndarray, nb: dict) -> np.ndarray:
    """Elliptical Gaussian ring (a ring galaxy's), normalised to unit flux on the grid."""
    phi, q = ellipticity_to_phi_q(e1=nb["e1"], e2=nb["e2"])
    dx, dy = x - nb["x"], y - nb["y"]
    xr = np.cos(phi) * dx + np.sin(phi) * dy
    yr = -np.sin(phi) * dx + np.cos(phi) * dy
    radius = np.sqrt(q * xr * xr + yr * yr / q)
    profile = np.exp(-0.5 * ((radius - nb["radius"]) / nb["width"]) ** 2)
    return profile / max(float(profile.sum()), 1e-12)


def _lens_light(x: np.ndarray, y: np.ndarray, lens: dict, *, sub_area: float,
                catalogue: Catalogue) -> np.ndarray:
    """Flux per sub-pixel (4, ny, nx) of the lens galaxy.

    One Sérsic from the ``lens_*`` keys, or, when ``lens`` carries ``light_components``
    (Sérsics of ``realistic_light``, a real galaxy of ``real_galaxies``; an empty list for a
    scene without a lens galaxy), their sum.
    """
    if "light_components" in lens:
        parts = [{"kind": "sersic", **c} for c in lens["light_components"]]
        return _neighbour_light(x, y, parts, catalogue=catalogue, sub_area=sub_area)
    lens_profile = sersic_ellipse(x, y, flux=1.0, r_sersic=lens["lens_r_eff"],
                                  n_sersic=lens["lens_n_sersic"], e1=lens["lens_e1"],
                                  e2=lens["lens_e2"], center_x=lens["center_x"],
                                  center_y=lens["center_y"])
    return lens_profile[None] * sub_area * _band_fluxes([lens[f"lens_mag_{b}"] for b in _BANDS])


def render_scene(*, lens: dict, source: dict, neighbours: list[dict], kernels: np.ndarray,
                 catalogue: Catalogue, supersample: int = SUPERSAMPLE) -> RenderedScene:
    """Render the noiseless griz cutout of one system.

    Parameters
    ----------
    lens : dict
        Mass (spec names) and lens light (``lens_mag_{b}``, ``lens_r_eff``, ``lens_n_sersic``,
        ``lens_e1``, ``lens_e2``), from ``lens_population.draw_lens``.
    source : dict
        From ``source_population.draw_source``.
    neighbours : list of dict
        From ``source_population.draw_neighbours``.
    kernels : ndarray, shape (4, k, k)
        Pixel-integrated PSF per band.
    catalogue : Catalogue
        HUDF stamps.
    supersample : int
        Sub-pixels per pixel axis.

    Returns
    -------
    RenderedScene
    """
    x, y = _grid(supersample)
    sub_area = (PIXEL_SCALE_ARCSEC / supersample) ** 2
    ax, ay = sie_shear_deflection(x, y, lens=SieShear.from_mapping(lens))
    source_fine = _source_light(x - ax, y - ay, source=source, catalogue=catalogue,
                                sub_area=sub_area)
    lens_fine = _lens_light(x, y, lens, sub_area=sub_area, catalogue=catalogue)
    if neighbours:
        lens_fine = lens_fine + _neighbour_light(x, y, neighbours, catalogue=catalogue,
                                                 sub_area=sub_area)
    coarse = bin_pixels(np.stack([lens_fine, source_fine]), supersample=supersample)
    convolved = convolve_bands(coarse, kernels)
    magnification = float(coarse[1, 2].sum() / intrinsic_source_flux(source)[2])
    return RenderedScene(convolved[0], convolved[1], magnification)

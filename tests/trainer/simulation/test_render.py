"""The simulator's NumPy renderer against lenstronomy's ImageModel, and against the solver.

The renderer (``lenscast.trainer.simulation.render``) ray-traces and images with its own vectorised
code for speed; these tests show it produces lenstronomy's image for the same system, and that
the lensed light of a compact source peaks where the physics core puts the images.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lenscast.trainer.simulation.cosmology import distance_table
from lenscast.trainer.simulation.hudf import hudf_catalogue
from lenscast.trainer.simulation.profiles import sersic_amplitude
from lenscast.trainer.simulation.psf import moffat_kernel
from lenscast.trainer.simulation.render import render_scene
from lenscast.trainer.simulation.survey import PIXEL_SCALE_ARCSEC, flux_from_mag, pixel_grid
from lenscast.trainer.simulation.truths import MASS_KEYS, solve_batch

S = PIXEL_SCALE_ARCSEC


#: The test system's lens: SIE + shear mass (arcsec), then a Sersic light (mag, arcsec).
LENS = dict(
    theta_e=1.4, e1=0.12, e2=-0.05, center_x=0.2, center_y=-0.15, gamma1=0.03, gamma2=0.02,
    lens_mag_g=21.0, lens_mag_r=20.0, lens_mag_i=19.5, lens_mag_z=19.2,
    lens_r_eff=0.9, lens_n_sersic=4.0, lens_e1=0.1, lens_e2=-0.04,
)  # fmt: skip
#: Its smooth Sersic source (arcsec, mag), no HUDF galaxy and no clumps.
SOURCE = dict(
    source_x=0.25, source_y=-0.1, galaxy_id=-1,
    source_r_eff=0.2, source_n_sersic=1.2, source_e1=0.1, source_e2=0.2,
    n_clumps=0, clump_fraction=0.0, clumps={},
    source_mag_g=23.0, source_mag_r=22.8, source_mag_i=22.6, source_mag_z=22.5,
)  # fmt: skip


def _lens(**overrides):
    return {**LENS, **overrides}


def _source(**overrides):
    return {**SOURCE, **overrides}


def _sersic_kwargs(*, mag, r_eff, n_sersic, e1, e2, center_x, center_y):
    """lenstronomy's SERSIC_ELLIPSE keywords for a profile of total magnitude ``mag``."""
    flux = flux_from_mag(mag)
    amp = float(sersic_amplitude(flux=flux, r_sersic=r_eff, n_sersic=n_sersic))
    return dict(amp=amp, R_sersic=r_eff, n_sersic=n_sersic, e1=e1, e2=e2,
                center_x=center_x, center_y=center_y)  # fmt: skip


def _render(lens, source, kernel, **options):
    """Our renderer on one system without neighbours, the same PSF in all four bands."""
    kernels = np.stack([kernel] * 4)
    return render_scene(lens=lens, source=source, neighbours=[], kernels=kernels,
                        catalogue=hudf_catalogue(), **options)  # fmt: skip


def _lenstronomy_model(kernel, source_profile, *, lens_light):
    """lenstronomy's ImageModel of our 64x64 stamp: SIE + shear, one source light profile."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    data = ImageData(
        image_data=np.zeros((64, 64)),
        transform_pix2angle=np.array([[-S, 0.0], [0.0, S]]),
        ra_at_xy_0=31.5 * S,
        dec_at_xy_0=-31.5 * S,
    )
    return ImageModel(
        data,
        PSF(psf_type="PIXEL", kernel_point_source=kernel),
        lens_model_class=LensModel(["SIE", "SHEAR"]),
        source_model_class=LightModel([source_profile]),
        lens_light_model_class=LightModel(["SERSIC_ELLIPSE"]) if lens_light else None,
        kwargs_numerics={"supersampling_factor": 2, "supersampling_convolution": False},
    )


def _lenstronomy_lens(lens):
    """lenstronomy's SIE and SHEAR keywords of a lens."""
    sie = {"theta_E": lens["theta_e"]} | {k: lens[k] for k in ("e1", "e2", "center_x", "center_y")}
    return [sie, {"gamma1": lens["gamma1"], "gamma2": lens["gamma2"]}]


def _lenstronomy_image(lens, source, kernel, *, band_mag_key="i"):

    model = _lenstronomy_model(kernel, "SERSIC_ELLIPSE", lens_light=True)
    kwargs_lens = _lenstronomy_lens(lens)
    kwargs_source = [
        _sersic_kwargs(
            mag=source[f"source_mag_{band_mag_key}"],
            r_eff=source["source_r_eff"],
            n_sersic=source["source_n_sersic"],
            e1=source["source_e1"],
            e2=source["source_e2"],
            center_x=source["source_x"],
            center_y=source["source_y"],
        )
    ]
    kwargs_light = [
        _sersic_kwargs(
            mag=lens[f"lens_mag_{band_mag_key}"], r_eff=lens["lens_r_eff"],
            n_sersic=lens["lens_n_sersic"], e1=lens["lens_e1"], e2=lens["lens_e2"],
            center_x=lens["center_x"], center_y=lens["center_y"],
        )
    ]  # fmt: skip
    source_image = model.image(kwargs_lens, kwargs_source, kwargs_light, None, lens_light_add=False)
    light_image = model.image(
        kwargs_lens, kwargs_source, kwargs_light, None, source_add=False, lens_light_add=True
    )
    return source_image, light_image


@pytest.mark.parametrize(
    ("lens_overrides", "source_overrides"),
    [
        ({}, {}),
        # Round lens (q -> 1), no shear, source nearly on axis: an almost complete ring.
        ({"e1": 0.0, "e2": 0.0, "gamma1": 0.0, "gamma2": 0.0}, {"source_x": 0.21}),
        # Strongly elliptical, large theta_e, off-centre lens, source near a caustic.
        (
            {"theta_e": 3.2, "e1": -0.3, "e2": 0.25, "center_x": -0.5, "center_y": 0.3},
            {"source_x": -0.35, "source_y": 0.5, "source_n_sersic": 0.7},
        ),
    ],
)
def test_render_matches_lenstronomy_image_model(lens_overrides, source_overrides):
    lens, source = _lens(**lens_overrides), _source(**source_overrides)
    kernel = moffat_kernel(fwhm=0.7, beta=3.0, pixel_scale=S)
    scene = _render(lens, source, kernel)
    ref_source, ref_light = _lenstronomy_image(lens, source, kernel)
    i_band = 2
    # Same algorithm (2x supersampling, pixel kernel): agreement to float32 FFT precision.
    np.testing.assert_allclose(
        scene.lensed_source[i_band], ref_source, rtol=0, atol=1e-5 * ref_source.max()
    )
    np.testing.assert_allclose(
        scene.foreground[i_band], ref_light, rtol=0, atol=1e-5 * ref_light.max()
    )


def _peaks(image, *, threshold):
    maxima = (image == ndimage.maximum_filter(image, size=3)) & (image > threshold)
    rows, cols = np.nonzero(maxima)
    x, y = pixel_grid()
    return x[rows, cols], y[rows, cols], image[rows, cols]


@pytest.mark.parametrize(
    ("lens_overrides", "source_xy"),
    [
        ({}, (0.25, -0.1)),  # double
        ({"e1": 0.25, "e2": 0.1, "gamma1": 0.0, "gamma2": 0.0}, (0.22, -0.12)),  # quad
        ({"theta_e": 2.6, "center_x": 0.4, "center_y": 0.3}, (0.9, 0.9)),  # wide double
    ],
)
def test_compact_source_peaks_sit_on_the_solver_images(lens_overrides, source_xy):
    lens = _lens(**lens_overrides)
    source = _source(
        source_x=source_xy[0],
        source_y=source_xy[1],
        source_r_eff=0.02,
        source_n_sersic=1.0,
        source_e1=0.0,
        source_e2=0.0,
    )
    kernel = moffat_kernel(fwhm=0.5, beta=3.5, pixel_scale=S)
    scene = _render(lens, source, kernel, supersample=4)
    solved = solve_batch(
        mass={k: np.array([lens[k]]) for k in MASS_KEYS},
        source_x=np.array([source_xy[0]]),
        source_y=np.array([source_xy[1]]),
        z_lens=np.array([0.5]),
        z_source=np.array([2.0]),
        table=distance_table(),
        solver="model",
    )
    n = int(solved["n_images"][0])
    assert n >= 2
    ix, iy = solved["image_x"][0, :n], solved["image_y"][0, :n]
    mu = np.abs(solved["image_magnification"][0, :n])
    image = scene.lensed_source[2]
    px, py, flux = _peaks(image, threshold=0.05 * image.max())
    # Every clear peak of the lensed light is an image of the solver...
    distance_to_image = np.hypot(px[:, None] - ix[None], py[:, None] - iy[None]).min(axis=1)
    assert np.all(distance_to_image < 0.75 * S), (px, py, ix, iy)
    # ...and every image bright enough to make a clear peak has one within a pixel.
    bright = mu > 0.3 * mu.max()
    distance_to_peak = np.hypot(ix[bright, None] - px[None], iy[bright, None] - py[None]).min(1)
    assert np.all(distance_to_peak < 0.75 * S), (px, py, ix, iy)
    # The brightest pixel is the most magnified image.
    brightest = np.argmax(flux)
    nearest = np.argmin(np.hypot(ix - px[brightest], iy - py[brightest]))
    assert mu[nearest] >= 0.8 * mu.max()


@pytest.mark.parametrize(("galaxy_index", "rotation", "scale"), [(10, 0.0, 0.14), (200, 2.1, 0.1)])
def test_hudf_source_matches_lenstronomy_interpolated_light(galaxy_index, rotation, scale):
    """The real-galaxy path: a HUDF stamp as lenstronomy's ``INTERPOL`` source light."""

    catalogue = hudf_catalogue()
    stamp = max(catalogue.stamps[galaxy_index : galaxy_index + 50], key=lambda s: s.griz.size)
    lens = _lens()
    source = _source(
        galaxy_id=stamp.galaxy_id,
        source_pixel_scale=scale,
        source_rotation=rotation,
        source_mirror=0,
    )
    kernel = moffat_kernel(fwhm=0.7, beta=3.0, pixel_scale=S)
    scene = _render(lens, source, kernel)
    # lenstronomy centres INTERPOL on the stamp's geometric centre; ours is the light centre.
    h, w = stamp.griz.shape[1:]
    d_col, d_row = stamp.centre[1] - (w - 1) / 2.0, stamp.centre[0] - (h - 1) / 2.0
    cos, sin = np.cos(rotation), np.sin(rotation)
    center_x = source["source_x"] - scale * (cos * d_col - sin * d_row)
    center_y = source["source_y"] - scale * (sin * d_col + cos * d_row)
    model = _lenstronomy_model(kernel, "INTERPOL", lens_light=False)
    kwargs_lens = _lenstronomy_lens(lens)
    i_band = 2
    # INTERPOL takes surface brightness: stamp flux per pixel / pixel area, times the flux.
    surface = stamp.griz[i_band].astype(np.float64) / scale**2
    kwargs_source = [
        {
            "image": surface,
            "amp": float(flux_from_mag(source["source_mag_i"])),
            "center_x": center_x,
            "center_y": center_y,
            "phi_G": rotation,
            "scale": scale,
        }
    ]
    ref = model.image(kwargs_lens, kwargs_source, None, None, lens_light_add=False)
    assert ref.sum() > flux_from_mag(source["source_mag_i"])  # lensed and magnified, not empty
    np.testing.assert_allclose(scene.lensed_source[i_band], ref, rtol=0, atol=1e-4 * ref.max())

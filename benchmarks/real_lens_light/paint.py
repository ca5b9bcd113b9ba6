"""Paint new lensed arcs onto a real lens galaxy with lenscast's own simulation code.

EVALUATION ONLY when the galaxy is one of the HOLISMOKES IX release's 16 example cutouts (as in
``benchmarks/real_lens_light_set.py``): never train, calibrate, select or tune on the result.

The real-lens-light evaluation set of ``docs/evaluation/real_lens_light.md``: the galaxy's
cutout (real light profile, neighbours and coadd noise) is the foreground; the simulator
(:mod:`lenscast.trainer.simulation`) adds one lensed source:

* mass: SIE + external shear centred on the measured light centre; axis ratio and angle
  those of the light (:mod:`.light_shape`) with the simulator's mass-light scatter
  (``lens_population.MASS_Q_SCATTER``, ``MASS_ANGLE_SCATTER_DEG``); shear as the simulator's;
  θ_E uniform on :data:`THETA_E_RANGE`; redshifts from ``lens_population.draw_redshifts``
  (they set the delays only);
* source: a real HUDF galaxy from the *test* split (``source_population.draw_source`` with
  ``hudf_fraction = 1``), i-band magnitude before lensing uniform on :data:`SOURCE_MAG_RANGE`
  (its own colours kept);
* PSF: Moffat (``observing.draw_conditions``), the background noise the cutout's own
  (``light_shape.background_rms``);
* the lensed source is rendered noiseless (``render.render_scene`` with the analytic lens
  light switched off: zero flux), given its own Poisson noise (the background noise is in the
  real cutout already) and added to the real cutout;
* the arc contrast (the simulator's: arc over foreground at the arc's brightest pixel) uses
  the real cutout smoothed by a 1-pixel Gaussian as the foreground;
* accepted when the source centre has >= 2 images and the arc SNR (the simulator's
  definition, with the real cutout as foreground) is >= :data:`MIN_ARC_SNR` in some band; the
  arc contrast is recorded, not cut on (the benchmark reports the systems that pass the
  training cut of 0.5 separately).

Truths are exact: the image positions and delays of the source centre come from the same
solver as the training shards (``truths.solve_batch``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from benchmarks.real_lens_light import light_shape
from lenscast.trainer.simulation import lens_population, observing, source_population
from lenscast.trainer.simulation.cosmology import DistanceTable, sis_velocity_dispersion
from lenscast.trainer.simulation.hudf import Catalogue
from lenscast.trainer.simulation.mass import ellipticity_to_phi_q, phi_q_to_ellipticity
from lenscast.trainer.simulation.render import RenderedScene, render_scene
from lenscast.trainer.simulation.simulator import arc_contrast, arc_snr
from lenscast.trainer.simulation.survey import HSC_WIDE
from lenscast.trainer.simulation.truths import MASS_KEYS, solve_batch

THETA_E_RANGE = (0.5, 3.0)
SOURCE_MAG_RANGE = (22.0, 25.0)
MIN_ARC_SNR = 20.0
#: Attempts per accepted system before giving up on a galaxy (a sign of a broken cutout).
MAX_ATTEMPTS_PER_SYSTEM = 200
_BANDS = "griz"
#: Smoothing of the real foreground (pixels) before the arc contrast: the simulator compares
#: with a noiseless foreground, and a single noisy pixel would make the ratio meaningless.
_CONTRAST_SMOOTH_PIX = (1.0, 1.0)


@dataclass(frozen=True)
class RealLens:
    """A real lens galaxy cutout and what is measured on it.

    Attributes
    ----------
    image : ndarray, shape (4, 64, 64)
        griz coadd flux, north up, east left.
    centre_x, centre_y : float
        Light centre, arcsec (x east, y north) from the cutout centre.
    light_e1, light_e2 : float
        Light ellipticity, lenstronomy convention.
    background_rms : ndarray, shape (4,)
        Background noise per band, coadd flux.
    magnitudes : ndarray, shape (4,)
        griz AB magnitudes within ``light_shape.APERTURE_ARCSEC``.
    """

    image: np.ndarray
    centre_x: float
    centre_y: float
    light_e1: float
    light_e2: float
    background_rms: np.ndarray
    magnitudes: np.ndarray


def measure(image: np.ndarray) -> RealLens:
    """Measure a real lens galaxy cutout (see :mod:`.light_shape`)."""
    image = np.asarray(image, dtype=np.float64)
    row, col = light_shape.light_centre(image[light_shape.I_BAND])
    x, y = light_shape.pixel_to_sky(row, col, size=image.shape[-1])
    noise = light_shape.background_rms(image)
    e1, e2 = light_shape.light_ellipticity(image[light_shape.I_BAND], row=row, col=col,
                                           noise=float(noise[light_shape.I_BAND]))
    return RealLens(image, x, y, e1, e2, noise,
                    light_shape.aperture_magnitudes(image, row=row, col=col))


def draw_mass(rng: np.random.Generator, lens: RealLens, *, table: DistanceTable) -> dict:
    """SIE + shear on the real galaxy (spec names), plus ``z_lens``, ``z_source``, ``sigma_v``."""
    theta_e = rng.uniform(*THETA_E_RANGE)
    z_lens, z_source = lens_population.draw_redshifts(rng)
    phi_light, q_light = ellipticity_to_phi_q(e1=lens.light_e1, e2=lens.light_e2)
    q = float(np.clip(q_light + rng.normal(0.0, lens_population.MASS_Q_SCATTER), 0.35, 1.0))
    phi = phi_light + np.deg2rad(rng.normal(0.0, lens_population.MASS_ANGLE_SCATTER_DEG))
    e1, e2 = phi_q_to_ellipticity(phi=phi, q=q)
    shear = min(abs(rng.normal(0.0, 0.05)), 0.15)
    shear_angle = rng.uniform(0.0, np.pi)
    return {
        "theta_e": float(theta_e), "e1": float(e1), "e2": float(e2),
        "center_x": lens.centre_x, "center_y": lens.centre_y,
        "gamma1": float(shear * np.cos(2.0 * shear_angle)),
        "gamma2": float(shear * np.sin(2.0 * shear_angle)),
        "z_lens": z_lens, "z_source": z_source,
        "sigma_v": float(sis_velocity_dispersion(theta_e=theta_e, z_lens=z_lens,
                                                 z_source=z_source, table=table)),
    }


def _draw_source(rng: np.random.Generator, mass: dict, catalogue: Catalogue) -> dict:
    source = source_population.draw_source(rng, lens=mass, catalogue=catalogue, split="test",
                                           hudf_fraction=1.0)
    shift = rng.uniform(*SOURCE_MAG_RANGE) - source["source_mag_i"]
    for band in _BANDS:
        source[f"source_mag_{band}"] += shift  # keeps the galaxy's own colours
    return source


def _dark_lens(mass: dict) -> dict:
    """The mass with the analytic lens light at zero flux (the real galaxy is the light)."""
    return {**mass, **{f"lens_mag_{b}": np.inf for b in _BANDS}, "lens_r_eff": 1.0,
            "lens_n_sersic": 4.0, "lens_e1": 0.0, "lens_e2": 0.0}


def paint_one(rng: np.random.Generator, lens: RealLens, *, catalogue: Catalogue,
              table: DistanceTable, attempts: Counter) -> tuple[np.ndarray, dict]:
    """Draw until a system is accepted; return its noisy image (float32) and truths.

    Raises
    ------
    RuntimeError
        After :data:`MAX_ATTEMPTS_PER_SYSTEM` rejected draws.
    """
    for _ in range(MAX_ATTEMPTS_PER_SYSTEM):
        attempts["total"] += 1
        mass = draw_mass(rng, lens, table=table)
        source = _draw_source(rng, mass, catalogue)
        conditions = observing.draw_conditions(rng)
        for band, rms in zip(_BANDS, lens.background_rms, strict=True):
            conditions[f"background_rms_{band}"] = float(rms)
        solved = solve_batch(mass={k: np.array([mass[k]]) for k in MASS_KEYS},
                             source_x=np.array([source["source_x"]]),
                             source_y=np.array([source["source_y"]]),
                             z_lens=np.array([mass["z_lens"]]),
                             z_source=np.array([mass["z_source"]]), table=table)
        if solved["n_images"][0] < 2:
            attempts["rejected_n_images"] += 1
            continue
        scene = render_scene(lens=_dark_lens(mass), source=source, neighbours=[],
                             kernels=observing.psf_kernels(conditions), catalogue=catalogue)
        arcs = scene.lensed_source
        # The real cutout is the foreground: its light enters the arc SNR and contrast.
        snr = arc_snr(RenderedScene(lens.image, arcs, scene.magnification), conditions)
        if snr.max() < MIN_ARC_SNR:
            attempts["rejected_arc_snr"] += 1
            continue
        attempts["accepted"] += 1
        gain = np.array([c.gain for c in HSC_WIDE])[:, None, None]
        noise = np.sqrt(np.maximum(arcs, 0.0) / gain) * rng.standard_normal(arcs.shape)
        image = (lens.image + arcs + noise).astype(np.float32)
        truths = {
            **{k: mass[k] for k in (*MASS_KEYS, "z_lens", "z_source", "sigma_v")},
            **{k: v for k, v in source.items() if k != "clumps"},
            **conditions, "gamma": 2.0, "magnification": scene.magnification,
            "arc_contrast": float(arc_contrast(RenderedScene(
                ndimage.gaussian_filter(lens.image, (0.0, *_CONTRAST_SMOOTH_PIX)), arcs,
                scene.magnification)).max()),
            "n_images": int(solved["n_images"][0]), "arc_snr": snr,
            **{k: solved[k][0] for k in ("image_x", "image_y", "time_delay_days",
                                          "image_magnification")},
        }
        return image, truths
    raise RuntimeError(f"no system accepted in {MAX_ATTEMPTS_PER_SYSTEM} attempts: the lens "
                       "cutout leaves no detectable arcs")

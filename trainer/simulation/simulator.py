"""Simulate batches of accepted lens systems: draw, solve, render, cut, add noise.

One attempt draws redshifts, the Einstein radius, the deflector, the source and the observing
conditions, finds the images of the source centre, renders the scene and applies the
acceptance cuts (HOLISMOKES-like: the source is multiply imaged and the lensed arcs are
detectable):

* ``n_images >= 2`` for the source centre;
* arc SNR ``>= min_arc_snr`` (default 20) in at least one band, where
  ``SNR_b = sum S_b / sqrt(sum var_b)`` over the pixels whose noiseless lensed-source flux
  ``S_b`` exceeds the pixel noise ``sqrt(var_b)`` (``observing.pixel_variance``);
* arc contrast ``>= min_contrast`` (default 0.5) in at least one band: at the brightest pixel
  of the lensed source, its flux over the lens-plus-neighbours flux there (Cañameras et al.
  2020 required the arcs to stand out from the lens light in the same way), so the arcs are
  visible, not buried in the deflector.

Rejected attempts are redrawn from scratch (the accepted population is the prior times the
selection, as for a real survey) and counted per reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lenscast.trainer.simulation import lens_population, observing, source_population
from lenscast.trainer.simulation.cosmology import DistanceTable, distance_table
from lenscast.trainer.simulation.hudf import Catalogue, hudf_catalogue
from lenscast.trainer.simulation.render import RenderedScene, render_scene
from lenscast.trainer.simulation.survey import CUTOUT_SIZE_PIX
from lenscast.trainer.simulation.truths import MASS_KEYS, MAX_IMAGES, solve_batch

_BANDS = "griz"

#: Scalar truth columns and their dtypes (every drawn parameter of a system).
SCALAR_COLUMNS: dict[str, str] = {
    **{name: "float64" for name in
       ("theta_e", "e1", "e2", "center_x", "center_y", "gamma1", "gamma2", "gamma",
        "z_lens", "z_source", "sigma_v", "source_x", "source_y",
        *(f"lens_mag_{b}" for b in _BANDS), "lens_r_eff", "lens_n_sersic", "lens_e1", "lens_e2",
        *(f"source_mag_{b}" for b in _BANDS), "source_r_eff", "source_n_sersic", "source_e1",
        "source_e2", "source_pixel_scale", "source_rotation", "clump_fraction",
        *(f"seeing_{b}" for b in _BANDS), *(f"psf_beta_{b}" for b in _BANDS), "psf_e1",
        "psf_e2", *(f"background_rms_{b}" for b in _BANDS), "magnification", "arc_contrast")},
    "source_kind": "int8",
    "source_mirror": "int8",
    "galaxy_id": "int32",
    "n_clumps": "int8",
    "n_neighbours": "int8",
    "n_images": "int8",
}
#: Per-image columns, shape (n, MAX_IMAGES), arrival order, NaN padded.
IMAGE_COLUMNS = ("image_x", "image_y", "time_delay_days", "image_magnification")
#: Candidates drawn and solved together (the image solver is vectorised).
_BLOCK = 64


@dataclass(frozen=True)
class SimulationConfig:
    """Settings of a simulation run (recorded in the manifest).

    Attributes
    ----------
    split : str
        HUDF galaxy set: "train", "val" or "test".
    theta_e_prior : str
        "uniform" (0.5-5") or "vdf".
    hudf_fraction : float
        Probability that a source is a real HUDF galaxy (else parametric).
    psf_ellipticity : (float, float)
        Range of the PSF's ``|e|``, drawn uniformly (equal ends: that value; ``(0, 0)``: round).
    min_arc_snr : float
        Acceptance threshold on the best band's arc SNR.
    min_contrast : float
        Acceptance threshold on the best band's source/foreground ratio at the arc peak.
    image_solver : str
        "model" (the physics core) or "lenstronomy" (see ``truths``).
    h0, om0 : float
        Flat Lambda-CDM cosmology for the time delays.
    lens_light_scatter_mag, lens_size_scatter_dex : float
        Scatter of the lens light's luminosity (mag) and size (dex) about their relations
        with the velocity dispersion (``lens_population.draw_lens``).
    mass_angle_scatter_deg, mass_q_scatter : float
        Scatter of the mass's position angle (deg) and axis ratio about the lens light's.
    source_placement : str
        "radius", "area" or "mixed" (``source_population.SOURCE_PLACEMENTS``).
    gaussian_psf_fraction : float
        Fraction of systems whose PSFs are Gaussian instead of Moffat (``psf_beta_* = inf``).
    """

    split: str = "train"
    theta_e_prior: str = "uniform"
    hudf_fraction: float = 0.8
    psf_ellipticity: tuple[float, float] = (0.0, 0.0)
    min_arc_snr: float = 20.0
    min_contrast: float = 0.5
    image_solver: str = "model"
    h0: float = 70.0
    om0: float = 0.3
    lens_light_scatter_mag: float = lens_population.FJ_SCATTER_MAG
    lens_size_scatter_dex: float = lens_population.SIZE_SCATTER_DEX
    mass_angle_scatter_deg: float = lens_population.MASS_ANGLE_SCATTER_DEG
    mass_q_scatter: float = lens_population.MASS_Q_SCATTER
    source_placement: str = "radius"
    gaussian_psf_fraction: float = 0.0


@dataclass
class Batch:
    """Accepted systems: noisy images, truths and the attempt statistics."""

    images: np.ndarray
    truths: dict[str, np.ndarray]
    attempts: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class Candidate:
    """One drawn system before rendering: all parameters, no pixels yet."""

    lens: dict
    source: dict
    conditions: dict[str, float]
    neighbours: list[dict]
    z_lens: float
    z_source: float


def arc_snr(scene: RenderedScene, conditions: dict[str, float]) -> np.ndarray:
    """Arc SNR per band (see module docstring), shape (4,)."""
    variance = observing.pixel_variance(scene.total, conditions)
    signal = scene.lensed_source
    mask = signal > np.sqrt(variance)
    total = np.where(mask, signal, 0.0).sum(axis=(1, 2))
    noise = np.sqrt(np.where(mask, variance, 0.0).sum(axis=(1, 2)))
    return np.where(noise > 0, total / np.where(noise > 0, noise, 1.0), 0.0)


def arc_contrast(scene: RenderedScene) -> np.ndarray:
    """Lensed-source over foreground flux at the source's brightest pixel, per band (4,)."""
    source = scene.lensed_source.reshape(4, -1)
    peak = np.argmax(source, axis=1)
    bands = np.arange(4)
    foreground = np.maximum(scene.foreground.reshape(4, -1)[bands, peak], 1e-12)
    return source[bands, peak] / foreground


def draw_candidate(rng: np.random.Generator, *, config: SimulationConfig,
                   catalogue: Catalogue, table: DistanceTable) -> Candidate:
    """Draw every parameter of one system (see the population modules)."""
    z_lens, z_source = lens_population.draw_redshifts(rng)
    theta_e = lens_population.draw_theta_e(rng, prior=config.theta_e_prior, z_lens=z_lens,
                                           z_source=z_source, table=table)
    lens = lens_population.draw_lens(rng, theta_e=theta_e, z_lens=z_lens, z_source=z_source,
                                     table=table, light_scatter_mag=config.lens_light_scatter_mag,
                                     size_scatter_dex=config.lens_size_scatter_dex,
                                     mass_angle_scatter_deg=config.mass_angle_scatter_deg,
                                     mass_q_scatter=config.mass_q_scatter)
    source = source_population.draw_source(rng, lens=lens, catalogue=catalogue,
                                           split=config.split, hudf_fraction=config.hudf_fraction,
                                           placement=config.source_placement)
    conditions = observing.draw_conditions(rng, psf_ellipticity=config.psf_ellipticity,
                                           gaussian_psf_fraction=config.gaussian_psf_fraction)
    neighbours = source_population.draw_neighbours(rng, lens=lens, catalogue=catalogue,
                                                   split=config.split)
    return Candidate(lens, source, conditions, neighbours, z_lens, z_source)


def _solve(candidates: list[Candidate], *, config: SimulationConfig,
           table: DistanceTable) -> dict[str, np.ndarray]:
    mass = {k: np.array([c.lens[k] for c in candidates]) for k in MASS_KEYS}
    return solve_batch(mass=mass, source_x=np.array([c.source["source_x"] for c in candidates]),
                       source_y=np.array([c.source["source_y"] for c in candidates]),
                       z_lens=np.array([c.z_lens for c in candidates]),
                       z_source=np.array([c.z_source for c in candidates]),
                       table=table, solver=config.image_solver)


def simulate_batch(n: int, *, seed: np.random.SeedSequence, config: SimulationConfig) -> Batch:
    """Simulate ``n`` accepted systems from ``seed``.

    Candidates are drawn in blocks and their images solved together (the physics core is
    vectorised); each multiply imaged candidate is then rendered and cut in turn.

    Parameters
    ----------
    n : int
        Number of accepted systems.
    seed : numpy.random.SeedSequence
        Determines the batch completely (shards use ``SeedSequence(seed, spawn_key=(k,))``).
    config : SimulationConfig

    Returns
    -------
    Batch
        ``images`` float32 (n, 4, 64, 64) in coadd flux; ``truths`` with the columns of
        :data:`SCALAR_COLUMNS`, :data:`IMAGE_COLUMNS` (n, MAX_IMAGES), ``arc_snr`` (n, 4) and
        ``split`` (n,) strings.
    """
    rng = np.random.default_rng(seed)
    catalogue = hudf_catalogue()
    table = distance_table(h0=config.h0, om0=config.om0)
    attempts: Counter = Counter()
    images = np.empty((n, 4, CUTOUT_SIZE_PIX, CUTOUT_SIZE_PIX), dtype=np.float32)
    truths: dict[str, np.ndarray] = {k: np.empty(n, dtype=d) for k, d in SCALAR_COLUMNS.items()}
    for name in IMAGE_COLUMNS:
        truths[name] = np.empty((n, MAX_IMAGES))
    truths["arc_snr"] = np.empty((n, 4))
    accepted = 0
    while accepted < n:
        block = [draw_candidate(rng, config=config, catalogue=catalogue, table=table)
                 for _ in range(_BLOCK)]
        solved = _solve(block, config=config, table=table)
        for j, cand in enumerate(block):
            if accepted == n:
                break
            attempts["total"] += 1
            if solved["n_images"][j] < 2:
                attempts["rejected_n_images"] += 1
                continue
            scene = render_scene(lens=cand.lens, source=cand.source, neighbours=cand.neighbours,
                                 kernels=observing.psf_kernels(cand.conditions),
                                 catalogue=catalogue)
            snr = arc_snr(scene, cand.conditions)
            if snr.max() < config.min_arc_snr:
                attempts["rejected_arc_snr"] += 1
                continue
            contrast = arc_contrast(scene)
            if contrast.max() < config.min_contrast:
                attempts["rejected_contrast"] += 1
                continue
            attempts["accepted"] += 1
            images[accepted] = observing.add_noise(rng, scene.total, cand.conditions)
            scalars = {**cand.lens, **cand.conditions,
                       **{k: v for k, v in cand.source.items() if k != "clumps"},
                       "gamma": 2.0, "z_lens": cand.z_lens, "z_source": cand.z_source,
                       "magnification": scene.magnification,
                       "n_neighbours": len(cand.neighbours), "arc_contrast": float(contrast.max()),
                       "n_images": solved["n_images"][j]}
            for name in SCALAR_COLUMNS:
                truths[name][accepted] = scalars[name]
            for name in IMAGE_COLUMNS:
                truths[name][accepted] = solved[name][j]
            truths["arc_snr"][accepted] = snr
            accepted += 1
    truths["split"] = np.full(n, config.split)
    return Batch(images, truths, attempts)

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

Options beyond the default sets: ``lens_light="realistic"`` draws the lens light of
:mod:`~lenscast.trainer.simulation.realistic_light` and the coadd effects of
:mod:`~lenscast.trainer.simulation.coadd_effects`; ``lens_light="real"`` the same, with a real
elliptical of :mod:`~lenscast.trainer.simulation.real_galaxies` as the lens galaxy (and real
spirals, discs and mergers among the non-lenses); ``non_lens_fraction`` makes that fraction of the
systems non-lenses (:mod:`~lenscast.trainer.simulation.non_lenses`: no cuts, ``is_lens = 0``, mass
truths drawn from the prior independently of the image).

With ``lensed_source=False`` the same deflectors are drawn, rendered and observed without their
source: non-lenses that look like the lens galaxies (lens light, neighbours, noise, no arcs), for
the non-lens alerts of a sample stream. There is nothing to accept or reject then; the truths
keep the drawn (unrendered) source's columns, with ``n_images`` 0, NaN image columns and
magnification, and a zero arc SNR.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lenscast.model.defaults import DEFAULT_H0, DEFAULT_OM0
from lenscast.trainer.simulation import (
    coadd_effects,
    lens_population,
    non_lenses,
    observing,
    real_galaxies,
    realistic_light,
    source_population,
)
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
    "is_lens": "int8",
    "non_lens_kind": "int8",
    "lens_light_kind": "int8",
    "lens_galaxy_id": "int32",
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
    lens_light : str
        "analytic" (one Sérsic tied to θ_E), "realistic" (``realistic_light``, with the
        coadd effects of ``coadd_effects``) or "real" (a real elliptical of
        ``real_galaxies``, otherwise as "realistic").
    real_galaxies : str
        Directory of the real-galaxy catalogue (``real_galaxies``); needed for "real".
    non_lens_fraction : float
        Fraction of the systems that are non-lenses (``non_lenses``).
    lensed_source : bool
        False: render the deflector and its neighbours only (non-lenses, see module docstring).
    """

    split: str = "train"
    theta_e_prior: str = "uniform"
    hudf_fraction: float = 0.8
    psf_ellipticity: tuple[float, float] = (0.0, 0.0)
    min_arc_snr: float = 20.0
    min_contrast: float = 0.5
    image_solver: str = "model"
    h0: float = DEFAULT_H0
    om0: float = DEFAULT_OM0
    lens_light_scatter_mag: float = lens_population.FJ_SCATTER_MAG
    lens_size_scatter_dex: float = lens_population.SIZE_SCATTER_DEX
    mass_angle_scatter_deg: float = lens_population.MASS_ANGLE_SCATTER_DEG
    mass_q_scatter: float = lens_population.MASS_Q_SCATTER
    source_placement: str = "radius"
    gaussian_psf_fraction: float = 0.0
    lens_light: str = "analytic"
    real_galaxies: str = ""
    non_lens_fraction: float = 0.0
    lensed_source: bool = True


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
    companions: list[dict] = []
    if config.lens_light == "realistic":
        lens, companions = realistic_light.make_realistic(rng, lens)
    elif config.lens_light == "real":
        lens, companions = real_galaxies.make_real(
            rng, lens, catalogue=real_galaxies.real_galaxy_catalogue(config.real_galaxies),
            split=config.split, mass_angle_scatter_deg=config.mass_angle_scatter_deg,
            mass_q_scatter=config.mass_q_scatter)
    source = source_population.draw_source(rng, lens=lens, catalogue=catalogue,
                                           split=config.split, hudf_fraction=config.hudf_fraction,
                                           placement=config.source_placement)
    conditions = observing.draw_conditions(rng, psf_ellipticity=config.psf_ellipticity,
                                           gaussian_psf_fraction=config.gaussian_psf_fraction)
    neighbours = source_population.draw_neighbours(rng, lens=lens, catalogue=catalogue,
                                                   split=config.split) + companions
    if config.lens_light in ("realistic", "real"):
        conditions.update(coadd_effects.draw(rng))
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
    # Whether the next accepted slot is a non-lens: drawn once per slot, so the fraction holds
    # among the accepted systems whatever the lenses' acceptance rate.
    slot_non_lens: bool | None = None
    light_kind = realistic_light.LENS_LIGHT_MODES.index(config.lens_light)
    while accepted < n:
        block = [draw_candidate(rng, config=config, catalogue=catalogue, table=table)
                 for _ in range(_BLOCK)]
        solved = _solve(block, config=config, table=table)
        for j, cand in enumerate(block):
            if accepted == n:
                break
            if slot_non_lens is None:
                slot_non_lens = (config.non_lens_fraction > 0.0
                                 and rng.uniform() < config.non_lens_fraction)
            if slot_non_lens:
                attempts["non_lens"] += 1
                _fill_non_lens(rng, accepted, cand, images=images, truths=truths,
                               config=config, catalogue=catalogue, table=table)
                truths["lens_light_kind"][accepted] = light_kind
                accepted += 1
                slot_non_lens = None
                continue
            attempts["total"] += 1
            lensed = config.lensed_source
            if lensed and solved["n_images"][j] < 2:
                attempts["rejected_n_images"] += 1
                continue
            scene = render_scene(lens=cand.lens, source=cand.source, neighbours=cand.neighbours,
                                 kernels=observing.psf_kernels(cand.conditions),
                                 catalogue=catalogue)
            snr = arc_snr(scene, cand.conditions) if lensed else np.zeros(4)
            if lensed and snr.max() < config.min_arc_snr:
                attempts["rejected_arc_snr"] += 1
                continue
            contrast = arc_contrast(scene) if lensed else np.zeros(4)
            if lensed and contrast.max() < config.min_contrast:
                attempts["rejected_contrast"] += 1
                continue
            attempts["accepted"] += 1
            pixels = scene.total if lensed else scene.foreground
            images[accepted] = observing.add_noise(rng, pixels, cand.conditions)
            scalars = {**cand.lens, **cand.conditions,
                       **{k: v for k, v in cand.source.items() if k != "clumps"},
                       "gamma": 2.0, "z_lens": cand.z_lens, "z_source": cand.z_source,
                       "magnification": scene.magnification if lensed else np.nan,
                       "n_neighbours": len(cand.neighbours), "arc_contrast": float(contrast.max()),
                       "n_images": solved["n_images"][j] if lensed else 0,
                       "is_lens": 1 if lensed else 0,
                       "non_lens_kind": (
                           -1 if lensed else non_lenses.NON_LENS_KINDS.index("no_source")
                       ),
                       "lens_light_kind": light_kind,
                       "lens_galaxy_id": cand.lens.get("lens_galaxy_id", -1)}
            for name in SCALAR_COLUMNS:
                truths[name][accepted] = scalars[name]
            for name in IMAGE_COLUMNS:
                truths[name][accepted] = solved[name][j] if lensed else np.nan
            truths["arc_snr"][accepted] = snr
            accepted += 1
            slot_non_lens = None
    truths["split"] = np.full(n, config.split)
    return Batch(images, truths, attempts)


def _fill_non_lens(rng: np.random.Generator, index: int, cand: Candidate, *,
                   images: np.ndarray, truths: dict[str, np.ndarray], config: SimulationConfig,
                   catalogue: Catalogue, table: DistanceTable) -> None:
    """Render a non-lens from ``cand`` into row ``index`` (see :mod:`non_lenses`)."""
    real = (real_galaxies.real_galaxy_catalogue(config.real_galaxies)
            if config.lens_light == "real" else None)
    kinds = non_lenses.NON_LENS_KINDS if real is None else non_lenses.REAL_NON_LENS_KINDS
    kind_index = int(rng.integers(0, len(kinds)))
    kind = kinds[kind_index]
    lens, neighbours = non_lenses.scene(rng, kind, lens=cand.lens, neighbours=cand.neighbours,
                                        catalogue=catalogue, split=config.split,
                                        real_catalogue=real)
    scene = render_scene(lens=lens, source=cand.source, neighbours=neighbours,
                         kernels=observing.psf_kernels(cand.conditions), catalogue=catalogue)
    scale = 0.0
    if kind == "faint_arcs":
        scale = non_lenses.faint_arc_scale(rng, arc_snr(scene, cand.conditions))
    scene = RenderedScene(scene.foreground, scene.lensed_source * scale,
                          scene.magnification)
    image = observing.add_noise(rng, scene.total, cand.conditions)
    if kind == "artefact" and not any(nb["kind"] == "trail" for nb in neighbours):
        rms = np.array([cand.conditions[f"background_rms_{b}"] for b in _BANDS])
        image = non_lenses.add_defects(rng, image, rms)
    images[index] = image
    # The mass truths: an independent draw from the prior, unrelated to the image.
    theta_e = lens_population.draw_theta_e(rng, prior=config.theta_e_prior, z_lens=cand.z_lens,
                                           z_source=cand.z_source, table=table)
    prior = lens_population.draw_lens(rng, theta_e=theta_e, z_lens=cand.z_lens,
                                      z_source=cand.z_source, table=table)
    scalars = {**cand.lens, **cand.conditions,
               **{k: v for k, v in cand.source.items() if k != "clumps"},
               **{k: prior[k] for k in (*MASS_KEYS, "sigma_v")},
               "gamma": 2.0, "z_lens": cand.z_lens, "z_source": cand.z_source,
               "magnification": scene.magnification, "n_neighbours": len(neighbours),
               "arc_contrast": 0.0, "n_images": 0, "is_lens": 0, "non_lens_kind": kind_index,
               "lens_light_kind": 0,
               "lens_galaxy_id": lens.get("lens_galaxy_id", -1)}
    for name in SCALAR_COLUMNS:
        truths[name][index] = scalars[name]
    for name in IMAGE_COLUMNS:
        truths[name][index] = np.nan
    truths["arc_snr"][index] = arc_snr(scene, cand.conditions)

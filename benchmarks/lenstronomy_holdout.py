"""A test set simulated apart from lenscast's simulator: lenstronomy renders, solves and times.

The shipped model is trained and tested on systems from ``trainer/simulation`` (HUDF and
parametric sources, Moffat PSFs, a Gaussian noise model, lenscast's own renderer and solver).
This script makes systems that share none of that code: lenstronomy's ``SimAPI`` renders every
band (``ImageModel``, supersampling 3, Gaussian PSF), lenstronomy's noise model adds the
background and source noise of each band, lenstronomy's ``analytical`` solver finds the true
images and ``LensModel.arrival_time`` their delays. The populations are drawn here, from choices
of their own:

* **lens mass**: SIE + external shear (lenstronomy ``SIE`` + ``SHEAR``, the parameter spec's
  conventions); θ_E uniform on ``--theta-e`` (0.5-4"); axis ratio uniform 0.5-1 at a uniform
  angle; shear modulus uniform 0-0.08; centre Gaussian, 0.15" per axis, within 0.5";
  ``z_lens`` uniform 0.25-0.8, ``z_source`` uniform ``z_lens + 0.4`` to 3;
* **lens light**: one elliptical Sérsic (n 3-6, R_eff 0.6-1.6 θ_E but at least 0.5"), axis
  ratio and angle scattered by 0.1 and 15° about the mass's, i-band magnitude
  ``19.6 - 2.5 log10(θ_E) + N(0, 0.4)``, early-type colours at z ~ 0.5 with 0.1 mag scatter;
* **source**: an elliptical Sérsic (n 0.5-2.5, R_eff 0.12-0.5", q 0.4-1) plus 0-3 compact
  star-forming knots (n = 1, R_eff 0.03-0.1", each 5-20 % of the main flux, 0.3 mag bluer in g
  and r) scattered about it; i-band magnitude 22.5-25; blue colours (g - i uniform 0-1); the
  source centre uniform in a disc of radius 0.75 θ_E about the lens centre;
* **conditions** (HSC-SSP Wide, Aihara et al. 2018): Gaussian PSF (``--psf moffat``: Moffat,
  beta = 3, the same FWHM) with FWHM log-normal about
  g 0.77", r 0.76", i 0.58", z 0.68" (0.15 scatter, 0.45-1.2"); 600 s in g, r and 1200 s in
  i, z (4 and 6 visits, read noise 4.5 e-); sky brightness about g 21.4, r 20.6, i 19.7,
  z 18.9 mag/arcsec^2 (0.3 mag scatter), which with the zeropoints below gives median 5σ
  point-source depths of about 26.6, 26.2, 26.2 and 25.3 — the survey's.

Accepted systems (the others are redrawn): the source centre has at least two images, at least
``--min-images-inside`` (default 2) of them inside the cutout (0.3" from its edge), and in at
least one band the lensed source is detected at SNR >= 20 (over the pixels where it exceeds the
noise) and, at its brightest pixel, is at least half as bright as the lens light there. The
second condition is what a lens finder needs to flag a candidate at all: with one image in the
cutout (the other beyond its edge, as happens for θ_E > 3" and an offset source) the cutout
shows a galaxy and a faint companion, and nothing in it measures θ_E.
``--min-images-inside 1`` keeps such systems, ``--lens-light-dmag`` makes the lens light fainter,
to probe how far the model leans on the lens light where the images say little.

Pixels are stored as lenscast's alerts carry them: griz coadd flux at AB zeropoint 27, north up
east left (lenstronomy's pixel grid is set so), in ``lenscast simulate``'s shard format, so
``lenscast evaluate --data DIR`` reads the set like any other::

    python -m benchmarks.lenstronomy_holdout --n 3000 --seed 11 --out data/test_lenstronomy
    lenscast evaluate --model model/weights/lenscast-hsc.onnx --data data/test_lenstronomy \\
        --out docs/evaluation/lenstronomy_holdout

Prints one JSON line with the acceptance statistics and the median depths.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lenscast.model import parameter_spec as spec
from lenscast.trainer.dataset import shard_name, write_manifest, write_shard

SIZE = spec.CUTOUT_SIZE_PIX
PIXEL = spec.PIXEL_SCALE_ARCSEC
#: Images per system stored in the truth columns (an SIE + shear has at most 4 outer images).
MAX_IMAGES = 4
SHARD_SIZE = 500
#: An image counts as inside the cutout this far (arcsec) from its edge.
EDGE_MARGIN = 0.3
READ_NOISE_E = 4.5
CCD_GAIN = 3.0
MIN_ARC_SNR = 20.0
MIN_CONTRAST = 0.5
H0, OM0 = 70.0, 0.3


@dataclass(frozen=True)
class Band:
    """One band's instrument and survey numbers."""

    name: str
    zeropoint_e: float  # AB magnitude of a source giving 1 electron per second
    sky_mag: float  # median sky brightness, mag / arcsec^2
    exposure_s: float  # per visit
    visits: int
    seeing: float  # median FWHM, arcsec


BANDS = (
    Band("g", 28.6, 21.4, 150.0, 4, 0.77),
    Band("r", 28.6, 20.6, 150.0, 4, 0.76),
    Band("i", 28.3, 19.7, 200.0, 6, 0.58),
    Band("z", 27.6, 18.9, 200.0, 6, 0.68),
)
#: Colours relative to i: early-type lens at z ~ 0.5 (g-i, r-i, z-i).
LENS_COLOURS = {"g": 2.1, "r": 0.6, "i": 0.0, "z": -0.3}


def pixel_grid_kwargs() -> dict[str, Any]:
    """lenstronomy's pixel grid in lenscast's frame: ``x = -(col - c) s``, ``y = (row - c) s``."""
    c = (SIZE - 1) / 2.0
    return {
        "ra_at_xy_0": c * PIXEL,
        "dec_at_xy_0": -c * PIXEL,
        "transform_pix2angle": np.array([[-PIXEL, 0.0], [0.0, PIXEL]]),
    }


def _ellipticity(rng: np.random.Generator, q_low: float) -> tuple[float, float, float, float]:
    """``(e1, e2, q, phi)`` of a random axis ratio in ``[q_low, 1]`` at a random angle."""
    from lenstronomy.Util.param_util import phi_q2_ellipticity

    q = rng.uniform(q_low, 1.0)
    phi = rng.uniform(0.0, np.pi)
    e1, e2 = phi_q2_ellipticity(phi, q)
    return float(e1), float(e2), float(q), float(phi)


def draw_system(
    rng: np.random.Generator, theta_e_range: tuple[float, float], lens_light_dmag: float = 0.0
) -> dict[str, Any]:
    """One candidate system: mass, light, source and conditions (before acceptance).

    ``lens_light_dmag`` (mag) is added to the lens light's magnitudes in every band.
    """
    from lenstronomy.Util.param_util import phi_q2_ellipticity, shear_polar2cartesian

    theta_e = float(rng.uniform(*theta_e_range))
    e1, e2, q, phi = _ellipticity(rng, 0.5)
    g1, g2 = shear_polar2cartesian(rng.uniform(0.0, np.pi), rng.uniform(0.0, 0.08))
    while True:
        cx, cy = rng.normal(0.0, 0.15, 2)
        if math.hypot(cx, cy) <= 0.5:
            break
    z_lens = float(rng.uniform(0.25, 0.8))
    z_source = float(rng.uniform(z_lens + 0.4, 3.0))
    mass = {"theta_e": theta_e, "e1": float(e1), "e2": float(e2), "center_x": float(cx),
            "center_y": float(cy), "gamma1": float(g1), "gamma2": float(g2)}  # fmt: skip

    q_light = float(np.clip(q + rng.normal(0.0, 0.1), 0.3, 1.0))
    le1, le2 = phi_q2_ellipticity(phi + math.radians(rng.normal(0.0, 15.0)), q_light)
    lens_i = 19.6 - 2.5 * math.log10(theta_e) + rng.normal(0.0, 0.4) + lens_light_dmag
    lens_light = {
        "R_sersic": max(0.5, theta_e * rng.uniform(0.6, 1.6)), "n_sersic": rng.uniform(3.0, 6.0),
        "e1": float(le1), "e2": float(le2), "center_x": float(cx), "center_y": float(cy),
        "mags": {b: lens_i + LENS_COLOURS[b] + rng.normal(0.0, 0.1) for b in "griz"},
    }  # fmt: skip

    radius = 0.75 * theta_e * math.sqrt(rng.uniform())
    angle = rng.uniform(0.0, 2.0 * np.pi)
    sx, sy = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
    se1, se2, _, _ = _ellipticity(rng, 0.4)
    source_i = float(rng.uniform(22.5, 25.0))
    g_i = float(rng.uniform(0.0, 1.0))
    colours = {"g": g_i, "r": 0.45 * g_i, "i": 0.0, "z": -0.15 * g_i}
    r_eff = float(rng.uniform(0.12, 0.5))
    knots = []
    for _ in range(int(rng.integers(0, 4))):
        knots.append({
            "dx": float(rng.normal(0.0, r_eff)), "dy": float(rng.normal(0.0, r_eff)),
            "R_sersic": float(rng.uniform(0.03, 0.1)),
            "dmag": float(-2.5 * math.log10(rng.uniform(0.05, 0.2))),
        })  # fmt: skip
    source = {
        "x": sx, "y": sy, "R_sersic": r_eff, "n_sersic": float(rng.uniform(0.5, 2.5)),
        "e1": float(se1), "e2": float(se2),
        "mags": {b: source_i + colours[b] for b in "griz"}, "knots": knots,
    }  # fmt: skip

    conditions = {}
    for band in BANDS:
        while True:
            fwhm = band.seeing * math.exp(rng.normal(0.0, 0.15))
            if 0.45 <= fwhm <= 1.2:
                break
        conditions[band.name] = {"seeing": fwhm, "sky": band.sky_mag + rng.normal(0.0, 0.3)}
    return {"mass": mass, "z_lens": z_lens, "z_source": z_source, "lens_light": lens_light,
            "source": source, "conditions": conditions}  # fmt: skip


def _lens_kwargs(mass: dict[str, float]) -> list[dict[str, float]]:
    return [
        {k: mass[k] for k in ("e1", "e2", "center_x", "center_y")} | {"theta_E": mass["theta_e"]},
        {"gamma1": mass["gamma1"], "gamma2": mass["gamma2"], "ra_0": 0.0, "dec_0": 0.0},
    ]


@lru_cache(maxsize=1)
def _cosmology() -> Any:
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(H0=H0, Om0=OM0)


def true_images(system: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """Images of the source centre in arrival order with delays (days), or None if < 2 images."""
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LensModel.Solver.lens_equation_solver import LensEquationSolver

    lens = LensModel(["SIE", "SHEAR"], z_lens=system["z_lens"], z_source=system["z_source"],
                     cosmo=_cosmology())  # fmt: skip
    kwargs = _lens_kwargs(system["mass"])
    sx, sy = system["source"]["x"], system["source"]["y"]
    x, y = LensEquationSolver(lens).image_position_from_source(sx, sy, kwargs, solver="analytical")
    if len(x) < 2:
        return None
    arrival = lens.arrival_time(x, y, kwargs, x_source=sx, y_source=sy)
    order = np.argsort(arrival)[:MAX_IMAGES]
    mag = lens.magnification(x, y, kwargs)
    pad = np.full(MAX_IMAGES, np.nan)
    out = {}
    delays = arrival - arrival.min()
    for name, values in (("image_x", x), ("image_y", y), ("time_delay_days", delays),
                         ("image_magnification", mag)):  # fmt: skip
        column = pad.copy()
        column[: len(order)] = np.asarray(values)[order]
        out[name] = column
    out["n_images"] = np.array(len(x))
    half = SIZE * PIXEL / 2.0 - EDGE_MARGIN
    out["n_images_inside"] = np.array(int(np.sum((np.abs(x) < half) & (np.abs(y) < half))))
    return out


def moffat_kernel(
    fwhm: float, beta: float = 3.0, size: int = 41, oversample: int = 5
) -> np.ndarray:
    """Pixel-integrated, normalised Moffat PSF of FWHM ``fwhm`` (arcsec), ``size`` pixels wide."""
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    offsets = (np.arange(size * oversample) - (size * oversample - 1) / 2.0) / oversample * PIXEL
    xx, yy = np.meshgrid(offsets, offsets)
    fine = (1.0 + (xx**2 + yy**2) / alpha**2) ** (-beta)
    kernel = fine.reshape(size, oversample, size, oversample).sum(axis=(1, 3))
    return kernel / kernel.sum()


def _simulation(band: Band, seeing: float, sky: float, psf: str = "gaussian") -> Any:
    from lenstronomy.SimulationAPI.sim_api import SimAPI

    if psf == "moffat":
        psf_kwargs = {"psf_type": "PIXEL", "kernel_point_source": moffat_kernel(seeing)}
    elif psf == "gaussian":
        psf_kwargs = {"psf_type": "GAUSSIAN"}
    else:
        raise ValueError(f"psf must be gaussian or moffat, not {psf!r}")
    single_band = {
        "pixel_scale": PIXEL, "exposure_time": band.exposure_s, "num_exposures": band.visits,
        "magnitude_zero_point": band.zeropoint_e, "read_noise": READ_NOISE_E,
        "ccd_gain": CCD_GAIN, "sky_brightness": sky, "seeing": seeing,
        "data_count_unit": "e-", "kwargs_pixel_grid": pixel_grid_kwargs(), **psf_kwargs,
    }  # fmt: skip
    model = {"lens_model_list": ["SIE", "SHEAR"], "lens_light_model_list": ["SERSIC_ELLIPSE"],
             "source_light_model_list": ["SERSIC_ELLIPSE"] * 4}  # fmt: skip
    return SimAPI(SIZE, single_band, model)


def render(
    system: dict[str, Any], rng: np.random.Generator, psf: str = "gaussian"
) -> dict[str, Any]:
    """Noisy and noiseless bands (coadd flux, zeropoint 27) and the background rms per band."""
    lens_kwargs = _lens_kwargs(system["mass"])
    light, src = system["lens_light"], system["source"]
    noisy, source_only, lens_only, rms = [], [], [], []
    for band in BANDS:
        cond = system["conditions"][band.name]
        sim = _simulation(band, cond["seeing"], cond["sky"], psf)
        shape = ("R_sersic", "n_sersic", "e1", "e2", "center_x", "center_y")
        lens_mag = [{k: light[k] for k in shape} | {"magnitude": light["mags"][band.name]}]
        components = [{"R_sersic": src["R_sersic"], "n_sersic": src["n_sersic"], "e1": src["e1"],
                       "e2": src["e2"], "center_x": src["x"], "center_y": src["y"],
                       "magnitude": src["mags"][band.name]}]  # fmt: skip
        for knot in src["knots"]:
            components.append({"R_sersic": knot["R_sersic"], "n_sersic": 1.0, "e1": 0.0,
                               "e2": 0.0, "center_x": src["x"] + knot["dx"],
                               "center_y": src["y"] + knot["dy"],
                               "magnitude": src["mags"][band.name] + knot["dmag"]
                               - (0.3 if band.name in "gr" else 0.0)})  # fmt: skip
        # Unused source slots (fewer knots) get zero flux.
        while len(components) < 4:
            components.append(dict(components[0]) | {"magnitude": 99.0})
        kwargs_lens_light, kwargs_source, _ = sim.magnitude2amplitude(lens_mag, components)
        image_model = sim.image_model_class({"supersampling_factor": 3})
        lensed = image_model.image(lens_kwargs, kwargs_source, None, None, source_add=True,
                                   lens_light_add=False)  # fmt: skip
        foreground = image_model.image(lens_kwargs, None, kwargs_lens_light, None,
                                       source_add=False, lens_light_add=True)  # fmt: skip
        model = lensed + foreground
        noise = sim.noise_for_model(model, seed=int(rng.integers(2**31 - 1)))
        to_flux = 10.0 ** (0.4 * (spec.PIXEL_ZEROPOINT_AB - band.zeropoint_e))  # e-/s -> ZP 27
        noisy.append((model + noise) * to_flux)
        source_only.append(lensed * to_flux)
        lens_only.append(foreground * to_flux)
        rms.append(float(np.sqrt(sim.background_noise**2)) * to_flux)
    return {"image": np.stack(noisy), "source": np.stack(source_only),
            "foreground": np.stack(lens_only), "background_rms": np.array(rms)}  # fmt: skip


def detectable(rendered: dict[str, Any]) -> tuple[bool, str]:
    """HOLISMOKES-like acceptance: arcs detected (SNR >= 20) and standing out of the lens light."""
    best_snr, best_contrast = 0.0, 0.0
    for b in range(len(BANDS)):
        src, fg = rendered["source"][b], rendered["foreground"][b]
        rms = rendered["background_rms"][b]
        # Per-pixel noise: background plus the source's own Poisson term is small here; the
        # background alone decides where the arc is above the noise.
        above = src > rms
        if above.any():
            best_snr = max(best_snr, float(src[above].sum() / (rms * math.sqrt(above.sum()))))
        peak = np.unravel_index(np.argmax(src), src.shape)
        best_contrast = max(best_contrast, float(src[peak] / max(fg[peak], 1e-12)))
    if best_snr < MIN_ARC_SNR:
        return False, "arc_snr"
    if best_contrast < MIN_CONTRAST:
        return False, "contrast"
    return True, "accepted"


def depth_5sigma(band: Band, seeing: float, background_rms: float) -> float:
    """5σ point-source depth (AB) for a Gaussian PSF of FWHM ``seeing`` on this background."""
    area = 4.0 * math.pi * (seeing / 2.3548) ** 2 / PIXEL**2  # noise-equivalent pixels
    return spec.PIXEL_ZEROPOINT_AB - 2.5 * math.log10(5.0 * background_rms * math.sqrt(area))


def simulate(
    n: int,
    seed: int,
    theta_e_range: tuple[float, float],
    out: Path,
    *,
    psf: str = "gaussian",
    lens_light_dmag: float = 0.0,
    min_images_inside: int = 2,
) -> dict[str, Any]:
    """Write ``n`` accepted systems to ``out`` in shards; return the run statistics.

    Parameters
    ----------
    n : int
        Accepted systems.
    seed : int
        Seed of the one NumPy generator every draw and noise realisation comes from.
    theta_e_range : (float, float)
        Einstein-radius range, arcsec (uniform).
    out : Path
        Output directory (``shard_*.npz`` and ``manifest.json``).
    psf : {"gaussian", "moffat"}
    lens_light_dmag : float
        Added to the lens light's magnitudes (mag; > 0 fainter).
    min_images_inside : int
        Images of the source centre that must lie inside the cutout.
    """
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    images: list[np.ndarray] = []
    columns: dict[str, list[Any]] = {}
    shards: list[dict[str, Any]] = []
    depths: dict[str, list[float]] = {b.name: [] for b in BANDS}
    started = time.perf_counter()

    def flush() -> None:
        if not images:
            return
        name = shard_name(len(shards))
        write_shard(out / name, images=np.stack(images),
                    truths={k: np.asarray(v) for k, v in columns.items()})  # fmt: skip
        shards.append({"name": name, "n": len(images)})
        images.clear()
        columns.clear()

    accepted = 0
    while accepted < n:
        system = draw_system(rng, theta_e_range, lens_light_dmag)
        truth = true_images(system)
        if truth is None:
            counts["single_image"] += 1
            continue
        if truth["n_images_inside"] < min_images_inside:
            counts["images_outside_cutout"] += 1
            continue
        rendered = render(system, rng, psf)
        ok, reason = detectable(rendered)
        counts[reason] += 1
        if not ok:
            continue
        accepted += 1
        images.append(rendered["image"].astype(np.float32))
        row: dict[str, Any] = dict(system["mass"])
        row.update(gamma=2.0, z_lens=system["z_lens"], z_source=system["z_source"],
                   source_x=system["source"]["x"], source_y=system["source"]["y"],
                   source_kind=0, psf_e1=0.0, psf_e2=0.0, split="lenstronomy",
                   lens_r_eff=system["lens_light"]["R_sersic"],
                   lens_n_sersic=system["lens_light"]["n_sersic"],
                   source_r_eff=system["source"]["R_sersic"],
                   source_n_sersic=system["source"]["n_sersic"],
                   n_knots=len(system["source"]["knots"]))  # fmt: skip
        for band in "griz":
            row[f"lens_mag_{band}"] = system["lens_light"]["mags"][band]
            row[f"source_mag_{band}"] = system["source"]["mags"][band]
        row.update(truth)
        for b, band in enumerate(BANDS):
            seeing = system["conditions"][band.name]["seeing"]
            row[f"seeing_{band.name}"] = seeing
            row[f"background_rms_{band.name}"] = rendered["background_rms"][b]
            depths[band.name].append(depth_5sigma(band, seeing, rendered["background_rms"][b]))
        for key, value in row.items():
            columns.setdefault(key, []).append(value)
        if len(images) == SHARD_SIZE:
            flush()
    flush()
    stats = {
        "systems": n, "seed": seed, "theta_e_range": list(theta_e_range), "psf": psf,
        "lens_light_dmag": lens_light_dmag, "min_images_inside": min_images_inside,
        "attempts": dict(counts), "acceptance": round(n / sum(counts.values()), 3),
        "median_depth_5sigma": {b: round(float(np.median(v)), 2) for b, v in depths.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    write_manifest(out, {"format": "lenstronomy-holdout", "complete": True, "shards": shards,
                         "settings": stats, "command": " ".join(sys.argv)})  # fmt: skip
    return stats


def main(argv: list[str] | None = None) -> int:
    """Simulate the set; print its statistics as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="accepted systems")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--theta-e", type=float, nargs=2, default=(0.5, 4.0), metavar=("LOW", "HIGH")
    )
    parser.add_argument("--psf", choices=("gaussian", "moffat"), default="gaussian")
    parser.add_argument("--lens-light-dmag", type=float, default=0.0, metavar="MAG",
                        help="make the lens light fainter by MAG in every band")  # fmt: skip
    parser.add_argument("--min-images-inside", type=int, default=2, metavar="K",
                        help="images of the source centre required inside the cutout")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output directory (shards)")
    args = parser.parse_args(argv)
    stats = simulate(args.n, args.seed, tuple(args.theta_e), args.out, psf=args.psf,
                     lens_light_dmag=args.lens_light_dmag,
                     min_images_inside=args.min_images_inside)  # fmt: skip
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``lenscast simulate``: write HSC-like griz lens simulations as compressed shards.

Deterministic for a seed: shard ``k`` is drawn from ``SeedSequence(seed, spawn_key=(k,))``, so
the output does not depend on the number of worker processes or on interruptions. Resumable:
existing shards are kept and only missing ones are simulated. The manifest says
``"complete": true`` once every shard exists (the trainer polls for it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lenscast.trainer.dataset import (
    FORMAT_VERSION,
    load_shards,
    load_truths,
    read_manifest,
    shard_name,
    write_manifest,
    write_shard,
)
from lenscast.trainer.simulation.cosmology import distance_table
from lenscast.trainer.simulation.hudf import CATALOGUE_VERSION, SPLITS, hudf_catalogue
from lenscast.trainer.simulation.lens_population import (
    FJ_SCATTER_MAG,
    MASS_ANGLE_SCATTER_DEG,
    MASS_Q_SCATTER,
    SIZE_SCATTER_DEX,
    THETA_E_PRIORS,
)
from lenscast.trainer.simulation.realistic_light import LENS_LIGHT_MODES
from lenscast.trainer.simulation.simulator import SimulationConfig, simulate_batch
from lenscast.trainer.simulation.source_population import SOURCE_PLACEMENTS
from lenscast.trainer.simulation.truths import IMAGE_SOLVERS, MAX_IMAGES, warm_up

DEFAULT_SHARD_SIZE = 1000
#: Settings that must match to resume into an existing directory.
_IDENTITY_KEYS = ("n", "seed", "shard_size", "config", "catalogue_version", "format_version")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options to ``parser``."""
    parser.add_argument("--n", type=int, required=True, help="number of accepted systems")
    parser.add_argument("--seed", type=int, required=True, help="master seed")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--split", choices=SPLITS, default="train",
                        help="HUDF galaxy set the sources come from (default: train)")
    parser.add_argument("--theta-e-prior", choices=THETA_E_PRIORS, default="uniform",
                        help="Einstein-radius prior: uniform 0.5-5\" or VDF-shaped")
    parser.add_argument("--hudf-fraction", type=float, default=0.8,
                        help="fraction of real HUDF sources, rest parametric (default 0.8)")
    parser.add_argument("--psf-ellipticity", type=float, nargs="+", default=[0.0],
                        metavar="E",
                        help="|e| of the PSFs at random orientations: one value, or a range "
                             "LOW HIGH drawn uniformly (default 0: round)")
    parser.add_argument("--min-arc-snr", type=float, default=20.0,
                        help="acceptance: best-band arc SNR threshold (default 20)")
    parser.add_argument("--min-contrast", type=float, default=0.5,
                        help="acceptance: best-band arc/foreground peak ratio (default 0.5)")
    parser.add_argument("--image-solver", choices=("auto", *IMAGE_SOLVERS), default="auto",
                        help="solver for the true image positions: the physics core 'model' "
                             "when it is importable (auto), else lenstronomy")
    parser.add_argument("--lens-light-scatter", type=float, default=FJ_SCATTER_MAG, metavar="MAG",
                        help="scatter of the lens luminosity about Faber-Jackson (default "
                             f"{FJ_SCATTER_MAG}, the observed one)")
    parser.add_argument("--lens-size-scatter", type=float, default=SIZE_SCATTER_DEX,
                        metavar="DEX", help="scatter of the lens size about R_e ~ sigma^1.2 "
                                            f"(default {SIZE_SCATTER_DEX})")
    parser.add_argument("--mass-light-misalignment", type=float, nargs=2, metavar=("DEG", "DQ"),
                        default=[MASS_ANGLE_SCATTER_DEG, MASS_Q_SCATTER],
                        help="scatter of the mass's position angle (deg) and axis ratio about "
                             f"the lens light's (default {MASS_ANGLE_SCATTER_DEG:g} "
                             f"{MASS_Q_SCATTER:g})")
    parser.add_argument("--source-placement", choices=SOURCE_PLACEMENTS, default="radius",
                        help="source centre uniform in radius about the caustics (default), "
                             "in area, or either at random (mixed)")
    parser.add_argument("--gaussian-psf-fraction", type=float, default=0.0, metavar="F",
                        help="fraction of systems with Gaussian instead of Moffat PSFs "
                             "(default 0)")
    parser.add_argument("--lens-light", choices=LENS_LIGHT_MODES, default="analytic",
                        help="lens galaxies: one Sersic tied to theta_E (analytic, default) or "
                             "LRG-bright at every theta_E with an envelope, twists, colour "
                             "gradients, companions, off-centre light, correlated noise, PSF "
                             "wings and sky residuals (realistic); the same with real "
                             "SDSS ellipticals as the lens galaxies, and real spirals, discs "
                             "and mergers among the non-lenses (real, needs --real-galaxies)")
    parser.add_argument("--real-galaxies", type=Path, default=None, metavar="DIR",
                        help="the real-galaxy catalogue for --lens-light real (from "
                             "trainer/scripts/fetch_real_galaxies.sh)")
    parser.add_argument("--non-lens-fraction", type=float, default=0.0, metavar="F",
                        help="fraction of non-lenses (is_lens = 0: lens galaxies without or "
                             "with invisible arcs, spirals, rings, discs, pairs, stars, "
                             "artefacts), 0 <= F < 1 (default 0)")
    parser.add_argument("--no-source", action="store_true",
                        help="non-lenses: the deflectors and neighbours without their source "
                             "(no acceptance cuts; n_images 0)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                        help=f"systems per shard (default {DEFAULT_SHARD_SIZE})")
    parser.add_argument("--gallery", type=Path, default=None,
                        help="also draw a colour-composite gallery PNG of the first systems")
    parser.add_argument("--distributions", type=Path, default=None,
                        help="also draw histograms of the accepted parameters (PNG)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _resolve_solver(name: str) -> str:
    if name != "auto":
        return name
    try:
        warm_up("model", table=distance_table())
    except ImportError as error:
        print(f"physics core unavailable ({error}); using lenstronomy's solver", file=sys.stderr)
        return "lenstronomy"
    return "model"


def _shard_sizes(n: int, shard_size: int) -> list[int]:
    full, rest = divmod(n, shard_size)
    return [shard_size] * full + ([rest] if rest else [])


# Set in the parent before the pool forks; read by the workers.
_JOB: dict = {}


def _run_shard(index: int) -> tuple[int, dict]:
    out: Path = _JOB["out"]
    config: SimulationConfig = _JOB["config"]
    size = _JOB["sizes"][index]
    started = time.process_time()
    seed = np.random.SeedSequence(_JOB["seed"], spawn_key=(index,))
    batch = simulate_batch(size, seed=seed, config=config)
    stats = {"n": size, "attempts": dict(batch.attempts),
             "cpu_seconds": round(time.process_time() - started, 2)}
    # The stats go first: a shard .npz that exists always has its stats beside it.
    (out / shard_name(index)).with_suffix(".json").write_text(json.dumps(stats) + "\n")
    write_shard(out / shard_name(index), images=batch.images, truths=batch.truths)
    return index, stats


def _manifest(args: argparse.Namespace, config: SimulationConfig, sizes: list[int]) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "complete": False,
        "n": args.n,
        "seed": args.seed,
        "shard_size": args.shard_size,
        "n_shards": len(sizes),
        "shards": [{"name": shard_name(k), "n": s} for k, s in enumerate(sizes)],
        "config": json.loads(json.dumps(asdict(config))),  # tuples as JSON lists, for resume
        "catalogue_version": CATALOGUE_VERSION,
        "bands": ["g", "r", "i", "z"],
        "image_unit": "calibrated coadd flux, AB zeropoint 27 (mag = 27 - 2.5 log10 flux)",
        "pixel_scale_arcsec": 0.168,
        "orientation": "north up east left: x = -(col - 31.5) * 0.168, y = (row - 31.5) * 0.168",
        "max_images": MAX_IMAGES,
        "source_kinds": {"parametric": 0, "hudf": 1},
        "command": "lenscast simulate " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else []),
    }


def _finish(out: Path, manifest: dict) -> dict:
    attempts: Counter = Counter()
    cpu = 0.0
    for shard in manifest["shards"]:
        stats = json.loads((out / shard["name"]).with_suffix(".json").read_text())
        attempts.update(stats["attempts"])
        cpu += stats["cpu_seconds"]
    manifest = {**manifest, "complete": True, "attempts": dict(attempts),
                "acceptance_rate": attempts["accepted"] / max(attempts["total"], 1),
                "cpu_seconds": round(cpu, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_manifest(out, manifest)
    return manifest


def run(args: argparse.Namespace) -> int:
    """Simulate (or resume) a run; return the exit status."""
    if args.n <= 0 or args.shard_size <= 0 or args.workers <= 0:
        print("--n, --shard-size and --workers must be positive", file=sys.stderr)
        return 2
    psf_e = tuple(args.psf_ellipticity)
    if len(psf_e) == 1:
        psf_e = psf_e * 2
    if len(psf_e) != 2 or not 0.0 <= psf_e[0] <= psf_e[1] < 1.0:
        print("--psf-ellipticity takes E or LOW HIGH with 0 <= LOW <= HIGH < 1",
              file=sys.stderr)
        return 2
    if not 0.0 <= args.gaussian_psf_fraction <= 1.0:
        print("--gaussian-psf-fraction must lie in [0, 1]", file=sys.stderr)
        return 2
    if not 0.0 <= args.non_lens_fraction < 1.0:
        print("--non-lens-fraction must lie in [0, 1)", file=sys.stderr)
        return 2
    if (args.lens_light == "real") != (args.real_galaxies is not None):
        print("--lens-light real and --real-galaxies DIR go together", file=sys.stderr)
        return 2
    if args.real_galaxies is not None and not (args.real_galaxies / "img").is_dir():
        print(f"{args.real_galaxies} holds no real-galaxy catalogue (img/ missing): run "
              "trainer/scripts/fetch_real_galaxies.sh first", file=sys.stderr)
        return 2
    if min(args.mass_light_misalignment) < 0.0:
        print("--mass-light-misalignment takes two scatters >= 0 (deg, axis ratio)",
              file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    existing = read_manifest(out)
    # Resuming keeps the solver the run started with (auto-detection could differ later).
    solver = existing.get("config", {}).get("image_solver") if existing else None
    solver = solver or _resolve_solver(args.image_solver)
    config = SimulationConfig(split=args.split, theta_e_prior=args.theta_e_prior,
                              hudf_fraction=args.hudf_fraction,
                              psf_ellipticity=(float(psf_e[0]), float(psf_e[1])),
                              min_arc_snr=args.min_arc_snr, min_contrast=args.min_contrast,
                              image_solver=solver,
                              lens_light_scatter_mag=args.lens_light_scatter,
                              lens_size_scatter_dex=args.lens_size_scatter,
                              mass_angle_scatter_deg=args.mass_light_misalignment[0],
                              mass_q_scatter=args.mass_light_misalignment[1],
                              source_placement=args.source_placement,
                              gaussian_psf_fraction=args.gaussian_psf_fraction,
                              lens_light=args.lens_light,
                              real_galaxies=str(args.real_galaxies.resolve())
                              if args.real_galaxies else "",
                              non_lens_fraction=args.non_lens_fraction,
                              lensed_source=not args.no_source)
    sizes = _shard_sizes(args.n, args.shard_size)
    manifest = _manifest(args, config, sizes)
    if existing:
        mismatched = [k for k in _IDENTITY_KEYS if existing.get(k) != manifest[k]]
        if mismatched:
            print(f"{out} holds a different run (differs in: {', '.join(mismatched)}); "
                  "choose another --out", file=sys.stderr)
            return 2
        manifest["created"] = existing.get("created")
    else:
        manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_manifest(out, manifest)
    pending = [k for k in range(len(sizes)) if not (out / shard_name(k)).exists()]
    done_systems = sum(sizes) - sum(sizes[k] for k in pending)
    # Expensive set-up once in the parent: forked workers inherit the compiled solver and the
    # segmented HUDF catalogue.
    warm_up(solver, table=distance_table(h0=config.h0, om0=config.om0))
    hudf_catalogue()
    _JOB.update(out=out, config=config, sizes=sizes, seed=args.seed)
    from tqdm import tqdm

    started = time.time()
    with tqdm(total=sum(sizes), initial=done_systems, unit="sys", disable=args.no_progress,
              desc=f"simulate {out.name}") as bar:
        if args.workers == 1 or len(pending) <= 1:
            for k in pending:
                bar.update(_run_shard(k)[1]["n"])
        else:
            with multiprocessing.get_context("fork").Pool(args.workers) as pool:
                for _, stats in pool.imap_unordered(_run_shard, pending):
                    bar.update(stats["n"])
    manifest = _finish(out, manifest)
    elapsed = time.time() - started
    rate = (sum(sizes) - done_systems) / elapsed if elapsed > 0 else float("nan")
    print(json.dumps({"out": str(out), "n": args.n, "simulated_now": sum(sizes) - done_systems,
                      "wall_seconds": round(elapsed, 1), "systems_per_second": round(rate, 1),
                      "acceptance_rate": round(manifest["acceptance_rate"], 3),
                      "image_solver": solver}))
    if args.gallery is not None:
        from lenscast.trainer.simulation.gallery import draw_gallery

        data = load_shards(out, limit=24)
        draw_gallery(data.images, data.truths, args.gallery)
    if args.distributions is not None:
        from lenscast.trainer.simulation.distributions import draw_distributions

        truths = load_truths(out)
        draw_distributions(truths, args.distributions,
                           title=f"{out.name}: {len(truths['theta_e'])} accepted systems, "
                                 f"θ_E prior {config.theta_e_prior}")
    return 0

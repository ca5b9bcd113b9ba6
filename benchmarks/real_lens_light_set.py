"""Build the real-lens-light evaluation sets from the HOLISMOKES IX release's 16 HSC LRGs.

EVALUATION ONLY. The release's 16 example cutouts (real HSC luminous red galaxies with mock
arcs) are never used to train, calibrate, select or tune anything; the sets built here are for
``lenscast evaluate`` and the benchmarks only.

From each galaxy, with the release's mock arcs removed (its arcs-alone HDUs subtracted,
``benchmarks/holismokes9/release.py``):

* ``--out``: ``--per-galaxy`` lens systems with new arcs painted on by lenscast's simulator
  (``benchmarks/real_lens_light/paint.py``: SIE + shear on the light, HUDF test-split sources,
  i 22-25 before lensing, Moffat PSFs, arc SNR >= 20, θ_E uniform 0.5-3"), each on one of the
  galaxy's 8 rotations/mirrorings drawn at random (``orientation``), in the shard format of
  ``trainer/dataset.py`` (readable by ``lenscast evaluate``);
* ``--nonlens-out``: the same galaxies without arcs, in all 8 orientations, mass truths NaN,
  ``is_lens`` 0 (for the lens-evidence evaluation).

Every row carries ``lens_galaxy`` (the release's ID), so results can be held out by galaxy.

Usage (from the repository root)::

    python -m benchmarks.real_lens_light_set --release /tmp/HOLISMOKES-public/HOLISMOKES_IX \
        --seed 19 --out /work/data/realsky-eval --nonlens-out /work/data/realsky-eval-nonlens
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.holismokes9.release import find_release, read_examples
from benchmarks.real_lens_light import light_shape, paint
from lenscast.model import parameter_spec as spec
from lenscast.trainer.dataset import shard_name, write_manifest, write_shard
from lenscast.trainer.simulation.cosmology import distance_table
from lenscast.trainer.simulation.hudf import CATALOGUE_VERSION, hudf_catalogue
from lenscast.trainer.simulation.truths import MAX_IMAGES

EVALUATION_ONLY = ("Built from the HOLISMOKES IX release's 16 example cutouts: for evaluation "
                   "only; never train, calibrate, select or tune on them.")
#: Per-image truth columns, (n, MAX_IMAGES).
IMAGE_COLUMNS = ("image_x", "image_y", "time_delay_days", "image_magnification")


def _galaxy_columns(lens: paint.RealLens, galaxy: str, orientation: int) -> dict:
    return {"lens_galaxy": int(galaxy), "orientation": orientation,
            "lens_light_e1": lens.light_e1, "lens_light_e2": lens.light_e2,
            **{f"lens_mag_{b}": float(m) for b, m in zip("griz", lens.magnitudes, strict=True)},
            **{f"background_rms_{b}": float(r)
               for b, r in zip("griz", lens.background_rms, strict=True)}}


def _columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """Rows of truths to shard columns (strings fixed width, per-image columns 2-D)."""
    return {name: np.asarray([row[name] for row in rows]) for name in rows[0]}


def build_lenses(lenses: list[tuple[str, np.ndarray]], *, per_galaxy: int,
                 seed: int, progress: bool = True) -> tuple[np.ndarray, dict, Counter]:
    """Paint ``per_galaxy`` systems on each (ID, lens cutout); return images, truths, attempts.

    Each galaxy has its own random stream (``SeedSequence(seed).spawn``), so one galaxy's set
    does not depend on the others.
    """
    catalogue = hudf_catalogue()
    table = distance_table()
    attempts: Counter = Counter()
    images, rows = [], []
    streams = np.random.SeedSequence(seed).spawn(len(lenses))
    bar = tqdm(total=per_galaxy * len(lenses), desc="painting arcs", unit="system",
               disable=not progress)
    for (galaxy, cutout), stream in zip(lenses, streams, strict=True):
        rng = np.random.default_rng(stream)
        measured: dict[int, paint.RealLens] = {}  # the light fit once per orientation
        for _ in range(per_galaxy):
            orientation = int(rng.integers(0, 8))
            if orientation not in measured:
                measured[orientation] = paint.measure(light_shape.dihedral(cutout, orientation))
            lens = measured[orientation]
            image, truths = paint.paint_one(rng, lens, catalogue=catalogue, table=table,
                                            attempts=attempts)
            images.append(image)
            rows.append({**truths, **_galaxy_columns(lens, galaxy, orientation), "is_lens": 1,
                         "split": "test"})
            bar.update()
    bar.close()
    return np.stack(images), _columns(rows), attempts


def build_nonlenses(lenses: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, dict]:
    """The galaxies without arcs in their 8 orientations; mass truths NaN, ``is_lens`` 0."""
    images, rows = [], []
    for galaxy, cutout in lenses:
        for orientation in range(8):
            image = light_shape.dihedral(cutout, orientation)
            lens = paint.measure(image)
            images.append(image.astype(np.float32))
            rows.append({**{name: np.nan for name in spec.MASS_PARAMETER_NAMES},
                         **{name: np.full(MAX_IMAGES, np.nan) for name in IMAGE_COLUMNS},
                         "n_images": 0, "light_center_x": lens.centre_x,
                         "light_center_y": lens.centre_y,
                         **_galaxy_columns(lens, galaxy, orientation), "is_lens": 0,
                         "split": "test"})
    return np.stack(images), _columns(rows)


def write_set(directory: Path, images: np.ndarray, truths: dict, *, shard_size: int,
              manifest: dict) -> None:
    """Write shards of ``shard_size`` and a complete manifest as ``directory``.

    The set is written beside it and swapped in by renames, so a reader never sees a mix of
    an old and a new set (a rebuild replaces the set).
    """
    staging = directory.with_name(directory.name + ".building")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    shards = []
    for k, start in enumerate(range(0, len(images), shard_size)):
        stop = min(start + shard_size, len(images))
        write_shard(staging / shard_name(k), images=images[start:stop],
                    truths={name: column[start:stop] for name, column in truths.items()})
        shards.append({"name": shard_name(k), "n": stop - start})
    write_manifest(staging, {**manifest, "n": len(images), "shards": shards, "complete": True})
    retired = directory.with_name(directory.name + ".old")
    if directory.exists():
        if retired.exists():
            shutil.rmtree(retired)
        directory.rename(retired)
    staging.rename(directory)
    if retired.exists():
        shutil.rmtree(retired)


def main(argv: list[str] | None = None) -> int:
    """Build both sets; print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, required=True,
                        help="the HOLISMOKES IX release folder (or the repository above it)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="lens set directory")
    parser.add_argument("--nonlens-out", type=Path, required=True, help="no-arc set directory")
    parser.add_argument("--per-galaxy", type=int, default=30, help="lens systems per galaxy")
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.per_galaxy < 1 or args.shard_size < 1:
        parser.error("--per-galaxy and --shard-size must be positive")

    started = time.perf_counter()
    release = find_release(args.release)
    examples = read_examples(release)
    lenses = list(zip(examples.ids, examples.lenses, strict=True))
    common = {"command": shlex.join(["python", "-m", "benchmarks.real_lens_light_set",
                                     *(sys.argv[1:] if argv is None else argv)]),
              "seed": args.seed, "release": str(release), "evaluation_only": EVALUATION_ONLY,
              "lens_galaxies": list(examples.ids), "hudf_catalogue": CATALOGUE_VERSION,
              "format": "trainer/dataset.py shards; extra columns lens_galaxy, orientation, "
                        "is_lens, lens_light_e1/e2 (measured)"}
    images, truths, attempts = build_lenses(lenses, per_galaxy=args.per_galaxy, seed=args.seed,
                                            progress=not args.no_progress)
    write_set(args.out, images, truths, shard_size=args.shard_size,
              manifest={**common, "kind": "real lens light + painted arcs",
                        "attempts": dict(attempts), "theta_e_range": paint.THETA_E_RANGE,
                        "source_mag_i_range": paint.SOURCE_MAG_RANGE,
                        "min_arc_snr": paint.MIN_ARC_SNR})
    nonlens_images, nonlens_truths = build_nonlenses(lenses)
    write_set(args.nonlens_out, nonlens_images, nonlens_truths, shard_size=args.shard_size,
              manifest={**common, "kind": "real lens galaxies without arcs (non-lenses)"})
    summary = {"lenses": {"out": str(args.out), "n": len(images), "attempts": dict(attempts),
                          "fraction_contrast_ge_0.5": float(np.mean(truths["arc_contrast"]
                                                                    >= 0.5))},
               "nonlenses": {"out": str(args.nonlens_out), "n": len(nonlens_images)},
               "wall_seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

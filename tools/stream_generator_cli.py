"""``lenscast make-stream``: lens-candidate alerts (and their truths) from simulation shards.

Reads the shard contract of ``docs/architecture.md`` (``DIR/shard_NNNNN.npz`` with ``images``
float32 ``(n, 4, 64, 64)`` griz coadd flux at zeropoint 27, north up east left, and one array
per truth column) directly with NumPy, so this consumer-side tool never imports torch or
lenstronomy. Each system becomes one alert in an Avro container file; a fraction of them carry a
triggering transient (a diaSource) placed on one of the true lensed images, converted from its
arcsec offset to RA/Dec through the cutout WCS. A JSON Lines file beside it records, per alert,
the true mass model, redshifts, image positions and time delays, and which image triggered.

Non-lenses (``--non-lens-data DIR --n-non-lens K``): K more alerts from shards of systems
without a lensed source (``lenscast simulate --no-source``: the deflector and its neighbours,
no arcs), appended after the lenses. Their truth rows say ``"is_lens": false`` and have no mass
model and no images. A transient, when one is drawn, is a supernova in the galaxy
(:data:`NON_LENS_TRANSIENT_RADIUS_ARCSEC` from its centre), which the pipeline will take for a
lensed image: what a stream of lens candidates, mostly not lenses, really holds.

Example::

    lenscast make-stream --data data/sim/test --n 40 --out stream.avro \\
        --truths stream-truths.jsonl --transient-fraction 0.5 --seed 11 \\
        --non-lens-data data/sim/test-nonlens --n-non-lens 2
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lenscast.consumer.alert_schema import LATEST_VERSION
from lenscast.consumer.decoding import DEFAULT_SETTINGS
from lenscast.model import parameter_spec as spec
from lenscast.progress import progress_bar
from lenscast.tools.alert_encoding import TransientSpec, build_record, write_container
from lenscast.trainer.dataset import iter_shards

#: First alert time of a generated stream, MJD (TAI): 2026-02-25, early LSST operations.
START_MJD = 61096.0
#: Cadence between generated alerts, days (a few seconds: a burst from one visit).
ALERT_SPACING_DAYS = 5e-5
#: A non-lens's supernova lies this far inside the cutout edge, arcsec.
EDGE_MARGIN_ARCSEC = 0.5
#: A non-lens's supernova lies this far from the galaxy centre (uniform in radius), arcsec:
#: within the stellar body of the massive galaxies the lens candidates are.
NON_LENS_TRANSIENT_RADIUS_ARCSEC = (0.3, 2.0)


def iter_systems(directory: Path) -> Iterator[tuple[str, int, NDArray[np.float32], dict[str, Any]]]:
    """Yield ``(shard name, row, images (4, 64, 64), truth columns)`` in shard order."""
    for path, images, columns in iter_shards(directory):
        for row in range(images.shape[0]):
            yield path.stem, row, images[row], {k: v[row] for k, v in columns.items()}


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _images(truth: dict[str, Any]) -> tuple[list[float], list[float], list[float]]:
    """True image positions (arcsec) and delays (days), arrival order, padding dropped."""
    x = np.asarray(truth["image_x"], dtype=float)
    y = np.asarray(truth["image_y"], dtype=float)
    delay = np.asarray(truth.get("time_delay_days", np.full(x.shape, np.nan)), dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep].tolist(), y[keep].tolist(), delay[keep].tolist()


def _transient(
    index: int, x: float, y: float, mjd: float, *, rng: np.random.Generator, seed: int
) -> TransientSpec:
    """A diaSource at ``(x, y)`` arcsec, seen at ``mjd`` in a random band but g."""
    return TransientSpec(
        dia_source_id=seed * 10**7 + index,
        x_arcsec=x,
        y_arcsec=y,
        mjd=mjd,
        band=str(rng.choice(spec.BANDS[1:])),
        psf_flux_njy=float(rng.uniform(500.0, 5000.0)),
        psf_flux_err_njy=50.0,
    )


def _non_lens_transient_offset(
    truth: dict[str, Any], rng: np.random.Generator
) -> tuple[float, float]:
    """A supernova's position in a non-lens galaxy: about its centre, arcsec."""
    radius = rng.uniform(*NON_LENS_TRANSIENT_RADIUS_ARCSEC)
    angle = rng.uniform(0.0, 2 * np.pi)
    half = spec.CUTOUT_SIZE_PIX / 2 * spec.PIXEL_SCALE_ARCSEC - EDGE_MARGIN_ARCSEC
    x = float(np.clip(float(truth["center_x"]) + radius * np.cos(angle), -half, half))
    y = float(np.clip(float(truth["center_y"]) + radius * np.sin(angle), -half, half))
    return x, y


def make_alert(
    index: int,
    shard: str,
    row: int,
    images: NDArray[np.float32],
    truth: dict[str, Any],
    *,
    rng: np.random.Generator,
    transient_fraction: float,
    seed: int,
    is_lens: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build one alert record and its truth row.

    Parameters
    ----------
    index : int
        Position of the alert in the stream.
    shard, row : str, int
        Where the system comes from.
    images : ndarray, shape (4, 64, 64)
        griz coadd flux, zeropoint 27, north up east left.
    truth : dict
        The system's truth columns.
    rng : numpy.random.Generator
        Draws the sky position, whether a transient triggered, which image and its flux.
    transient_fraction : float
        Probability that the alert carries a transient.
    seed : int
        Stream seed, part of the alert ids (streams with other seeds do not collide).
    is_lens : bool
        False for a system without a lensed source: no images, the truth row has no mass
        model, and a transient is a supernova in the galaxy.

    Returns
    -------
    record, truth_row : dict
        The Avro record and the JSON-serialisable truths.
    """
    alert_id = f"lenscast-sim-{seed}-{index:06d}"
    candidate_id = f"sim-{shard}-{row:05d}" if is_lens else f"sim-nonlens-{shard}-{row:05d}"
    # Uniform on the sphere, kept away from the poles where nothing special should happen anyway.
    ra = float(rng.uniform(0.0, 360.0))
    dec = float(np.degrees(np.arcsin(rng.uniform(-0.95, 0.95))))
    mjd = START_MJD + index * ALERT_SPACING_DAYS
    xs, ys, delays = _images(truth)
    if not is_lens and xs:
        raise ValueError(f"{shard} row {row} has lensed images: not a non-lens system")
    # Any image the decoder takes as a transient's, also one outside the cutout.
    reach = DEFAULT_SETTINGS.max_transient_offset_arcsec
    inside = [k for k in range(len(xs)) if math.hypot(xs[k], ys[k]) <= reach]
    transient = None
    triggered: int | None = None
    draw_transient = rng.uniform() < transient_fraction
    if draw_transient and inside:
        triggered = int(rng.choice(inside))
        transient = _transient(index, xs[triggered], ys[triggered], mjd, rng=rng, seed=seed)
    elif draw_transient and not is_lens:
        x, y = _non_lens_transient_offset(truth, rng)
        transient = _transient(index, x, y, mjd, rng=rng, seed=seed)
    z_lens, z_source = _number(truth["z_lens"]), _number(truth["z_source"])
    record = build_record(
        alert_id=alert_id,
        candidate_id=candidate_id,
        ra=ra,
        dec=dec,
        mjd=mjd,
        images=images,
        z_lens=z_lens,
        z_source=z_source,
        transient=transient,
        survey="simulation",
        broker="lenscast make-stream",
    )
    dia = record["diaSource"]
    truth_row = {
        "alert_id": alert_id,
        "candidate_id": candidate_id,
        "shard": shard,
        "row": row,
        "ra": ra,
        "dec": dec,
        "mjd": mjd,
        "is_lens": is_lens,
        **{name: _number(truth[name]) if is_lens else None for name in spec.MASS_PARAMETER_NAMES},
        "z_lens": z_lens,
        "z_source": z_source,
        "source_x": _number(truth.get("source_x", math.nan)) if is_lens else None,
        "source_y": _number(truth.get("source_y", math.nan)) if is_lens else None,
        "image_x": xs,
        "image_y": ys,
        "time_delay_days": delays,
        "transient_image": triggered,
        "transient_x": None if transient is None else transient.x_arcsec,
        "transient_y": None if transient is None else transient.y_arcsec,
        "transient_ra": None if dia is None else dia["ra"],
        "transient_dec": None if dia is None else dia["dec"],
        "split": str(truth.get("split", "")),
    }
    return record, truth_row


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``make-stream`` arguments."""
    parser.add_argument("--data", type=Path, required=True, help="simulation shard directory")
    parser.add_argument("--n", type=int, required=True, help="number of alerts")
    parser.add_argument("--out", type=Path, required=True, help="Avro container file to write")
    parser.add_argument("--truths", type=Path, required=True, help="JSON Lines truths to write")
    parser.add_argument(
        "--transient-fraction",
        type=float,
        default=0.3,
        help="fraction of alerts with a triggering transient on a lensed image (default 0.3)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--non-lens-data",
        type=Path,
        help="shard directory of non-lenses (lenscast simulate --no-source)",
    )
    parser.add_argument(
        "--n-non-lens",
        type=int,
        default=0,
        help="non-lens alerts appended after the lenses, from --non-lens-data (default 0)",
    )


def run(args: argparse.Namespace) -> int:
    """Write ``args.n`` alerts and their truths; return the exit status."""
    if args.n <= 0 or not 0.0 <= args.transient_fraction <= 1.0:
        raise SystemExit("--n must be positive and --transient-fraction in [0, 1]")
    if args.n_non_lens < 0 or (args.n_non_lens > 0) != (args.non_lens_data is not None):
        raise SystemExit("--n-non-lens > 0 and --non-lens-data go together")
    rng = np.random.default_rng(args.seed)
    truths: list[dict[str, Any]] = []
    # Lenses first, then non-lenses: the lens alerts are those of the same stream without them.
    parts = [(args.data, args.n, True), (args.non_lens_data, args.n_non_lens, False)]

    def records() -> Iterator[dict[str, Any]]:
        progress = progress_bar(total=args.n + args.n_non_lens, desc="alerts", unit="alert")
        index = 0
        for directory, count, is_lens in parts:
            systems = iter_systems(directory) if count else iter(())
            for taken in range(count):
                try:
                    shard, row, images, truth = next(systems)
                except StopIteration:
                    raise SystemExit(
                        f"{directory} holds only {taken} systems, {count} asked"
                    ) from None
                try:
                    record, truth_row = make_alert(
                        index,
                        shard,
                        row,
                        images,
                        truth,
                        rng=rng,
                        transient_fraction=args.transient_fraction,
                        seed=args.seed,
                        is_lens=is_lens,
                    )
                except ValueError as exc:
                    raise SystemExit(f"{directory}: {exc}") from None
                truths.append(truth_row)
                index += 1
                progress.update()
                yield record
        progress.close()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    count = write_container(records(), args.out, schema_version=LATEST_VERSION)
    args.truths.parent.mkdir(parents=True, exist_ok=True)
    with open(args.truths, "w") as out:
        for row in truths:
            out.write(json.dumps(row) + "\n")
    n_transient = sum(row["transient_x"] is not None for row in truths)
    n_non_lens = sum(not row["is_lens"] for row in truths)
    print(
        f"wrote {count} alerts ({n_transient} with a transient, {n_non_lens} non-lenses) "
        f"to {args.out}"
    )
    print(f"truths in {args.truths}")
    return 0

"""Predicted versus true, for a sample stream whose truths are known (the demo's summary table).

The truths file is the JSON Lines written beside a generated stream by ``lenscast make-stream``:
one object per alert with the true mass parameters (parameter-spec names), ``image_x``,
``image_y`` and ``time_delay_days`` lists in arrival order, and ``transient_image``. Predicted
images are paired with true ones by the least total distance; delays are compared for pairs of
images after the first, as fractions of the true delay. Units: arcsec and days.

Rows with ``"is_lens": false`` are non-lenses (no true mass model, no images): they are not
compared but listed with the model's ``p_lens`` and whether it flagged them ``no_lens``; the
lenses' table shows ``p_lens`` too, and the accuracy block counts the lenses kept and the
non-lenses flagged at the threshold in force.
images after the first, as fractions of the true delay. Units: arcsec and days. The column
``z l/s`` says where the lens and source redshifts behind the delays came from (``m``: measured,
from the alert; ``p``: drawn from the SL2S prior).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from lenscast.plotting.plot_data import AlertPicture


def is_lens(truth: Mapping[str, Any]) -> bool:
    """Whether a truths row is a lens (rows written before non-lenses existed all are)."""
    return bool(truth.get("is_lens", True))


def load_truths(path: Path) -> dict[str, dict[str, Any]]:
    """Read a truths JSON Lines file, keyed by alert id."""
    truths: dict[str, dict[str, Any]] = {}
    with path.open() as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                truths[str(row["alert_id"])] = row
    return truths


@dataclass(frozen=True)
class Comparison:
    """One alert's prediction against its truth.

    Attributes
    ----------
    alert_id : str
    theta_e, theta_e_true, sigma_theta_e : float
        Einstein radius, arcsec.
    center_offset : tuple of float
        Predicted minus true lens centre (dx, dy), arcsec.
    n_images, n_images_true : int
        Predicted and true image counts (predicted is 0 without a transient).
    image_offsets : list of float
        Distance from each true image but the observed one to its predicted partner, arcsec.
    delays : list of tuple of float
        ``(predicted, true)`` delay pairs after the first image, days.
    has_transient : bool
    p_lens : float or None
        The model's probability of a lens (None: the model has no such output).
    no_lens : bool or None
        Flagged: ``p_lens`` below the threshold in force.
    redshift_origins : tuple of (str or None)
        Where the lens and source redshifts of the delays came from ("measured", "prior").
    """

    alert_id: str
    theta_e: float
    theta_e_true: float
    sigma_theta_e: float
    center_offset: tuple[float, float]
    n_images: int
    n_images_true: int
    image_offsets: list[float]
    delays: list[tuple[float, float]]
    has_transient: bool
    p_lens: float | None = None
    no_lens: bool | None = None
    redshift_origins: tuple[str | None, str | None] = (None, None)


def compare(picture: AlertPicture, truth: Mapping[str, Any]) -> Comparison:
    """Compare one stored prediction with its truth row.

    Predicted and true images are paired by the assignment that minimises the summed distance
    (images without a partner, when the counts differ, are left out). The image the transient
    was seen in is the pipeline's input, so it is left out of the position errors; delays are
    compared only when the first-arriving images are partners, since both are relative to them.
    """
    true_xy = np.column_stack([truth["image_x"], truth["image_y"]]).reshape(-1, 2)
    true_delays = list(truth.get("time_delay_days") or [])
    observed = truth.get("transient_image")
    offsets: list[float] = []
    delays: list[tuple[float, float]] = []
    if picture.images and len(true_xy):
        predicted = np.array([(im.x.value, im.y.value) for im in picture.images])
        distance = np.hypot(*(predicted[:, None, :] - true_xy[None, :, :]).transpose(2, 0, 1))
        rows, columns = linear_sum_assignment(distance)
        partner = dict(zip(columns.tolist(), rows.tolist(), strict=True))  # true -> predicted
        first_images_match = partner.get(0) == 0
        for k, j in sorted(partner.items()):
            if k != observed:
                offsets.append(float(distance[j, k]))
            delay = picture.images[j].delay_days
            true_delay = true_delays[k] if k < len(true_delays) else None
            if first_images_match and k > 0 and delay is not None and true_delay is not None:
                delays.append((delay.value, float(true_delay)))
    return Comparison(
        alert_id=picture.alert_id,
        theta_e=picture.mean["theta_e"],
        theta_e_true=float(truth["theta_e"]),
        sigma_theta_e=picture.sigma["theta_e"],
        center_offset=(
            picture.mean["center_x"] - float(truth["center_x"]),
            picture.mean["center_y"] - float(truth["center_y"]),
        ),
        n_images=len(picture.images),
        n_images_true=len(true_xy),
        image_offsets=offsets,
        delays=delays,
        has_transient=picture.transient is not None,
        p_lens=picture.p_lens,
        no_lens=picture.no_lens,
        redshift_origins=(picture.z_lens_origin, picture.z_source_origin),
    )


def _p_lens_text(p_lens: float | None) -> str:
    return "n/a" if p_lens is None else f"{p_lens:.2f}"


def _kept(comparisons: Sequence[Comparison]) -> str:
    """How many lenses the lens-evidence flag keeps, or that the model has no such output."""
    rated = [c for c in comparisons if c.p_lens is not None]
    if not rated:
        return "n/a (the model has no p_lens output)"
    return f"{sum(not c.no_lens for c in rated)}/{len(rated)}"


def _median_and_width(values: Sequence[float]) -> str:
    """``median [1-sigma half-width of the 16-84 % range]`` of ``values``."""
    if not values:
        return "n/a"
    p16, p50, p84 = np.percentile(np.asarray(values, dtype=float), [16, 50, 84])
    return f"{p50:+.3f} ± {(p84 - p16) / 2:.3f}"


def aggregate_lines(comparisons: Sequence[Comparison]) -> list[str]:
    """The accuracy block: median and 1-sigma width of each error over the sample."""
    d_theta = [c.theta_e - c.theta_e_true for c in comparisons]
    pulls = [(c.theta_e - c.theta_e_true) / c.sigma_theta_e for c in comparisons]
    covered = sum(abs(p) <= 1 for p in pulls) / len(pulls) if pulls else math.nan
    image_offsets = [o for c in comparisons for o in c.image_offsets]
    fractional = [(p - t) / t for c in comparisons for p, t in c.delays if t > 0]
    transients = [c for c in comparisons if c.has_transient]
    right_count = sum(c.n_images == c.n_images_true for c in transients)
    origins = [c.redshift_origins for c in transients]
    rows = [
        ("alerts compared", f"{len(comparisons)} ({len(transients)} with a transient)"),
        ("redshifts of delays", _origin_counts(origins)),
        ('θ_E error ["], median ± 1σ', _median_and_width(d_theta)),
        ("θ_E truth within ±1σ_pred", f"{covered:.0%}"),
        ('centre x error ["]', _median_and_width([c.center_offset[0] for c in comparisons])),
        ('centre y error ["]', _median_and_width([c.center_offset[1] for c in comparisons])),
        ('image position error ["]', f"{_median_and_width(image_offsets)} ({len(image_offsets)})"),
        ("fractional delay error", f"{_median_and_width(fractional)} ({len(fractional)})"),
        ("image count right", f"{right_count}/{len(transients)} transient alerts"),
        ("lenses kept (not no_lens)", _kept(comparisons)),
    ]
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]


def _origin_counts(origins: Sequence[tuple[str | None, str | None]]) -> str:
    """``lens: 3 measured, 1 prior; source: ...`` over the transient alerts."""
    parts = []
    for which, index in (("lens", 0), ("source", 1)):
        measured = sum(o[index] == "measured" for o in origins)
        prior = sum(o[index] == "prior" for o in origins)
        parts.append(f"{which} {measured} measured, {prior} prior")
    return "; ".join(parts)


def _origin_code(origins: tuple[str | None, str | None]) -> str:
    """``m/p`` for a measured lens and a prior source redshift; ``-`` if none was used."""
    if None in origins:
        return "-"
    return "/".join("p" if o == "prior" else "m" for o in origins)


def table_lines(comparisons: Iterable[Comparison]) -> list[str]:
    """One line per alert: θ_E predicted/true, centre offset, images and delays."""
    columns = ("alert", "θ_E pred", "θ_E true", 'Δcentre"', "images", 'max Δpos"', "p_lens",
               "z l/s")
    header = "{:<24} {:>8} {:>8} {:>8} {:>6} {:>9} {:>6} {:>5}  delays pred/true [d]".format(
        *columns
    )
    lines = [header, "-" * len(header)]
    for c in comparisons:
        images = f"{c.n_images}/{c.n_images_true}" if c.has_transient else f"-/{c.n_images_true}"
        worst = f"{max(c.image_offsets):.3f}" if c.image_offsets else "-"
        delays = ", ".join(f"{p:.1f}/{t:.1f}" for p, t in c.delays) or "-"
        flag = " NO LENS" if c.no_lens else ""
        lines.append(
            f"{c.alert_id:<24} {c.theta_e:>8.3f} {c.theta_e_true:>8.3f}"
            f" {math.hypot(*c.center_offset):>8.3f} {images:>6} {worst:>9}"
            f" {_p_lens_text(c.p_lens):>6} {_origin_code(c.redshift_origins):>5}  {delays}{flag}"
        )
    return lines


def non_lens_lines(pictures: Sequence[AlertPicture]) -> list[str]:
    """One line per non-lens of the sample: the model's p_lens, its flag and what it predicted."""
    if not pictures:
        return []
    lines = ["Non-lenses in the sample (no lensed source; truth is_lens false):", ""]
    header = "{:<24} {:>6} {:<8} {:>8} {:>6}  transient".format(
        "alert", "p_lens", "flag", "θ_E pred", "images"
    )
    lines += [header, "-" * len(header)]
    for p in pictures:
        flag = "-" if p.no_lens is None else "NO LENS" if p.no_lens else "lens"
        if p.transient is None:
            transient = "none"
        elif p.no_lens:
            transient = "yes: the model sees no lens, its arrival dates are flagged"
        else:
            transient = "yes: arrival dates predicted as for a lens"
        lines.append(
            f"{p.alert_id:<24} {_p_lens_text(p.p_lens):>6} {flag:<8} "
            f"{p.mean['theta_e']:>8.3f} {len(p.images):>6}  {transient}"
        )
    rated = [p for p in pictures if p.p_lens is not None]
    if rated:
        flagged = sum(bool(p.no_lens) for p in rated)
        lines.append(f"non-lenses flagged no_lens: {flagged}/{len(rated)}")
    else:
        lines.append("the model has no p_lens output: nothing is flagged")
    return lines


def order_for_display(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Transient alerts first (they have images and delays), most images first."""
    return sorted(comparisons, key=lambda c: (not c.has_transient, -c.n_images, c.alert_id))


def summary_text(
    comparisons: Sequence[Comparison], rows: int, non_lenses: Sequence[AlertPicture] = ()
) -> list[str]:
    """The predicted-vs-true table (``rows`` alerts), the accuracy over the whole sample and
    the non-lenses' lens evidence."""
    if not comparisons:
        return ["No truths for these alerts: no predicted-vs-true table."]
    shown = order_for_display(comparisons)
    lines = ["Predicted vs true on the sample stream (arcsec, days):", ""]
    lines += table_lines(shown[:rows])
    if len(shown) > rows:
        lines.append(f"... and {len(shown) - rows} more alerts (all in the database)")
    lines += ["", "Over the whole sample (median ± half the 16-84 % range):"]
    lines += aggregate_lines(comparisons)
    if non_lenses:
        lines += ["", *non_lens_lines(non_lenses)]
    return lines


def pointing_lines(pictures: Iterable[AlertPicture], rows: int) -> list[str]:
    """Where to point: the predicted images the transient was not seen in.

    One line per image of up to ``rows`` transient alerts (those with the most images first):
    RA and Dec (degrees, ICRS, through the cutout's WCS), half the 16-84 % ranges of x and y
    (arcsec) and the predicted arrival MJD with its 16-84 % range when redshifts gave delays,
    marked ``(past)`` when that was before the alert (an image arriving before the one seen).
    """
    shown = sorted(
        (p for p in pictures if p.transient is not None and p.images),
        key=lambda p: (-len(p.images), p.alert_id),
    )
    header = "{:<24} {:>5} {:>11} {:>11} {:>13}  {}".format(
        "alert", "image", "RA [deg]", "Dec [deg]", '±x"/±y"', "arrives MJD [16-84 %]"
    )
    title = "Where to point (images the transient was not seen in; ICRS):"
    lines = [title, "", header, "-" * len(header)]
    for picture in shown[:rows]:
        for image in picture.images:
            if image.is_observed or image.ra is None or image.dec is None:
                continue
            half = f"{(image.x.p84 - image.x.p16) / 2:.2f}/{(image.y.p84 - image.y.p16) / 2:.2f}"
            arrival = "-"
            if image.arrival_mjd is not None:
                a = image.arrival_mjd
                arrival = f"{a.value:.1f} [{a.p16:.1f}, {a.p84:.1f}]"
                arrival += " (past)" if a.value < picture.mjd else ""
            lines.append(
                f"{picture.alert_id:<24} {image.label:>5} {image.ra.value:>11.6f}"
                f" {image.dec.value:>+11.6f} {half:>13}  {arrival}"
            )
    if len(lines) == 4:
        return ["No transient alert with predicted images to point at."]
    return lines

"""What ``lenscast plot`` draws for one alert: its stored prediction, and its cutouts if available.

The results database keeps the predicted parameters, their sigma, the source position and the
predicted images with percentiles, but not the cutout pixels; those are read back from the alert
archive the stream was replayed from (``--alerts FILE``), by alert id. Positions are arcsec from
the cutout centre, ``x = dRA cos(Dec)`` (east positive), ``y = dDec`` (north positive).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine

from lenscast.db.queries import ResultFilter, fetch_results
from lenscast.model import parameter_spec as spec

#: Image labels in arrival order (A arrives first), as in the lensed-supernova literature.
IMAGE_LABELS = "ABCDE"


@dataclass(frozen=True)
class Interval:
    """A predicted value with its 16th and 84th percentiles (NaN when not stored)."""

    value: float
    p16: float
    p84: float

    @property
    def minus(self) -> float:
        """``value - p16`` (lower 1-sigma error)."""
        return self.value - self.p16

    @property
    def plus(self) -> float:
        """``p84 - value`` (upper 1-sigma error)."""
        return self.p84 - self.value


@dataclass(frozen=True)
class PredictedImage:
    """One predicted lensed image, as stored in ``lens_images``.

    Attributes
    ----------
    label : str
        ``A`` for the first-arriving image, then ``B``, ``C``, ...
    x, y : Interval
        Position, arcsec.
    magnification : float
        Signed point-source magnification.
    delay_days : Interval or None
        Time delay after image A, days (None for rows stored before delays came from priors).
    is_observed : bool
        The image the triggering transient was seen in.
    arrival_mjd : Interval or None
        Predicted MJD the transient appears in this image (None without a transient).
    ra, dec : Interval or None
        Sky position, degrees (ICRS), through the cutout's WCS (None for rows stored before
        sky positions were).
    """

    label: str
    x: Interval
    y: Interval
    magnification: float
    delay_days: Interval | None
    is_observed: bool
    arrival_mjd: Interval | None
    ra: Interval | None = None
    dec: Interval | None = None


@dataclass(frozen=True)
class AlertPicture:
    """Everything drawn for one alert.

    Attributes
    ----------
    alert_id, candidate_id : str
    model_name, model_version : str
    mjd : float
        Alert time, MJD.
    mean, sigma : dict of str to float
        Predicted parameters and their 1-sigma, keyed by the parameter spec names.
    source : tuple of float or None
        Source position (x, y), arcsec; known only when a transient fixed it.
    transient : tuple of float or None
        Observed transient position (x, y), arcsec.
    transient_mjd : float or None
    images : tuple of PredictedImage
        In arrival order.
    z_lens, z_source : float or None
        Redshifts the alert carried.
    z_lens_err, z_source_err : float or None
        Their stated 1-sigma errors.
    z_lens_used, z_source_used : float or None
        Redshifts of the stored delays (measured, or the prior's median).
    z_lens_origin, z_source_origin : str or None
        ``"measured"`` or ``"prior"`` (None when no delays were computed).
    cutouts : ndarray of shape (4, n, n) or None
        g, r, i, z pixels, north up east left, when the alert was found.
    pixel_scale_arcsec : float
    p_lens : float or None
        The model's probability that there is a lens (None: the model has no such output).
    p_lens_threshold : float or None
        The threshold in force when the alert was processed.
    no_lens : bool or None
        ``p_lens < p_lens_threshold``: the model sees no lens, so the images and arrival dates
        describe a lens that is probably not there.
    """

    alert_id: str
    candidate_id: str
    model_name: str
    model_version: str
    mjd: float
    mean: dict[str, float]
    sigma: dict[str, float]
    source: tuple[float, float] | None
    transient: tuple[float, float] | None
    transient_mjd: float | None
    images: tuple[PredictedImage, ...]
    z_lens: float | None
    z_source: float | None
    z_lens_err: float | None = None
    z_source_err: float | None = None
    z_lens_used: float | None = None
    z_source_used: float | None = None
    z_lens_origin: str | None = None
    z_source_origin: str | None = None
    cutouts: NDArray[np.float32] | None = None
    pixel_scale_arcsec: float = spec.PIXEL_SCALE_ARCSEC
    p_lens: float | None = None
    p_lens_threshold: float | None = None
    no_lens: bool | None = None


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _interval(row: Mapping[str, Any], value: str, prefix: str) -> Interval | None:
    if row[value] is None:
        return None
    return Interval(float(row[value]), _float(row[f"{prefix}_p16"]), _float(row[f"{prefix}_p84"]))


def _image(index: int, row: Mapping[str, Any]) -> PredictedImage:
    return PredictedImage(
        label=IMAGE_LABELS[index] if index < len(IMAGE_LABELS) else str(index),
        x=Interval(float(row["x"]), _float(row["x_p16"]), _float(row["x_p84"])),
        y=Interval(float(row["y"]), _float(row["y_p16"]), _float(row["y_p84"])),
        magnification=float(row["magnification"]),
        delay_days=_interval(row, "time_delay_days", "time_delay"),
        is_observed=bool(row["is_observed"]),
        arrival_mjd=_interval(row, "arrival_mjd", "arrival_mjd"),
        ra=_interval(row, "ra", "ra"),
        dec=_interval(row, "dec", "dec"),
    )


def _picture(result: Mapping[str, Any], images: Sequence[Mapping[str, Any]]) -> AlertPicture:
    def pair(x: str, y: str) -> tuple[float, float] | None:
        return None if result[x] is None else (float(result[x]), float(result[y]))

    return AlertPicture(
        alert_id=result["alert_id"],
        candidate_id=result["candidate_id"],
        model_name=result["model_name"],
        model_version=result["model_version"],
        mjd=float(result["mjd"]),
        mean={n: float(result[n]) for n in spec.MASS_PARAMETER_NAMES},
        sigma={p.name: float(result[p.sigma_name]) for p in spec.MASS_PARAMETERS},
        source=pair("source_x", "source_y"),
        transient=pair("transient_x", "transient_y"),
        transient_mjd=None if result["transient_mjd"] is None else float(result["transient_mjd"]),
        images=tuple(_image(i, row) for i, row in enumerate(images)),
        z_lens=result["z_lens"],
        z_source=result["z_source"],
        p_lens=result["p_lens"],
        p_lens_threshold=result["p_lens_threshold"],
        no_lens=result["no_lens"],
        # Read with get: rows older than the redshift-provenance migration lack these.
        z_lens_err=result.get("z_lens_err"),
        z_source_err=result.get("z_source_err"),
        z_lens_used=result.get("z_lens_used"),
        z_source_used=result.get("z_source_used"),
        z_lens_origin=result.get("z_lens_origin"),
        z_source_origin=result.get("z_source_origin"),
    )


def load_pictures(
    engine: Engine, alert_ids: Iterable[str], *, model_version: str | None = None
) -> dict[str, AlertPicture]:
    """Read the stored predictions of ``alert_ids`` (without cutouts).

    Parameters
    ----------
    engine : Engine
    alert_ids : iterable of str
    model_version : str, optional
        Which model's prediction; by default the most recently processed one per alert.

    Returns
    -------
    dict of str to AlertPicture
        Keyed by alert id, in the order asked; alerts with no stored result are absent.
    """
    pictures: dict[str, AlertPicture] = {}
    for alert_id in dict.fromkeys(alert_ids):
        query = ResultFilter(alert_id=alert_id, model_version=model_version, limit=None)
        rows = fetch_results(engine, query)
        if rows:
            latest = max(rows, key=lambda row: row["processed_at"])
            pictures[alert_id] = _picture(latest, latest["images"])
    return pictures


def load_picture(
    engine: Engine, alert_id: str, *, model_version: str | None = None
) -> AlertPicture:
    """Read one alert's stored prediction; raise ``LookupError`` when there is none."""
    pictures = load_pictures(engine, [alert_id], model_version=model_version)
    if alert_id not in pictures:
        which = f" by model version {model_version}" if model_version else ""
        raise LookupError(f"no stored result for alert {alert_id!r}{which}")
    return pictures[alert_id]


def find_cutouts(
    paths: Iterable[Path], alert_ids: Iterable[str]
) -> dict[str, tuple[NDArray[np.float32], float]]:
    """Find alerts in archive files and return their standardised cutouts.

    Parameters
    ----------
    paths : iterable of Path
        Alert files (Avro containers or single wire-format messages).
    alert_ids : iterable of str

    Returns
    -------
    dict of str to (ndarray, float)
        ``alert_id -> (cutouts (4, n, n) north up east left, pixel scale arcsec)`` for the alerts
        found and decoded; undecodable packets are skipped (they have no stored result anyway).
    """
    from lenscast.consumer.alert import AlertRejected
    from lenscast.consumer.decoding import decode_alert
    from lenscast.consumer.framing import read_alert_file

    wanted = set(alert_ids)
    found: dict[str, tuple[NDArray[np.float32], float]] = {}
    for path in paths:
        for raw in read_alert_file(path):
            try:
                alert = decode_alert(raw)
            except AlertRejected:
                continue
            if alert.alert_id in wanted:
                found[alert.alert_id] = (alert.cutouts, alert.pixel_scale_arcsec)
                if len(found) == len(wanted):
                    return found
    return found

"""The physics step of the pipeline: predicted lens parameters to images, delays and arrival dates.

For the alerts of a batch that carry a transient, the transient's position (arcsec from the
cutout centre) is one observed lensed image: :func:`lenscast.model.image_prediction.predict_images`
ray-shoots it to the source and solves the lens equation for every image, in arrival order;
:func:`lenscast.model.uncertainty.propagate_uncertainty` gives 16/50/84 percentiles of positions and
delays by Monte Carlo over the predicted sigma. The transient was seen at ``transient.mjd`` in
the observed image, so image ``k`` shows it at ``mjd + dt_k - dt_observed`` (days).

Alerts without a transient have no observable source position: they get no images (the lens
parameters, which need no source, are still stored). Alerts without both redshifts have no
time-delay distance: positions and magnifications are stored, delays and arrival dates are NULL.

The physics runs vectorised over the transient alerts of a chunk; if it raises, each alert is
retried alone so that only the failing one is rejected (``physics.error``). Each alert's Monte
Carlo draws come from its own seed (:func:`alert_seed`), so a replayed alert gets the same
percentiles whatever batch or chunk it arrives in.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lenscast.consumer.alert import AlertRejected, LensCandidateAlert
from lenscast.consumer.settings import PipelineSettings
from lenscast.model.cosmology import flat_lcdm
from lenscast.model.image_prediction import ImagePrediction, predict_images
from lenscast.model.mass_model import MassModel
from lenscast.model.uncertainty import propagate_uncertainty

log = logging.getLogger(__name__)

Row = dict[str, Any]
FloatArray = NDArray[np.float64]


@dataclass
class AlertImages:
    """Physics output of one alert: extra result-row fields and its image rows."""

    result_fields: Row = field(default_factory=dict)
    images: list[Row] = field(default_factory=list)


def _opt(value: float) -> float | None:
    """A finite float, or None (stored as NULL)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _redshift(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class _Percentiles:
    """(n, MAX_IMAGES, 3) 16/50/84 percentiles of x, y and delays, or None if not drawn."""

    x: FloatArray | None = None
    y: FloatArray | None = None
    delay: FloatArray | None = None
    #: Per-draw ``dt_k - dt_observed`` (days): the arrival dates' uncertainty.
    after_observed: FloatArray | None = None
    mismatch: FloatArray | None = None


def _solve(
    alerts: Sequence[LensCandidateAlert],
    mean: Mapping[str, FloatArray],
    sigma: Mapping[str, FloatArray],
    settings: PipelineSettings,
) -> tuple[ImagePrediction, _Percentiles]:
    cosmology = flat_lcdm(settings.cosmology.h0, settings.cosmology.om0)
    image_x = np.array([a.transient.x_arcsec for a in alerts if a.transient is not None])
    image_y = np.array([a.transient.y_arcsec for a in alerts if a.transient is not None])
    z_lens = np.array([_redshift(a.z_lens) for a in alerts])
    z_source = np.array([_redshift(a.z_source) for a in alerts])
    if settings.n_mc_samples <= 0:
        prediction = predict_images(
            MassModel.from_mapping(mean),
            image_x=image_x,
            image_y=image_y,
            z_lens=z_lens,
            z_source=z_source,
            cosmology=cosmology,
        )
        return prediction, _Percentiles()
    unc = propagate_uncertainty(
        dict(mean),
        dict(sigma),
        image_x=image_x,
        image_y=image_y,
        z_lens=z_lens,
        z_source=z_source,
        cosmology=cosmology,
        n_samples=settings.n_mc_samples,
        seed=settings.seed,
        system_seeds=np.array([alert_seed(a.alert_id) for a in alerts], dtype=np.int64),
    )
    # The nominal images (of the mean model) are the columns the percentiles refer to.
    percentiles = _Percentiles(
        x=unc.x,
        y=unc.y,
        delay=unc.time_delay_days,
        after_observed=unc.delay_after_observed_days,
        mismatch=unc.image_count_mismatch_fraction,
    )
    prediction = unc.nominal
    return prediction, percentiles


def alert_seed(alert_id: str) -> int:
    """Monte Carlo seed of one alert (CRC-32 of its id): the same draws in any batch."""
    return zlib.crc32(alert_id.encode("utf-8"))


def _alert_images(
    alert: LensCandidateAlert,
    i: int,
    prediction: ImagePrediction,
    pct: _Percentiles,
    model_version: str,
) -> AlertImages:
    transient = alert.transient
    assert transient is not None  # only transient alerts reach the physics
    n = int(prediction.n_images[i])
    observed = int(prediction.observed_index[i])
    delays = prediction.time_delay_days[i]
    delay_obs = delays[observed] if 0 <= observed < n else math.nan
    out = AlertImages(
        result_fields={
            "source_x": _opt(prediction.source_x[i]),
            "source_y": _opt(prediction.source_y[i]),
            "n_images": n,
            "image_count_mismatch_fraction": (
                None if pct.mismatch is None else _opt(pct.mismatch[i])
            ),
        }
    )
    for k in range(n):
        row: Row = {
            "alert_id": alert.alert_id,
            "model_version": model_version,
            "image_index": k,
            "x": float(prediction.x[i, k]),
            "y": float(prediction.y[i, k]),
            "magnification": float(prediction.magnification[i, k]),
            "time_delay_days": _opt(delays[k]),
            "is_observed": k == observed,
        }
        for name, values in (("x", pct.x), ("y", pct.y), ("time_delay", pct.delay)):
            for j, p in enumerate((16, 50, 84)):
                row[f"{name}_p{p}"] = None if values is None else _opt(values[i, k, j])
        # Arrival of the transient in image k: seen at transient.mjd in the observed image.
        shift = delays[k] - delay_obs
        row["arrival_mjd"] = _opt(transient.mjd + shift)
        if k == observed:  # seen then: no uncertainty
            row["arrival_mjd_p16"] = row["arrival_mjd_p84"] = _opt(transient.mjd)
        elif pct.after_observed is not None and 0 <= observed < n:
            row["arrival_mjd_p16"] = _opt(transient.mjd + pct.after_observed[i, k, 0])
            row["arrival_mjd_p84"] = _opt(transient.mjd + pct.after_observed[i, k, 2])
        else:
            row["arrival_mjd_p16"] = row["arrival_mjd_p84"] = None
        out.images.append(row)
    return out


def _subset(values: Mapping[str, FloatArray], idx: Sequence[int]) -> dict[str, FloatArray]:
    return {k: np.asarray(v)[list(idx)] for k, v in values.items()}


def solve_images(
    alerts: Sequence[LensCandidateAlert],
    mean: Mapping[str, FloatArray],
    sigma: Mapping[str, FloatArray],
    *,
    settings: PipelineSettings,
    model_version: str,
) -> list[AlertImages | AlertRejected]:
    """Images, delays and arrival dates for each alert (one entry per alert, same order).

    Parameters
    ----------
    alerts : sequence of LensCandidateAlert
    mean, sigma : mapping of str to ndarray, shape (n,)
        Predicted parameters and 1-sigma uncertainties (parameter-spec names).
    settings : PipelineSettings
        Cosmology, Monte Carlo draws and seed.
    model_version : str
        Stored in the image rows (part of their key).

    Returns
    -------
    list of AlertImages or AlertRejected
        An empty :class:`AlertImages` for alerts without a transient.
    """
    out: list[AlertImages | AlertRejected] = [AlertImages() for _ in alerts]
    todo = [i for i, a in enumerate(alerts) if a.transient is not None]
    if not todo:
        return out
    groups: list[list[int]] = [todo]
    while groups:
        group = groups.pop()
        group_alerts = [alerts[i] for i in group]
        try:
            prediction, pct = _solve(
                group_alerts, _subset(mean, group), _subset(sigma, group), settings
            )
            for j, i in enumerate(group):
                out[i] = _alert_images(alerts[i], j, prediction, pct, model_version)
        except Exception as exc:
            if len(group) > 1:  # isolate the failing alert(s)
                groups.extend([[i] for i in group])
                continue
            log.warning("physics failed for alert %s: %r", alerts[group[0]].alert_id, exc)
            out[group[0]] = AlertRejected(
                "physics.error", f"{type(exc).__name__}: {exc}", alerts[group[0]].alert_id
            )
    return out

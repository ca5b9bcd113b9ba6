"""The physics step of the pipeline: predicted lens parameters to images, delays and arrival dates.

For the alerts of a batch that carry a transient, the transient's position (arcsec from the
cutout centre) is one observed lensed image: :func:`lenscast.model.image_prediction.predict_images`
ray-shoots it to the source and solves the lens equation for every image, in arrival order;
:func:`lenscast.model.uncertainty.propagate_uncertainty` gives 16/50/84 percentiles of positions and
delays by Monte Carlo over the predicted sigma. The transient was seen at ``transient.mjd`` in
the observed image, so image ``k`` shows it at ``mjd + dt_k - dt_observed`` (days).

Each image is also placed on the sky (:func:`image_sky_fields`): RA and Dec (degrees, ICRS)
through the cutout's WCS, and the 16/84 % range of each from the 16/84 % of x (RA, east
positive) and y (Dec) at the other coordinate's point estimate.

Alerts without a transient have no observable source position: they get no images (the lens
parameters, which need no source, are still stored). Redshifts are drawn with the mass model
from the alert's ``zLensErr``/``zSourceErr``; a missing one comes from the SL2S prior
(:mod:`lenscast.model.redshift_prior`), so every transient alert gets delays and arrival dates. Each
result records where its redshifts came from (``z_lens_origin``, ``z_source_origin``:
``measured`` or ``prior``), the redshifts of its nominal delays (``z_lens_used``,
``z_source_used``) and their time-delay distance; each image its Fermat potential relative to
the first image, so delays can be rescaled to other redshifts or cosmologies.

A transient farther from the predicted lens centre than
:data:`lenscast.consumer.decode_settings.TRANSIENT_REACH_THETA_E` predicted Einstein radii is no
lensed image of that lens: the alert is rejected (``transient.far_from_lens``).

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
from lenscast.consumer.decode_settings import TRANSIENT_REACH_THETA_E
from lenscast.consumer.settings import PipelineSettings
from lenscast.model.cosmology import flat_lcdm
from lenscast.model.image_prediction import ImagePrediction, predict_images
from lenscast.model.mass_model import MassModel
from lenscast.model.redshifts import MEASURED, PRIOR, Redshifts
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


def alert_redshifts(alerts: Sequence[LensCandidateAlert]) -> Redshifts:
    """The stated redshifts and errors of ``alerts`` (missing: NaN value, 0 error)."""
    return Redshifts.of(
        len(alerts),
        z_lens=np.array([_redshift(a.z_lens) for a in alerts]),
        z_source=np.array([_redshift(a.z_source) for a in alerts]),
        z_lens_err=np.array([_redshift(a.z_lens_err) for a in alerts]),
        z_source_err=np.array([_redshift(a.z_source_err) for a in alerts]),
    )


@dataclass(frozen=True)
class _Percentiles:
    """(n, MAX_IMAGES, 3) 16/50/84 percentiles of x, y and delays, or None if not drawn."""

    x: FloatArray | None = None
    y: FloatArray | None = None
    delay: FloatArray | None = None
    #: Per-draw ``dt_k - dt_observed`` (days): the arrival dates' uncertainty.
    after_observed: FloatArray | None = None
    mismatch: FloatArray | None = None
    #: Redshifts of the nominal delays, (n,) each.
    z_lens: FloatArray | None = None
    z_source: FloatArray | None = None


def _solve(
    alerts: Sequence[LensCandidateAlert],
    mean: Mapping[str, FloatArray],
    sigma: Mapping[str, FloatArray],
    settings: PipelineSettings,
) -> tuple[ImagePrediction, _Percentiles]:
    cosmology = flat_lcdm(settings.cosmology.h0, settings.cosmology.om0)
    image_x = np.array([a.transient.x_arcsec for a in alerts if a.transient is not None])
    image_y = np.array([a.transient.y_arcsec for a in alerts if a.transient is not None])
    redshifts = alert_redshifts(alerts)
    if settings.n_mc_samples <= 0:
        z_lens, z_source = redshifts.nominal()
        prediction = predict_images(
            MassModel.from_mapping(mean),
            image_x=image_x,
            image_y=image_y,
            z_lens=z_lens,
            z_source=z_source,
            cosmology=cosmology,
        )
        return prediction, _Percentiles(z_lens=z_lens, z_source=z_source)
    unc = propagate_uncertainty(
        dict(mean),
        dict(sigma),
        image_x=image_x,
        image_y=image_y,
        z_lens=redshifts.z_lens,
        z_source=redshifts.z_source,
        z_lens_err=redshifts.z_lens_err,
        z_source_err=redshifts.z_source_err,
        redshift_prior=True,
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
        z_lens=unc.z_lens,
        z_source=unc.z_source,
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
    settings: PipelineSettings,
) -> AlertImages:
    transient = alert.transient
    assert transient is not None  # only transient alerts reach the physics
    n = int(prediction.n_images[i])
    observed = int(prediction.observed_index[i])
    delays = prediction.time_delay_days[i]
    delay_obs = float(delays[observed]) if 0 <= observed < n else math.nan
    out = AlertImages(
        result_fields={
            "source_x": _opt(prediction.source_x[i]),
            "source_y": _opt(prediction.source_y[i]),
            "n_images": n,
            "image_count_mismatch_fraction": (
                None if pct.mismatch is None else _opt(pct.mismatch[i])
            ),
            "z_lens_origin": MEASURED if alert.z_lens is not None else PRIOR,
            "z_source_origin": MEASURED if alert.z_source is not None else PRIOR,
            "z_lens_used": None if pct.z_lens is None else _opt(pct.z_lens[i]),
            "z_source_used": None if pct.z_source is None else _opt(pct.z_source[i]),
            "time_delay_distance_mpc": _opt(prediction.time_delay_distance_mpc[i]),
            "cosmology": settings.cosmology.label,
            "cosmology_h0": settings.cosmology.h0,
            "cosmology_om0": settings.cosmology.om0,
        }
    )
    # Plain Python floats for the image rows: one conversion per array, not one per element.
    x, y = prediction.x[i, :n].tolist(), prediction.y[i, :n].tolist()
    mag = prediction.magnification[i, :n].tolist()
    tau = prediction.fermat_potential[i, :n].tolist()
    delay_list = delays[:n].tolist()
    spreads = [
        (name, None if values is None else values[i, :n].tolist())
        for name, values in (("x", pct.x), ("y", pct.y), ("time_delay", pct.delay))
    ]
    after = None if pct.after_observed is None else pct.after_observed[i, :n].tolist()
    for k in range(n):
        row: Row = {
            "alert_id": alert.alert_id,
            "model_version": model_version,
            "image_index": k,
            "x": x[k],
            "y": y[k],
            "magnification": mag[k],
            "time_delay_days": _opt(delay_list[k]),
            "fermat_potential_arcsec2": _opt(tau[k]),
            "is_observed": k == observed,
        }
        for name, spread in spreads:
            for j, p in enumerate((16, 50, 84)):
                row[f"{name}_p{p}"] = None if spread is None else _opt(spread[k][j])
        # Arrival of the transient in image k: seen at transient.mjd in the observed image.
        shift = delay_list[k] - delay_obs
        row["arrival_mjd"] = _opt(transient.mjd + shift)
        if k == observed:  # seen then: no uncertainty
            row["arrival_mjd_p16"] = row["arrival_mjd_p84"] = _opt(transient.mjd)
        elif after is not None and 0 <= observed < n:
            row["arrival_mjd_p16"] = _opt(transient.mjd + after[k][0])
            row["arrival_mjd_p84"] = _opt(transient.mjd + after[k][2])
        else:
            row["arrival_mjd_p16"] = row["arrival_mjd_p84"] = None
        out.images.append(row)
    image_sky_fields(alert, out.images)
    return out


def image_sky_fields(alert: LensCandidateAlert, rows: Sequence[Row]) -> None:
    """Add ``ra``, ``dec`` and their ``_p16``/``_p84`` to image rows, through the cutout's WCS.

    RA grows with x (east) and Dec with y (north), so the RA range is the sky position of
    ``(x_p16, y)`` .. ``(x_p84, y)`` and the Dec range that of ``(x, y_p16)`` .. ``(x, y_p84)``;
    without percentiles (no Monte Carlo draws) the ranges are NULL. Near RA = 0 the range may
    wrap (``ra_p16`` > ``ra_p84``).

    Parameters
    ----------
    alert : LensCandidateAlert
        Its ``sky_frame`` maps offsets (arcsec) to RA, Dec (degrees).
    rows : sequence of dict
        ``lens_images`` rows with ``x``, ``y`` and their percentiles; updated in place.
    """
    if not rows:
        return
    nan = math.nan
    x = np.array([r["x"] for r in rows])
    y = np.array([r["y"] for r in rows])

    def col(name: str) -> FloatArray:
        return np.array([nan if r[name] is None else r[name] for r in rows], dtype=float)

    # One WCS call for all points: nominal, RA range (x percentiles), Dec range (y percentiles).
    xs = np.concatenate([x, col("x_p16"), col("x_p84"), x, x])
    ys = np.concatenate([y, y, y, col("y_p16"), col("y_p84")])
    finite = np.isfinite(xs) & np.isfinite(ys)
    ra_all = np.full(xs.shape, nan)
    dec_all = np.full(xs.shape, nan)
    ra_all[finite], dec_all[finite] = alert.sky_frame.to_sky(xs[finite], ys[finite])
    ra, ra_lo, ra_hi = ra_all.reshape(5, -1)[:3].tolist()
    dec, _, _, dec_lo, dec_hi = dec_all.reshape(5, -1).tolist()
    for k, row in enumerate(rows):
        row["ra"] = _opt(ra[k])
        row["dec"] = _opt(dec[k])
        row["ra_p16"], row["ra_p84"] = _opt(ra_lo[k]), _opt(ra_hi[k])
        row["dec_p16"], row["dec_p84"] = _opt(dec_lo[k]), _opt(dec_hi[k])


def _beyond_reach(alert: LensCandidateAlert, mean: Mapping[str, float]) -> AlertRejected | None:
    """The rejection of a transient too far from the predicted lens to be one of its images."""
    transient = alert.transient
    assert transient is not None
    distance = math.hypot(
        transient.x_arcsec - mean["center_x"], transient.y_arcsec - mean["center_y"]
    )
    reach = TRANSIENT_REACH_THETA_E * mean["theta_e"]
    if distance <= reach:
        return None
    detail = (
        f'transient {distance:.2f}" from the predicted lens centre, beyond '
        f'{TRANSIENT_REACH_THETA_E:g} theta_E = {reach:.2f}"'
    )
    return AlertRejected("transient.far_from_lens", detail, alert.alert_id)


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
        An empty :class:`AlertImages` for alerts without a transient; ``physics.error`` or
        ``transient.far_from_lens`` rejections.
    """
    out: list[AlertImages | AlertRejected] = [AlertImages() for _ in alerts]
    todo: list[int] = []
    for i, alert in enumerate(alerts):
        if alert.transient is None:
            continue
        far = _beyond_reach(alert, {k: float(np.asarray(v)[i]) for k, v in mean.items()})
        if far is None:
            todo.append(i)
        else:
            out[i] = far
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
                out[i] = _alert_images(alerts[i], j, prediction, pct, model_version, settings)
        except Exception as exc:
            if len(group) > 1:  # isolate the failing alert(s)
                groups.extend([[i] for i in group])
                continue
            log.warning("physics failed for alert %s: %r", alerts[group[0]].alert_id, exc)
            out[group[0]] = AlertRejected(
                "physics.error", f"{type(exc).__name__}: {exc}", alerts[group[0]].alert_id
            )
    return out

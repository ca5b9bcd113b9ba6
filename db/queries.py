"""Read stored results back: filters by time, Einstein radius, delay, transient, lens evidence,
model, candidate.

Field names are the columns of :mod:`lenscast.db.models` (mass parameters and ``sigma_<name>`` from
:mod:`lenscast.model.parameter_spec`). Filters are bound parameters (never formatted SQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, exists, func, select, tuple_

from lenscast.db.models import images_table, rejected_table, results_table
from lenscast.model import parameter_spec as spec

#: Result fields in output order (the internal row id and ``stored_at`` excepted).
RESULT_FIELDS: tuple[str, ...] = tuple(
    c.name for c in results_table.columns if c.name not in ("id",)
)
#: Image fields in output order (the key columns shared with the result excepted).
IMAGE_FIELDS: tuple[str, ...] = tuple(
    c.name for c in images_table.columns if c.name not in ("alert_id", "model_version")
)
#: Units of the numeric fields, for FITS/VOTable output ("" for dimensionless).
UNITS: dict[str, str] = {
    **{p.name: p.unit for p in spec.MASS_PARAMETERS},
    **{p.sigma_name: p.unit for p in spec.MASS_PARAMETERS},
    "ra": "deg", "dec": "deg", "transient_ra": "deg", "transient_dec": "deg",
    "mjd": "d", "transient_mjd": "d", "arrival_mjd": "d", "arrival_mjd_p16": "d",
    "arrival_mjd_p84": "d", "time_delay_days": "d", "time_delay_p16": "d",
    "time_delay_p50": "d", "time_delay_p84": "d", "source_x": "arcsec", "source_y": "arcsec",
    "transient_x": "arcsec", "transient_y": "arcsec", "x": "arcsec", "y": "arcsec",
    **{f"{a}_p{p}": "arcsec" for a in ("x", "y") for p in (16, 50, 84)},
    "cosmology_h0": "km / (s Mpc)", "transient_flux": "nJy", "latency_s": "s",
    "time_delay_distance_mpc": "Mpc", "fermat_potential_arcsec2": "arcsec2",
}  # fmt: skip


@dataclass(frozen=True)
class ResultFilter:
    """Which results to return; ``None`` means "no constraint".

    Attributes
    ----------
    mjd_min, mjd_max : float
        Alert time range (MJD, inclusive).
    processed_after, processed_before : datetime
        Processing time range (timezone-aware).
    theta_e_min, theta_e_max : float
        Predicted Einstein radius range, arcsec.
    min_time_delay_days : float
        At least one predicted image arrives this many days after the first.
    min_p_lens : float
        The model's probability of a lens (``p_lens``, 0..1) at least this; results without a
        ``p_lens`` (models without the lens-evidence output) do not match.
    has_transient : bool
    model_version, candidate_id, alert_id : str
    limit : int
        Most rows returned (newest alerts first).
    """

    mjd_min: float | None = None
    mjd_max: float | None = None
    processed_after: datetime | None = None
    processed_before: datetime | None = None
    theta_e_min: float | None = None
    theta_e_max: float | None = None
    min_time_delay_days: float | None = None
    min_p_lens: float | None = None
    has_transient: bool | None = None
    model_version: str | None = None
    candidate_id: str | None = None
    alert_id: str | None = None
    limit: int | None = 1000


def select_results(f: ResultFilter) -> Select[Any]:
    """The SELECT of the result rows matching ``f`` (newest alert first)."""
    r = results_table.c
    query = select(*[results_table.c[name] for name in RESULT_FIELDS])
    conditions = [
        (f.mjd_min, lambda v: r.mjd >= v),
        (f.mjd_max, lambda v: r.mjd <= v),
        (f.processed_after, lambda v: r.processed_at >= v),
        (f.processed_before, lambda v: r.processed_at <= v),
        (f.theta_e_min, lambda v: r.theta_e >= v),
        (f.theta_e_max, lambda v: r.theta_e <= v),
        (f.min_p_lens, lambda v: r.p_lens >= v),
        (f.has_transient, lambda v: r.has_transient.is_(v)),
        (f.model_version, lambda v: r.model_version == v),
        (f.candidate_id, lambda v: r.candidate_id == v),
        (f.alert_id, lambda v: r.alert_id == v),
    ]
    for value, condition in conditions:
        if value is not None:
            query = query.where(condition(value))
    if f.min_time_delay_days is not None:
        i = images_table.c
        query = query.where(
            exists().where(
                i.alert_id == r.alert_id,
                i.model_version == r.model_version,
                i.time_delay_days >= f.min_time_delay_days,
            )
        )
    query = query.order_by(r.mjd.desc(), r.alert_id, r.model_version)
    if f.limit is not None:
        query = query.limit(f.limit)
    return query


def fetch_results(engine: Engine, f: ResultFilter) -> list[dict[str, Any]]:
    """Matching results, each a dict of :data:`RESULT_FIELDS` plus ``images`` (arrival order)."""
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(select_results(f))]
        keys = [(row["alert_id"], row["model_version"]) for row in rows]
        images: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in keys}
        i = images_table.c
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            query = (
                select(images_table)
                .where(tuple_(i.alert_id, i.model_version).in_(chunk))
                .order_by(i.alert_id, i.model_version, i.image_index)
            )
            for image in conn.execute(query):
                m = dict(image._mapping)
                images[(m.pop("alert_id"), m.pop("model_version"))].append(m)
    for row, key in zip(rows, keys, strict=True):
        row["images"] = images[key]
    return rows


def rejected_summary(engine: Engine) -> list[tuple[str, int]]:
    """Rejected packets per reason, most frequent first."""
    with engine.connect() as conn:
        query = (
            select(rejected_table.c.reason, func.count())
            .group_by(rejected_table.c.reason)
            .order_by(func.count().desc(), rejected_table.c.reason)
        )
        return [(str(reason), int(n)) for reason, n in conn.execute(query)]


def _image_key(name: str, result_fields: Iterable[str]) -> str:
    """An image field's name beside its result's: ``image_`` before a clash and its percentiles.

    The image's ``ra`` becomes ``image_ra`` (the result's ``ra`` is the cutout centre), and so
    ``ra_p16`` becomes ``image_ra_p16``.
    """
    stem = name.rsplit("_p", 1)[0] if name.endswith(("_p16", "_p50", "_p84")) else name
    return f"image_{name}" if stem in result_fields else name


def flatten_images(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per predicted image, prefixed by its result's fields (for CSV/FITS output)."""
    out: list[dict[str, Any]] = []
    for result in results:
        base = {k: v for k, v in result.items() if k != "images"}
        for image in result["images"]:
            out.append({**base, **{_image_key(k, base): v for k, v in image.items()}})
    return out

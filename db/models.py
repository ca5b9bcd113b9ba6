"""SQLAlchemy 2.0 tables of the results database: results, predicted images, rejected alerts.

One row in ``lens_results`` per (alert id, model version): the predicted SIE + shear parameters
and their 1-sigma uncertainties (column names are
:data:`lenscast.model.parameter_spec.MASS_PARAMETER_NAMES` and
:data:`lenscast.model.parameter_spec.SIGMA_NAMES`; a test checks they match), the source position,
the model's probability that there is a lens at all (``p_lens``, with the threshold applied and the
``no_lens`` flag; NULL for models without it), the redshifts and cosmology used, the provenance of
the prediction and the processing times. ``lens_images`` holds one row per predicted lensed image of
a result, in arrival order. ``rejected_alerts`` holds every packet that could not be processed, with
its raw bytes, keyed on where it came from (Kafka topic/partition/offset, or ``file:<path>`` and the
packet's index).

Units follow the project conventions: angles on the sky in arcsec from the cutout centre with
``x = dRA cos(Dec)`` (east positive) and ``y = dDec`` (north positive); RA/Dec in degrees; times
in MJD (days); time delays in days relative to the first-arriving image; timestamps are
timezone-aware UTC. Missing values are NULL, never a sentinel: no transient means no source
position and no images. A transient alert without a redshift still gets delays: the missing
redshift comes from a prior, and ``z_lens_origin``/``z_source_origin`` say which were measured.
``time_delay_distance_mpc`` and each image's ``fermat_potential_arcsec2`` are the two factors
of its nominal delay, ``dt = D_dt / c * fermat_potential``, for rescaling to other redshifts.

The schema is created and upgraded by the Alembic migrations in :mod:`lenscast.db.migrations`; a
change here needs a new migration (a test compares the migrated schema with these models).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: 64-bit integer primary keys on PostgreSQL; SQLite only auto-increments ``INTEGER``.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base holding the shared :class:`~sqlalchemy.MetaData`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _utc() -> DateTime:
    return DateTime(timezone=True)


class LensResult(Base):
    """One mass-model prediction for one alert by one model version."""

    __tablename__ = "lens_results"
    __table_args__ = (
        UniqueConstraint("alert_id", "model_version"),
        Index(None, "candidate_id"),
        Index(None, "mjd"),
        Index(None, "theta_e"),
        Index(None, "processed_at"),
        Index(None, "p_lens"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(256))
    candidate_id: Mapped[str] = mapped_column(String(256))
    ra: Mapped[float] = mapped_column(Double, doc="cutout centre RA, deg (ICRS)")
    dec: Mapped[float] = mapped_column(Double, doc="cutout centre Dec, deg (ICRS)")
    mjd: Mapped[float] = mapped_column(Double, doc="alert time, MJD")
    survey: Mapped[str] = mapped_column(String(256))
    upstream_broker: Mapped[str | None] = mapped_column(String(256))
    upstream_alert_id: Mapped[str | None] = mapped_column(String(256))

    # Provenance of the prediction.
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    onnx_sha256: Mapped[str] = mapped_column(String(64))
    parameter_spec_version: Mapped[str] = mapped_column(String(16))
    alert_schema_version: Mapped[str] = mapped_column(String(16))

    # Predicted SIE + external shear (lenscast.model.parameter_spec names, arcsec or dimensionless).
    theta_e: Mapped[float] = mapped_column(Double)
    e1: Mapped[float] = mapped_column(Double)
    e2: Mapped[float] = mapped_column(Double)
    center_x: Mapped[float] = mapped_column(Double)
    center_y: Mapped[float] = mapped_column(Double)
    gamma1: Mapped[float] = mapped_column(Double)
    gamma2: Mapped[float] = mapped_column(Double)
    sigma_theta_e: Mapped[float] = mapped_column(Double)
    sigma_e1: Mapped[float] = mapped_column(Double)
    sigma_e2: Mapped[float] = mapped_column(Double)
    sigma_center_x: Mapped[float] = mapped_column(Double)
    sigma_center_y: Mapped[float] = mapped_column(Double)
    sigma_gamma1: Mapped[float] = mapped_column(Double)
    sigma_gamma2: Mapped[float] = mapped_column(Double)
    #: Comma-separated names of parameters predicted outside the spec's trained range, or NULL.
    out_of_range: Mapped[str | None] = mapped_column(String(256))

    # Lens evidence (lenscast.model.parameter_spec.LENS_PROBABILITY), NULL for models without it.
    #: Calibrated probability that the cutout shows a galaxy-scale strong lens (0..1).
    p_lens: Mapped[float | None] = mapped_column(Double)
    #: The threshold on p_lens in force when the alert was processed.
    p_lens_threshold: Mapped[float | None] = mapped_column(Double)
    #: p_lens < p_lens_threshold: the model sees no lens, so the mass model, the images and the
    #: arrival dates of this row describe a lens that is probably not there (kept, flagged).
    no_lens: Mapped[bool | None] = mapped_column(Boolean)

    # Source position (arcsec), only when a transient image pins it down.
    source_x: Mapped[float | None] = mapped_column(Double)
    source_y: Mapped[float | None] = mapped_column(Double)
    n_images: Mapped[int | None] = mapped_column(Integer)
    #: Fraction of Monte Carlo draws whose image count differs from the point estimate's.
    image_count_mismatch_fraction: Mapped[float | None] = mapped_column(Double)

    # Redshifts (from the alert) and the cosmology the delays were computed with.
    z_lens: Mapped[float | None] = mapped_column(Double)
    z_lens_err: Mapped[float | None] = mapped_column(Double)
    z_source: Mapped[float | None] = mapped_column(Double)
    z_source_err: Mapped[float | None] = mapped_column(Double)
    #: "measured" (from the alert) or "prior" (drawn from the SL2S prior); NULL: neither used.
    z_lens_origin: Mapped[str | None] = mapped_column(String(16))
    z_source_origin: Mapped[str | None] = mapped_column(String(16))
    #: Redshifts of the nominal delays: the measured values or the priors' medians.
    z_lens_used: Mapped[float | None] = mapped_column(Double)
    z_source_used: Mapped[float | None] = mapped_column(Double)
    #: D_dt = (1 + z_l) D_l D_s / D_ls of the nominal delays, Mpc.
    time_delay_distance_mpc: Mapped[float | None] = mapped_column(Double)
    cosmology: Mapped[str | None] = mapped_column(String(256))
    cosmology_h0: Mapped[float | None] = mapped_column(Double)
    cosmology_om0: Mapped[float | None] = mapped_column(Double)

    # The triggering transient (one observed lensed image), when the alert carries one.
    has_transient: Mapped[bool] = mapped_column(Boolean)
    transient_dia_source_id: Mapped[int | None] = mapped_column(BigInteger)
    transient_ra: Mapped[float | None] = mapped_column(Double)
    transient_dec: Mapped[float | None] = mapped_column(Double)
    transient_mjd: Mapped[float | None] = mapped_column(Double)
    transient_band: Mapped[str | None] = mapped_column(String(16))
    transient_flux: Mapped[float | None] = mapped_column(Double, doc="PSF flux, nJy")
    transient_x: Mapped[float | None] = mapped_column(Double)
    transient_y: Mapped[float | None] = mapped_column(Double)

    # Where the packet came from and when it was processed.
    source_topic: Mapped[str | None] = mapped_column(String(256))
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    message_timestamp: Mapped[datetime | None] = mapped_column(_utc())
    processed_at: Mapped[datetime] = mapped_column(_utc())
    #: processed_at - message_timestamp, seconds (NULL when the message carried no timestamp).
    latency_s: Mapped[float | None] = mapped_column(Double)
    stored_at: Mapped[datetime] = mapped_column(_utc(), server_default=func.now())


class LensImage(Base):
    """One predicted lensed image of a result, ``image_index`` 0 arriving first."""

    __tablename__ = "lens_images"
    __table_args__ = (
        PrimaryKeyConstraint("alert_id", "model_version", "image_index"),
        ForeignKeyConstraint(
            ["alert_id", "model_version"],
            ["lens_results.alert_id", "lens_results.model_version"],
            ondelete="CASCADE",
        ),
    )

    alert_id: Mapped[str] = mapped_column(String(256))
    model_version: Mapped[str] = mapped_column(String(64))
    image_index: Mapped[int] = mapped_column(Integer, doc="arrival order, 0 = first")
    x: Mapped[float] = mapped_column(Double, doc="arcsec, east positive")
    y: Mapped[float] = mapped_column(Double, doc="arcsec, north positive")
    x_p16: Mapped[float | None] = mapped_column(Double)
    x_p50: Mapped[float | None] = mapped_column(Double)
    x_p84: Mapped[float | None] = mapped_column(Double)
    y_p16: Mapped[float | None] = mapped_column(Double)
    y_p50: Mapped[float | None] = mapped_column(Double)
    y_p84: Mapped[float | None] = mapped_column(Double)
    magnification: Mapped[float] = mapped_column(Double, doc="signed point-source magnification")
    time_delay_days: Mapped[float | None] = mapped_column(Double, doc="vs first image, days")
    time_delay_p16: Mapped[float | None] = mapped_column(Double)
    time_delay_p50: Mapped[float | None] = mapped_column(Double)
    time_delay_p84: Mapped[float | None] = mapped_column(Double)
    #: Fermat potential minus the first image's, arcsec^2: delay = D_dt / c * this.
    fermat_potential_arcsec2: Mapped[float | None] = mapped_column(Double)
    #: True for the image the triggering transient was seen in.
    is_observed: Mapped[bool] = mapped_column(Boolean)
    #: Predicted MJD the transient appears in this image (every transient alert).
    arrival_mjd: Mapped[float | None] = mapped_column(Double)
    arrival_mjd_p16: Mapped[float | None] = mapped_column(Double)
    arrival_mjd_p84: Mapped[float | None] = mapped_column(Double)
    #: Sky position (ICRS, degrees) through the cutout's WCS, with the 16/84 % of each axis.
    ra: Mapped[float | None] = mapped_column(Double)
    dec: Mapped[float | None] = mapped_column(Double)
    ra_p16: Mapped[float | None] = mapped_column(Double)
    ra_p84: Mapped[float | None] = mapped_column(Double)
    dec_p16: Mapped[float | None] = mapped_column(Double)
    dec_p84: Mapped[float | None] = mapped_column(Double)


class RejectedAlert(Base):
    """A packet that could not be processed, with the reason and its raw bytes.

    ``source_topic`` is the Kafka topic, or ``file:<path>`` for packets read from archive files
    (``lenscast process``); ``source_partition``/``source_offset`` are then 0 and the packet's
    index within the file. The triple is unique, so redelivery updates rather than duplicates.
    """

    __tablename__ = "rejected_alerts"
    __table_args__ = (
        UniqueConstraint("source_topic", "source_partition", "source_offset"),
        Index(None, "reason"),
        Index(None, "alert_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[str | None] = mapped_column(String(256))
    source_topic: Mapped[str] = mapped_column(String(1024))
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    model_version: Mapped[str | None] = mapped_column(String(64))
    message_timestamp: Mapped[datetime | None] = mapped_column(_utc())
    rejected_at: Mapped[datetime] = mapped_column(_utc())


#: Core tables, for bulk statements (upserts, queries).
results_table = cast(Table, LensResult.__table__)
images_table = cast(Table, LensImage.__table__)
rejected_table = cast(Table, RejectedAlert.__table__)

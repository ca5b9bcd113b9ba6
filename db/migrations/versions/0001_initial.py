"""Initial schema: lens_results, lens_images, rejected_alerts (parameter spec 1.0).

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

# Frozen copy of lenscast.model.parameter_spec 1.0 names: a migration must not change when the spec
# does.
_PARAMETERS = ("theta_e", "e1", "e2", "center_x", "center_y", "gamma1", "gamma2")
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _dbl(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "lens_results",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(256), nullable=False),
        sa.Column("candidate_id", sa.String(256), nullable=False),
        _dbl("ra", False),
        _dbl("dec", False),
        _dbl("mjd", False),
        sa.Column("survey", sa.String(256), nullable=False),
        sa.Column("upstream_broker", sa.String(256), nullable=True),
        sa.Column("upstream_alert_id", sa.String(256), nullable=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("onnx_sha256", sa.String(64), nullable=False),
        sa.Column("parameter_spec_version", sa.String(16), nullable=False),
        sa.Column("alert_schema_version", sa.String(16), nullable=False),
        *[_dbl(name, False) for name in _PARAMETERS],
        *[_dbl(f"sigma_{name}", False) for name in _PARAMETERS],
        sa.Column("out_of_range", sa.String(256), nullable=True),
        _dbl("source_x"),
        _dbl("source_y"),
        sa.Column("n_images", sa.Integer(), nullable=True),
        _dbl("image_count_mismatch_fraction"),
        _dbl("z_lens"),
        _dbl("z_lens_err"),
        _dbl("z_source"),
        _dbl("z_source_err"),
        sa.Column("cosmology", sa.String(256), nullable=True),
        _dbl("cosmology_h0"),
        _dbl("cosmology_om0"),
        sa.Column("has_transient", sa.Boolean(), nullable=False),
        sa.Column("transient_dia_source_id", sa.BigInteger(), nullable=True),
        _dbl("transient_ra"),
        _dbl("transient_dec"),
        _dbl("transient_mjd"),
        sa.Column("transient_band", sa.String(16), nullable=True),
        _dbl("transient_flux"),
        _dbl("transient_x"),
        _dbl("transient_y"),
        sa.Column("source_topic", sa.String(256), nullable=True),
        sa.Column("source_partition", sa.Integer(), nullable=True),
        sa.Column("source_offset", sa.BigInteger(), nullable=True),
        sa.Column("message_timestamp", _utc(), nullable=True),
        sa.Column("processed_at", _utc(), nullable=False),
        _dbl("latency_s"),
        sa.Column("stored_at", _utc(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lens_results"),
        sa.UniqueConstraint(
            "alert_id", "model_version", name="uq_lens_results_alert_id_model_version"
        ),
    )
    for column in ("candidate_id", "mjd", "theta_e", "processed_at"):
        op.create_index(f"ix_lens_results_{column}", "lens_results", [column])

    op.create_table(
        "lens_images",
        sa.Column("alert_id", sa.String(256), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("image_index", sa.Integer(), nullable=False),
        _dbl("x", False),
        _dbl("y", False),
        *[_dbl(f"{axis}_p{p}") for axis in ("x", "y") for p in (16, 50, 84)],
        _dbl("magnification", False),
        _dbl("time_delay_days"),
        *[_dbl(f"time_delay_p{p}") for p in (16, 50, 84)],
        sa.Column("is_observed", sa.Boolean(), nullable=False),
        _dbl("arrival_mjd"),
        _dbl("arrival_mjd_p16"),
        _dbl("arrival_mjd_p84"),
        sa.PrimaryKeyConstraint("alert_id", "model_version", "image_index", name="pk_lens_images"),
        sa.ForeignKeyConstraint(
            ["alert_id", "model_version"],
            ["lens_results.alert_id", "lens_results.model_version"],
            name="fk_lens_images_alert_id_model_version_lens_results",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "rejected_alerts",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(256), nullable=True),
        sa.Column("source_topic", sa.String(1024), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("message_timestamp", _utc(), nullable=True),
        sa.Column("rejected_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejected_alerts"),
        sa.UniqueConstraint(
            "source_topic",
            "source_partition",
            "source_offset",
            name="uq_rejected_alerts_source_topic_source_partition_source_offset",
        ),
    )
    op.create_index("ix_rejected_alerts_reason", "rejected_alerts", ["reason"])
    op.create_index("ix_rejected_alerts_alert_id", "rejected_alerts", ["alert_id"])


def downgrade() -> None:
    op.drop_table("rejected_alerts")
    op.drop_table("lens_images")
    op.drop_table("lens_results")

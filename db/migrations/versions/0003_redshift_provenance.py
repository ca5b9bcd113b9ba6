"""Redshift provenance and the cosmology-free part of the delays.

``lens_results``: ``z_lens_origin``, ``z_source_origin`` ("measured" or "prior"),
``z_lens_used``, ``z_source_used`` (redshifts of the nominal delays) and
``time_delay_distance_mpc``; ``lens_images``: ``fermat_potential_arcsec2`` (relative to the first
image). All nullable: rows written before this revision keep NULL there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa

from lenscast.db.migrations import nullable_columns

revision = "0003"
down_revision = "0002"

_RESULT_COLUMNS: tuple[nullable_columns.ColumnSpec, ...] = (
    ("z_lens_origin", sa.String(16)),
    ("z_source_origin", sa.String(16)),
    ("z_lens_used", sa.Double()),
    ("z_source_used", sa.Double()),
    ("time_delay_distance_mpc", sa.Double()),
)
_IMAGE_COLUMNS: tuple[nullable_columns.ColumnSpec, ...] = (
    ("fermat_potential_arcsec2", sa.Double()),
)


def upgrade() -> None:
    nullable_columns.add("lens_results", _RESULT_COLUMNS)
    nullable_columns.add("lens_images", _IMAGE_COLUMNS)


def downgrade() -> None:
    nullable_columns.drop("lens_images", _IMAGE_COLUMNS)
    nullable_columns.drop("lens_results", _RESULT_COLUMNS)

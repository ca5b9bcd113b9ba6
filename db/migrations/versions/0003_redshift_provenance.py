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

#: Per table, in the order they are added.
_COLUMNS: dict[str, tuple[nullable_columns.ColumnSpec, ...]] = {
    "lens_results": (
        ("z_lens_origin", sa.String(16)),
        ("z_source_origin", sa.String(16)),
        ("z_lens_used", sa.Double()),
        ("z_source_used", sa.Double()),
        ("time_delay_distance_mpc", sa.Double()),
    ),
    "lens_images": (("fermat_potential_arcsec2", sa.Double()),),
}


def upgrade() -> None:
    nullable_columns.add_to_tables(_COLUMNS)


def downgrade() -> None:
    nullable_columns.drop_from_tables(_COLUMNS)

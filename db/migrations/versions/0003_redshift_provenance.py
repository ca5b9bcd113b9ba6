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

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_RESULT_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("z_lens_origin", sa.String(16)),
    ("z_source_origin", sa.String(16)),
    ("z_lens_used", sa.Double()),
    ("z_source_used", sa.Double()),
    ("time_delay_distance_mpc", sa.Double()),
)


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add several columns in one ALTER otherwise.
    with op.batch_alter_table("lens_results") as batch:
        for name, kind in _RESULT_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("lens_images") as batch:
        batch.add_column(sa.Column("fermat_potential_arcsec2", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lens_images") as batch:
        batch.drop_column("fermat_potential_arcsec2")
    with op.batch_alter_table("lens_results") as batch:
        for name, _ in reversed(_RESULT_COLUMNS):
            batch.drop_column(name)

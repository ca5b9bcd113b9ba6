"""Predicted images on the sky: RA, Dec and their 16/84 % ranges in lens_images.

Rows stored before this revision keep NULL there: the cutout's WCS they would need is not
stored, and an approximation is not what these columns promise.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa

from lenscast.db.migrations import nullable_columns

revision = "0002"
down_revision = "0001"

_COLUMNS: tuple[nullable_columns.ColumnSpec, ...] = tuple(
    (name, sa.Double()) for name in ("ra", "dec", "ra_p16", "ra_p84", "dec_p16", "dec_p84")
)


def upgrade() -> None:
    """Add the sky-position columns (nullable)."""
    nullable_columns.add("lens_images", _COLUMNS)


def downgrade() -> None:
    """Drop the sky-position columns."""
    nullable_columns.drop("lens_images", _COLUMNS)

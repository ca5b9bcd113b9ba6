"""Lens evidence on every result: p_lens, the threshold applied and the no_lens flag.

All three are nullable: rows stored before this revision, and rows of models without a
``p_lens`` output, keep NULL there (no evidence either way, nothing flagged).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lenscast.db.migrations import nullable_columns

revision = "0004"
down_revision = "0003"

_COLUMNS: tuple[nullable_columns.ColumnSpec, ...] = (
    ("p_lens", sa.Double()),
    ("p_lens_threshold", sa.Double()),
    ("no_lens", sa.Boolean()),
)


def upgrade() -> None:
    nullable_columns.add("lens_results", _COLUMNS)
    op.create_index("ix_lens_results_p_lens", "lens_results", ["p_lens"])


def downgrade() -> None:
    op.drop_index("ix_lens_results_p_lens", table_name="lens_results")
    nullable_columns.drop("lens_results", _COLUMNS)

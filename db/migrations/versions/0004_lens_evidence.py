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

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot drop columns in place (downgrade), PostgreSQL alters.
    with op.batch_alter_table("lens_results") as batch:
        batch.add_column(sa.Column("p_lens", sa.Double(), nullable=True))
        batch.add_column(sa.Column("p_lens_threshold", sa.Double(), nullable=True))
        batch.add_column(sa.Column("no_lens", sa.Boolean(), nullable=True))
    op.create_index("ix_lens_results_p_lens", "lens_results", ["p_lens"])


def downgrade() -> None:
    op.drop_index("ix_lens_results_p_lens", table_name="lens_results")
    with op.batch_alter_table("lens_results") as batch:
        batch.drop_column("no_lens")
        batch.drop_column("p_lens_threshold")
        batch.drop_column("p_lens")

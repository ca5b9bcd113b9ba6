"""Nullable columns added to, and dropped from, an existing table by a migration.

The revisions after ``0001`` only add nullable columns (rows stored before a revision keep NULL
there) and drop them again on downgrade, last added first. Both go through
``op.batch_alter_table``: SQLite cannot add several columns in one ALTER, nor drop one in place;
on PostgreSQL it issues plain ALTERs. Each revision passes its own frozen column list, so a
revision does not change when the models do; what these functions do must not change either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

#: A column as a revision names it: (name, SQL type).
ColumnSpec = tuple[str, sa.types.TypeEngine[Any]]


def add(table: str, columns: Sequence[ColumnSpec]) -> None:
    """Add ``columns`` to ``table``, nullable, in their order."""
    with op.batch_alter_table(table) as batch:
        for name, kind in columns:
            batch.add_column(sa.Column(name, kind, nullable=True))


def drop(table: str, columns: Sequence[ColumnSpec]) -> None:
    """Drop ``columns`` from ``table``, the last first: :func:`add` undone."""
    with op.batch_alter_table(table) as batch:
        for name, _ in reversed(columns):
            batch.drop_column(name)


def add_to_tables(columns: Mapping[str, Sequence[ColumnSpec]]) -> None:
    """:func:`add` each table's columns, the tables in the mapping's order."""
    for table, specs in columns.items():
        add(table, specs)


def drop_from_tables(columns: Mapping[str, Sequence[ColumnSpec]]) -> None:
    """:func:`drop` each table's columns, the last table first: :func:`add_to_tables` undone."""
    for table, specs in reversed(list(columns.items())):
        drop(table, specs)

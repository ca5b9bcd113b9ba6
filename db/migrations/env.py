"""Alembic environment: runs the migrations on the connection or URL given by lenscast.db.migrate.

``lenscast.db.migrate.upgrade`` passes an open connection in ``config.attributes["connection"]``;
the URL fallback (``sqlalchemy.url``) serves ``alembic`` invoked by hand with ``-x``-free configs.
SQLite gets batch mode, so later ALTERs work there too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from lenscast.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a new engine from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()

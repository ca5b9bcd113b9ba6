"""Create or upgrade the results schema with the Alembic migrations in :mod:`.migrations`.

No ``alembic.ini`` is needed: the configuration is built here and the migrations run on the
caller's connection, so ``lenscast migrate --db URL`` works the same on PostgreSQL and SQLite.
Alembic's log says one line per migration step (``Running upgrade 0001 -> 0002, ...``); its
preamble about the backend (``Context impl ...``, ``Will assume ... DDL``) is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from lenscast.db.engine import NoSchemaError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Alembic's per-run preamble: says nothing about what changed.
_PREAMBLE = ("Context impl ", "Will assume ")


class _StepsOnly(logging.Filter):
    """Keep alembic's per-step lines, drop its per-run preamble."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        return not str(record.msg).startswith(_PREAMBLE)


@contextmanager
def _steps_only() -> Iterator[None]:
    logger = logging.getLogger("alembic.runtime.migration")
    only_steps = _StepsOnly()
    logger.addFilter(only_steps)
    try:
        yield
    finally:
        logger.removeFilter(only_steps)


def alembic_config() -> Config:
    """Return an Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade the database behind ``engine`` to ``revision``; return the new revision."""
    config = alembic_config()
    with engine.begin() as connection, _steps_only():
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return current_revision(engine)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Downgrade the database behind ``engine`` to ``revision`` (``"base"`` drops everything)."""
    config = alembic_config()
    with engine.begin() as connection, _steps_only():
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at (None for an empty database)."""
    with engine.connect() as connection, _steps_only():
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """Return the newest revision shipped with the package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def require_schema(engine: Engine) -> None:
    """Raise :class:`lenscast.db.engine.NoSchemaError` when the database holds no lenscast schema.

    Readers (``query``, ``plot``) call it first, so that a database never migrated says so
    instead of failing on a missing table.
    """
    if current_revision(engine) is None:
        raise NoSchemaError(engine.url)

"""Database URLs and engines for PostgreSQL (production) and SQLite (the embedded default).

URLs are built with :meth:`sqlalchemy.engine.URL.create` from parts, or parsed from one string;
whenever a URL is shown (logs, errors, ``--help``) it goes through :func:`redact`, so a password
is never printed. Engines are created on demand by the caller (``main()``), never at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

#: Environment variables read by :func:`url_from_env` (the password may come from a file).
ENV_URL = "LENSCAST_DB_URL"
ENV_PARTS = {
    "drivername": "LENSCAST_DB_DRIVER",
    "host": "LENSCAST_DB_HOST",
    "port": "LENSCAST_DB_PORT",
    "database": "LENSCAST_DB_NAME",
    "username": "LENSCAST_DB_USER",
}
ENV_PASSWORD = "LENSCAST_DB_PASSWORD"
ENV_PASSWORD_FILE = "LENSCAST_DB_PASSWORD_FILE"
ENV_SSLMODE = "LENSCAST_DB_SSLMODE"
#: Backends lenscast's migrations, upserts and queries are written for.
SUPPORTED_BACKENDS = ("postgresql", "sqlite")


class DatabaseSetupError(Exception):
    """A database the operator named cannot be used as it is (say so in one line, no retry)."""


class DatabaseUrlError(DatabaseSetupError, ValueError):
    """A database URL that is malformed or names a backend lenscast does not support."""


class NoSchemaError(DatabaseSetupError):
    """A database without the lenscast schema, where it must already exist (``query``)."""

    def __init__(self, url: str | URL) -> None:
        super().__init__(
            f"no lenscast schema in {redact(url)}: run `lenscast migrate --db URL` first"
        )


def parse_url(url: str | URL) -> URL:
    """Parse a database URL; a bare path (``results.sqlite``) means a SQLite file.

    Parameters
    ----------
    url : str or URL
        ``postgresql+psycopg2://user@host:5432/db``, ``sqlite:///path`` or a file path.

    Returns
    -------
    URL

    Raises
    ------
    DatabaseUrlError
        For a string that is not a URL, or a backend other than PostgreSQL and SQLite.
    """
    if isinstance(url, URL):
        parsed = url
    elif "://" not in url:
        return URL.create("sqlite", database=str(Path(url)))
    else:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise DatabaseUrlError("not a database URL (see lenscast migrate --help)") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise DatabaseUrlError(
            f"lenscast stores results in PostgreSQL or SQLite, not {backend!r} "
            "(postgresql+psycopg2://user@host/db, sqlite:///path or a file path)"
        )
    return parsed


def redact(url: str | URL) -> str:
    """Render ``url`` with its password replaced by ``***`` (safe for logs and errors)."""
    try:
        return parse_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL may still hold a secret: show nothing of it
        return "<unparsable database URL>"


def url_from_env(environ: Mapping[str, str] | None = None) -> URL | None:
    """Build the database URL from ``LENSCAST_DB_*`` variables, or return None if unset.

    ``LENSCAST_DB_URL`` wins when set; otherwise the URL is assembled with ``URL.create`` from
    ``LENSCAST_DB_DRIVER`` (default ``postgresql+psycopg2``), ``_HOST``, ``_PORT``, ``_NAME``,
    ``_USER`` and the password from ``LENSCAST_DB_PASSWORD`` or the file named by
    ``LENSCAST_DB_PASSWORD_FILE`` (Docker/Kubernetes secrets). ``LENSCAST_DB_SSLMODE``
    (e.g. ``verify-full``) is passed to libpq for TLS to PostgreSQL.
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_URL):
        url = parse_url(env[ENV_URL])
    elif env.get(ENV_PARTS["host"]) or env.get(ENV_PARTS["database"]):
        password = env.get(ENV_PASSWORD)
        if env.get(ENV_PASSWORD_FILE):
            password = Path(env[ENV_PASSWORD_FILE]).read_text().strip()
        port = env.get(ENV_PARTS["port"])
        if port and not port.strip().isdigit():
            raise ValueError(f"{ENV_PARTS['port']}={port!r}: not a port number")
        url = URL.create(
            env.get(ENV_PARTS["drivername"], "postgresql+psycopg2"),
            username=env.get(ENV_PARTS["username"]),
            password=password,
            host=env.get(ENV_PARTS["host"]),
            port=int(port) if port else None,
            database=env.get(ENV_PARTS["database"]),
        )
    else:
        return None
    if env.get(ENV_SSLMODE):
        url = url.update_query_dict({"sslmode": env[ENV_SSLMODE]})
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys make ON DELETE CASCADE work; WAL lets readers query while the consumer writes.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str | URL, *, create: bool = True, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the settings each backend needs.

    PostgreSQL connections are pinged before use, so the consumer recovers transparently after
    a database restart; SQLite gets foreign keys, WAL and a 30 s busy timeout (several writers).

    Parameters
    ----------
    url : str or URL
    create : bool
        Whether a SQLite file (and its folders) may be created; readers pass False, and a
        missing file is then :class:`NoSchemaError`, with nothing created.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine`.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            if not create and not path.is_file():
                raise NoSchemaError(parsed)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseSetupError(f"cannot create {path.parent}: {exc.strerror}") from None
        engine = create_engine(parsed, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_driver_name() == "psycopg2":
        # Multi-row INSERTs and batched statements instead of one round trip per row.
        kwargs.setdefault("executemany_mode", "values_plus_batch")
    return create_engine(parsed, pool_pre_ping=True, **kwargs)

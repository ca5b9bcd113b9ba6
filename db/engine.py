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


def parse_url(url: str | URL) -> URL:
    """Parse a database URL; a bare path (``results.sqlite``) means a SQLite file.

    Parameters
    ----------
    url : str or URL
        ``postgresql+psycopg2://user@host:5432/db``, ``sqlite:///path`` or a file path.

    Returns
    -------
    URL
    """
    if isinstance(url, URL):
        return url
    if "://" not in url:
        return URL.create("sqlite", database=str(Path(url)))
    return make_url(url)


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


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the settings each backend needs.

    PostgreSQL connections are pinged before use, so the consumer recovers transparently after
    a database restart; SQLite gets foreign keys, WAL and a 30 s busy timeout (several writers).
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_driver_name() == "psycopg2":
        # Multi-row INSERTs and batched statements instead of one round trip per row.
        kwargs.setdefault("executemany_mode", "values_plus_batch")
    return create_engine(parsed, pool_pre_ping=True, **kwargs)

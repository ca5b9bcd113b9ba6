"""``lenscast migrate``: create or upgrade the results database schema."""

from __future__ import annotations

import argparse
import sys

from lenscast.db.engine import make_engine, redact, url_from_env
from lenscast.db.migrate import current_revision, head_revision, upgrade


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``migrate`` options to ``parser``."""
    parser.add_argument(
        "--db",
        help="database URL (postgresql+psycopg2://... or sqlite:///path or a file path); "
        "default from LENSCAST_DB_URL / LENSCAST_DB_* variables",
    )
    parser.add_argument("--revision", default="head", help="target revision (default: head)")


def run(args: argparse.Namespace) -> int:
    """Upgrade the database; print the revision before and after."""
    url = args.db or url_from_env()
    if url is None:
        print("lenscast migrate: no database given (--db or LENSCAST_DB_URL)", file=sys.stderr)
        return 2
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        after = upgrade(engine, args.revision)
    finally:
        engine.dispose()
    print(f"{redact(url)}: {before or 'empty'} -> {after} (head {head_revision()})")
    return 0

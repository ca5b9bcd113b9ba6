"""Text made storable: the one place where strings bound for the database are escaped.

PostgreSQL refuses NUL (U+0000) in ``text`` (psycopg2 raises ``ValueError`` before sending), and
no driver can encode a lone surrogate (U+D800-U+DFFF; ``UnicodeEncodeError``, SQLite too). Both
can reach a row from hostile input, e.g. a container's writer-schema name quoted in a rejection's
detail, and a refused row must never stop the consumer. :func:`storable_rows` therefore rewrites
every string value of every row :mod:`lenscast.db.writer` writes: NUL becomes the four characters
``\\x00`` and a lone surrogate ``\\udXXX`` (Python's escapes). Every other character, in every
Unicode plane, is stored as it is. The rewrite is one-way (a literal ``\\x00`` in the input reads
back the same); the packet's exact bytes are kept in ``rejected_alerts.raw`` for anything that needs
them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Characters no backend stores in a text column: NUL and the surrogate code points.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by their Python escapes."""
    if _UNSTORABLE.search(value) is None:
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _unstorable(row: Mapping[str, Any]) -> bool:
    return any(isinstance(v, str) and _UNSTORABLE.search(v) for v in row.values())


def storable_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``rows`` with every string value made storable (rows that need no change are kept)."""
    return [
        {k: storable_text(v) if isinstance(v, str) else v for k, v in row.items()}
        if _unstorable(row)
        else row
        for row in rows
    ]

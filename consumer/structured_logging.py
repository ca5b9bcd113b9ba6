"""Structured logs: one JSON object per line (``ts``, ``level``, ``logger``, ``msg``, fields).

Extra fields are passed as ``log.info("batch stored", extra={"fields": {...}})``. Nothing here
redacts: callers log only redacted settings
(:meth:`lenscast.consumer.settings.ConsumerSettings.redacted`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line for ``record``."""
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(*, fmt: str = "json", level: str = "INFO") -> None:
    """Send the root logger to stderr in ``fmt`` (``"json"`` or ``"text"``) at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

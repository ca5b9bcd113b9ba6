"""The HTTP endpoint (``/metrics`` for Prometheus, ``/healthz`` and ``/readyz``) and health file.

``/healthz`` (liveness) answers 200 while the consumer loop has made progress recently (it
beats after every poll, also while paused for a database outage) and 503 otherwise; ``/readyz``
answers 200 only when, in addition, the database is reachable. Both return a JSON body with the
state. The optional health file is rewritten (atomically) at most once a second with the same
JSON, for health checks that read files.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class HealthState:
    """Liveness and readiness of the consumer, updated by the loop, read by the endpoint.

    Parameters
    ----------
    stale_after_s : float
        The loop counts as stuck when it has not beaten for this long.
    health_file : Path, optional
        Where to mirror the state as JSON.
    """

    def __init__(self, *, stale_after_s: float = 60.0, health_file: Path | None = None) -> None:
        self.stale_after_s = stale_after_s
        self.health_file = health_file
        self._lock = threading.Lock()
        self._last_beat = time.monotonic()
        self._last_file_write = 0.0
        self.db_up = True
        #: Last client-level broker error (authentication, all brokers down), None when healthy.
        self.broker_error: str | None = None
        self.paused = False
        self.stored = 0
        self.rejected = 0

    def beat(self, **changes: Any) -> None:
        """Record loop progress (and state changes such as ``db_up=False``)."""
        with self._lock:
            self._last_beat = time.monotonic()
            for key, value in changes.items():
                setattr(self, key, value)
        if self.health_file is not None and time.monotonic() - self._last_file_write >= 1.0:
            self._write_file()

    def snapshot(self) -> dict[str, Any]:
        """The state as a JSON-able dict (``alive``, ``ready``, counts, ...)."""
        with self._lock:
            age = time.monotonic() - self._last_beat
            alive = age < self.stale_after_s
            return {
                "alive": alive,
                "ready": alive and self.db_up and self.broker_error is None,
                "db_up": self.db_up,
                "broker_error": self.broker_error,
                "paused": self.paused,
                "seconds_since_progress": round(age, 3),
                "stored": self.stored,
                "rejected": self.rejected,
            }

    def _write_file(self) -> None:
        assert self.health_file is not None
        self._last_file_write = time.monotonic()
        tmp = self.health_file.with_suffix(self.health_file.suffix + ".tmp")
        tmp.write_text(json.dumps({**self.snapshot(), "ts": time.time()}))
        os.replace(tmp, self.health_file)


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    health: HealthState

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            state = self.health.snapshot()
            ok = state["alive"] if path == "/healthz" else state["ready"]
            self._send(200 if ok else 503, json.dumps(state).encode(), "application/json")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence per-request access logs (scrapes every few seconds)."""


class HealthServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` in a daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        health: HealthState,
        *,
        port: int,
        host: str = "0.0.0.0",
    ) -> None:
        handler = type("Handler", (_Handler,), {"registry": registry, "health": health})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="lenscast-health", daemon=True
        )

    def start(self) -> HealthServer:
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

"""The services tests need, found or started, and what happens when one cannot be.

A missing service skips its tests on a laptop but **fails them in CI** (``CI=true``): nothing
that needs a service is silently skipped there (``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lenscast.consumer.settings import parse_bool
from lenscast.tools.local_broker import LocalBroker, LocalBrokerError

IN_CI = parse_bool(os.environ.get("CI", "false"))


def service_missing(what: str) -> None:
    """Fail in CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI (CI=true) and could not be found or started")
    pytest.skip(f"{what} not available")


@contextlib.contextmanager
def started_broker(log_path: Path) -> Iterator[LocalBroker]:
    """A Tansu broker logging to ``log_path``, stopped on exit (or the test skipped/failed)."""
    broker = LocalBroker(log_path=log_path)
    try:
        broker.start()
    except LocalBrokerError as exc:
        service_missing(f"the Tansu broker ({exc})")
    try:
        yield broker
    finally:
        broker.stop()

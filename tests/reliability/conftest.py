"""Fixtures of the reliability tests, and the report of their counts at the end of the run.

Each test records the counts docs/reliability.md reports (crash rounds, alerts,
results/rejected/missing/duplicates, outage duration, RSS, throughput) with the
``reliability_report`` fixture. The counts are printed in the terminal summary (so they appear
in CI logs without ``-s``) and written as JSON to ``reliability-report.json`` in the
pytest base temporary directory.

The broker here is a fresh Tansu per test, not the session one: Tansu keeps every message in
memory, and these tests push hundreds of megabytes through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.reliability import ConsumeTarget
from harness.services import service_missing, started_broker

_REPORT: dict[str, dict[str, Any]] = {}
_REPORT_PATH: list[Path] = []


@pytest.fixture
def reliability_report(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A dict this test fills with its counts; shown in the terminal summary."""
    entry: dict[str, Any] = {}
    _REPORT[request.node.name] = entry
    return entry


@pytest.fixture(scope="session", autouse=True)
def _report_file(tmp_path_factory: pytest.TempPathFactory) -> None:
    _REPORT_PATH[:] = [tmp_path_factory.getbasetemp() / "reliability-report.json"]


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Any]:
    """A Tansu broker of this test's own (memory freed when the test ends)."""
    with started_broker(tmp_path / "broker.log") as broker:
        yield broker


@pytest.fixture
def stream_broker(fresh_broker: Any) -> Any:
    """The broker of ``new_stream`` here: the test's own."""
    return fresh_broker


@pytest.fixture
def freezable_broker(tmp_path: Path) -> Iterator[Any]:
    """A Tansu broker of this test's own behind a proxy that can drop client traffic."""
    from harness.reliability import FreezableBroker
    from lenscast.tools.local_broker import LocalBrokerError

    broker = FreezableBroker(tmp_path / "broker.log")
    try:
        broker.start()
    except (LocalBrokerError, AssertionError) as exc:
        broker.stop()
        service_missing(f"the Tansu broker behind a proxy ({exc})")
    try:
        yield broker
    finally:
        broker.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the recorded counts (one JSON object per test) and save them."""
    if not _REPORT:
        return
    terminalreporter.section("reliability counts (docs/reliability.md)")
    for name, entry in _REPORT.items():
        terminalreporter.write_line(f"{name}: {json.dumps(entry, sort_keys=True)}")
    if _REPORT_PATH:
        _REPORT_PATH[0].write_text(json.dumps(_REPORT, indent=1, sort_keys=True))
        terminalreporter.write_line(f"(saved to {_REPORT_PATH[0]})")


@pytest.fixture
def consume_target(
    fresh_broker: Any, migrated_postgres_url: str, model_path: Path
) -> ConsumeTarget:
    """This test's broker, database and model, for a ``lenscast consume`` process."""
    return ConsumeTarget(fresh_broker.bootstrap_servers, migrated_postgres_url, model_path)

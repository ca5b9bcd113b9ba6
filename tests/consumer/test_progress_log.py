"""The consumer's periodic progress line: its content, its rate, and its rate with no broker."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from lenscast.consumer.progress_log import ProgressLog
from lenscast.tools.local_broker import free_port


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_line_reports_rate_lag_and_rejections_by_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    progress = ProgressLog(10.0, clock=clock)
    progress.record(30, ["cutout.no_wcs", "avro.invalid", "cutout.no_wcs"])
    clock.now += 9.9
    with caplog.at_level(logging.INFO, logger="lenscast.progress"):
        assert not progress.maybe_log(lag=5)  # not yet
        clock.now += 0.1
        assert progress.maybe_log(lag=5)
        progress.record(20, [])
        clock.now += 10.0
        assert progress.maybe_log(lag=None)
    first, second = caplog.records
    assert first.getMessage() == (
        "progress: 3.3 alerts/s, lag 5, stored 30, rejected 3 "
        "(cutout.no_wcs 2, avro.invalid 1) in 10.0 s"
    )
    fields = first.fields  # type: ignore[attr-defined]
    assert fields["rejected_by_reason"] == {"cutout.no_wcs": 2, "avro.invalid": 1}
    assert fields["alerts_per_s"] == 3.3
    # The second line counts only its own interval; the totals keep growing.
    assert (
        second.getMessage()
        == "progress: 2.0 alerts/s, lag unknown, stored 20, rejected 0 in 10.0 s"
    )
    assert second.fields["stored_total"] == 50  # type: ignore[attr-defined]


def test_interval_zero_switches_the_line_off() -> None:
    clock = FakeClock()
    progress = ProgressLog(0.0, clock=clock)
    clock.now += 1e6
    assert not progress.maybe_log(lag=0)


@pytest.mark.integration
def test_the_consumer_logs_progress_at_its_interval_with_the_broker_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from lenscast.consumer.kafka_loop import ConsumerService
    from lenscast.consumer.settings import ConsumerSettings
    from lenscast.consumer.shutdown import StopFlag
    from lenscast.db.engine import make_engine, parse_url
    from lenscast.db.migrate import upgrade

    url = parse_url(f"sqlite:///{tmp_path / 'results.sqlite'}")
    engine = make_engine(url)
    upgrade(engine)
    settings = ConsumerSettings(
        bootstrap_servers=f"127.0.0.1:{free_port()}",  # nothing listens there
        db_url=url,
        log_interval_s=0.5,
        metrics_port=None,
    )
    stop = StopFlag()
    service = ConsumerService(settings, predictor=None, engine=engine, stop=stop)  # type: ignore[arg-type]
    runner = threading.Thread(target=service.run)
    with caplog.at_level(logging.INFO, logger="lenscast.progress"):
        runner.start()
        time.sleep(2.6)
        stop.set()
        runner.join(timeout=30)
    engine.dispose()
    assert not runner.is_alive()
    lines = [r.getMessage() for r in caplog.records if r.name == "lenscast.progress"]
    # One line per 0.5 s (polls return at least every 0.5 s): 4 or 5 in 2.6 s, never a flood.
    assert 3 <= len(lines) <= 6, lines
    assert all(line.startswith("progress: 0.0 alerts/s, lag unknown, stored 0") for line in lines)

"""Repeated log messages are let through once per interval, with a count of the repeats."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from lenscast.consumer.log_throttle import ThrottleFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(message: str, name: str = "librdkafka", level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


def test_a_repeated_message_passes_once_per_interval_with_its_count() -> None:
    clock = Clock()
    throttle = ThrottleFilter(10.0, clock)
    passed = []
    for i in range(200):  # 20 s of a failure reported every 0.1 s, its numbers changing
        clock.now = i * 0.1
        r = record(f"Connect to ipv4#127.0.0.1:{9000 + i % 3} failed (after {i} ms)")
        if throttle.filter(r):
            passed.append(r.getMessage())
    assert len(passed) == 2
    assert "more like it" not in passed[0]
    assert "(99 more like it in the last 10 s)" in passed[1]


def test_distinct_messages_and_loggers_are_not_merged() -> None:
    throttle = ThrottleFilter(10.0, Clock())
    assert throttle.filter(record("broker down"))
    assert throttle.filter(record("authentication failed"))
    assert throttle.filter(record("broker down", name="other"))
    assert throttle.filter(record("broker down", level=logging.WARNING))
    assert not throttle.filter(record("broker down"))


def test_the_consumer_logs_a_flapping_connection_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from lenscast.consumer.kafka_loop import ConsumerService
    from lenscast.consumer.settings import ConsumerSettings
    from lenscast.db.engine import parse_url

    settings = ConsumerSettings(bootstrap_servers="127.0.0.1:9", db_url=parse_url("sqlite://"))
    service = ConsumerService(  # only the error callback is exercised
        settings=settings,
        predictor=None,  # type: ignore[arg-type]
        engine=None,  # type: ignore[arg-type]
        stop=None,  # type: ignore[arg-type]
    )
    error = KafkaError(KafkaError._TRANSPORT, "127.0.0.1:9/bootstrap: Connection refused")
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            service._on_error(error)
    lines = [r for r in caplog.records if "Connection refused" in r.getMessage()]
    assert len(lines) == 1

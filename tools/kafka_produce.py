"""Producing a sequence of messages to one Kafka topic, in order, and counting the deliveries.

The one producer loop of the project: ``lenscast replay`` publishes archives with it, and the
test and benchmark harness fills topics with it (``harness/stream_helpers.py``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Deliveries:
    """What became of the produced messages.

    Attributes
    ----------
    produced : int
        Messages handed to the producer.
    failed : Counter of str
        Failed deliveries by error text.
    undelivered : int
        Messages still queued when the final flush timed out.
    """

    produced: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    undelivered: int = 0

    @property
    def delivered(self) -> int:
        """Messages the broker acknowledged."""
        return self.produced - sum(self.failed.values()) - self.undelivered

    @property
    def ok(self) -> bool:
        """True when every message was delivered."""
        return self.delivered == self.produced


def produce_all(
    values: Iterable[bytes],
    *,
    topic: str,
    config: Mapping[str, Any],
    partitions: int | None = None,
    rate: float | None = None,
    flush_s: float = 60.0,
    on_failure: Callable[[str], None] | None = None,
) -> Deliveries:
    """Produce ``values`` to ``topic`` in order and wait for their delivery.

    Parameters
    ----------
    values : iterable of bytes
        Message values (consumed lazily: a generator may record what it yields).
    topic : str
    config : mapping
        librdkafka producer settings (``bootstrap.servers`` at least).
    partitions : int, optional
        Send message ``i`` to partition ``i % partitions``: with one producer on an empty
        topic it lands at offset ``i // partitions``, which is how tests know what each offset
        holds. Default: the partitioner chooses.
    rate : float, optional
        Messages per second (default: as fast as the broker takes them).
    flush_s : float
        How long the final flush waits for outstanding deliveries, seconds.
    on_failure : callable, optional
        Called with the error text of each failed delivery, as it is reported.

    Returns
    -------
    Deliveries
    """
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer(dict(config))
    outcome = Deliveries()

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            outcome.failed[str(error)] += 1
            if on_failure is not None:
                on_failure(str(error))

    start = time.monotonic()
    for i, value in enumerate(values):
        if rate:
            ahead = start + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        # -1 is librdkafka's RD_KAFKA_PARTITION_UA: let the partitioner choose.
        partition = -1 if partitions is None else i % partitions
        while True:
            try:
                producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        producer.poll(0)
        outcome.produced += 1
    outcome.undelivered = producer.flush(flush_s)
    return outcome

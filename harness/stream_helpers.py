"""Helpers of the stream tests and benchmarks: produce, run consumers in threads, count rows."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine, func, select

from harness.consumer_process import ConsumerProcess
from lenscast.consumer.kafka_loop import ConsumerService
from lenscast.consumer.pipeline import BatchOutcome, RawMessage
from lenscast.consumer.settings import ConsumerSettings, PipelineSettings
from lenscast.consumer.shutdown import StopFlag
from lenscast.db.engine import make_engine, parse_url
from lenscast.db.models import rejected_table, results_table
from lenscast.model.predictor import OnnxMassPredictor
from lenscast.tools.kafka_produce import produce_all


def new_topic(broker: Any, partitions: int, *, prefix: str = "lens") -> str:
    """Create a uniquely named topic ``{prefix}-<random>`` on the broker."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    broker.create_topic(name, partitions=partitions)
    return name


def produce(bootstrap: str, topic: str, values: Iterable[bytes], *, partitions: int) -> int:
    """Produce ``values`` round-robin over the partitions, in order; wait for delivery.

    Message ``i`` goes to partition ``i % partitions`` at offset ``i // partitions`` (one
    producer, in order, on an empty topic), which is how the tests know what each offset holds.
    Returns how many were produced.
    """
    config = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        # The hostile stream holds packets over the consumer's 4 MiB limit on purpose.
        "message.max.bytes": 16 * 2**20,
        "enable.idempotence": True,
    }
    outcome = produce_all(values, topic=topic, config=config, partitions=partitions, flush_s=120)
    assert outcome.undelivered == 0, "messages left undelivered"
    assert not outcome.failed, outcome.failed.most_common(3)
    return outcome.produced


def settings_for(
    bootstrap: str, topic: str, db_url: str, model_path: Path, *, group: str, **changes: Any
) -> ConsumerSettings:
    """Consumer settings for tests: fast group joins, small batches, no HTTP endpoint."""
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "db_url": parse_url(db_url),
        "topics": (topic,),
        "group_id": group,
        "model_path": model_path,
        "batch_max_messages": 64,
        "batch_max_wait_s": 0.2,
        "session_timeout_ms": 6000,
        "metrics_port": None,
        "db_retry_initial_s": 0.2,
        "db_retry_max_s": 1.0,
        "pipeline": PipelineSettings(n_mc_samples=10),
    }
    values.update(changes)
    return ConsumerSettings(**values)


@dataclass
class RunningService:
    """A :class:`ConsumerService` running in a thread, with what it committed."""

    service: ConsumerService
    thread: threading.Thread
    stop: StopFlag
    batches: list[tuple[list[RawMessage], BatchOutcome]] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    def partitions(self) -> set[int]:
        """Partitions this member stored messages from."""
        return {m.partition for batch, _ in self.batches for m in batch}

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop gracefully and wait; re-raise an error from the thread."""
        self.stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "consumer did not stop"
        if self.error:
            raise self.error[0]


def start_service(
    settings: ConsumerSettings,
    *,
    engine: Engine | None = None,
    on_batch: Callable[[RunningService], None] | None = None,
) -> RunningService:
    """Start a consumer service in a daemon thread."""
    stop = StopFlag()
    predictor = OnnxMassPredictor(settings.model_path)
    service = ConsumerService(
        settings, predictor=predictor, engine=engine or make_engine(settings.db_url), stop=stop
    )
    running = RunningService(service, threading.Thread(target=lambda: None), stop)

    def record(batch: Sequence[RawMessage], outcome: BatchOutcome) -> None:
        running.batches.append((list(batch), outcome))
        if on_batch is not None:
            on_batch(running)

    service.on_batch_committed = record

    def target() -> None:
        try:
            service.run()
        except BaseException as exc:
            running.error.append(exc)

    running.thread = threading.Thread(target=target, daemon=True)
    running.thread.start()
    return running


def stored_count(engine: Engine) -> tuple[int, int]:
    """(results, rejected) rows."""
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(results_table)).scalar_one(),
            conn.execute(select(func.count()).select_from(rejected_table)).scalar_one(),
        )


def wait_for(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 0.2 s until true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offset per partition (``-1001`` when none), without joining it."""
    client = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        got = client.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in got]
    finally:
        client.close()


def stored_keys(engine: Engine) -> tuple[list[str], list[tuple[int, int]]]:
    """Stored result alert ids and rejected (partition, offset), for exactly-once checks."""
    with engine.connect() as conn:
        ids = conn.execute(select(results_table.c.alert_id)).scalars().all()
        rej = conn.execute(
            select(rejected_table.c.source_partition, rejected_table.c.source_offset)
        ).all()
    return list(ids), [(int(p), int(o)) for p, o in rej]


@dataclass
class StreamRun:
    """One test's topic and consumer group, its database and model, and where logs go.

    Consumers run as processes (:meth:`consumer`) or in threads (:func:`start_service` with
    :meth:`settings`).

    Parameters
    ----------
    bootstrap, topic, group, db_url : str
    model : Path
    directory : Path
        Where the consumers' logs go.
    partitions : int
        Partitions of the topic.
    """

    bootstrap: str
    topic: str
    group: str
    db_url: str
    model: Path
    directory: Path
    partitions: int

    @classmethod
    def create(cls, broker: Any, db_url: str, model: Path, directory: Path, *, name: str,
               partitions: int) -> StreamRun:  # fmt: skip
        """Create a new topic ``{name}-<random>`` on ``broker`` and name a new group for it."""
        topic = new_topic(broker, partitions, prefix=name)
        group = f"g-{uuid.uuid4().hex[:6]}"
        return cls(broker.bootstrap_servers, topic, group, db_url, model, directory, partitions)

    def produce(self, values: Iterable[bytes]) -> int:
        """Append ``values`` round-robin over the partitions (see :func:`produce`)."""
        return produce(self.bootstrap, self.topic, values, partitions=self.partitions)

    def consumer(self, name: str = "consume", **options: Any) -> ConsumerProcess:
        """Start a ``lenscast consume`` member logging to ``{name}.log``; ``options`` as
        :class:`ConsumerProcess` takes them."""
        return ConsumerProcess(self.bootstrap, self.topic, self.group, self.db_url, self.model,
                               self.directory / f"{name}.log", **options).start()  # fmt: skip

    def settings(self, **changes: Any) -> ConsumerSettings:
        """Settings of an in-thread consumer of this stream (:func:`settings_for`)."""
        return settings_for(self.bootstrap, self.topic, self.db_url, self.model, group=self.group,
                            **changes)  # fmt: skip

    def committed(self) -> list[int]:
        """The group's committed offset per partition."""
        return committed(self.bootstrap, self.group, self.topic, self.partitions)

    def wait_committed(self, n: int, *, timeout_s: float = 60.0) -> None:
        """Wait until the group has committed the ends of the ``n`` messages produced."""
        ends = [len(range(p, n, self.partitions)) for p in range(self.partitions)]
        wait_for(lambda: self.committed() == ends, timeout_s=timeout_s, what="the final commits")

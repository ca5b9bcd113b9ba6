"""The consumer loop's offset logic against a scripted in-memory Kafka client (no broker).

Deterministic checks of what the broker tests can only observe: offsets are committed only after
the batch is stored, exactly one past the stored messages; a database outage pauses consumption
and commits nothing; a partition revoked while the batch waits is not committed; a full batch
written on the writer thread is committed after its transaction, in order, while the next batch
is polled, and a batch closed by its time limit is written at once; a batch in hand when
partitions are revoked is stored and committed inside the revocation callback; a batch given up
in a revocation keeps its other partitions' messages; a refused login makes the service unready
until the broker answers; messages queued while a batch was processed form the next batch at
once, and after the loop has caught up a new batch waits for its messages again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

import lenscast.consumer.kafka_loop as kafka_loop
import lenscast.consumer.pipeline as pipeline
from lenscast.consumer.kafka_loop import ConsumerService
from lenscast.consumer.settings import ConsumerSettings, PipelineSettings
from lenscast.consumer.shutdown import StopFlag
from lenscast.db.engine import make_engine, parse_url
from lenscast.db.migrate import upgrade
from lenscast.db.models import results_table
from lenscast.model.predictor import OnnxMassPredictor

TOPIC = "lens"
#: The fixtures' factories: a service on a fake client (:func:`new_service`), an alert packet.
NewService = Callable[..., ConsumerService]
MakeAlert = Callable[..., bytes]


class FakeMessage:
    def __init__(self, partition: int, offset: int, value: bytes) -> None:
        self._p, self._o, self._v = partition, offset, value

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._v

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, int(time.time() * 1000)


class FakeConsumer:
    """Two partitions of pre-produced messages; ``script`` runs before each poll."""

    def __init__(self, messages: dict[int, list[bytes]]) -> None:
        self.pending = {p: [FakeMessage(p, o, v) for o, v in enumerate(vs)]
                        for p, vs in messages.items()}  # fmt: skip
        self.assigned: list[TopicPartition] = []
        self.paused: set[int] = set()
        self.commits: list[tuple[str, list[tuple[int, int]]]] = []
        self.phase = "poll"
        self.polls = 0
        self.poll_times: list[float] = []
        self.script: Callable[[FakeConsumer], None] = lambda _c: None
        self.callbacks: dict[str, Any] = {}

    def __call__(self, _config: dict[str, Any]) -> FakeConsumer:  # the factory
        return self

    def subscribe(self, _topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def rebalance(self, partitions: list[int]) -> None:
        self.phase = "revoke"
        self.callbacks["on_revoke"](self, list(self.assigned))
        self.phase = "assign"
        self.callbacks["on_assign"](self, [TopicPartition(TOPIC, p) for p in partitions])
        self.phase = "poll"

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.partition for tp in partitions}

    def _take(self, n: int) -> list[FakeMessage]:
        if not self.assigned:
            self.rebalance(sorted(self.pending))
        self.polls += 1
        self.poll_times.append(time.monotonic())
        self.script(self)
        out: list[FakeMessage] = []
        for tp in self.assigned:
            queue = self.pending[tp.partition]
            while queue and tp.partition not in self.paused and len(out) < n:
                out.append(queue.pop(0))
        if not out:
            time.sleep(0.005)
        return out

    def poll(self, _timeout: float) -> FakeMessage | None:
        got = self._take(1)
        return got[0] if got else None

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return self._take(num_messages)

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert not asynchronous
        self.commits.append((self.phase, [(tp.partition, tp.offset) for tp in offsets]))

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return 0, tp.offset

    def close(self) -> None:
        self.callbacks["on_revoke"](self, list(self.assigned))


def fake_with(make_alert: MakeAlert, *counts: int) -> FakeConsumer:
    """A fake client with ``counts[p]`` alerts on partition ``p``, numbered from ``10 p``."""
    return FakeConsumer(
        {p: [make_alert(10 * p + i) for i in range(n)] for p, n in enumerate(counts)}
    )


@pytest.fixture(scope="module")
def predictor(fixture_model_path: Path) -> OnnxMassPredictor:
    return OnnxMassPredictor(fixture_model_path)


def service_for(
    fake: FakeConsumer,
    sqlite_url: str,
    predictor: OnnxMassPredictor,
    *,
    batch: int = 4,
    wait_s: float = 0.05,
    overlap_store: bool = True,
    max_poll_interval_ms: int = 300000,
    inference_chunk: int = 32,
) -> ConsumerService:
    settings = ConsumerSettings(
        bootstrap_servers="fake:9092", db_url=parse_url(sqlite_url), topics=(TOPIC,),
        batch_max_messages=batch, batch_max_wait_s=wait_s, metrics_port=None,
        overlap_store=overlap_store, max_poll_interval_ms=max_poll_interval_ms,
        db_retry_initial_s=0.01, db_retry_max_s=0.02,
        pipeline=PipelineSettings(n_mc_samples=0, inference_chunk=inference_chunk),
    )  # fmt: skip
    engine = make_engine(sqlite_url)
    upgrade(engine)
    return ConsumerService(settings, predictor=predictor, engine=engine, stop=StopFlag(),
                           consumer_factory=fake)  # fmt: skip


#: A stand-in for the loop's ``write_outcome``: ``hook(real_write, *args)``.
WriteHook = Callable[..., None]


@pytest.fixture
def new_service(
    sqlite_url: str, predictor: OnnxMassPredictor, monkeypatch: pytest.MonkeyPatch
) -> NewService:
    """:func:`service_for` on this test's database and the fixture model.

    Its ``write_hook``, if given, takes the place of the loop's ``write_outcome`` and receives
    the real one first.
    """
    real = kafka_loop.write_outcome

    def new(
        fake: FakeConsumer, *, write_hook: WriteHook | None = None, **kw: Any
    ) -> ConsumerService:
        if write_hook is not None:
            hook = write_hook
            monkeypatch.setattr(kafka_loop, "write_outcome", lambda *args: hook(real, *args))
        return service_for(fake, sqlite_url, predictor, **kw)

    return new


def outage(
    down: Callable[[int], bool], *, at_failure: Callable[[], object] = lambda: None
) -> WriteHook:
    """A write hook for a database that is down while ``down(writes failed so far)`` is true.

    A write while it is down calls ``at_failure()`` (to record, or to script, what happens
    during the outage) and raises the error of a lost connection; the others are written.
    """
    failed = 0

    def hook(real: WriteHook, *args: Any) -> None:
        nonlocal failed
        if down(failed):
            failed += 1
            at_failure()
            raise OperationalError("INSERT", {}, ConnectionError("database is down"))
        real(*args)

    return hook


def stored(service: ConsumerService) -> int:
    with service.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(results_table)).scalar_one())


def run_until(service: ConsumerService, done: Callable[[], bool]) -> None:
    def check(*_args: object) -> None:
        if done():
            service.stop.set()

    service.on_batch_committed = check
    service.run()


def test_outage_pauses_commits_nothing_then_resumes(
    new_service: NewService, make_alert: MakeAlert
) -> None:
    fake = fake_with(make_alert, 3, 3)
    seen: dict[str, list[Any]] = {"commits_during_outage": [], "paused": []}

    def record() -> None:
        seen["commits_during_outage"].append(list(fake.commits))
        seen["paused"].append(set(fake.paused))

    flaky = outage(lambda failed: failed < 3, at_failure=record)
    service = new_service(fake, batch=6, wait_s=0.5, write_hook=flaky)
    run_until(service, lambda: stored(service) == 6)
    assert seen["commits_during_outage"] == [[], [], []]
    assert seen["paused"][1:] == [{0, 1}, {0, 1}]  # paused from the first failure on
    assert fake.commits == [("poll", [(0, 3), (1, 3)])]
    assert fake.paused == set()
    assert service.metrics.db_retries._value.get() == 3


def test_partition_revoked_during_an_outage_is_not_committed(
    new_service: NewService, make_alert: MakeAlert
) -> None:
    fake = fake_with(make_alert, 2, 2)
    # The write on this thread: the rebalance must come while it waits for the database
    # (with the writer thread, the loop could poll, and see the rebalance, before it fails).

    def take_partition_1_away() -> None:  # while the batch waits for the database
        fake.script = lambda c: (c.rebalance([0]), setattr(c, "script", lambda _c: None))

    fail_once = outage(lambda failed: failed < 1, at_failure=take_partition_1_away)
    service = new_service(fake, batch=4, wait_s=0.5, overlap_store=False, write_hook=fail_once)
    run_until(service, lambda: stored(service) == 4)
    # All four are stored (idempotent writes), but only partition 0's offset is committed:
    # partition 1's new owner re-reads from its last commit.
    assert fake.commits == [("poll", [(0, 2)])]


def test_writer_thread_overlaps_the_next_poll_and_commits_after_each_write_in_order(
    new_service: NewService, make_alert: MakeAlert
) -> None:
    fake = fake_with(make_alert, 8, 0)
    seen: dict[str, Any] = {"threads": set(), "commits_when_written": []}
    polled = threading.Event()

    def slow_first_write(real: WriteHook, *args: Any) -> None:
        seen["threads"].add(threading.current_thread().name)
        if not seen["commits_when_written"]:  # the first batch waits until the loop polls again
            polls = fake.polls
            fake.script = lambda c: polled.set() if c.polls > polls else None
            seen["polled_meanwhile"] = polled.wait(10)
        real(*args)
        seen["commits_when_written"].append(list(fake.commits))

    service = new_service(fake, batch=4, wait_s=5, write_hook=slow_first_write)
    run_until(service, lambda: stored(service) == 8)
    assert seen["polled_meanwhile"]  # the next batch was gathered while the first was written
    assert all(name.startswith("lenscast-db") for name in seen["threads"]), seen["threads"]
    # Nothing is committed before its batch's transaction; then exactly its offsets, in order.
    assert seen["commits_when_written"] == [[], [("poll", [(0, 4)])]]
    assert fake.commits == [("poll", [(0, 4)]), ("poll", [(0, 8)])]


def test_a_batch_closed_by_its_time_limit_is_written_at_once_not_on_the_writer_thread(
    new_service: NewService, make_alert: MakeAlert
) -> None:
    # Below a backlog, the writer thread would only delay the commit: the batch is written on
    # the loop's own thread and committed before the loop polls again.
    fake = fake_with(make_alert, 3, 0)
    threads: set[str] = set()

    def record_thread(real: WriteHook, *args: Any) -> None:
        threads.add(threading.current_thread().name)
        real(*args)

    service = new_service(fake, batch=100, wait_s=0.05, write_hook=record_thread)
    run_until(service, lambda: stored(service) == 3)
    assert threads == {threading.main_thread().name}
    assert fake.commits == [("poll", [(0, 3)])]


def test_batch_given_up_in_a_revocation_keeps_its_other_partitions_messages(
    new_service: NewService, make_alert: MakeAlert
) -> None:
    fake = fake_with(make_alert, 2, 2)
    # A batch that waits for more messages; a rebalance takes partition 1 while the database is
    # down, so the callback gives the batch up; then the database is back and more arrives.
    # Partition 0 stays assigned and its position has moved on: nothing re-fetches its first two.
    state = {"down": True}
    down_until_rebalanced = outage(lambda _failed: state["down"])

    def rebalance_once(c: FakeConsumer) -> None:
        if c.polls == 5:  # cooperative (incremental) rebalance: only partition 1 is revoked
            c.phase = "revoke"
            c.callbacks["on_revoke"](c, [TopicPartition(TOPIC, 1)])
            c.assigned = [tp for tp in c.assigned if tp.partition != 1]
            c.phase = "poll"
            state["down"] = False
            c.pending[0] += [FakeMessage(0, o, make_alert(o)) for o in (2, 3)]

    service = new_service(fake, batch=100, wait_s=60, write_hook=down_until_rebalanced)
    fake.script = rebalance_once
    give_up_at = time.monotonic() + 30
    run_until(service, lambda: stored(service) == 4 or time.monotonic() > give_up_at)
    # Partition 0's first two messages were in the batch given up: kept in hand, not skipped.
    with service.engine.connect() as conn:
        offsets = conn.execute(
            select(results_table.c.source_partition, results_table.c.source_offset)
        ).all()
    assert sorted(offsets) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert fake.commits[-1] == ("poll", [(0, 4)])
    assert all(phase != "revoke" for phase, _ in fake.commits)  # nothing committed unstored


def test_batch_in_hand_is_stored_and_committed_on_revocation(
    new_service: NewService, make_alert: MakeAlert
) -> None:
    fake = fake_with(make_alert, 3, 0)
    # A batch that would wait a long time for more messages; then a rebalance comes.
    service = new_service(fake, batch=100, wait_s=60)

    def rebalance_once(c: FakeConsumer) -> None:
        if c.polls == 5:
            c.rebalance([1])

    fake.script = rebalance_once
    run_until(service, lambda: stored(service) == 3)
    assert fake.commits == [("revoke", [(0, 3)])]


def test_refused_login_makes_the_service_unready_until_the_broker_answers(
    new_service: NewService,
) -> None:
    from confluent_kafka import KafkaError

    fake = FakeConsumer({0: []})
    service = new_service(fake)
    assert service.health.snapshot()["ready"]
    service._on_error(KafkaError(KafkaError._TRANSPORT))  # one dropped connection: still ready
    assert service.health.snapshot()["ready"]
    service._on_error(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED))
    state = service.health.snapshot()
    assert not state["ready"]
    assert state["alive"]
    assert "SASL_AUTHENTICATION_FAILED" in state["broker_error"]
    service._on_assign(fake, [TopicPartition(TOPIC, 0)])
    assert service.health.snapshot()["ready"]


def test_messages_queued_during_processing_form_the_next_batch_without_waiting(
    new_service: NewService, make_alert: MakeAlert
) -> None:
    # Five messages, batches of 2 and a long wait: the first batch fills at once; the rest were
    # queued while it was processed, so they are taken as they stand ([2, 3], then [4]) rather
    # than waiting a minute for a second message to join the last one.
    fake = fake_with(make_alert, 5, 0)
    service = new_service(fake, batch=2, wait_s=60.0)
    started = time.monotonic()
    run_until(service, lambda: stored(service) == 5)
    assert time.monotonic() - started < 30
    assert fake.commits == [("poll", [(0, 2)]), ("poll", [(0, 4)]), ("poll", [(0, 5)])]


def test_a_message_after_an_idle_poll_waits_for_its_batch_again(
    new_service: NewService, make_alert: MakeAlert
) -> None:
    # A full first batch; then the loop catches up (polls find nothing), and two messages
    # arrive 0.3 s apart: the first waits for company again (2 s), so both share one batch.
    fake = FakeConsumer({0: [make_alert(0), make_alert(1)], 1: []})
    arrivals: dict[str, Any] = {"next": 2, "at": None}

    def trickle(c: FakeConsumer) -> None:
        if not c.commits or arrivals["next"] > 3:
            return
        now = time.monotonic()
        if arrivals["at"] is None:
            arrivals["at"] = now + 0.3
        elif now >= arrivals["at"]:
            c.pending[0].append(FakeMessage(0, arrivals["next"], make_alert(arrivals["next"])))
            arrivals["next"] += 1
            arrivals["at"] = now + 0.3

    fake.script = trickle
    service = new_service(fake, batch=2, wait_s=2.0)
    run_until(service, lambda: stored(service) == 4)
    assert fake.commits == [("poll", [(0, 2)]), ("poll", [(0, 4)])]


def test_costly_packets_never_keep_the_loop_from_polling_past_max_poll_interval(
    new_service: NewService,
    make_alert: MakeAlert,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """40 packets of 0.1 s each in one batch: 4 s of work, a 2 s poll interval.

    The batch is cut when its processing reaches half the interval; the processed part is
    stored and committed, the rest follows after a poll, and every alert is stored once.
    """
    fake = fake_with(make_alert, 40)
    service = new_service(fake, batch=40, wait_s=0.01,
                          max_poll_interval_ms=2000, inference_chunk=4)  # fmt: skip
    real = pipeline.decode_alert

    def slow(raw: bytes, **kwargs: Any) -> Any:
        time.sleep(0.1)
        return real(raw, **kwargs)

    monkeypatch.setattr(pipeline, "decode_alert", slow)
    run_until(service, lambda: stored(service) == 40)
    gaps = [b - a for a, b in zip(fake.poll_times, fake.poll_times[1:], strict=False)]
    assert max(gaps) < 2.0
    assert len(fake.commits) >= 3
    assert fake.commits[-1][1] == [(0, 40)]
    assert service.metrics.batches_cut_short._value.get() >= 2
    assert stored(service) == 40

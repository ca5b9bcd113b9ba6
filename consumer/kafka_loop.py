"""The Kafka consumer loop: poll a micro-batch, run the pipeline, store it, commit its offsets.

Delivery guarantee (consumer/SERVICE.md): auto-commit is off; a batch is written in **one database
transaction**, and only after that transaction commits are **exactly the batch's offsets**
committed (synchronously). A crash anywhere before the commit means the batch is read again and
rewritten; the writes are upserts on the alert key (results) and on topic/partition/offset
(rejected), so every alert ends up exactly once in ``lens_results`` or ``rejected_alerts``.

Around that core:

* **micro-batches** close at ``batch_max_messages`` or ``batch_max_wait_s`` after their first
  message, whichever comes first; but when the first message was already waiting as the loop
  came back from processing a batch, the batch takes the messages waiting then and closes at
  once (they have waited through that processing; waiting longer would only add latency, and
  under a backlog the batch fills to ``batch_max_messages`` anyway). The pipeline runs the
  model per chunk of the batch, on its own thread (:mod:`lenscast.consumer.inference_thread`);
* **overlapped writes** (``overlap_store``): under a backlog (a full batch), a batch's
  transaction runs on a writer thread while this thread polls the next batch, so the model does
  not wait for the database; a batch that closed on its time limit is written here, at once. Its
  offsets are still committed only after that transaction has committed, and batches are
  committed in order: the writer's result is collected (and an outage retried, as below)
  before the next batch is written, when the write ends while polling, before partitions are
  revoked and before the client closes. One batch at most is in flight;
* **rebalances**: before partitions are revoked, the batch in hand is written and committed;
  lost partitions (session expired) are dropped without a commit;
* **database outage**: the write is retried with exponential backoff; meanwhile the assigned
  partitions are **paused** and the client keeps polling (heartbeats, ``max.poll.interval.ms``),
  so nothing new is fetched, the group keeps its member, and nothing is committed until the
  batch is stored; then the partitions are resumed;
* a write that fails for a reason other than connectivity (a value the database refuses) is
  retried row by row, and a row the database refuses becomes a rejected row
  (``db.write_error``) — never an endless retry, never a silent drop;
* **bounded time between polls**: a batch is processed against a deadline of half
  ``max.poll.interval.ms`` (the other half is left for its write and commit); when costly
  packets make it pass, the packets processed so far are stored and committed as a batch of
  their own and the rest go back to the front of the buffer, taken next after a poll. So the
  member is never evicted by its own processing, which would fail the commit, hand the
  partition to another member and start the same batch again (a livelock);
* **shutdown** (SIGTERM/SIGINT via :class:`lenscast.consumer.shutdown.StopFlag`): the batch in hand
is
  finished, stored and committed, then the client closes and leaves the group;
* **progress**: every ``log_interval_s`` one INFO line with alerts/s, lag and rejections by
  reason (:mod:`lenscast.consumer.progress_log`), whether or not alerts arrive;
* **memory**: the client's prefetch is bounded (``queued.max.messages.kbytes``,
  ``fetch.max.bytes``; see :class:`lenscast.consumer.settings.ConsumerSettings`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Message
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lenscast.consumer.batch_store import is_outage, write_outcome
from lenscast.consumer.health import HealthState
from lenscast.consumer.log_throttle import throttled
from lenscast.consumer.metrics import ConsumerMetrics
from lenscast.consumer.offsets import PartitionKey, commit_list, next_offsets
from lenscast.consumer.pipeline import BatchOutcome, Predictor, RawMessage, process_batch
from lenscast.consumer.progress_log import ProgressLog
from lenscast.consumer.settings import ConsumerSettings, redact_config
from lenscast.consumer.shutdown import StopFlag

#: Client errors after which the service is not ready (no broker reachable, login refused).
_BROKER_DOWN_CODES = frozenset(
    {
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)

log = logging.getLogger(__name__)

#: Share of ``max.poll.interval.ms`` a batch's processing may take; the rest is for its write.
PROCESS_SHARE_OF_POLL_INTERVAL = 0.5

#: Called after a batch's offsets are committed (benchmarks, tests): messages, outcome.
BatchCallback = Callable[[Sequence[RawMessage], BatchOutcome], None]


def raw_message(message: Message) -> RawMessage:
    """Copy what the pipeline needs out of a confluent-kafka message."""
    ts_type, ts_ms = message.timestamp()
    timestamp = (
        datetime.fromtimestamp(ts_ms / 1000.0, UTC) if ts_type != TIMESTAMP_NOT_AVAILABLE else None
    )
    return RawMessage(
        value=message.value() or b"",
        topic=str(message.topic()),
        partition=int(message.partition() or 0),
        offset=int(message.offset() or 0),
        timestamp=timestamp,
    )


@dataclass(frozen=True)
class _PendingWrite:
    """A processed batch whose transaction runs on the writer thread.

    Attributes
    ----------
    batch : list of RawMessage
    outcome : BatchOutcome
    started : float
        ``time.perf_counter()`` when the batch's processing began, seconds.
    write : Future
        The writer thread's :func:`~lenscast.consumer.batch_store.write_outcome` call.
    """

    batch: list[RawMessage]
    outcome: BatchOutcome
    started: float
    write: Future[None]


def _in_memory_sqlite(engine: Engine) -> bool:
    """Whether ``engine`` is an in-memory SQLite database (one per thread: no writer thread)."""
    url = engine.url
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _timed_write(engine: Engine, batch: Sequence[RawMessage], outcome: BatchOutcome) -> None:
    """Write a batch (on the writer thread), keeping the transaction's wall time."""
    started = time.perf_counter()
    write_outcome(engine, batch, outcome)
    outcome.timings_s["store"] = time.perf_counter() - started


class ConsumerService:
    """One consumer-group member: polls, processes, stores, commits, until stopped.

    Parameters
    ----------
    settings : ConsumerSettings
    predictor : Predictor
        The loaded ONNX model (created by the caller, after any process fork).
    engine : Engine
        The results database.
    stop : StopFlag
        Set it (or send SIGTERM/SIGINT when installed) to finish the batch and exit.
    metrics : ConsumerMetrics, optional
    health : HealthState, optional
    on_batch_committed : callable, optional
        Called with each batch's messages and outcome after its offsets are committed.
    consumer_factory : callable, optional
        Builds the Kafka client from its configuration (``confluent_kafka.Consumer``).
    """

    def __init__(
        self,
        settings: ConsumerSettings,
        *,
        predictor: Predictor,
        engine: Engine,
        stop: StopFlag,
        metrics: ConsumerMetrics | None = None,
        health: HealthState | None = None,
        on_batch_committed: BatchCallback | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self.settings = settings
        self.predictor = predictor
        self.engine = engine
        self.stop = stop
        self.metrics = metrics if metrics is not None else ConsumerMetrics()
        self.health = health if health is not None else HealthState()
        self.on_batch_committed = on_batch_committed
        self._consumer_factory = consumer_factory
        # librdkafka repeats a connection failure many times a second: one line per 10 s.
        self._client_log = throttled(f"{__name__}.client")
        self._consumer: Consumer | None = None
        self._buffer: list[RawMessage] = []
        self._deadline: float | None = None
        # A batch was processed since the client's queue was last seen empty: what is queued
        # now arrived while the loop was busy.
        self._behind = False
        self._assigned: set[PartitionKey] = set()
        self._in_flush = False
        self._paused = False
        self._writer: ThreadPoolExecutor | None = None
        self._pending: _PendingWrite | None = None
        self.stored = 0
        self.rejected = 0
        self.batches = 0
        self.progress = ProgressLog(settings.log_interval_s)
        #: Messages behind the high watermark per owned partition, after the last commit.
        self._lag: dict[PartitionKey, int] = {}

    # -- client and rebalance callbacks ------------------------------------------------------

    @property
    def consumer(self) -> Consumer:
        """The confluent-kafka client (exists while :meth:`run` runs)."""
        if self._consumer is None:
            raise RuntimeError("the consumer is not running")
        return self._consumer

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        consumer.assign(partitions)
        self.health.beat(broker_error=None)  # the group coordinator answered
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        if self._paused and partitions:  # joined while the database is down: stay paused
            consumer.pause(partitions)
        log.info("partitions assigned", extra={"fields": {"partitions": self._names(partitions)}})

    def _on_revoke(self, consumer: Consumer, partitions: list[Any]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        log.info("partitions revoked", extra={"fields": {"partitions": self._names(partitions)}})
        # Store and commit what we hold for them while we still own them.
        if not self._in_flush and self._settle(in_callback=True) and self._buffer:
            self._flush(in_callback=True)
        self._drop(keys)

    def _on_lost(self, consumer: Consumer, partitions: list[Any]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        log.warning("partitions lost", extra={"fields": {"partitions": self._names(partitions)}})
        self._drop(keys)

    def _drop(self, keys: set[PartitionKey]) -> None:
        """Forget partitions: their buffered messages go to the next owner (not committed)."""
        self._assigned -= keys
        for key in keys:
            self._lag.pop(key, None)
        self._buffer = [m for m in self._buffer if (m.topic, m.partition) not in keys]
        if not self._buffer:
            self._deadline = None

    @staticmethod
    def _names(partitions: list[Any]) -> list[str]:
        return [f"{tp.topic}[{tp.partition}]" for tp in partitions]

    def _on_error(self, error: KafkaError) -> None:
        """Client-level errors: broker unreachable or authentication refused.

        librdkafka retries these by itself and reports them many times a second, so the log
        line is written when the error changes (not per report), a transient one at most once
        per 10 s (:mod:`lenscast.consumer.log_throttle`), and ``/readyz`` turns 503
        until a message or an assignment shows the broker answers again.
        """
        text = f"{error.name()}: {error.str()}"
        if error.code() not in _BROKER_DOWN_CODES:  # transient (one connection): log only
            self._client_log.warning(
                "kafka client error: %s", text, extra={"fields": {"code": error.code()}}
            )
            return
        if text != self.health.broker_error:
            log.error("kafka broker unusable: %s", text, extra={"fields": {"code": error.code()}})
        self.health.beat(broker_error=text)

    # -- polling ----------------------------------------------------------------------------

    def _poll(self, timeout_s: float) -> int:
        """Poll once, appending messages to the buffer (also serves rebalance callbacks).

        Returns
        -------
        int
            Messages (and errors) the client handed over; 0 when its queue was empty.
        """
        if self._buffer:
            room = max(1, self.settings.batch_max_messages - len(self._buffer))
            messages = self.consumer.consume(num_messages=room, timeout=timeout_s)
        else:
            # consume() waits for a full batch or the timeout; the first message of a batch
            # must start its clock at once, so it is polled for alone.
            first = self.consumer.poll(timeout_s)
            messages = [] if first is None else [first]
            room = self.settings.batch_max_messages - 1
            if first is not None and self._behind and room > 0:
                # Queued while the loop was busy: this batch is what waits now, taken at once.
                messages += self.consumer.consume(num_messages=room, timeout=0)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning("consume error: %s", error)
                continue
            if not self._buffer:
                wait = 0.0 if self._behind else self.settings.batch_max_wait_s
                self._deadline = time.monotonic() + wait
            self._buffer.append(raw_message(message))
        if not messages:
            self._behind = False  # caught up: the next batch waits for its messages again
        if messages and self.health.broker_error is not None:
            self.health.beat(broker_error=None)  # the broker answers again
        return len(messages)

    def _batch_ready(self) -> bool:
        if not self._buffer:
            return False
        if len(self._buffer) >= self.settings.batch_max_messages:
            return True
        return self._deadline is not None and time.monotonic() >= self._deadline

    # -- storing and committing -------------------------------------------------------------

    def _pause(self) -> None:
        if not self._paused:
            self.consumer.pause(self.consumer.assignment())
            self._paused = True
            self.metrics.paused.set(1)

    def _resume(self) -> None:
        if self._paused:
            self.consumer.resume(self.consumer.assignment())
            self._paused = False
            self.metrics.paused.set(0)

    def _store(
        self,
        batch: Sequence[RawMessage],
        outcome: BatchOutcome,
        in_callback: bool,
        *,
        written: Future[None] | None = None,
    ) -> bool:
        """Write with retries; return False when given up (stop requested or in a callback).

        ``written`` is a first attempt already made on the writer thread: its result is taken
        as the first try, so an outage there is retried exactly as one here.
        """
        delay = self.settings.db_retry_initial_s
        attempts = 0
        while True:
            try:
                if written is not None:
                    first, written = written, None
                    first.result()
                else:
                    write_outcome(self.engine, batch, outcome)
                self.metrics.db_up.set(1)
                if self._paused:
                    log.info("database back: resuming consumption")
                    self._resume()
                self.health.beat(db_up=True, paused=False)
                return True
            except SQLAlchemyError as exc:
                if not is_outage(exc):
                    raise
                attempts += 1
                self.metrics.db_retries.inc()
                self.metrics.db_up.set(0)
                log.warning(
                    "database unavailable; retrying",
                    extra={
                        "fields": {
                            "attempt": attempts,
                            "retry_in_s": delay,
                            "error": type(exc).__name__,
                        }
                    },
                )
                if in_callback:
                    # No polling inside a rebalance callback: a short retry, then give the
                    # partitions up uncommitted (their next owner re-reads them).
                    if attempts >= 3 or self.stop.is_set():
                        return False
                    time.sleep(min(delay, 1.0))
                    delay = min(2 * delay, self.settings.db_retry_max_s)
                    continue
                self._pause()
                self.health.beat(db_up=False, paused=True)
                end = time.monotonic() + delay
                while time.monotonic() < end and not self.stop.is_set():
                    # Paused partitions fetch nothing; polling keeps the member in its group
                    # and serves rebalances (anything that still arrives is kept for later).
                    self._poll(min(0.5, max(0.0, end - time.monotonic())))
                    self.health.beat(db_up=False, paused=True)
                if self.stop.is_set():
                    log.warning(
                        "stopping during a database outage: batch not stored, "
                        "offsets not committed (it will be re-read)"
                    )
                    return False
                delay = min(2 * delay, self.settings.db_retry_max_s)

    def _commit(self, batch: Sequence[RawMessage]) -> None:
        offsets = next_offsets(batch)
        not_owned = [key for key in offsets if key not in self._assigned]
        to_commit = commit_list(offsets, exclude=not_owned)
        if not to_commit:
            return
        try:
            self.consumer.commit(offsets=to_commit, asynchronous=False)
        except KafkaException as exc:
            # Stored but not committed: re-read after the rebalance and upserted again.
            log.warning("offset commit failed: %s", exc)
            return
        for tp in to_commit:
            try:
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                lag = max(0, high - tp.offset)
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
                self._lag[(tp.topic, tp.partition)] = lag

    def _hand_back(self, batch: Sequence[RawMessage]) -> None:
        """Put an unstored batch back in front of the buffer (its offsets are not committed).

        A revocation then drops the revoked partitions' messages (their next owner re-reads
        them) and keeps the others: with incremental (``cooperative-sticky``) rebalancing those
        stay assigned and their fetch position has moved on, so nothing would re-read them and
        a later commit would skip past them.
        """
        if batch and not self.stop.is_set():  # stopping: nothing more is stored or committed
            # In offset order again: a batch and the one written before it may both come back.
            self._buffer = sorted(
                [*batch, *self._buffer], key=lambda m: (m.topic, m.partition, m.offset)
            )
            self._deadline = time.monotonic()

    def _flush(self, *, in_callback: bool = False, overlap: bool = True) -> bool:
        """Process the buffer; store and commit it, or hand its write to the writer thread.

        Returns False when a batch was given up unstored (stop requested during an outage, or
        an outage inside a rebalance callback); it is then back in the buffer, uncommitted.
        """
        batch, self._buffer, self._deadline = self._buffer, [], None
        if not batch:
            return self._settle(in_callback=in_callback)
        started = time.perf_counter()
        self._in_flush = True
        try:
            budget_s = self.settings.max_poll_interval_ms / 1000.0 * PROCESS_SHARE_OF_POLL_INTERVAL
            outcome = process_batch(
                batch,
                predictor=self.predictor,
                settings=self.settings.pipeline,
                deadline=time.monotonic() + budget_s,
            )
            if outcome.n_messages < len(batch):  # cut short: the rest waits for the next flush
                self.metrics.batches_cut_short.inc()
                self._hand_back(batch[outcome.n_messages :])
                batch = batch[: outcome.n_messages]
            self._behind = True
            # Offsets are committed in order: the previous batch first.
            if not self._settle(in_callback=in_callback):
                self._hand_back(batch)
                return False
            # The writer thread pays off only under a backlog, when the next batch is already
            # waiting in full; below that, writing here commits sooner and the loop does not
            # spin on polls beside the writer (at half load: p50 0.12-0.18 s inline against
            # 0.34-0.39 s on the writer thread, three runs, 2026-11-28).
            backlog = len(batch) >= self.settings.batch_max_messages
            if overlap and backlog and not in_callback and self._writer is not None:
                write = self._writer.submit(_timed_write, self.engine, batch, outcome)
                self._pending = _PendingWrite(batch, outcome, started, write)
                return True
            stored_at = time.perf_counter()
            if not self._store(batch, outcome, in_callback):
                self._hand_back(batch)
                return False
            outcome.timings_s["store"] = time.perf_counter() - stored_at
            self._committed(batch, outcome, started)
        finally:
            self._in_flush = False
        return True

    def _settle(self, *, in_callback: bool = False) -> bool:
        """Finish the writer thread's batch, if any: wait, retry an outage, commit its offsets.

        Returns False when it was given up unstored (see :meth:`_flush`).
        """
        pending, self._pending = self._pending, None
        if pending is None:
            return True
        was_in_flush, self._in_flush = self._in_flush, True
        try:
            if not self._store(pending.batch, pending.outcome, in_callback, written=pending.write):
                self._hand_back(pending.batch)
                return False
            self._committed(pending.batch, pending.outcome, pending.started)
        finally:
            self._in_flush = was_in_flush
        return True

    def _committed(
        self, batch: Sequence[RawMessage], outcome: BatchOutcome, started: float
    ) -> None:
        """Commit a stored batch's offsets; count it in the metrics, logs and callback."""
        committed_at = time.perf_counter()
        self._commit(batch)
        outcome.timings_s["commit"] = time.perf_counter() - committed_at
        now = datetime.now(UTC)
        self.batches += 1
        self.stored += len(outcome.results)
        self.rejected += len(outcome.rejected)
        self.metrics.processed.inc(len(outcome.results))
        self.metrics.no_lens.inc(sum(bool(row.get("no_lens")) for row in outcome.results))
        for row in outcome.rejected:
            self.metrics.rejected.labels(row["reason"]).inc()
        self.progress.record(len(outcome.results), (row["reason"] for row in outcome.rejected))
        self.metrics.batch_size.observe(len(batch))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        for m in batch:
            if m.timestamp is not None:
                self.metrics.latency.observe(max(0.0, (now - m.timestamp).total_seconds()))
        self.health.beat(stored=self.stored, rejected=self.rejected)
        log.debug(
            "batch stored",
            extra={
                "fields": {
                    "messages": len(batch),
                    "results": len(outcome.results),
                    "rejected": len(outcome.rejected),
                    "seconds": round(time.perf_counter() - started, 4),
                    **{f"{k}_s": round(v, 4) for k, v in outcome.timings_s.items()},
                }
            },
        )
        if self.on_batch_committed is not None:
            self.on_batch_committed(batch, outcome)

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until stopped; the last batch is stored and committed before closing."""
        config = self.settings.kafka_config()
        log.info(
            "starting consumer",
            extra={
                "fields": {"kafka": redact_config(config), "topics": list(self.settings.topics)}
            },
        )
        config["error_cb"] = self._on_error
        config["logger"] = throttled("librdkafka")
        self._consumer = self._consumer_factory(config)
        if self.settings.overlap_store and not _in_memory_sqlite(self.engine):
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lenscast-db")
        try:
            self.consumer.subscribe(
                list(self.settings.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self.stop.is_set():
                if self._deadline is None:
                    timeout = 0.5
                else:
                    timeout = max(0.0, self._deadline - time.monotonic())
                if self._pending is not None:  # a write in flight: gather the next batch, no wait
                    timeout = 0.0
                fetched = self._poll(min(timeout, 0.5))
                if self._batch_ready():
                    self._flush()
                elif self._pending is not None and (self._pending.write.done() or not fetched):
                    # Written, or nothing left to gather meanwhile: commit it now (latency).
                    self._settle()
                self.health.beat()
                self.progress.maybe_log(sum(self._lag.values()) if self._lag else None)
            self._flush(overlap=False)
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)  # a write given up above still finishes first
                self._writer = None
            self._consumer.close()  # leaves the group (revocation commits nothing new: empty)
            self._consumer = None
            log.info(
                "consumer closed",
                extra={"fields": {"stored": self.stored, "rejected": self.rejected}},
            )

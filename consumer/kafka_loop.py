"""The Kafka consumer loop: poll a micro-batch, run the pipeline, store it, commit its offsets.

Delivery guarantee (consumer/SERVICE.md): auto-commit is off; a batch is written in **one database
transaction**, and only after that transaction commits are **exactly the batch's offsets**
committed (synchronously). A crash anywhere before the commit means the batch is read again and
rewritten; the writes are upserts on the alert key (results) and on topic/partition/offset
(rejected), so every alert ends up exactly once in ``lens_results`` or ``rejected_alerts``.

The loop only orchestrates: poll → :class:`~lenscast.consumer.batcher.Batcher` (when a batch
closes) → :func:`~lenscast.consumer.pipeline.process_batch` → the
:class:`~lenscast.consumer.commit_pipeline.CommitPipeline` (write, outage retry, commit, in
order). Around that core:

* **micro-batches** close at ``batch_max_messages`` or ``batch_max_wait_s`` after their first
  message; messages that queued while a batch was processed form the next batch at once
  (:mod:`lenscast.consumer.batcher`). The pipeline runs the model per chunk of the batch, on its
  own thread (:mod:`lenscast.consumer.inference_thread`);
* **overlapped writes** (``overlap_store``): a full batch (a backlog) is written on a writer
  thread while the next batch is polled; a batch that closed on its time limit is written at
  once. Either way its offsets are committed after its transaction, batches in order, one batch
  at most in flight (:mod:`lenscast.consumer.commit_pipeline`);
* **database outage**: the write is retried with backoff while the partitions are paused and
  the client keeps polling, so the group keeps its member and nothing is committed until the
  batch is stored (:mod:`lenscast.consumer.commit_pipeline`); a write that fails for another
  reason is retried row by row (:mod:`lenscast.consumer.batch_store`);
* **rebalances** (:meth:`ConsumerService._release`): before partitions are revoked, the write
  in flight and the batch in hand are stored and committed; lost partitions (session expired)
  are dropped without a commit;
* **bounded time between polls**: a batch is processed against a deadline of half
  ``max.poll.interval.ms`` (the other half is left for its write and commit); when costly
  packets make it pass, the packets processed so far are stored and committed as a batch of
  their own and the rest go back to the front of the batcher, taken next after a poll. So the
  member is never evicted by its own processing, which would fail the commit, hand the
  partition to another member and start the same batch again (a livelock);
* **shutdown** (SIGTERM/SIGINT via :class:`lenscast.consumer.shutdown.StopFlag`): the batch in
  hand is finished, stored and committed, then the client closes and leaves the group;
* **progress**: every ``log_interval_s`` one INFO line with alerts/s, lag and rejections by
  reason (:mod:`lenscast.consumer.progress_log`), whether or not alerts arrive;
* **memory**: the client's prefetch is bounded (``queued.max.messages.kbytes``,
  ``fetch.max.bytes``; see :class:`lenscast.consumer.settings.ConsumerSettings`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Message
from sqlalchemy import Engine

from lenscast.consumer.batch_store import write_outcome
from lenscast.consumer.batch_tally import BatchTally
from lenscast.consumer.batcher import Batcher
from lenscast.consumer.commit_pipeline import CommitPipeline, LoopCalls
from lenscast.consumer.health import HealthState
from lenscast.consumer.log_throttle import throttled
from lenscast.consumer.metrics import ConsumerMetrics
from lenscast.consumer.offsets import OwnedPartitions, PartitionKey
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
#: Longest single poll of the loop, seconds (health beats and progress lines run between polls).
LOOP_POLL_S = 0.5

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


def _write(engine: Engine, batch: Sequence[RawMessage], outcome: BatchOutcome) -> None:
    """One batch in one transaction (:func:`~lenscast.consumer.batch_store.write_outcome`)."""
    # Looked up in this module at call time, so a stand-in set here (the loop tests' database
    # outages) reaches the commit pipeline.
    write_outcome(engine, batch, outcome)


def _in_memory_sqlite(engine: Engine) -> bool:
    """Whether ``engine`` is an in-memory SQLite database (one per thread: no writer thread)."""
    url = engine.url
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _keys(partitions: list[Any]) -> set[PartitionKey]:
    return {(tp.topic, tp.partition) for tp in partitions}


def _names(partitions: list[Any]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]


@dataclass(frozen=True)
class _Session:
    """What exists while :meth:`ConsumerService.run` runs: the client and its commit pipeline."""

    client: Consumer
    commits: CommitPipeline


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
        self.batcher = Batcher(settings.batch_max_messages, settings.batch_max_wait_s)
        self.owned = OwnedPartitions()
        self.tally = BatchTally(self.metrics, self.health, ProgressLog(settings.log_interval_s))
        self._session: _Session | None = None

    # -- state, as read from outside ---------------------------------------------------------

    @property
    def consumer(self) -> Consumer:
        """The confluent-kafka client (exists while :meth:`run` runs)."""
        return self._running().client

    @property
    def stored(self) -> int:
        """Results stored (and their offsets committed) since start."""
        return self.tally.stored

    @property
    def rejected(self) -> int:
        """Rejected rows stored since start."""
        return self.tally.rejected

    @property
    def batches(self) -> int:
        """Batches committed since start."""
        return self.tally.batches

    @property
    def _assigned(self) -> frozenset[PartitionKey]:
        return frozenset(self.owned.keys)

    @property
    def _paused(self) -> bool:
        return self._session is not None and self._session.commits.paused

    def _running(self) -> _Session:
        if self._session is None:
            raise RuntimeError("the consumer is not running")
        return self._session

    # -- client and rebalance callbacks ------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        consumer.assign(partitions)
        self.health.beat(broker_error=None)  # the group coordinator answered
        self.owned.add(_keys(partitions))
        if self._paused and partitions:  # joined while the database is down: stay paused
            consumer.pause(partitions)
        log.info("partitions assigned", extra={"fields": {"partitions": _names(partitions)}})

    def _on_revoke(self, consumer: Consumer, partitions: list[Any]) -> None:
        self._release(partitions, lost=False)

    def _on_lost(self, consumer: Consumer, partitions: list[Any]) -> None:
        self._release(partitions, lost=True)

    def _release(self, partitions: list[Any], *, lost: bool) -> None:
        """Partitions leave this member (revoked, or lost): the one rebalance path.

        In order:

        1. settle the write in flight: its offsets are committed while the partitions are ours;
        2. store and commit the batch in hand (short retries, no polling: this is a callback);
        3. give the partitions up: their messages still in hand are dropped uncommitted (their
           next owner re-reads them) and no later commit names them.

        **Lost** partitions (the session expired) may already belong to another member, and
        the group would refuse a commit for them: steps 1 and 2 are skipped (the write in
        flight is settled later, and its commit leaves these partitions out).

        **Re-entry**: the client runs this callback inside a poll on this thread, and the loop
        polls in two places: the loop itself, and the outage wait of a store
        (:attr:`CommitPipeline.waiting_out_outage`). In the second, a batch is being stored
        already and is ahead of everything in hand: steps 1 and 2 are that store, so they are
        skipped here; step 3 still applies, and that batch's commit leaves these partitions out.
        """
        if lost:
            log.warning("partitions lost", extra={"fields": {"partitions": _names(partitions)}})
        else:
            log.info("partitions revoked", extra={"fields": {"partitions": _names(partitions)}})
        commits = self._running().commits
        if not lost and not commits.waiting_out_outage:
            settled = commits.settle(in_callback=True)  # 1.
            if settled and len(self.batcher):
                self._flush(in_callback=True)  # 2.
        self._give_up(_keys(partitions))  # 3.

    def _give_up(self, keys: set[PartitionKey]) -> None:
        """Forget partitions: no more commits for them, their messages in hand dropped."""
        self.owned.remove(keys)
        self.batcher.drop(keys)

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

    # -- polling, processing ----------------------------------------------------------------

    def _poll(self, timeout_s: float) -> int:
        """Poll once, adding messages to the batcher (also serves rebalance callbacks).

        Returns
        -------
        int
            Messages (and errors) the client handed over; 0 when its queue was empty.
        """
        client = self.consumer
        if len(self.batcher):
            messages = client.consume(num_messages=self.batcher.room(), timeout=timeout_s)
        else:
            # consume() waits for a full batch or the timeout; the first message of a batch
            # must start its clock at once, so it is polled for alone.
            first = client.poll(timeout_s)
            messages = [] if first is None else [first]
            queued = self.batcher.take_with_first()
            if first is not None and queued > 0:
                messages += client.consume(num_messages=queued, timeout=0)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning("consume error: %s", error)
                continue
            self.batcher.add(raw_message(message))
        if not messages:
            self.batcher.caught_up()
        if messages and self.health.broker_error is not None:
            self.health.beat(broker_error=None)  # the broker answers again
        return len(messages)

    def _flush(self, *, in_callback: bool = False, overlap: bool = True) -> bool:
        """Process the batch in hand and pass it to the commit pipeline (after the one in flight).

        Returns False when a batch was given up unstored (stop requested during an outage, or
        an outage inside a rebalance callback); it is then back in the batcher, uncommitted.
        """
        commits = self._running().commits
        batch = self.batcher.take()
        if not batch:
            return commits.settle(in_callback=in_callback)
        started = time.perf_counter()
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
        self.batcher.processed()
        # The writer thread pays off only under a backlog, when the next batch is already
        # waiting in full; below that, writing here commits sooner and the loop does not
        # spin on polls beside the writer (at half load: p50 0.12-0.18 s inline against
        # 0.34-0.39 s on the writer thread, three runs, 2026-11-28).
        background = overlap and self.batcher.is_backlog(batch)
        return commits.submit(
            batch, outcome, started, in_callback=in_callback, background=background
        )

    def _hand_back(self, batch: Sequence[RawMessage]) -> None:
        """Put an unstored batch back in front of the batcher (its offsets are not committed).

        A revocation then drops the revoked partitions' messages (their next owner re-reads
        them) and keeps the others: with incremental (``cooperative-sticky``) rebalancing those
        stay assigned and their fetch position has moved on, so nothing would re-read them and
        a later commit would skip past them.
        """
        if not self.stop.is_set():  # stopping: nothing more is stored or committed
            self.batcher.hand_back(batch)

    def _committed(
        self, batch: Sequence[RawMessage], outcome: BatchOutcome, started: float
    ) -> None:
        self.tally.record(batch, outcome, started)
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
        client = self._consumer_factory(config)
        commits = CommitPipeline(
            client,
            engine=self.engine,
            write=_write,
            owned=self.owned,
            retry_initial_s=self.settings.db_retry_initial_s,
            retry_max_s=self.settings.db_retry_max_s,
            writer_thread=self.settings.overlap_store and not _in_memory_sqlite(self.engine),
            loop=LoopCalls(
                keep_alive=self._poll, give_back=self._hand_back, on_committed=self._committed
            ),
            metrics=self.metrics,
            health=self.health,
            stop=self.stop,
        )
        self._session = _Session(client, commits)
        try:
            client.subscribe(
                list(self.settings.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self.stop.is_set():
                # A write in flight: gather the next batch meanwhile, without waiting.
                timeout_s = 0.0 if commits.in_flight else self.batcher.poll_timeout(LOOP_POLL_S)
                fetched = self._poll(timeout_s)
                if self.batcher.ready():
                    self._flush()
                elif commits.in_flight and (commits.written or not fetched):
                    # Written, or nothing left to gather meanwhile: commit it now (latency).
                    commits.settle()
                self.health.beat()
                self.tally.progress.maybe_log(self.owned.total_lag())
            self._flush(overlap=False)
        finally:
            commits.close()  # a write given up above still finishes first
            client.close()  # leaves the group (revocation commits nothing new: empty)
            self._session = None
            log.info(
                "consumer closed",
                extra={"fields": {"stored": self.stored, "rejected": self.rejected}},
            )

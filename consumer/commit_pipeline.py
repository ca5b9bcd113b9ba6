"""Store processed batches and commit exactly their offsets, in order, through database outages.

The delivery guarantee (:mod:`lenscast.consumer.kafka_loop`) rests here: a batch's offsets are
committed (synchronously) only after its database transaction has committed, and only for the
partitions this member still owns (:class:`lenscast.consumer.offsets.OwnedPartitions`).

* **Order**: batches are committed in the order they were processed. One batch at most is in
  flight on the writer thread; before the next batch is written, and before partitions are
  revoked or the client closes, that write is *settled*: its result is collected (an outage
  there is retried as one here) and its offsets committed.
* **Writer thread**: the loop chooses it for a full batch (a backlog: the next batch is already
  waiting), so the transaction runs while the next batch is polled and processed; any other
  batch is written on the loop's thread and committed at once.
* **Database outage** (:func:`lenscast.consumer.batch_store.is_outage`): the write is retried
  with exponential backoff. Between tries the assigned partitions are **paused** and the loop's
  poll keeps running (``keep_alive``: heartbeats, ``max.poll.interval.ms``), so nothing new is
  fetched, the group keeps its member, and nothing is committed; once the write succeeds the
  partitions are resumed. Inside a rebalance callback nothing may poll: there the write is
  retried a few times without polling, then given up. A batch given up unstored (that, or a stop
  requested during an outage) goes back to the loop (``give_back``), uncommitted.
* **Re-entry**: the poll during an outage may run the client's rebalance callbacks on this
  thread, in the middle of a store. :attr:`CommitPipeline.waiting_out_outage` says so; the
  revocation path then stores nothing itself (the batch being retried is ahead of anything it
  could store) and only gives its partitions up, so the retried batch's commit leaves them out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lenscast.consumer.batch_store import is_outage
from lenscast.consumer.health import HealthState
from lenscast.consumer.metrics import ConsumerMetrics
from lenscast.consumer.offsets import OwnedPartitions
from lenscast.consumer.pipeline import BatchOutcome, RawMessage
from lenscast.consumer.shutdown import StopFlag

log = logging.getLogger(__name__)

#: Writes a batch's rows in one transaction (:func:`lenscast.consumer.batch_store.write_outcome`).
WriteFn = Callable[[Engine, Sequence[RawMessage], BatchOutcome], None]
#: Called after a batch's offsets are committed: messages, outcome, ``perf_counter()`` start.
CommittedFn = Callable[[Sequence[RawMessage], BatchOutcome, float], None]

#: Tries of a write inside a rebalance callback before its batch is given up.
CALLBACK_ATTEMPTS = 3
#: Longest sleep between those tries, seconds (the rebalance waits for the callback).
CALLBACK_RETRY_MAX_S = 1.0
#: Longest single poll while waiting out an outage, seconds.
OUTAGE_POLL_S = 0.5


@dataclass(frozen=True)
class PendingWrite:
    """A processed batch whose transaction runs on the writer thread.

    Attributes
    ----------
    batch : list of RawMessage
    outcome : BatchOutcome
    started : float
        ``time.perf_counter()`` when the batch's processing began, seconds.
    write : Future
        The writer thread's write of it.
    """

    batch: list[RawMessage]
    outcome: BatchOutcome
    started: float
    write: Future[None]


@dataclass(frozen=True)
class LoopCalls:
    """What a :class:`CommitPipeline` calls back in the Kafka loop that owns it.

    Attributes
    ----------
    keep_alive : callable
        ``keep_alive(timeout_s)`` polls the client once (the loop's poll).
    give_back : callable
        Receives a batch given up unstored (its offsets are not committed).
    on_committed : callable
        Called after a batch's offsets are committed.
    """

    keep_alive: Callable[[float], object]
    give_back: Callable[[Sequence[RawMessage]], None]
    on_committed: CommittedFn


class CommitPipeline:
    """Write, retry and commit processed batches for one client, in order.

    Parameters
    ----------
    client : confluent_kafka.Consumer
        Paused and resumed during an outage; commits the offsets.
    engine : Engine
        The results database.
    write : callable
        ``write(engine, batch, outcome)``: one batch in one transaction.
    owned : OwnedPartitions
        The partitions to commit for; their lag is recorded after each commit.
    retry_initial_s, retry_max_s : float
        First and longest backoff between tries of a write during an outage, seconds.
    writer_thread : bool
        Whether a writer thread exists for :meth:`submit` ``(background=True)``.
    loop : LoopCalls
        What it calls back in the Kafka loop.
    metrics : ConsumerMetrics
    health : HealthState
    stop : StopFlag
    """

    def __init__(
        self,
        client: Any,
        *,
        engine: Engine,
        write: WriteFn,
        owned: OwnedPartitions,
        retry_initial_s: float,
        retry_max_s: float,
        writer_thread: bool,
        loop: LoopCalls,
        metrics: ConsumerMetrics,
        health: HealthState,
        stop: StopFlag,
    ) -> None:
        self._client = client
        self._engine = engine
        self._write = write
        self._owned = owned
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._loop = loop
        self._metrics = metrics
        self._health = health
        self._stop = stop
        self._writer = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="lenscast-db")
            if writer_thread
            else None
        )
        self._pending: PendingWrite | None = None
        self._paused = False
        self._waiting_out_outage = False

    @property
    def paused(self) -> bool:
        """Whether the assigned partitions are paused (a write waits for the database)."""
        return self._paused

    @property
    def waiting_out_outage(self) -> bool:
        """Whether this thread is inside a store's outage wait (polling, see the module doc)."""
        return self._waiting_out_outage

    @property
    def in_flight(self) -> bool:
        """Whether a batch is on the writer thread, not yet settled."""
        return self._pending is not None

    @property
    def written(self) -> bool:
        """Whether the writer thread has finished the batch in flight (settling won't wait)."""
        return self._pending is not None and self._pending.write.done()

    # -- the steps --------------------------------------------------------------------------

    def submit(
        self,
        batch: list[RawMessage],
        outcome: BatchOutcome,
        started: float,
        *,
        in_callback: bool = False,
        background: bool = False,
    ) -> bool:
        """Store and commit a processed batch after the one in flight, or put it in flight.

        Parameters
        ----------
        batch : list of RawMessage
        outcome : BatchOutcome
        started : float
            ``time.perf_counter()`` when its processing began, seconds.
        in_callback : bool
            Called inside a rebalance callback: no polling, short retries, no writer thread.
        background : bool
            Write it on the writer thread (if there is one) and return at once.

        Returns
        -------
        bool
            False when a batch was given up unstored (then handed to ``give_back``).
        """
        # Offsets are committed in order: the batch in flight first.
        if not self.settle(in_callback=in_callback):
            self._loop.give_back(batch)
            return False
        if background and not in_callback and self._writer is not None:
            write = self._writer.submit(self._timed_write, batch, outcome)
            self._pending = PendingWrite(batch, outcome, started, write)
            return True
        stored_at = time.perf_counter()
        if not self._store(batch, outcome, in_callback=in_callback):
            self._loop.give_back(batch)
            return False
        outcome.timings_s["store"] = time.perf_counter() - stored_at
        self._commit(batch, outcome, started)
        return True

    def settle(self, *, in_callback: bool = False) -> bool:
        """Finish the batch in flight, if any: wait for it, retry an outage, commit its offsets.

        Returns False when it was given up unstored (see :meth:`submit`).
        """
        pending, self._pending = self._pending, None
        if pending is None:
            return True
        stored = self._store(
            pending.batch, pending.outcome, in_callback=in_callback, written=pending.write
        )
        if not stored:
            self._loop.give_back(pending.batch)
            return False
        self._commit(pending.batch, pending.outcome, pending.started)
        return True

    def close(self) -> None:
        """Stop the writer thread; a write given up unsettled still finishes first."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)

    # -- writing ----------------------------------------------------------------------------

    def _timed_write(self, batch: Sequence[RawMessage], outcome: BatchOutcome) -> None:
        """Write a batch (on the writer thread), keeping the transaction's wall time."""
        started = time.perf_counter()
        self._write(self._engine, batch, outcome)
        outcome.timings_s["store"] = time.perf_counter() - started

    def _store(
        self,
        batch: Sequence[RawMessage],
        outcome: BatchOutcome,
        *,
        in_callback: bool,
        written: Future[None] | None = None,
    ) -> bool:
        """Write with retries; return False when given up (stop requested or in a callback).

        ``written`` is a first attempt already made on the writer thread: its result is taken
        as the first try, so an outage there is retried exactly as one here.
        """
        backoff_s = self._retry_initial_s
        attempts = 0
        while True:
            try:
                if written is not None:
                    first, written = written, None
                    first.result()
                else:
                    self._write(self._engine, batch, outcome)
            except SQLAlchemyError as exc:
                if not is_outage(exc):
                    raise
                attempts += 1
                self._report_outage(attempts, backoff_s, exc)
                if in_callback:
                    # No polling inside a rebalance callback: a short retry, then give the
                    # partitions up uncommitted (their next owner re-reads them).
                    if attempts >= CALLBACK_ATTEMPTS or self._stop.is_set():
                        return False
                    time.sleep(min(backoff_s, CALLBACK_RETRY_MAX_S))
                elif not self._wait_out_outage(backoff_s):
                    log.warning(
                        "stopping during a database outage: batch not stored, "
                        "offsets not committed (it will be re-read)"
                    )
                    return False
                backoff_s = min(2 * backoff_s, self._retry_max_s)
                continue
            self._database_up()
            return True

    def _report_outage(self, attempts: int, retry_in_s: float, exc: SQLAlchemyError) -> None:
        self._metrics.db_retries.inc()
        self._metrics.db_up.set(0)
        log.warning(
            "database unavailable; retrying",
            extra={
                "fields": {
                    "attempt": attempts,
                    "retry_in_s": retry_in_s,
                    "error": type(exc).__name__,
                }
            },
        )

    def _wait_out_outage(self, seconds: float) -> bool:
        """Pause consumption and keep polling for ``seconds``; False when a stop is requested.

        Paused partitions fetch nothing; polling keeps the member in its group and serves
        rebalances (anything that still arrives is kept for later). Those rebalance callbacks
        run inside this wait: :attr:`waiting_out_outage` tells them so. It is never nested,
        since the revocation path stores nothing while it is set.
        """
        self._pause()
        self._health.beat(db_up=False, paused=True)
        end = time.monotonic() + seconds
        self._waiting_out_outage = True
        try:
            while time.monotonic() < end and not self._stop.is_set():
                self._loop.keep_alive(min(OUTAGE_POLL_S, max(0.0, end - time.monotonic())))
                self._health.beat(db_up=False, paused=True)
        finally:
            self._waiting_out_outage = False
        return not self._stop.is_set()

    def _pause(self) -> None:
        if not self._paused:
            self._client.pause(self._client.assignment())
            self._paused = True
            self._metrics.paused.set(1)

    def _database_up(self) -> None:
        self._metrics.db_up.set(1)
        if self._paused:
            log.info("database back: resuming consumption")
            self._client.resume(self._client.assignment())
            self._paused = False
            self._metrics.paused.set(0)
        self._health.beat(db_up=True, paused=False)

    # -- committing -------------------------------------------------------------------------

    def _commit(self, batch: Sequence[RawMessage], outcome: BatchOutcome, started: float) -> None:
        """Commit a stored batch's offsets, then report it (``on_committed``)."""
        committed_at = time.perf_counter()
        self._commit_offsets(batch)
        outcome.timings_s["commit"] = time.perf_counter() - committed_at
        self._loop.on_committed(batch, outcome, started)

    def _commit_offsets(self, batch: Sequence[RawMessage]) -> None:
        to_commit = self._owned.to_commit(batch)
        if not to_commit:
            return
        try:
            self._client.commit(offsets=to_commit, asynchronous=False)
        except KafkaException as exc:
            # Stored but not committed: re-read after the rebalance and upserted again.
            log.warning("offset commit failed: %s", exc)
            return
        for tp in to_commit:
            try:
                _low, high = self._client.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                lag = max(0, high - tp.offset)
                self._metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
                self._owned.lag[(tp.topic, tp.partition)] = lag

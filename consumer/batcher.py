"""When a micro-batch closes: the buffer of polled messages, its deadline, and backlog detection.

Pure bookkeeping, no Kafka client and no database: the loop
(:mod:`lenscast.consumer.kafka_loop`) adds what it polls and takes a batch when it is ready.

* A batch closes at ``max_messages`` or ``max_wait_s`` after its first message, whichever comes
  first.
* **Backlog**: once a batch has been processed, the messages queued meanwhile have waited through
  that processing, so the next batch takes what is queued with its first message and closes at
  once (waiting longer would only add latency; under a backlog it fills to ``max_messages``
  anyway). When a poll finds the client's queue empty the loop has caught up, and a new batch
  waits for its messages again.
* **Handing back**: messages taken but not stored (the unprocessed rest of a batch cut short by
  its processing deadline, or a batch given up during a database outage) go back to the front
  of the buffer, in offset order, and are taken next without waiting.
* **Dropping**: messages of partitions this member no longer owns are forgotten (uncommitted:
  their next owner reads them again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable

from lenscast.consumer.offsets import PartitionKey
from lenscast.consumer.pipeline import RawMessage


class Batcher:
    """The messages in hand and when they form a batch.

    Parameters
    ----------
    max_messages : int
        A batch closes when it holds this many messages.
    max_wait_s : float
        ... or this many seconds after its first message, whichever comes first.
    clock : callable, optional
        Monotonic clock, seconds (tests pass a fake one).
    """

    def __init__(
        self,
        max_messages: int,
        max_wait_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_messages = max_messages
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._buffer: list[RawMessage] = []
        #: ``clock()`` time at which the batch in hand closes; None while the buffer is empty.
        self.deadline: float | None = None
        #: A batch was processed since a poll last found the client's queue empty: what is
        #: queued now arrived while the loop was busy.
        self.behind = False

    def __len__(self) -> int:
        return len(self._buffer)

    @property
    def messages(self) -> tuple[RawMessage, ...]:
        """The messages in hand, in the order they will be taken."""
        return tuple(self._buffer)

    # -- filling --------------------------------------------------------------------------------

    def room(self) -> int:
        """Messages to ask the client for while a batch is being filled (at least 1)."""
        return max(1, self.max_messages - len(self._buffer))

    def take_with_first(self) -> int:
        """Queued messages to take at once with a new batch's first message.

        Up to a full batch when :attr:`behind` (they have waited already), else none: the
        batch's clock starts with its first message, and consuming more would wait for them.
        """
        return self.max_messages - 1 if self.behind else 0

    def add(self, message: RawMessage) -> None:
        """Append a polled message; the first of a batch starts its clock."""
        if not self._buffer:
            wait = 0.0 if self.behind else self.max_wait_s
            self.deadline = self._clock() + wait
        self._buffer.append(message)

    def caught_up(self) -> None:
        """A poll found the client's queue empty: the next batch waits for its messages again."""
        self.behind = False

    # -- closing --------------------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether the messages in hand form a batch now (full, or past their deadline)."""
        if not self._buffer:
            return False
        if len(self._buffer) >= self.max_messages:
            return True
        return self.deadline is not None and self._clock() >= self.deadline

    def poll_timeout(self, longest_s: float) -> float:
        """Seconds a poll may wait: until the batch in hand closes, at most ``longest_s``."""
        if self.deadline is None:
            return longest_s
        return min(longest_s, max(0.0, self.deadline - self._clock()))

    def take(self) -> list[RawMessage]:
        """Take every message in hand as one batch (empty when there is none)."""
        batch, self._buffer, self.deadline = self._buffer, [], None
        return batch

    def processed(self) -> None:
        """A batch was processed: what is queued now has waited through it (:attr:`behind`)."""
        self.behind = True

    def is_backlog(self, batch: Collection[RawMessage]) -> bool:
        """Whether ``batch`` is full, i.e. more messages were waiting when it closed."""
        return len(batch) >= self.max_messages

    # -- giving back ----------------------------------------------------------------------------

    def hand_back(self, messages: Iterable[RawMessage]) -> None:
        """Put messages taken but not stored back in front; they are taken next, at once.

        Kept in offset order: a batch and the one written before it may both come back.
        """
        returned = list(messages)
        if not returned:
            return
        self._buffer = sorted(
            [*returned, *self._buffer], key=lambda m: (m.topic, m.partition, m.offset)
        )
        self.deadline = self._clock()

    def drop(self, partitions: Collection[PartitionKey]) -> None:
        """Forget the messages of ``partitions`` (no longer owned: their next owner re-reads)."""
        self._buffer = [m for m in self._buffer if (m.topic, m.partition) not in partitions]
        if not self._buffer:
            self.deadline = None

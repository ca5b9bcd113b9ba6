"""Which offsets to commit after a batch is stored: exactly those of the stored messages.

``commit()`` without arguments would commit everything the client has consumed, processed or
not; the loop instead commits, per partition, one past the highest offset it wrote, and only for
partitions it still owns (:class:`OwnedPartitions`: a partition revoked while the batch waited for
the database is left to its new owner, which re-reads from the last commit; the idempotent writes
absorb the overlap).
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import TopicPartition

from lenscast.consumer.pipeline import RawMessage

PartitionKey = tuple[str, int]


def next_offsets(messages: Iterable[RawMessage]) -> dict[PartitionKey, int]:
    """Per (topic, partition), the offset to commit: one past the highest offset seen."""
    out: dict[PartitionKey, int] = {}
    for m in messages:
        key = (m.topic, m.partition)
        out[key] = max(out.get(key, 0), m.offset + 1)
    return out


def commit_list(
    offsets: dict[PartitionKey, int], *, exclude: Iterable[PartitionKey] = ()
) -> list[TopicPartition]:
    """The ``TopicPartition`` list for ``Consumer.commit(offsets=...)``, minus ``exclude``."""
    skip = set(exclude)
    return [
        TopicPartition(topic, partition, offset)
        for (topic, partition), offset in sorted(offsets.items())
        if (topic, partition) not in skip
    ]


class OwnedPartitions:
    """The partitions this member owns, and how far behind each one is after its last commit.

    Updated by the rebalance callbacks; read when a stored batch's offsets are committed (only
    owned partitions are committed) and for the progress line's lag.
    """

    def __init__(self) -> None:
        self.keys: set[PartitionKey] = set()
        #: Messages behind the high watermark per owned partition, after the last commit.
        self.lag: dict[PartitionKey, int] = {}

    def add(self, keys: Iterable[PartitionKey]) -> None:
        """Partitions assigned to this member."""
        self.keys |= set(keys)

    def remove(self, keys: Iterable[PartitionKey]) -> None:
        """Partitions revoked or lost: no longer committed, no longer counted in the lag."""
        for key in keys:
            self.keys.discard(key)
            self.lag.pop(key, None)

    def to_commit(self, messages: Iterable[RawMessage]) -> list[TopicPartition]:
        """What to commit once ``messages`` are stored: their :func:`next_offsets`, owned only."""
        offsets = next_offsets(messages)
        return commit_list(offsets, exclude=[key for key in offsets if key not in self.keys])

    def total_lag(self) -> int | None:
        """Messages behind over the owned partitions; None before the first commit."""
        return sum(self.lag.values()) if self.lag else None

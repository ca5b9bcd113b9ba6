"""Which offsets to commit after a batch is stored: exactly those of the stored messages.

``commit()`` without arguments would commit everything the client has consumed, processed or
not; the loop instead commits, per partition, one past the highest offset it wrote, and only for
partitions it still owns (a partition revoked while the batch waited for the database is left to
its new owner, which re-reads from the last commit; the idempotent writes absorb the overlap).
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

"""When a micro-batch closes, with a fake clock and plain messages (no client, no database)."""

from __future__ import annotations

import pytest

from lenscast.consumer.batcher import Batcher
from lenscast.consumer.pipeline import RawMessage


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def msg(offset: int, partition: int = 0, topic: str = "lens") -> RawMessage:
    return RawMessage(value=b"", topic=topic, partition=partition, offset=offset)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def offsets(batch: list[RawMessage] | tuple[RawMessage, ...]) -> list[tuple[int, int]]:
    return [(m.partition, m.offset) for m in batch]


def test_an_empty_batcher_is_never_ready_and_polls_for_the_longest_wait(clock: Clock) -> None:
    batcher = Batcher(4, 2.0, clock=clock)
    assert not batcher.ready()
    assert batcher.deadline is None
    assert batcher.poll_timeout(0.5) == 0.5
    assert batcher.take() == []


def test_a_batch_closes_at_its_wait_after_the_first_message(clock: Clock) -> None:
    batcher = Batcher(4, 2.0, clock=clock)
    batcher.add(msg(0))
    clock.now += 1.5
    batcher.add(msg(1))  # a later message does not move the deadline
    assert batcher.deadline == 102.0
    assert not batcher.ready()
    assert batcher.poll_timeout(5.0) == pytest.approx(0.5)
    clock.now += 0.5
    assert batcher.ready()
    assert batcher.poll_timeout(5.0) == 0.0
    assert offsets(batcher.take()) == [(0, 0), (0, 1)]
    assert len(batcher) == 0
    assert batcher.deadline is None


def test_a_full_batch_closes_at_once(clock: Clock) -> None:
    batcher = Batcher(3, 60.0, clock=clock)
    assert batcher.room() == 3
    for offset in range(3):
        assert not batcher.ready()
        batcher.add(msg(offset))
    assert batcher.ready()
    assert batcher.room() == 1  # never asks the client for zero messages
    assert batcher.is_backlog(batcher.take())
    assert not batcher.is_backlog([msg(0), msg(1)])


def test_after_a_processed_batch_what_is_queued_closes_at_once_until_caught_up(
    clock: Clock,
) -> None:
    batcher = Batcher(4, 2.0, clock=clock)
    assert batcher.take_with_first() == 0  # caught up: a batch waits for its messages
    batcher.processed()
    assert batcher.take_with_first() == 3  # behind: take what is queued with the first
    batcher.add(msg(0))
    assert batcher.ready()  # it waited through the processing already
    batcher.take()
    batcher.caught_up()  # a poll found nothing queued
    batcher.add(msg(1))
    assert not batcher.ready()
    assert batcher.deadline == 102.0


def test_handed_back_messages_go_first_in_offset_order_and_close_at_once(clock: Clock) -> None:
    batcher = Batcher(10, 60.0, clock=clock)
    batcher.add(msg(5))
    batcher.add(msg(2, partition=1))
    clock.now += 1.0
    batcher.hand_back([msg(3), msg(4)])  # the unprocessed rest of a batch cut short
    batcher.hand_back([msg(1), msg(2)])  # then the batch written before it, given up
    assert offsets(batcher.messages) == [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 2)]
    assert batcher.ready()


def test_handing_back_nothing_changes_nothing(clock: Clock) -> None:
    batcher = Batcher(10, 60.0, clock=clock)
    batcher.hand_back([])
    assert batcher.deadline is None
    assert not batcher.ready()


def test_dropping_partitions_keeps_the_others_and_clears_an_empty_deadline(clock: Clock) -> None:
    batcher = Batcher(10, 60.0, clock=clock)
    for m in (msg(0, 0), msg(0, 1), msg(1, 0), msg(0, 0, topic="other")):
        batcher.add(m)
    batcher.drop({("lens", 0)})
    assert [(m.topic, m.partition, m.offset) for m in batcher.messages] == [
        ("lens", 1, 0),
        ("other", 0, 0),
    ]
    assert batcher.deadline == 160.0
    batcher.drop({("lens", 1), ("other", 0)})
    assert len(batcher) == 0
    assert batcher.deadline is None
    assert batcher.poll_timeout(0.5) == 0.5

"""A second consumer joins the group mid-stream and later leaves it: each alert still once.

tests/integration/test_stream.py starts two members before any message is produced; here the
group changes while batches are in flight. Member A (a ``lenscast consume`` process) works
through a backlog; member B joins when a part is stored (a rebalance: A's revocation callback
writes and commits what it holds for the partitions it gives up), shares the partitions, and
is stopped with SIGTERM further on (a second rebalance: B finishes its batch, commits, leaves,
and A takes its partitions back from B's last commit). Then A finishes the stream. Every message
must be stored exactly once, and both members must have stored some of it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.consumer_process import ConsumerProcess
from harness.hostile_packets import valid_stream
from harness.reliability import check_stream, row_count
from harness.stream_helpers import StreamRun, wait_for
from lenscast.db.engine import make_engine
from lenscast.tools.local_broker import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Enough that B joins, works and leaves while A still has a backlog, at the pipeline's speed.
N_ALERTS = int(os.environ.get("LENSCAST_RELIABILITY_REBALANCE_ALERTS", "6000"))
PARTITIONS = 4


def _assigned_and_stored(process: ConsumerProcess) -> tuple[list[list[str]], int]:
    """Partition assignments seen in a member's log, and what it reported storing at exit."""
    assigned, stored = [], 0
    for record in process.log_records():
        if record.get("msg") == "partitions assigned":
            assigned.append(record.get("partitions", []))
        if record.get("msg") in ("consumer closed", "stopped"):
            stored = int(record.get("stored", 0)) + int(record.get("rejected", 0))
    return assigned, stored


def test_member_joins_and_leaves_mid_stream_exactly_once(
    new_stream: Callable[..., StreamRun], reliability_report: dict[str, Any]
) -> None:
    run = new_stream("rebal", partitions=PARTITIONS)
    stream = list(valid_stream(N_ALERTS, prefix=run.topic, malformed_every=10))
    run.produce(v for _, v in stream)
    engine = make_engine(run.db_url)

    def member(name: str) -> ConsumerProcess:
        return run.consumer(name, batch_size=64, metrics_port=free_port())

    def done_by(process: ConsumerProcess) -> int:
        try:
            state = process.health()
        except OSError:  # endpoint not up yet
            return 0
        return int(state["stored"]) + int(state["rejected"])

    started = time.monotonic()
    a = member("a")
    b = None
    try:
        wait_for(lambda: row_count(engine) >= N_ALERTS // 5, timeout_s=120,
                 what="member A's first fifth")  # fmt: skip
        joined_at = row_count(engine)
        b = member("b")
        # B leaves once it has done a fair share of its own.
        wait_for(lambda: done_by(b) >= N_ALERTS // 16 or not b.alive(), timeout_s=120,
                 what="member B at work")  # fmt: skip
        left_at = row_count(engine)
        assert left_at < N_ALERTS, "the stream ended before B left: raise N_ALERTS"
        b_status = b.terminate()
        # B's leaving is a rebalance A must go through; wait for it, not only for the rows,
        # which A may finish first when B had already drained the partitions it held.
        wait_for(lambda: len(_assigned_and_stored(a)[0]) >= 3, timeout_s=120,
                 what="A taking B's partitions back")  # fmt: skip
        wait_for(lambda: row_count(engine) >= N_ALERTS, timeout_s=240,
                 what="A finishing the stream")  # fmt: skip
        run.wait_committed(N_ALERTS)
    finally:
        a_status = a.terminate()
        if b is not None and b.alive():
            b.terminate()
    assert (a_status, b_status) == (0, 0)

    counts = check_stream(engine, run, [x for x, _ in stream])
    engine.dispose()
    a_assigned, a_stored = _assigned_and_stored(a)
    b_assigned, b_stored = _assigned_and_stored(b)
    reliability_report.update(
        b_joined_at_rows=joined_at,
        b_left_at_rows=left_at,
        a_assignments=a_assigned,
        b_assignments=b_assigned,
        a_stored=a_stored,
        b_stored=b_stored,
        seconds=round(time.monotonic() - started, 1),
        **counts,
    )
    assert b_stored > 0, "member B never stored anything"
    assert len(a_assigned) >= 3, "member A saw no rebalance"  # start, B joins, B leaves
    assert a_stored + b_stored >= N_ALERTS  # re-reads after a rebalance count twice

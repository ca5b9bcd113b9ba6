"""``kill -9`` of ``lenscast consume`` at random points over >= 10,000 alerts: each alert once.

tests/integration/test_stream.py kills the consumer once over 300 packets; this is the scale of
docs/reliability.md. The stream (valid sample alerts re-keyed, every 10th packet malformed) is
produced first, then the consumer process is started and, after a random number of further stored
rows, killed with SIGKILL, again and again (kill points below). After the last kill a consumer
runs the stream to its end. Then every message must be stored exactly once: a valid alert as
its result row at its own offset, a malformed packet as a rejected row; nothing missing,
nothing twice; and the group's committed offsets at the end.

The kill points, in turn: a random delay; during start-up; while a batch's INSERT is running
(watched in ``pg_stat_activity``: the transaction dies with the process); and right after a
batch's COMMIT returned (the consumer's connection turns idle after its COMMIT), which is when
it commits the batch's offsets to Kafka (that window is a few milliseconds wide: such a kill
usually lands just after the offset commit); and, made certain, between the two: the broker is
cut off (every client reaches it through a proxy that then drops what they send) while a batch
is written, so its database commit goes through and its offset commit is lost, and the
consumer is killed there. At each kill the test reports the rows stored
but not covered by a committed offset; after that last kind of kill they must be above zero
(the rows the idempotent upserts then write a second time after the restart).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from harness.consumer_process import ConsumerProcess
from harness.hostile_packets import valid_stream
from harness.reliability import Ledger, check_stream, row_count
from harness.stream_helpers import StreamRun, wait_for
from lenscast.db.engine import make_engine

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Alerts in the stream and SIGKILLs (docs/reliability.md: >= 10,000 and >= 5); env overrides
#: for local runs.
N_ALERTS = int(os.environ.get("LENSCAST_RELIABILITY_CRASH_ALERTS", "10000"))
N_KILLS = int(os.environ.get("LENSCAST_RELIABILITY_CRASH_KILLS", "6"))
PARTITIONS = 4
#: Where each round's SIGKILL lands, in turn (see the module docstring).
KILL_POINTS = (
    "random delay",
    "start-up",
    "during a database write",
    "right after a database commit",
    "random delay",
    "between the database commit and the offset commit",
)


def _consumer_statements(engine: Any) -> list[tuple[str, str]]:
    """(state, query) of the other client connections to this database."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT state, query FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).all()
    return [(str(state), str(query)) for state, query in rows]


def wait_for_statement(
    engine: Any, point: str, *, insert_seen: bool = False, timeout_s: float = 60.0
) -> None:
    """Return at ``point``: while a batch's INSERT runs, or just after its COMMIT returned.

    "Just after" is the consumer's connection going idle with COMMIT as its last statement,
    seen right after an INSERT was seen running: the process is then committing the batch's
    offsets to Kafka or has just done so.
    """
    deadline = time.monotonic() + timeout_s
    seen_insert = insert_seen
    while time.monotonic() < deadline:
        for state, query in _consumer_statements(engine):
            writing = state == "active" and query.lstrip().upper().startswith("INSERT")
            if writing and point == "during a database write":
                return
            seen_insert = seen_insert or writing or state == "idle in transaction"
            if seen_insert and state == "idle" and query.strip().upper() == "COMMIT":
                return
    raise AssertionError(f"never saw the consumer at {point!r}")


def test_kill_9_at_random_points_keeps_each_alert_exactly_once(
    freezable_broker: Any,
    new_stream: Callable[..., StreamRun],
    reliability_report: dict[str, Any],
) -> None:
    broker = freezable_broker
    run = new_stream("crash", partitions=PARTITIONS, broker=broker)
    topic = run.topic
    expected: list[str | None] = []

    def values() -> Any:
        for alert_id, raw in valid_stream(N_ALERTS, prefix=topic, malformed_every=10):
            expected.append(alert_id)
            yield raw

    run.produce(values())
    engine = make_engine(run.db_url)
    rng = np.random.default_rng(2026)
    rounds: list[dict[str, Any]] = []
    started = time.monotonic()

    def member() -> ConsumerProcess:
        return run.consumer(batch_size=64)

    log = run.directory / "consume.log"
    for kill in range(N_KILLS):
        before = row_count(engine)
        process = member()
        point = KILL_POINTS[kill % len(KILL_POINTS)]
        if point == "start-up":
            # Imports, model load, schema check or the group join.
            time.sleep(float(rng.uniform(0.5, 6.0)))
        else:
            target = before + int(rng.integers(300, 1200))
            wait_for(lambda t=target, p=process: row_count(engine) >= t or not p.alive(),
                     timeout_s=180, what=f"round {kill}: {target} rows (log {log})")  # fmt: skip
            if point == "random delay":
                time.sleep(float(rng.uniform(0.0, 0.8)))
            elif point.startswith("between"):
                # Cut the consumer off the broker while a batch is being written: the
                # database commit goes through, the offset commit is lost, and the kill lands
                # between the two.
                wait_for_statement(engine, "during a database write")
                broker.freeze()
                try:
                    wait_for_statement(engine, "right after a database commit", insert_seen=True)
                    time.sleep(0.5)
                    process.kill()
                finally:
                    broker.thaw()
            else:
                wait_for_statement(engine, point)
        if process.alive():
            process.kill()
        else:
            assert point.startswith("between"), f"the consumer died by itself (log {log})"
        stored = row_count(engine)
        offsets = run.committed()
        covered = sum(max(0, o) for o in offsets)
        rounds.append({"point": point, "rows": stored, "committed": covered,
                       "stored_not_committed": stored - covered})  # fmt: skip
        # Batches are written whole or not at all: per partition the stored offsets are a
        # prefix, whatever the kill interrupted.
        assert sum(Ledger.read(engine, topic).contiguous(PARTITIONS)) == stored
        assert stored < N_ALERTS, "the stream ended before the kills did: raise N_ALERTS"

    last = member()
    try:
        wait_for(lambda: row_count(engine) >= N_ALERTS, timeout_s=300,
                 what=f"the whole stream stored (log {log})")  # fmt: skip
        run.wait_committed(N_ALERTS)
    finally:
        status = last.terminate()
    assert status == 0, f"graceful stop failed (log {log})"

    counts = check_stream(engine, run, expected)
    engine.dispose()
    reliability_report.update(
        crash_rounds=len(rounds),
        kill_points=rounds,
        seconds=round(time.monotonic() - started, 1),
        **counts,
    )
    assert len(rounds) >= 5
    between = [r for r in rounds if r["point"].startswith("between")]
    assert between, rounds
    assert all(r["stored_not_committed"] > 0 for r in between), between

"""The stream against a real PostgreSQL and the real Tansu broker: each alert exactly once.

Produce valid and malformed packets, consume them with the service, and check that every
packet ends up exactly once in ``lens_results`` (valid: by alert id) or ``rejected_alerts``
(malformed: by partition and offset), that the group's committed offsets cover the topic, and
that this holds across a crash (``kill -9`` of ``lenscast consume``), a graceful restart, two
members sharing the partitions, and a database outage.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from harness.paths import ROOT
from harness.stream_helpers import StreamRun, start_service, stored_count, stored_keys, wait_for
from lenscast.db.engine import make_engine
from lenscast.db.models import rejected_table
from lenscast.tools.local_broker import free_port

pytestmark = pytest.mark.integration


def check_exactly_once(
    engine: Any, stream: list[tuple[str | None, bytes]], partitions: int
) -> None:
    """Every packet exactly once in results or rejected; malformed ones all rejected.

    A valid packet may be rejected only after decoding (e.g. ``physics.error`` for a model
    output the lens equation cannot use), never for its format.
    """
    ids, rejected = stored_keys(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                rejected_table.c.source_partition,
                rejected_table.c.source_offset,
                rejected_table.c.alert_id,
                rejected_table.c.reason,
            )
        ).all()
    # Offsets per partition follow production order (round-robin in produce()).
    where = {(i % partitions, i // partitions): a for i, (a, _) in enumerate(stream)}
    malformed = {k for k, a in where.items() if a is None}
    valid_rejected = {(int(p), int(o)): (a, r) for p, o, a, r in rows if (p, o) not in malformed}
    assert not [k for k, n in Counter(ids).items() if n > 1], "duplicate results"
    assert len(rejected) == len(set(rejected)), "duplicate rejections"
    assert malformed <= set(rejected), "a malformed packet is missing from rejected"
    for key, (alert_id, reason) in valid_rejected.items():
        assert alert_id == where[key]
        assert reason.split(".")[0] in ("physics", "inference"), reason
    stored_ids = sorted(ids + [a for a, _ in valid_rejected.values()])
    assert stored_ids == sorted(a for a in where.values() if a is not None)
    assert len(ids) + len(rejected) == len(stream)
    print(
        f"exactly once: {len(ids)} results + {len(rejected)} rejected = {len(stream)} packets"
        f" ({len(valid_rejected)} valid packets rejected after inference)"
    )


#: ``fresh_run(n, partitions=, malformed_every=, seed=) -> (run, stream, engine)``.
FreshRun = Callable[..., tuple[StreamRun, list, Engine]]


@pytest.fixture
def fresh_run(
    new_stream: Callable[..., StreamRun], make_stream: Callable[..., list]
) -> Iterator[FreshRun]:
    """A fresh topic and database, a stream of ``n`` packets for it, and the results engine.

    The engines are disposed when the test ends, whether it passed or not.
    """
    engines: list[Engine] = []

    def make(
        n: int, *, partitions: int, malformed_every: int, seed: int
    ) -> tuple[StreamRun, list, Engine]:
        run = new_stream("lens", partitions=partitions)
        stream = make_stream(n, malformed_every=malformed_every, seed=seed)
        engines.append(make_engine(run.db_url))
        return run, stream, engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def test_each_alert_exactly_once_and_offsets_committed(fresh_run: FreshRun) -> None:
    n = 240
    run, stream, engine = fresh_run(n, partitions=3, malformed_every=5, seed=11)
    run.produce(v for _, v in stream)
    running = start_service(run.settings())
    try:
        wait_for(lambda: sum(stored_count(engine)) >= n, timeout_s=90, what="all packets stored")
    finally:
        running.close()
    check_exactly_once(engine, stream, run.partitions)
    assert run.committed() == [len(range(p, n, run.partitions)) for p in range(run.partitions)]
    assert max(len(b) for b, _ in running.batches) > 1  # micro-batched


def test_crash_and_restart_mid_stream_still_exactly_once(fresh_run: FreshRun) -> None:
    # Long enough that a consumer at ~1000 alerts/s is still mid-stream when each phase ends.
    n = 1200
    run, stream, engine = fresh_run(n, partitions=2, malformed_every=6, seed=12)
    run.produce(v for _, v in stream)

    # 1. the service as a process, killed with SIGKILL while it is mid-stream
    process = run.consumer(batch_size=32)
    try:
        wait_for(lambda: sum(stored_count(engine)) >= 40, timeout_s=90,
                 what=f"the first batches (log: {process.log_path})")  # fmt: skip
    finally:
        process.kill()
    after_crash = sum(stored_count(engine))
    assert after_crash < n, "the crash came too late to test anything"

    # 2. restarted as a process with its HTTP endpoint, then stopped with SIGTERM (graceful)
    process = run.consumer(batch_size=32, metrics_port=free_port())
    try:
        wait_for(lambda: sum(stored_count(engine)) >= after_crash + 40, timeout_s=90,
                 what=f"progress after the restart (log: {process.log_path})")  # fmt: skip
        assert process.health()["alive"] is True
        assert process.metric("lenscast_alerts_processed_total") > 0
    finally:
        assert process.terminate(30) == 0
    after_sigterm = sum(stored_count(engine))
    assert after_sigterm < n, "the restart finished the stream: nothing left to test"
    assert any(entry.get("msg") == "consumer closed" for entry in process.log_records())
    # A graceful stop commits everything it stored.
    assert sum(max(0, c) for c in run.committed()) == after_sigterm

    # 3. and once more, to the end
    last = start_service(run.settings())
    try:
        wait_for(lambda: sum(stored_count(engine)) >= n, timeout_s=120, what="all packets")
        run.wait_committed(n, timeout_s=30)
    finally:
        last.close()
    print(
        f"stored before the kill: {after_crash}; before SIGTERM: {after_sigterm}; "
        f"then {len(last.batches)} batches to the end"
    )
    check_exactly_once(engine, stream, run.partitions)


def test_two_consumers_in_one_group_share_the_partitions(fresh_run: FreshRun) -> None:
    n = 400
    run, stream, engine = fresh_run(n, partitions=4, malformed_every=7, seed=13)
    partitions = run.partitions
    settings = run.settings(batch_max_messages=16)
    a = start_service(settings)
    b = start_service(settings)
    try:
        wait_for(
            lambda: (
                len(a.service._assigned) + len(b.service._assigned) == partitions
                and a.service._assigned
                and b.service._assigned
            ),
            timeout_s=60,
            what="both members assigned",
        )
        assert not (a.service._assigned & b.service._assigned)
        run.produce(v for _, v in stream)
        wait_for(lambda: sum(stored_count(engine)) >= n, timeout_s=120, what="all packets")
    finally:
        a.close()
        b.close()
    print(
        f"member A partitions {sorted(a.partitions())}, stored {a.service.stored} + "
        f"{a.service.rejected}; member B partitions {sorted(b.partitions())}, stored "
        f"{b.service.stored} + {b.service.rejected}"
    )
    assert a.partitions()
    assert b.partitions()
    assert not (a.partitions() & b.partitions())
    check_exactly_once(engine, stream, partitions)


def _set_connections(admin_url: str, database: str, *, allow: bool) -> None:
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {allow}'))
        if not allow:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"
                ),
                {"d": database},
            )
    admin.dispose()


def test_database_outage_pauses_then_resumes_without_loss(
    fresh_run: FreshRun, postgres_server: Any
) -> None:
    n = 200
    run, stream, engine = fresh_run(n, partitions=2, malformed_every=5, seed=14)
    database = engine.url.database
    admin_url = postgres_server.render_as_string(hide_password=False)
    running = start_service(run.settings(batch_max_messages=20))
    try:
        run.produce(v for _, v in stream[:60])
        wait_for(lambda: sum(stored_count(engine)) >= 60, timeout_s=60, what="first packets")
        engine.dispose()
        _set_connections(admin_url, database, allow=False)  # the outage begins
        before = run.committed()
        run.produce(v for _, v in stream[60:])
        wait_for(lambda: running.service._paused, timeout_s=30, what="the consumer to pause")
        time.sleep(3)
        # Nothing committed for the unwritten packets while the database is down.
        assert run.committed() == before
        assert running.service.metrics.db_retries._value.get() >= 1
        _set_connections(admin_url, database, allow=True)  # ... and ends
        wait_for(lambda: sum(stored_count(engine)) >= n, timeout_s=90, what="recovery")
        assert not running.service._paused
    finally:
        _set_connections(admin_url, database, allow=True)
        running.close()
    check_exactly_once(engine, stream, run.partitions)


def test_replay_the_sample_stream_then_consume_it(
    new_stream: Callable[..., StreamRun], capsys: pytest.CaptureFixture[str]
) -> None:
    from lenscast.cli import main
    from lenscast.consumer.framing import read_alert_file

    sample = ROOT / "consumer" / "samples" / "hsc-sample.avro"
    n = len(read_alert_file(sample))
    run = new_stream("lens", partitions=2)
    assert (
        main(
            [
                "replay",
                str(sample),
                "--topic",
                run.topic,
                "--bootstrap-servers",
                run.bootstrap,
                "--rate",
                "200",
                "--no-progress",
            ]
        )
        == 0
    )
    assert f"published {n} of {n} alerts" in capsys.readouterr().out
    engine = make_engine(run.db_url)
    running = start_service(run.settings())
    try:
        wait_for(lambda: sum(stored_count(engine)) >= n, timeout_s=60, what="the sample")
    finally:
        running.close()
    assert stored_count(engine) == (n, 0)
    lag = running.service.metrics.lag
    assert {lag.labels(run.topic, str(p))._value.get() for p in range(2)} == {0.0}
    engine.dispose()

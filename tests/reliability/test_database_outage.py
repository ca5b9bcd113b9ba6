"""PostgreSQL stopped for >= 30 s mid-stream: the consumer pauses, retries, recovers, loses nothing.

tests/integration/test_stream.py cuts connections to one database for a few seconds; here the
whole server goes away. The test starts a throwaway PostgreSQL 15 cluster (``initdb`` +
``pg_ctl``) so it can really stop it (``pg_ctl stop -m immediate``: the postmaster is killed
like a crashed host would leave it), while a ``lenscast consume`` process works through a stream
and more alerts keep arriving. During the outage the test watches the consumer's ``/healthz``
(it must stay alive, report the database down and its partitions paused) and samples the
group's committed offsets every second.

The server then comes back **without its TCP listener** first (Unix socket only), so the test
can read what the database holds before the consumer can write again: every committed offset
sampled during the outage must be covered by stored rows (offsets 0 .. committed-1 all present),
i.e. no offset was committed for an alert that was not written. Then the listener is restored;
the consumer must resume and store the rest, each alert exactly once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from harness.hostile_packets import valid_stream
from harness.reliability import Ledger, check_stream, row_count
from harness.services import service_missing
from harness.stream_helpers import StreamRun, wait_for
from lenscast.db.engine import make_engine
from lenscast.db.migrate import upgrade
from lenscast.tools.local_broker import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = float(os.environ.get("LENSCAST_RELIABILITY_OUTAGE_S", "35"))
N_BEFORE, N_DURING = 900, 600
PARTITIONS = 3


class Cluster:
    """A throwaway PostgreSQL cluster that can be stopped and started (as ``postgres`` if root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lenscast-outage-"))
        self.data = self.dir / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        """Create the cluster."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self, *, tcp: bool = True) -> None:
        """Start it; with ``tcp=False`` it listens on its Unix socket only."""
        listen = "127.0.0.1" if tcp else "''"
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={listen} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                  "-w", "start")  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """Stop it (``immediate``: no shutdown checkpoint, clients cut at once)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str, *, tcp: bool = True) -> URL:
        """URL of ``database`` over TCP or over the Unix socket."""
        if tcp:
            return URL.create("postgresql+psycopg2", username="postgres", host="127.0.0.1",
                              port=self.port, database=database)  # fmt: skip
        return URL.create("postgresql+psycopg2", username="postgres", database=database,
                          query={"host": str(self.dir), "port": str(self.port)})  # fmt: skip

    def remove(self) -> None:
        """Stop (if running) and delete it."""
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("fast")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A started throwaway cluster with a migrated ``postgres`` database."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        service_missing("PostgreSQL's initdb and pg_ctl")
    c = Cluster()
    try:
        c.init()
        c.start()
        engine = make_engine(c.url("postgres"))
        upgrade(engine)
        engine.dispose()
        yield c
    finally:
        c.remove()


def test_database_outage_pauses_and_recovers_without_loss(
    cluster: Cluster,
    new_stream: Callable[..., StreamRun],
    reliability_report: dict[str, Any],
) -> None:
    db_url = cluster.url("postgres").render_as_string(hide_password=False)
    run = new_stream("outage", partitions=PARTITIONS, db_url=db_url)
    stream = list(valid_stream(N_BEFORE + N_DURING, prefix=run.topic, malformed_every=10))
    expected = [a for a, _ in stream]
    engine = make_engine(db_url)
    process = run.consumer(metrics_port=free_port(), batch_size=64)
    log = process.log_path
    health: list[dict[str, Any]] = []
    samples: list[list[int]] = []
    try:
        # The first part of the stream (produced in the same order as ``expected``: one
        # producer per call, partitions round-robin, so offsets continue across the calls).
        run.produce(v for _, v in stream[:N_BEFORE])
        wait_for(lambda: row_count(engine) >= N_BEFORE // 3, timeout_s=120,
                 what=f"the first third stored (log {log})")  # fmt: skip
        engine.dispose()

        cluster.stop("immediate")  # the outage begins, mid-stream
        down_at = time.monotonic()
        run.produce(v for _, v in stream[N_BEFORE:])
        while time.monotonic() - down_at < OUTAGE_S:
            assert process.alive(), f"the consumer died during the outage (log {log})"
            health.append(process.health())
            samples.append(run.committed())
            time.sleep(1.0)
        rss_during = process.rss_samples[-1][1]

        # Back, but reachable only through its socket: read what it holds before the
        # consumer can write again.
        cluster.start(tcp=False)
        socket_engine = make_engine(cluster.url("postgres", tcp=False))
        held = Ledger.read(socket_engine, run.topic)
        socket_engine.dispose()
        cluster.stop("fast")
        cluster.start()  # the outage ends
        outage_s = time.monotonic() - down_at

        engine = make_engine(db_url)
        wait_for(lambda: row_count(engine) >= len(stream), timeout_s=180,
                 what=f"recovery: all packets stored (log {log})")  # fmt: skip
        run.wait_committed(len(stream))
        after = process.health()
        retries = process.metric("lenscast_db_retries_total")
    finally:
        status = process.terminate()
    assert status == 0, f"the consumer did not stop cleanly (log {log})"

    stored_during = held.contiguous(PARTITIONS)
    uncovered = [
        (sample, stored_during)
        for sample in samples
        if any(c > s for c, s in zip(sample, stored_during, strict=True))
    ]
    counts = check_stream(engine, run, expected)
    engine.dispose()
    paused_seen = sum(h["paused"] and not h["db_up"] for h in health)
    messages = [r.get("msg", "") for r in process.log_records()]
    reliability_report.update(
        outage_s=round(outage_s, 1),
        stored_when_it_began=len(held.results) + len(held.rejected),
        committed_during_outage=samples[-1] if samples else None,
        contiguous_stored_during_outage=stored_during,
        health_checks_paused=f"{paused_seen}/{len(health)}",
        db_retries=retries,
        rss_mib_during_outage=round(rss_during / 1024, 1),
        **counts,
    )
    assert outage_s >= 30
    assert not uncovered, f"offsets committed for unwritten alerts: {uncovered[:3]}"
    # Nothing is committed while the database is down (the first second is left out: a batch
    # stored just before the stop may still be committing its offsets then).
    assert all(sample == samples[-1] for sample in samples[2:]), samples
    assert all(h["alive"] for h in health), "the consumer stopped beating during the outage"
    assert paused_seen >= len(health) - 5, health[:8]  # paused within a few seconds of the stop
    assert after["db_up"], after
    assert not after["paused"], after
    assert retries >= 3
    assert any("database unavailable" in m for m in messages)
    assert any("resuming consumption" in m for m in messages)

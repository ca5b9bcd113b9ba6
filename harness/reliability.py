"""Helpers of the reliability tests: ledgers of what was stored, exactly-once checks, a broker
that can be cut off.

The consumer under test is always the real service in its own process
(:mod:`harness.consumer_process`).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from harness.stream_helpers import StreamRun, wait_for
from lenscast.db.models import rejected_table, results_table


@dataclass(frozen=True)
class ConsumeTarget:
    """What a ``lenscast consume`` process of a test reads from, writes to and loads.

    Attributes
    ----------
    bootstrap_servers : str
        The test's own broker.
    db_url : str
        A fresh migrated PostgreSQL database, password included.
    model_path : Path
        The ONNX model.
    """

    bootstrap_servers: str
    db_url: str
    model_path: Path


# -- what the database holds ---------------------------------------------------------------


def row_count(engine: Engine) -> int:
    """Results plus rejected rows."""
    with engine.connect() as conn:
        results = conn.execute(select(func.count()).select_from(results_table)).scalar_one()
        rejected = conn.execute(select(func.count()).select_from(rejected_table)).scalar_one()
    return int(results) + int(rejected)


@dataclass
class Ledger:
    """Every stored row keyed by its source ``(partition, offset)``, for exactly-once checks."""

    results: list[tuple[int, int, str]]  # partition, offset, alert id
    rejected: list[tuple[int, int, str, str | None]]  # partition, offset, reason, alert id

    @classmethod
    def read(cls, engine: Engine, topic: str) -> Ledger:
        """Read the rows that came from ``topic``."""
        r, j = results_table.c, rejected_table.c
        with engine.connect() as conn:
            results = conn.execute(
                select(r.source_partition, r.source_offset, r.alert_id).where(
                    r.source_topic == topic
                )
            ).all()
            rejected = conn.execute(
                select(j.source_partition, j.source_offset, j.reason, j.alert_id).where(
                    j.source_topic == topic
                )
            ).all()
        return cls(
            [(int(p), int(o), str(a)) for p, o, a in results],
            [(int(p), int(o), str(reason), a) for p, o, reason, a in rejected],
        )

    def contiguous(self, partitions: int) -> list[int]:
        """Per partition, how many offsets from 0 on are stored without a gap."""
        stored: list[set[int]] = [set() for _ in range(partitions)]
        for p, o, *_ in [*self.results, *self.rejected]:
            stored[p].add(o)
        out = []
        for offsets in stored:
            n = 0
            while n in offsets:
                n += 1
            out.append(n)
        return out


def exactly_once_counts(
    ledger: Ledger, expected: Sequence[str | None], partitions: int
) -> dict[str, int]:
    """Count how the stored rows stand against each produced message stored once, in its place.

    Parameters
    ----------
    ledger : Ledger
    expected : sequence
        Per produced message ``i`` (partition ``i % partitions``, offset ``i // partitions``): its
        alert id when it must be a result, ``None`` when it must be rejected.
    partitions : int

    Returns
    -------
    dict
        ``alerts``, ``results``, ``rejected``, ``missing``, ``duplicates``, ``misplaced`` counts
        (exactly once: the last three are 0).
    """
    where: Counter[tuple[int, int]] = Counter()
    for p, o, *_ in [*ledger.results, *ledger.rejected]:
        where[(p, o)] += 1
    ids = Counter(a for _, _, a in ledger.results)
    duplicates = sum(n - 1 for n in where.values() if n > 1) + sum(
        n - 1 for n in ids.values() if n > 1
    )
    result_at = {(p, o): a for p, o, a in ledger.results}
    rejected_at = {(p, o) for p, o, *_ in ledger.rejected}
    missing = misplaced = 0
    for i, alert_id in enumerate(expected):
        key = (i % partitions, i // partitions)
        if key not in where:
            missing += 1
        else:
            # A valid alert must be its own result; a malformed packet must be rejected.
            right = key in rejected_at if alert_id is None else result_at.get(key) == alert_id
            misplaced += not right
    extra = len(where) - (len(expected) - missing)
    return {
        "alerts": len(expected),
        "results": len(ledger.results),
        "rejected": len(ledger.rejected),
        "missing": missing,
        "duplicates": duplicates,
        "misplaced": misplaced + extra,
    }


def check_exactly_once(
    ledger: Ledger, expected: Sequence[str | None], partitions: int
) -> dict[str, int]:
    """Assert each produced message is stored exactly once, where it belongs.

    Returns
    -------
    dict
        The counts of :func:`exactly_once_counts`.
    """
    counts = exactly_once_counts(ledger, expected, partitions)
    assert (counts["missing"], counts["duplicates"], counts["misplaced"]) == (0, 0, 0), counts
    return counts


def check_stream(engine: Engine, run: StreamRun, expected: Sequence[str | None]) -> dict[str, int]:
    """:func:`check_exactly_once` of the rows ``run``'s topic left in ``engine``."""
    return check_exactly_once(Ledger.read(engine, run.topic), expected, run.partitions)


# -- a broker behind a proxy that can drop what clients send ---------------------------------------


class FreezableBroker:
    """A Tansu broker whose clients all reach it through a TCP proxy that can go silent.

    Tansu advertises the proxy's port, so every connection (bootstrap, group coordinator,
    fetches) passes through it. :meth:`freeze` makes the proxy drop whatever clients send from
    then on — a network partition — so a request already written by a client (an offset
    commit) never reaches the broker; :meth:`thaw` restores forwarding for the connections made
    afterwards. (Freezing the broker process with SIGSTOP is not the same: a request already in
    its socket buffer is served when it resumes, even if its client was killed meanwhile.)
    """

    def __init__(self, log_path: Path) -> None:
        from lenscast.tools.local_broker import free_port

        self.broker_port, self.port = free_port(), free_port()
        self.log_path = log_path
        self.frozen = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._server: Any = None
        self._sockets: list[Any] = []
        self._lock = threading.Lock()

    @property
    def bootstrap_servers(self) -> str:
        """Where clients connect: the proxy."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> FreezableBroker:
        """Start the proxy, then the broker, and wait until it answers through the proxy."""
        import socket

        from confluent_kafka.admin import AdminClient

        from lenscast.tools.local_broker import broker_binary

        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [broker_binary(), "broker",
                 "--listener-url", f"tcp://127.0.0.1:{self.broker_port}",
                 "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        wait_for(lambda: _answers(admin), timeout_s=30, what="the proxied broker")
        return self

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed by stop()
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.broker_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: Any, target: Any, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and self.frozen.is_set():
                    continue  # the partition: client bytes are lost
                target.sendall(data)
        except OSError:
            pass  # either side closed
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()

    def freeze(self) -> None:
        """Drop everything clients send from now on."""
        self.frozen.set()

    def thaw(self) -> None:
        """Forward again (connections that lost bytes are closed, so clients reconnect)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self.frozen.clear()

    def create_topic(self, name: str, *, partitions: int) -> None:
        """Create a topic (through the proxy)."""
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        admin.create_topics([NewTopic(name, num_partitions=partitions)])[name].result(30)

    def stop(self) -> None:
        """Stop the broker and the proxy."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._server is not None:
            self._server.close()
        self.thaw()


def _answers(admin: Any) -> bool:
    try:
        admin.list_topics(timeout=1.0)
    except Exception:  # KafkaException until the broker is up
        return False
    return True

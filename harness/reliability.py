"""Helpers of the reliability tests: real ``lenscast consume`` processes, producing, ledgers.

The consumer under test is always the real service (``python -m lenscast consume``) in its own
process, so ``kill -9`` kills what production would run, and its resident memory is the
process's own (``/proc/<pid>/status``), not the test runner's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from harness.paths import ROOT
from harness.stream_helpers import committed, produce, wait_for
from lenscast.db.models import rejected_table, results_table

# -- the consumer process -------------------------------------------------------------------------


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of process ``pid`` in KiB (resident now, and its peak)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


@dataclass
class ConsumerProcess:
    """One ``lenscast consume`` process (a consumer-group member) and its log.

    Parameters
    ----------
    bootstrap, topic, group, db_url : str
    model : Path
    log_path : Path
        stdout and stderr (JSON log lines) are appended here.
    metrics_port : int, optional
        Serve ``/metrics`` and ``/healthz`` on this port.
    env : dict, optional
        Extra environment variables.
    batch_size : int
    """

    bootstrap: str
    topic: str
    group: str
    db_url: str
    model: Path
    log_path: Path
    metrics_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    batch_size: int = 64
    process: subprocess.Popen[bytes] | None = None
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    _sampler: threading.Thread | None = None

    def start(self) -> ConsumerProcess:
        """Start the process (and a thread sampling its RSS every 0.5 s)."""
        command = [
            sys.executable, "-m", "lenscast", "consume",
            "--bootstrap-servers", self.bootstrap, "--topic", self.topic,
            "--group-id", self.group, "--db", self.db_url, "--model", str(self.model),
            "--batch-size", str(self.batch_size), "--batch-wait", "0.2",
            "--metrics-port", str(self.metrics_port or 0),
            "--session-timeout-ms", "6000", "--log-format", "json",
        ]  # fmt: skip
        env = {
            **os.environ,
            "LENSCAST_MC_SAMPLES": "10",
            "LENSCAST_DB_RETRY_MAX_S": "2",
            # One inference thread: the test runner, the broker and PostgreSQL share 2 cores.
            "OMP_NUM_THREADS": "1",
            **self.env,
        }
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        self.rss_samples = []
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    @property
    def pid(self) -> int:
        """Process id (started)."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process is not None and self.process.poll() is None

    def _sample(self) -> None:
        while self.alive():
            try:
                self.rss_samples.append((time.monotonic(), rss_kib(self.pid)[0]))
            except (OSError, KeyError):  # exited between the check and the read
                return
            time.sleep(0.5)

    def kill(self) -> None:
        """``kill -9``: no handler runs, nothing is flushed or committed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (finish the batch, commit, leave the group); return the exit status."""
        assert self.process is not None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def peak_rss_kib(self) -> int:
        """VmHWM of the running process (KiB)."""
        return rss_kib(self.pid)[1]

    def health(self) -> dict[str, Any]:
        """The ``/healthz`` JSON body (whatever its HTTP status)."""
        url = f"http://127.0.0.1:{self.metrics_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:  # 503 still carries the state
            return dict(json.load(exc))

    def metric(self, name: str) -> float:
        """One unlabelled sample of the ``/metrics`` text."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=3) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise KeyError(name)

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (non-JSON lines, e.g. librdkafka's, skipped)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out


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


# -- one test's stream -----------------------------------------------------------------------------


@dataclass
class StreamRun:
    """A reliability test's topic and consumer group, its database and model, its log folder.

    Parameters
    ----------
    bootstrap, topic, group, db_url : str
    model : Path
    directory : Path
        Where the consumers' logs go.
    partitions : int
        Partitions of the topic.
    """

    bootstrap: str
    topic: str
    group: str
    db_url: str
    model: Path
    directory: Path
    partitions: int

    @classmethod
    def create(cls, broker: Any, db_url: str, model: Path, directory: Path, *, name: str,
               partitions: int) -> StreamRun:  # fmt: skip
        """Create a new topic ``{name}-<random>`` on ``broker`` and name a new group for it."""
        topic, group = f"{name}-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:6]}"
        broker.create_topic(topic, partitions=partitions)
        return cls(broker.bootstrap_servers, topic, group, db_url, model, directory, partitions)

    def produce(self, values: Iterable[bytes]) -> int:
        """Append ``values`` round-robin over the partitions (see :func:`produce`)."""
        return produce(self.bootstrap, self.topic, values, partitions=self.partitions)

    def consumer(self, name: str = "consume", **options: Any) -> ConsumerProcess:
        """Start a ``lenscast consume`` member logging to ``{name}.log``; ``options`` as
        :class:`ConsumerProcess` takes them."""
        return ConsumerProcess(self.bootstrap, self.topic, self.group, self.db_url, self.model,
                               self.directory / f"{name}.log", **options).start()  # fmt: skip

    def committed(self) -> list[int]:
        """The group's committed offset per partition."""
        return committed(self.bootstrap, self.group, self.topic, self.partitions)

    def wait_committed(self, n: int, *, timeout_s: float = 60.0) -> None:
        """Wait until the group has committed the ends of the ``n`` messages produced."""
        ends = [len(range(p, n, self.partitions)) for p in range(self.partitions)]
        wait_for(lambda: self.committed() == ends, timeout_s=timeout_s, what="the final commits")

    def check_exactly_once(self, engine: Engine, expected: Sequence[str | None]) -> dict[str, int]:
        """:func:`check_exactly_once` of the rows this topic left in ``engine``."""
        return check_exactly_once(Ledger.read(engine, self.topic), expected, self.partitions)


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

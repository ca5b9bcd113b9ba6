"""A real ``lenscast consume`` process under test, and its resident memory.

The consumer of the reliability tests and the soak benchmark is the real service
(``python -m lenscast consume``) in its own process, so ``kill -9`` kills what production would
run, and its resident memory is the process's own (``/proc/<pid>/status``), not the test
runner's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.paths import ROOT


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

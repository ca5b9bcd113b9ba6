"""Bad operator input ends in one clear line and a non-zero status, never a traceback.

Each case is one an operator can type: an impossible cosmology, a batch size of zero, a URL of
another database, an unknown librdkafka key, an empty topic, a port in use, a folder that is
not there, a reader that leaves the pipe; and a database that was never migrated, which a
reader must not create.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from harness.paths import ROOT
from lenscast.cli import main
from lenscast.tools.alert_encoding import TransientSpec, build_record, write_container

EMOJI_ID = "lens-\U0001f52d-1"


def one_line_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"lenscast {command}:"), err
    return lines[0]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    records = [
        build_record(
            alert_id=alert_id, candidate_id="c-1", ra=30.0, dec=-5.0, mjd=60600.0,
            images=rng.normal(0, 0.1, (4, 64, 64)).astype(np.float32) + 1.0,
            z_lens=0.4, z_source=1.8,
            transient=TransientSpec(1, 1.5, 0.2, 60600.0, "r", 900.0),
        )
        for alert_id in (EMOJI_ID, "p-2")
    ]  # fmt: skip
    path = tmp_path_factory.mktemp("bad-input") / "alerts.avro"
    write_container(records, path)
    return path


@pytest.fixture(scope="module")
def processed(archive: Path, fixture_model_path: Path) -> str:
    db = f"sqlite:///{archive.parent / 'results.sqlite'}"
    args = ["process", str(archive), "--db", db, "--model", str(fixture_model_path)]
    assert main([*args, "--no-progress", "--mc-samples", "3"]) == 0
    return db


# -- process ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [["--h0", "-70"], ["--h0", "nan"], ["--h0", "1e-300"], ["--om0", "5"],
     ["--batch-size", "-1"], ["--batch-size", "0"], ["--mc-samples", "-1"]],
)  # fmt: skip
def test_process_refuses_impossible_settings(
    option: list[str], archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.sqlite"
    assert main(["process", str(archive), "--db", str(db), "--no-progress", *option]) == 2
    one_line_error(capsys, "process")
    assert not db.exists()  # nothing was processed


# -- consume ----------------------------------------------------------------------------------


@pytest.fixture
def consume_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in [k for k in os.environ if k.startswith("LENSCAST_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LENSCAST_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("LENSCAST_DB_URL", f"sqlite:///{tmp_path / 'c.sqlite'}")
    monkeypatch.setenv("LENSCAST_LOG_FORMAT", "text")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers  # consume points logging at this test's captured stderr
    root.setLevel(level)


@pytest.mark.parametrize(
    ("env", "args"),
    [
        ({"LENSCAST_COSMOLOGY_H0": "-70"}, []),
        ({"LENSCAST_COSMOLOGY_H0": "nan"}, []),
        ({"LENSCAST_COSMOLOGY_OM0": "5"}, []),
        ({}, ["--h0", "-70"]),
        ({}, ["--om0", "nan"]),
        ({}, ["--db", "notaurl://x"]),
        ({}, ["--db", "mysql://user@db/lenscast"]),
        ({}, ["--kafka-option", "bogus.key=1"]),
        ({}, ["--kafka-option", "fetch.max.bytes=lots"]),
        ({}, ["--topic", ""]),
        ({}, ["--batch-size", "0"]),
    ],
)
def test_consume_refuses_impossible_settings_before_starting(
    env: dict[str, str],
    args: list[str],
    consume_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["consume", *args]) == 2
    one_line_error(capsys, "consume")


def test_consume_with_its_metrics_port_taken_says_so(
    consume_env: None, fixture_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["consume", "--model", str(fixture_model_path), "--metrics-port", str(port)])
    assert status == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"cannot serve metrics on 0.0.0.0:{port}" in err


# -- query, migrate, plot -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["query", "migrate"])
@pytest.mark.parametrize("url", ["notaurl://x", "mysql://user@db/lenscast", "://"])
def test_a_url_of_another_database_is_one_line(
    command: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--db", url]) == 2
    one_line_error(capsys, command)


def test_migrate_where_no_folder_can_be_made_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    assert main(["migrate", "--db", str(tmp_path / "a-file" / "sub" / "x.sqlite")]) == 2
    one_line_error(capsys, "migrate")


def test_query_on_a_database_never_migrated_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "--db", f"sqlite:///{tmp_path}/new/dir/x.sqlite"]) == 2
    assert "no lenscast schema" in one_line_error(capsys, "query")
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty.sqlite").write_bytes(b"")
    assert main(["query", "--db", str(tmp_path / "empty.sqlite")]) == 2
    assert "run `lenscast migrate" in one_line_error(capsys, "query")


def test_query_on_an_unmigrated_postgres_database_says_so(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "--db", postgres_url]) == 2
    assert "no lenscast schema" in one_line_error(capsys, "query")


def test_query_into_a_missing_folder_is_one_line(
    processed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "x.csv"
    assert main(["query", "--db", processed, "--format", "csv", "--output", str(out)]) == 2
    one_line_error(capsys, "query")


def test_query_fits_keeps_an_alert_id_that_is_not_ascii(processed: str, tmp_path: Path) -> None:
    out = tmp_path / "r.fits"
    assert main(["query", "--db", processed, "--format", "fits", "--output", str(out)]) == 0
    ids = sorted(str(v) for v in Table.read(out)["alert_id"])
    assert ids == sorted([EMOJI_ID.encode("ascii", "backslashreplace").decode(), "p-2"])
    vot = tmp_path / "r.vot"
    assert main(["query", "--db", processed, "--format", "votable", "--output", str(vot)]) == 0
    assert EMOJI_ID in {str(v) for v in Table.read(vot)["alert_id"]}


@pytest.mark.parametrize("alerts", ["missing.avro", "text.avro"])
def test_plot_with_an_unreadable_alert_file_is_one_line(
    alerts: str, processed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "text.avro").write_text("not alerts")
    out = tmp_path / "p.png"
    args = ["plot", "p-2", "--db", processed, "--alerts", str(tmp_path / alerts)]
    assert main([*args, "--out", str(out)]) == 2
    one_line_error(capsys, "plot")
    assert not out.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["query", "--format", "csv", "--images", "--db", "DB"],
        ["solve", str(ROOT / "examples" / "solve_example.jsonl")],
    ],
)
def test_a_reader_that_leaves_the_pipe_is_no_error(processed: str, command: list[str]) -> None:
    argv = [sys.executable, "-m", "lenscast", *[processed if a == "DB" else a for a in command]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert writer.stdout is not None
    writer.stdout.close()  # what `| head -0` does: the reader is gone before the first line
    _out, err = writer.communicate(timeout=120)
    assert b"Traceback" not in err, err.decode()
    assert b"BrokenPipe" not in err


# -- consume's database at start ---------------------------------------------------------------


def _consume(db_url: str, port: int, model: Path, **more_env: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LENSCAST_")}
    env |= more_env
    env |= {
        "PYTHONPATH": str(ROOT),
        "LENSCAST_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "LENSCAST_DB_URL": db_url,
        "LENSCAST_MODEL_PATH": str(model),
        "LENSCAST_METRICS_PORT": str(port),
    }
    argv = [sys.executable, "-m", "lenscast", "consume"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_consume_is_not_ready_while_its_database_does_not_answer(fixture_model_path: Path) -> None:
    port = _free_port()
    service = _consume(
        "postgresql+psycopg2://lenscast@127.0.0.1:9/results", port, fixture_model_path
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    status, body = r.status, json.loads(r.read())
            except urllib.error.HTTPError as exc:
                status, body = exc.code, json.loads(exc.read())
            except OSError:
                assert time.monotonic() < deadline, "the metrics endpoint never came up"
                time.sleep(0.2)
                continue
            break
        assert status == 503
        assert body["db_up"] is False
    finally:
        service.terminate()
        service.communicate(timeout=60)


def test_consume_ends_on_a_database_setting_that_can_never_work(fixture_model_path: Path) -> None:
    url = "postgresql+psycopg2://lenscast@127.0.0.1:5432/test?sslmode=bogus"
    service = _consume(url, 0, fixture_model_path)
    try:
        _out, err = service.communicate(timeout=60)
    finally:
        service.kill()
    assert service.returncode != 0
    assert b"Traceback" not in err
    assert b'invalid sslmode value: "bogus"' in err
    assert b"not retried" in err


def test_consume_with_the_broker_down_logs_each_error_once_per_ten_seconds(
    fixture_model_path: Path, tmp_path: Path
) -> None:
    """librdkafka reports the refused connection many times a second (1,530 lines in 39 s)."""
    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert main(["migrate", "--db", db]) == 0
    health = tmp_path / "health.json"
    service = _consume(db, 0, fixture_model_path, LENSCAST_HEALTH_FILE=str(health))
    deadline = time.monotonic() + 120
    while not health.exists():  # the loop runs (the model and the schema check take a while)
        assert time.monotonic() < deadline, "the consumer loop never started"
        time.sleep(0.2)
    time.sleep(15)
    service.terminate()
    _out, err = service.communicate(timeout=60)
    lines = err.decode().splitlines()
    refused = [line for line in lines if "refused" in line.lower() or "down" in line.lower()]
    assert refused, err.decode()[-2000:]
    assert len(refused) <= 8, "\n".join(refused)

"""Security: bound SQL parameters, configurable size limits, secrets kept out of logs and images.

* Alert fields holding SQL go through the real pipeline and writer (``lenscast process``) into
  PostgreSQL and come back verbatim through ``lenscast query`` filters; no table is dropped,
  no filter is widened.
* The decoder's packet and cutout size limits are set from the environment and enforced.
* ``lenscast consume`` run with a password in the database URL, a SASL password and an SSL key
  password (from a file) never prints any of them — in its start-up logs, in the errors of a
  broker that refuses the SASL handshake, or while the database is unreachable; the other CLIs'
  errors do not either.
* SASL/TLS settings reach librdkafka, ``LENSCAST_DB_SSLMODE`` reaches libpq, and
  docs/security.md documents every security variable the code reads.
* Nothing the image copies holds a credential (tests/test_compose.py checks the compose file's
  secrets and the Dockerfile's ENV/ARG lines).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select

from harness.hostile_packets import sample_records
from harness.paths import ROOT
from harness.reliability import ConsumeTarget
from lenscast.cli import main as lenscast_main
from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.settings import consumer_settings_from_env, decode_settings_from_env
from lenscast.db.engine import make_engine, parse_url
from lenscast.db.models import rejected_table, results_table
from lenscast.tools.alert_encoding import encode_record, write_container
from lenscast.tools.local_broker import free_port

SQL_ID = "'); DROP TABLE lens_results;--"
SQL_CANDIDATE = "x' OR '1'='1"
SQL_SURVEY = "hsc'; DELETE FROM rejected_alerts; --"
SQL_BROKER = 'Robert"); DROP TABLE lens_images;--'
SQL_UPSTREAM = "$$; TRUNCATE lens_results CASCADE; $$"


# -- SQL injection ----------------------------------------------------------------------------


@pytest.mark.integration
def test_sql_in_alert_fields_is_stored_verbatim_and_does_nothing(
    migrated_postgres_url: str,
    model_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    reliability_report: dict[str, Any],
) -> None:
    records = sample_records()
    with_transient = next(r for r in records if r["diaSource"] is not None)
    hostile = {
        **with_transient,
        "alertId": SQL_ID,
        "candidateId": SQL_CANDIDATE,
        "provenance": {"survey": SQL_SURVEY, "broker": SQL_BROKER, "upstreamAlertId": SQL_UPSTREAM},
    }
    # The same SQL as the id of a packet that is rejected (a redshift out of range).
    rejected = {**records[1], "alertId": SQL_ID + " rejected", "zLens": -1.0}
    plain = [{**r, "alertId": f"plain-{i}"} for i, r in enumerate(records[2:6])]
    archive = tmp_path / "sql.avro"
    write_container([hostile, rejected, *plain], archive)
    status = lenscast_main(["process", str(archive), "--db", migrated_postgres_url,
                            "--model", str(model_path), "--no-progress"])  # fmt: skip
    assert status == 0
    capsys.readouterr()

    engine = make_engine(migrated_postgres_url)
    tables = set(inspect(engine).get_table_names())
    assert {"lens_results", "lens_images", "rejected_alerts"} <= tables
    r = results_table.c
    with engine.connect() as conn:
        row = conn.execute(
            select(r.candidate_id, r.survey, r.upstream_broker, r.upstream_alert_id).where(
                r.alert_id == SQL_ID
            )
        ).one()
        n_results = len(conn.execute(select(r.alert_id)).all())
        reasons = conn.execute(select(rejected_table.c.alert_id, rejected_table.c.reason)).all()
    engine.dispose()
    assert tuple(row) == (SQL_CANDIDATE, SQL_SURVEY, SQL_BROKER, SQL_UPSTREAM)
    assert n_results == 5
    assert [tuple(x) for x in reasons] == [(SQL_ID + " rejected", "redshift.out_of_range")]

    def query(*options: str) -> list[dict[str, Any]]:
        assert lenscast_main(["query", "--db", migrated_postgres_url, "--format", "json",
                              *options]) == 0  # fmt: skip
        return list(json.loads(capsys.readouterr().out))

    assert [x["alert_id"] for x in query("--alert-id", SQL_ID)] == [SQL_ID]
    assert [x["alert_id"] for x in query("--candidate-id", SQL_CANDIDATE)] == [SQL_ID]
    # Classic widening attempts match nothing instead of everything.
    assert query("--candidate-id", "' OR '1'='1") == []
    assert query("--alert-id", "x' OR 1=1 --") == []
    assert query("--model-version", "' UNION SELECT * FROM rejected_alerts --") == []
    assert len(query()) == 5
    reliability_report.update(sql_fields_stored_verbatim=5, tables_intact=sorted(tables))


_STRING_SQL = re.compile(
    r"""(?:text|exec_driver_sql|execute)\(\s*(?:f["']|["'][^"']*["']\s*(?:%|\.format\())"""
)


def test_runtime_code_builds_no_sql_from_strings() -> None:
    """No f-string, ``%`` or ``.format`` SQL in the service's packages (values are bound)."""
    hits = []
    for package in ("consumer", "db", "model", "lenscast"):
        for file in (ROOT / package).rglob("*.py"):
            text = file.read_text()
            hits += [f"{file.relative_to(ROOT)}: {m.group(0)}" for m in _STRING_SQL.finditer(text)]
    assert not hits, hits


_SQL_IN_FSTRING = re.compile(
    r"""f["'][^"']*\b(?:SELECT|INSERT|UPDATE|DELETE|COPY|CREATE|DROP|TRUNCATE)\b"""
)


def test_sql_text_is_assembled_only_where_it_holds_model_identifiers() -> None:
    """The PostgreSQL COPY path builds its statements from lenscast.db.models names (quoted by the
    dialect; tests/db/test_postgres_copy.py refuses other names): no other module may."""
    files = {
        str(file.relative_to(ROOT))
        for package in ("consumer", "db", "model", "lenscast")
        for file in (ROOT / package).rglob("*.py")
        if _SQL_IN_FSTRING.search(file.read_text())
    }
    assert files == {"db/postgres_copy.py"}


# -- size limits --------------------------------------------------------------------------------


def test_size_limits_come_from_the_environment_and_are_enforced() -> None:
    env = {
        "LENSCAST_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "LENSCAST_DB_URL": "sqlite:///unused.sqlite",
        "LENSCAST_MAX_PACKET_BYTES": "50000",
        "LENSCAST_MAX_CUTOUT_BYTES": "10000",
        "LENSCAST_MAX_CUTOUT_PIXELS": "1024",
    }
    decoding = consumer_settings_from_env(env).pipeline.decoding
    assert (decoding.max_packet_bytes, decoding.max_cutout_bytes, decoding.max_cutout_pixels) == (
        50000,
        10000,
        1024,
    )
    packet = encode_record(sample_records()[0])  # ~80 kB, four 20 kB stamps of 64 x 64
    decode_alert(packet)  # fine under the defaults

    def reason(**limits: str) -> str:
        names = {"packet": "LENSCAST_MAX_PACKET_BYTES", "cutout": "LENSCAST_MAX_CUTOUT_BYTES",
                 "pixels": "LENSCAST_MAX_CUTOUT_PIXELS"}  # fmt: skip
        settings = decode_settings_from_env({names[k]: v for k, v in limits.items()})
        with pytest.raises(AlertRejected) as info:
            decode_alert(packet, settings=settings)
        return info.value.reason

    assert reason(packet="50000") == "packet.too_large"
    assert reason(cutout="10000") == "cutout.too_large"
    assert reason(pixels="1024") == "cutout.too_large"
    with pytest.raises(ValueError, match="positive"):
        decode_settings_from_env({"LENSCAST_MAX_PACKET_BYTES": "0"})
    assert decode_settings_from_env({}) is None  # unset: the decoder's defaults


# -- credentials never in logs or errors ---------------------------------------------------------

DB_SECRET = "pg-S3cret-d7f2"
SASL_SECRET = "sasl-S3cret-91ab"
KEY_SECRET = "key-S3cret-4c0e"


def _run_for(command: list[str], env: dict[str, str], seconds: float, log: Path) -> str:
    """Run ``command`` for ``seconds`` (then SIGTERM) and return everything it printed."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   cwd=ROOT)  # fmt: skip
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    return log.read_text(errors="replace")


@pytest.mark.integration
def test_credentials_are_redacted_in_logs_and_errors(
    consume_target: ConsumeTarget, tmp_path: Path, reliability_report: dict[str, Any]
) -> None:
    key_file = tmp_path / "key-password"
    key_file.write_text(KEY_SECRET + "\n")
    # PostgreSQL trusts local connections: the password is sent, ignored, and must not leak.
    db_url = parse_url(consume_target.db_url).set(password=DB_SECRET)
    base_env = {
        **os.environ,
        "LENSCAST_LOG_LEVEL": "DEBUG",
        "LENSCAST_KAFKA_SASL_USERNAME": "lenscast",
        "LENSCAST_KAFKA_SASL_PASSWORD": SASL_SECRET,
        "LENSCAST_KAFKA_SSL_KEY_PASSWORD_FILE": str(key_file),
    }
    consume = [sys.executable, "-m", "lenscast", "consume", "--topic", "t", "--group-id", "g",
               "--model", str(consume_target.model_path), "--metrics-port", "0",
               "--log-format", "json"]  # fmt: skip
    outputs = {}
    # 1. SASL against a broker that speaks no SASL: connection errors, retried and logged.
    outputs["sasl_refused"] = _run_for(
        [*consume, "--bootstrap-servers", consume_target.bootstrap_servers],
        {**base_env, "LENSCAST_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
         "LENSCAST_KAFKA_SASL_MECHANISM": "PLAIN",
         "LENSCAST_DB_URL": db_url.render_as_string(hide_password=False)},
        12, tmp_path / "sasl.log",
    )  # fmt: skip
    # 2. The database unreachable (nothing listens on the port): the schema wait logs and retries.
    down = db_url.set(port=free_port())
    outputs["db_unreachable"] = _run_for(
        [*consume, "--bootstrap-servers", consume_target.bootstrap_servers],
        {**base_env, "LENSCAST_DB_URL": down.render_as_string(hide_password=False)},
        8, tmp_path / "db-down.log",
    )  # fmt: skip
    # 3. The other CLIs, given the secret URL of an unreachable database.
    down_text = down.render_as_string(hide_password=False)
    for name, argv in {
        "query": ["query", "--db", down_text],
        "migrate": ["migrate", "--db", down_text],
        "process": ["process", str(ROOT / "consumer/samples/hsc-sample.avro"), "--db", down_text,
                    "--model", str(consume_target.model_path), "--no-progress"],
    }.items():  # fmt: skip
        outputs[name] = _run_for([sys.executable, "-m", "lenscast", *argv], base_env, 60,
                                 tmp_path / f"{name}.log")  # fmt: skip

    leaks = {
        name: [s for s in (DB_SECRET, SASL_SECRET, KEY_SECRET) if s in text]
        for name, text in outputs.items()
    }
    reliability_report.update(
        log_bytes_checked={k: len(v) for k, v in outputs.items()},
        leaks={k: v for k, v in leaks.items() if v},
    )
    assert not any(leaks.values()), leaks
    # The runs did what they were meant to: redacted settings, SASL in use, retries logged.
    sasl = outputs["sasl_refused"]
    assert '"sasl.password": "***"' in sasl
    assert '"security.protocol": "SASL_PLAINTEXT"' in sasl
    assert "***@127.0.0.1" in sasl  # the database URL, its password masked
    assert "unreachable" in outputs["db_unreachable"]
    assert "***@127.0.0.1" in outputs["db_unreachable"]
    for name in ("query", "migrate", "process"):
        assert outputs[name].strip(), f"{name} printed no error"


# -- SASL/TLS to Kafka, TLS to PostgreSQL ---------------------------------------------------------


def test_kafka_sasl_and_tls_settings_reach_librdkafka(tmp_path: Path) -> None:
    from confluent_kafka import Consumer

    password_file = tmp_path / "sasl"
    password_file.write_text(SASL_SECRET)
    env = {
        "LENSCAST_KAFKA_BOOTSTRAP_SERVERS": "kafka.example.org:9094",
        "LENSCAST_DB_URL": "sqlite:///unused.sqlite",
        "LENSCAST_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "LENSCAST_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "LENSCAST_KAFKA_SASL_USERNAME": "lenscast",
        "LENSCAST_KAFKA_SASL_PASSWORD_FILE": str(password_file),
    }
    settings = consumer_settings_from_env(env)
    config = settings.kafka_config()
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.password"] == SASL_SECRET  # read from the file
    assert SASL_SECRET not in json.dumps(settings.redacted())
    assert SASL_SECRET not in repr(settings)
    # librdkafka accepts the configuration (it was built with SASL and SSL support).
    Consumer(config).close()


@pytest.mark.integration
def test_postgres_sslmode_reaches_libpq(postgres_server: Any) -> None:
    """``LENSCAST_DB_SSLMODE=require`` makes libpq insist on TLS (the test server has none)."""
    from sqlalchemy.exc import OperationalError

    from lenscast.db.engine import url_from_env

    server = postgres_server
    url = url_from_env({
        "LENSCAST_DB_HOST": str(server.host), "LENSCAST_DB_PORT": str(server.port),
        "LENSCAST_DB_NAME": str(server.database), "LENSCAST_DB_USER": str(server.username),
        "LENSCAST_DB_PASSWORD": DB_SECRET, "LENSCAST_DB_SSLMODE": "require",
    })  # fmt: skip
    assert url is not None
    assert url.query["sslmode"] == "require"
    probe = make_engine(server)
    with probe.connect() as conn:
        server_has_tls = conn.exec_driver_sql("SHOW ssl").scalar_one() == "on"
    probe.dispose()
    engine = make_engine(url)
    try:
        if server_has_tls:  # the connection is encrypted
            with engine.connect() as conn:
                assert conn.exec_driver_sql(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                ).scalar_one()
        else:  # refused, never silently downgraded to plain text
            with pytest.raises(OperationalError, match="SSL") as info, engine.connect():
                pass
            assert DB_SECRET not in str(info.value)
    finally:
        engine.dispose()


def test_security_doc_names_every_security_setting() -> None:
    doc = (ROOT / "docs" / "security.md").read_text()
    code = "\n".join((ROOT / p).read_text() for p in ("consumer/settings.py", "db/engine.py"))
    names = set(re.findall(r"LENSCAST_(?:KAFKA_(?:SECURITY|SASL|SSL)|DB_(?:PASSWORD|SSL)|MAX)"
                           r"[A-Z_]*[A-Z]", code))  # fmt: skip
    assert names, "no security settings found in the code"
    missing = sorted(n for n in names if n not in doc)
    assert not missing, f"docs/security.md does not mention {missing}"


# -- nothing secret in what the image copies -------------------------------------------------

_CREDENTIAL = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|://[^/\s:@'\"]+:[^/\s@'\"{}*<>]+@"  # user:password@ in a URL (placeholders excepted)
    # a password literal (names of environment variables excepted)
    r"|\b(?:password|passwd|secret)\s*=\s*['\"](?![A-Z_]+['\"])[^'\"{}]+['\"]",
    re.IGNORECASE,
)


def test_nothing_the_image_copies_holds_a_credential() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--)(\S+)", dockerfile, re.MULTILINE)
    assert copied, "no COPY lines found"
    checked, hits = 0, []
    for entry in copied:
        path = ROOT / entry
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if file.suffix in (".onnx", ".avro", ".pyc", ".npz", ".png"):
                continue
            text = file.read_text(errors="ignore")
            checked += 1
            hits += [f"{file.relative_to(ROOT)}: {m.group(0)}" for m in _CREDENTIAL.finditer(text)]
    assert checked > 20
    assert not hits, hits

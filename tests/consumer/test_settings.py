"""Service plumbing: settings from the environment, redaction, offsets, health and metrics."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lenscast.consumer.health import HealthServer, HealthState
from lenscast.consumer.metrics import ConsumerMetrics
from lenscast.consumer.offsets import commit_list, next_offsets
from lenscast.consumer.pipeline import RawMessage
from lenscast.consumer.settings import (
    Cosmology,
    consumer_settings_from_env,
    cosmology_from_env,
    parse_bool,
    redact_config,
)
from lenscast.consumer.structured_logging import JsonFormatter
from lenscast.model.defaults import DEFAULT_H0, DEFAULT_OM0


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("1", True), ("Yes", True), ("off", False), ("0", False), ("", False)],
)
def test_booleans_are_parsed(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_a_misspelt_boolean_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool("ture")


def test_settings_from_env_with_secrets_redacted(tmp_path: Path) -> None:
    secret = tmp_path / "sasl"
    secret.write_text("kafka-s3cret\n")
    env = {
        "LENSCAST_KAFKA_BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
        "LENSCAST_KAFKA_TOPIC": "lens-a, lens-b",
        "LENSCAST_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "LENSCAST_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "LENSCAST_KAFKA_SASL_USERNAME": "lenscast",
        "LENSCAST_KAFKA_SASL_PASSWORD_FILE": str(secret),
        "LENSCAST_DB_HOST": "db",
        "LENSCAST_DB_NAME": "lenscast",
        "LENSCAST_DB_USER": "u",
        "LENSCAST_DB_PASSWORD": "db-s3cret",
        "LENSCAST_BATCH_MAX_MESSAGES": "128",
        "LENSCAST_METRICS_PORT": "0",
    }
    settings = consumer_settings_from_env(env, group_id="override")
    config = settings.kafka_config()
    assert config["sasl.password"] == "kafka-s3cret"
    assert config["enable.auto.commit"] is False
    assert config["queued.max.messages.kbytes"] == 65536
    assert settings.topics == ("lens-a", "lens-b")
    assert settings.group_id == "override"
    assert settings.batch_max_messages == 128
    assert settings.metrics_port is None
    shown = json.dumps(settings.redacted()) + repr(settings)
    assert "kafka-s3cret" not in shown
    assert "db-s3cret" not in shown
    assert redact_config({"ssl.key.password": "x", "bootstrap.servers": "b"}) == {
        "ssl.key.password": "***",
        "bootstrap.servers": "b",
    }


def test_missing_required_settings_are_reported() -> None:
    with pytest.raises(ValueError, match="bootstrap_servers"):
        consumer_settings_from_env({"LENSCAST_DB_URL": "sqlite:///x.db"})


def test_offsets_commit_one_past_the_highest_stored() -> None:
    batch = [RawMessage(b"", "t", p, o) for p, o in [(0, 5), (0, 7), (1, 2), (0, 6)]]
    offsets = next_offsets(batch)
    assert offsets == {("t", 0): 8, ("t", 1): 3}
    tps = commit_list(offsets, exclude=[("t", 1)])
    assert [(tp.topic, tp.partition, tp.offset) for tp in tps] == [("t", 0, 8)]


def test_health_endpoint_and_file(tmp_path: Path) -> None:
    metrics = ConsumerMetrics()
    health = HealthState(stale_after_s=60, health_file=tmp_path / "health.json")
    metrics.processed.inc(3)
    server = HealthServer(metrics.registry, health, port=0, host="127.0.0.1").start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        health.beat(db_up=False, paused=True)
        with urllib.request.urlopen(base + "/healthz", timeout=5) as reply:
            assert json.loads(reply.read())["paused"] is True
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(base + "/readyz", timeout=5)
        assert not_ready.value.code == 503
        not_ready.value.close()
        with urllib.request.urlopen(base + "/metrics", timeout=5) as reply:
            assert "lenscast_alerts_processed_total 3.0" in reply.read().decode()
    finally:
        server.stop()
    assert json.loads((tmp_path / "health.json").read_text())["db_up"] is False


def test_json_logs_are_one_object_per_line() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "stored %d", (5,), None)
    record.fields = {"batch": 3}
    assert json.loads(JsonFormatter().format(record)) | {"ts": 0} == {
        "ts": 0,
        "level": "INFO",
        "logger": "x",
        "msg": "stored 5",
        "batch": 3,
    }


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LENSCAST_BATCH_MAX_MESSAGES", "abc", "LENSCAST_BATCH_MAX_MESSAGES='abc': not an integer"),
        ("LENSCAST_BATCH_MAX_WAIT_S", "fast", "LENSCAST_BATCH_MAX_WAIT_S='fast': not a number"),
        ("LENSCAST_MC_SAMPLES", "1e3", "LENSCAST_MC_SAMPLES='1e3': not an integer"),
        ("LENSCAST_COSMOLOGY_H0", "nan", "LENSCAST_COSMOLOGY_H0='nan': not a finite number"),
        ("LENSCAST_OVERLAP_STORE", "maybe", "LENSCAST_OVERLAP_STORE='maybe': not a boolean"),
        ("LENSCAST_OVERLAP_INFERENCE", "2", "LENSCAST_OVERLAP_INFERENCE='2': not a boolean"),
        ("LENSCAST_METRICS_PORT", "http", "LENSCAST_METRICS_PORT='http': not an integer"),
        ("LENSCAST_MAX_PACKET_BYTES", "4M", "LENSCAST_MAX_PACKET_BYTES='4M': not an integer"),
        ("LENSCAST_LOG_INTERVAL_S", "1m", "LENSCAST_LOG_INTERVAL_S='1m': not a number"),
        ("LENSCAST_DB_PORT", "five", "LENSCAST_DB_PORT='five': not a port number"),
    ],
)
def test_an_invalid_variable_is_named_with_its_value(
    variable: str, value: str, message: str
) -> None:
    env = {"LENSCAST_KAFKA_BOOTSTRAP_SERVERS": "k:9092", "LENSCAST_DB_HOST": "db", variable: value}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        consumer_settings_from_env(env)


def test_consume_says_which_variable_is_invalid(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lenscast.cli import main

    monkeypatch.setenv("LENSCAST_KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("LENSCAST_DB_URL", "sqlite:///unused.sqlite")
    monkeypatch.setenv("LENSCAST_BATCH_MAX_MESSAGES", "abc")
    assert main(["consume"]) == 2
    err = capsys.readouterr().err
    assert err == "lenscast consume: LENSCAST_BATCH_MAX_MESSAGES='abc': not an integer\n"


def test_cosmology_flags_override_the_environment_one_by_one() -> None:
    env = {"LENSCAST_COSMOLOGY_H0": "67.4", "LENSCAST_COSMOLOGY_OM0": "0.315"}
    assert cosmology_from_env({}) == Cosmology(DEFAULT_H0, DEFAULT_OM0)
    assert cosmology_from_env(env) == Cosmology(67.4, 0.315)
    assert cosmology_from_env(env, h0=73.0) == Cosmology(73.0, 0.315)
    assert cosmology_from_env(env, om0=0.25) == Cosmology(67.4, 0.25)
    with pytest.raises(ValueError, match="H0 = -1.0 is outside"):
        cosmology_from_env(env, h0=-1.0)


def test_consume_takes_cosmology_from_flags_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from lenscast.consumer import consume_cli

    monkeypatch.setenv("LENSCAST_KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("LENSCAST_DB_URL", "sqlite:///unused.sqlite")
    monkeypatch.setenv("LENSCAST_COSMOLOGY_H0", "67.4")
    parser = argparse.ArgumentParser()
    consume_cli.configure(parser)
    settings = consume_cli.build_settings(parser.parse_args(["--om0", "0.25"]))
    assert settings.pipeline.cosmology == Cosmology(67.4, 0.25)
    settings = consume_cli.build_settings(parser.parse_args([]))
    assert settings.pipeline.cosmology == Cosmology(67.4, DEFAULT_OM0)


def test_process_takes_cosmology_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lenscast.cli import main

    db = tmp_path / "x.sqlite"
    monkeypatch.setenv("LENSCAST_COSMOLOGY_OM0", "5")
    assert main(["process", str(tmp_path / "a.avro"), "--db", str(db), "--no-progress"]) == 2
    assert "Om0 = 5.0 is outside" in capsys.readouterr().err
    assert not db.exists()


def test_metrics_host_and_log_interval_settings() -> None:
    base = {"LENSCAST_KAFKA_BOOTSTRAP_SERVERS": "k:9092", "LENSCAST_DB_HOST": "db"}
    default = consumer_settings_from_env(base)
    assert (default.metrics_host, default.log_interval_s) == ("0.0.0.0", 60.0)
    custom = consumer_settings_from_env(
        base | {"LENSCAST_METRICS_HOST": "127.0.0.1", "LENSCAST_LOG_INTERVAL_S": "15"}
    )
    assert (custom.metrics_host, custom.log_interval_s) == ("127.0.0.1", 15.0)
    with pytest.raises(ValueError, match="log_interval_s"):
        consumer_settings_from_env(base | {"LENSCAST_LOG_INTERVAL_S": "-1"})


def test_metrics_carry_process_build_and_model_info() -> None:
    from prometheus_client import generate_latest

    from lenscast import __version__
    from lenscast.model.predictor import ModelIdentity

    metrics = ConsumerMetrics()
    identity = ModelIdentity(
        name="lenscast-hsc", version="1.6.0", onnx_sha256="ab" * 32, parameter_spec_version="1.0"
    )
    metrics.set_model(identity)
    text = generate_latest(metrics.registry).decode()
    assert f'lenscast_build_info{{version="{__version__}"}} 1.0' in text
    assert 'lenscast_model_info{name="lenscast-hsc",onnx_sha256="' + "ab" * 32 in text
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        assert f"\n{name}" in text, name


def test_migrations_log_one_line_per_step(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from alembic.script import ScriptDirectory

    from lenscast.db.engine import make_engine
    from lenscast.db.migrate import alembic_config, upgrade

    steps = list(ScriptDirectory.from_config(alembic_config()).walk_revisions())
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    with caplog.at_level(logging.INFO):
        upgrade(engine)
    engine.dispose()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("alembic")]
    assert len(lines) == len(steps)
    assert all(line.startswith("Running upgrade") for line in lines), lines

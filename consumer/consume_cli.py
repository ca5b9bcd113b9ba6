"""``lenscast consume``: the Kafka consumer service (see :mod:`lenscast.consumer.kafka_loop`).

Settings come from ``LENSCAST_*`` environment variables (:mod:`lenscast.consumer.settings`),
overridden by the options below; they are built once here and passed down. The model is the shipped
one unless ``--model`` names another exported model with its card.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from lenscast.consumer.settings import (
    ConsumerSettings,
    add_cosmology,
    add_p_lens_threshold,
    consumer_settings_from_env,
    cosmology_from_env,
    with_pipeline,
)
from lenscast.consumer.shutdown import StopFlag

if TYPE_CHECKING:
    from lenscast.consumer.health import HealthState

log = logging.getLogger("lenscast.consume")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``consume`` options to ``parser``."""
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (host:port,...)")
    parser.add_argument(
        "--topic",
        action="append",
        dest="topics",
        help="topic to consume (repeatable); default LENSCAST_KAFKA_TOPIC",
    )
    parser.add_argument("--group-id", help="consumer group (default lenscast)")
    parser.add_argument("--db", help="database URL (default from LENSCAST_DB_* variables)")
    parser.add_argument("--model", type=Path, help="ONNX model (default: the shipped model)")
    add_p_lens_threshold(parser)
    add_cosmology(parser)
    parser.add_argument(
        "--batch-size",
        type=int,
        dest="batch_max_messages",
        help="messages per micro-batch (default 256)",
    )
    parser.add_argument(
        "--batch-wait",
        type=float,
        dest="batch_max_wait_s",
        help="seconds a batch waits for more messages (default 0.25)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="port of /metrics, /healthz, /readyz (default 9108; 0: off)",
    )
    parser.add_argument(
        "--metrics-host", help="address of /metrics, /healthz, /readyz (default 0.0.0.0)"
    )
    parser.add_argument(
        "--log-interval",
        type=float,
        dest="log_interval_s",
        help="seconds between progress lines (default 60; 0: none)",
    )
    parser.add_argument("--health-file", type=Path, help="file mirroring the health state")
    parser.add_argument("--session-timeout-ms", type=int, help="group session timeout")
    parser.add_argument(
        "--kafka-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra librdkafka setting (repeatable), e.g. fetch.wait.max.ms=50",
    )
    parser.add_argument("--log-format", choices=("json", "text"), help="log format (json)")
    parser.add_argument("--log-level", help="log level (INFO)")


def check_kafka_config(config: dict[str, object]) -> None:
    """Let librdkafka judge the client configuration now, before anything else starts.

    A client is created without its bootstrap servers (so it connects nowhere) and closed.

    Raises
    ------
    ValueError
        Naming the setting librdkafka refuses (an unknown key, a bad value).
    """
    from confluent_kafka import Consumer, KafkaException

    try:
        Consumer({k: v for k, v in config.items() if k != "bootstrap.servers"}).close()
    except KafkaException as exc:
        raise ValueError(f"kafka configuration: {exc.args[0].str()}") from None


def build_settings(args: argparse.Namespace) -> ConsumerSettings:
    """Combine the environment and the command line into :class:`ConsumerSettings`."""
    extra: dict[str, str] = {}
    for item in args.kafka_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--kafka-option needs KEY=VALUE, got {item!r}")
        extra[key.strip()] = value
    overrides = {
        "bootstrap_servers": args.bootstrap_servers,
        "topics": tuple(args.topics) if args.topics else None,
        "group_id": args.group_id,
        "db_url": args.db,
        "model_path": args.model,
        "batch_max_messages": args.batch_max_messages,
        "batch_max_wait_s": args.batch_max_wait_s,
        "metrics_port": args.metrics_port,
        "metrics_host": args.metrics_host,
        "log_interval_s": args.log_interval_s,
        "health_file": args.health_file,
        "session_timeout_ms": args.session_timeout_ms,
        "log_format": args.log_format,
        "log_level": args.log_level,
    }
    settings = consumer_settings_from_env(**overrides)
    if extra:
        settings = replace(settings, extra_kafka={**settings.extra_kafka, **extra})
    if args.p_lens_threshold is not None:
        settings = with_pipeline(settings, p_lens_threshold=args.p_lens_threshold)
    if args.h0 is not None or args.om0 is not None:
        settings = with_pipeline(settings, cosmology=cosmology_from_env(h0=args.h0, om0=args.om0))
    if settings.metrics_port == 0:
        settings = replace(settings, metrics_port=None)
    check_kafka_config(settings.kafka_config())
    return settings


#: Beginnings of libpq's complaints about the connection settings themselves (``invalid sslmode
#: value``, ``invalid connection option``, ``invalid port number``) and SQLite's about its file:
#: no retry can fix them, so they end the service with one line instead of a retry loop.
_CONFIGURATION_ERRORS = ("invalid ", "unable to open database file")


def configuration_error(exc: Exception) -> str | None:
    """The driver's message when ``exc`` is a database setting that can never work, else None."""
    detail = str(getattr(exc, "orig", None) or exc).strip()
    first = detail.splitlines()[0] if detail else ""
    return first if first.startswith(_CONFIGURATION_ERRORS) else None


def wait_for_schema(
    settings: ConsumerSettings, stop: StopFlag, health: HealthState | None = None
) -> bool:
    """Wait until the database answers and is migrated to head; False if stopped first.

    While it does not answer, ``health`` says so (``/readyz`` 503, ``db_up`` false); a setting
    that can never work (:func:`configuration_error`) ends the service instead of a retry.
    """
    from sqlalchemy.exc import OperationalError

    from lenscast.consumer.health import HealthState
    from lenscast.db.engine import make_engine, redact
    from lenscast.db.migrate import current_revision, head_revision

    health = health if health is not None else HealthState()
    engine = make_engine(settings.db_url)
    delay = settings.db_retry_initial_s
    try:
        while True:
            try:
                current, head = current_revision(engine), head_revision()
            except OperationalError as exc:
                permanent = configuration_error(exc)
                if permanent is not None:
                    raise SystemExit(
                        f"lenscast consume: database {redact(settings.db_url)}: {permanent} "
                        "(a configuration error: not retried)"
                    ) from None
                health.beat(db_up=False)
                log.warning(
                    "database %s unreachable (%s); retrying in %.1f s",
                    redact(settings.db_url),
                    type(exc).__name__,
                    delay,
                )
            else:
                if current == head:
                    health.beat(db_up=True)
                    return True
                raise SystemExit(
                    f"lenscast consume: database {redact(settings.db_url)} is at revision "
                    f"{current or 'empty'}, not {head}: run `lenscast migrate` first"
                )
            if stop.wait(delay):
                return False
            delay = min(2 * delay, settings.db_retry_max_s)
    finally:
        engine.dispose()


def run(args: argparse.Namespace) -> int:
    """Run the consumer service until SIGTERM/SIGINT; return the exit status."""
    from lenscast.consumer.structured_logging import configure_logging

    try:
        settings = build_settings(args)
    except ValueError as exc:
        print(f"lenscast consume: {exc}", file=sys.stderr)
        return 2
    configure_logging(fmt=settings.log_format, level=settings.log_level)

    from lenscast.consumer.health import HealthServer, HealthState
    from lenscast.consumer.kafka_loop import ConsumerService
    from lenscast.consumer.metrics import ConsumerMetrics
    from lenscast.consumer.pipeline import p_lens_threshold
    from lenscast.db.engine import make_engine
    from lenscast.model.predictor import OnnxMassPredictor

    log.info("settings", extra={"fields": settings.redacted()})
    try:
        predictor = OnnxMassPredictor(settings.model_path)
    except (FileNotFoundError, ValueError) as exc:  # missing model or card, or a card mismatch
        log.error("cannot load the model: %s", exc)
        return 2
    log.info(
        "model loaded",
        extra={
            "fields": {
                "model": predictor.identity.name,
                "version": predictor.identity.version,
                "onnx_sha256": predictor.identity.onnx_sha256,
                "p_lens": predictor.has_p_lens,
                "p_lens_threshold": p_lens_threshold(settings.pipeline, predictor),
            }
        },
    )
    metrics = ConsumerMetrics()
    metrics.set_model(predictor.identity)
    health = HealthState(
        stale_after_s=max(60.0, 4 * settings.db_retry_max_s), health_file=settings.health_file
    )
    health.beat(db_up=False)  # not ready until the database has answered
    server = None
    if settings.metrics_port:
        try:
            server = HealthServer(
                metrics.registry, health, port=settings.metrics_port, host=settings.metrics_host
            ).start()
        except OSError as exc:  # the port is taken, or not ours to bind
            log.error("cannot serve metrics on %s:%d: %s", settings.metrics_host,
                      settings.metrics_port, exc.strerror)  # fmt: skip
            return 2
        log.info(
            "serving /metrics /healthz /readyz",
            extra={"fields": {"host": settings.metrics_host, "port": server.port}},
        )
    with StopFlag() as stop:
        try:
            if not wait_for_schema(settings, stop, health):
                return 0
            engine = make_engine(settings.db_url)
            service = ConsumerService(
                settings,
                predictor=predictor,
                engine=engine,
                stop=stop,
                metrics=metrics,
                health=health,
            )
            started = time.monotonic()
            service.run()
            log.info(
                "stopped",
                extra={
                    "fields": {
                        "stored": service.stored,
                        "rejected": service.rejected,
                        "batches": service.batches,
                        "seconds": round(time.monotonic() - started, 1),
                    }
                },
            )
            engine.dispose()
        finally:
            if server is not None:
                server.stop()
    return 0

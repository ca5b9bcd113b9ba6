"""``lenscast replay FILES --topic T [--rate R]``: publish archived alerts to a Kafka topic.

Each file is an Avro container archive (one message per record) or a single wire-format
message (:func:`lenscast.consumer.framing.read_alert_file`); every record is produced as one
Confluent wire-format message, in file order, at full speed or at ``--rate`` messages per second.
The broker and security settings are those of ``lenscast consume`` (``LENSCAST_KAFKA_*``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lenscast.consumer.log_throttle import throttled
from lenscast.consumer.settings import kafka_security_from_env, redact_config


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``replay`` options to ``parser``."""
    parser.add_argument("files", nargs="+", type=Path, help="alert archives (.avro)")
    parser.add_argument(
        "--topic",
        default=os.environ.get("LENSCAST_KAFKA_TOPIC"),
        help="destination topic (default LENSCAST_KAFKA_TOPIC)",
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("LENSCAST_KAFKA_BOOTSTRAP_SERVERS"),
        help="Kafka bootstrap servers (default LENSCAST_KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="messages per second (default: as fast as possible)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="publish the files N times")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def producer_config(bootstrap_servers: str) -> dict[str, Any]:
    """Producer settings: idempotent, acks from all replicas, security from the environment."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.max.bytes": 4 * 2**20,
    }
    config.update(kafka_security_from_env().kafka_config())
    return config


def publish(
    messages: list[bytes],
    *,
    topic: str,
    config: dict[str, Any],
    rate: float | None = None,
    progress: bool = False,
) -> tuple[int, int]:
    """Produce ``messages`` to ``topic``; return (delivered, failed)."""
    from lenscast.progress import progress_bar
    from lenscast.tools.kafka_produce import produce_all

    seen: Counter[str] = Counter()

    def report(error: str) -> None:
        seen[error] += 1
        if seen[error] == 1:  # each distinct error once; the counts at the end
            print(f"lenscast replay: delivery failed: {error}", file=sys.stderr)

    # librdkafka's own log (one line per failed connection, many a second with the broker
    # down) goes through a logger that repeats a message at most once per 10 s.
    outcome = produce_all(progress_bar(messages, unit="alert", disable=not progress),
                          topic=topic, config={**config, "logger": throttled("librdkafka")},
                          rate=rate, on_failure=report)  # fmt: skip
    for error, count in outcome.failed.items():
        if count > 1:
            print(f"lenscast replay: {count} deliveries failed: {error}", file=sys.stderr)
    return outcome.delivered, outcome.produced - outcome.delivered


def run(args: argparse.Namespace) -> int:
    """Publish the files; non-zero status if a file is unreadable or a delivery failed."""
    from lenscast.consumer.alert import AlertRejected
    from lenscast.consumer.framing import read_alert_file

    if not args.topic or not args.bootstrap_servers:
        print(
            "lenscast replay: --topic and --bootstrap-servers are required "
            "(or LENSCAST_KAFKA_TOPIC / LENSCAST_KAFKA_BOOTSTRAP_SERVERS)",
            file=sys.stderr,
        )
        return 2
    messages: list[bytes] = []
    for path in args.files:
        try:
            messages.extend(read_alert_file(path))
        except (OSError, AlertRejected) as exc:
            print(f"lenscast replay: {path}: {exc}", file=sys.stderr)
            return 1
    messages = messages * max(1, args.repeat)
    config = producer_config(args.bootstrap_servers)
    progress = not args.no_progress and sys.stderr.isatty()
    started = time.monotonic()
    ok, failed = publish(
        messages, topic=args.topic, config=config, rate=args.rate, progress=progress
    )
    seconds = time.monotonic() - started
    print(
        f"published {ok} of {len(messages)} alerts to {args.topic} on "
        f"{redact_config(config)['bootstrap.servers']} in {seconds:.1f} s"
        + (f"; {failed} failed" if failed else "")
    )
    return 0 if failed == 0 else 1

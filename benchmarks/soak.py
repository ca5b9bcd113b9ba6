"""Soak: a long stream through one ``lenscast consume`` process; memory flat, throughput steady.

``--alerts`` packets (default 100,000: the shipped sample stream re-keyed with unique alert ids,
every 50th packet malformed) are produced to a local Tansu topic by a background thread while
one real consumer process (``python -m lenscast consume``) reads them into PostgreSQL. The
script follows the stored rows and, per chunk of ``--chunk`` alerts, reports the consumer's rate
and its resident memory (``/proc/<pid>/status`` VmRSS), then the whole run's peak (VmHWM), and
checks that every packet is stored exactly once (results by alert id, rejected by offset).

Output: one JSON object on stdout (and in ``--json``)::

    python -m benchmarks.soak --alerts 100000 --json runs/soak.json

It starts its own broker unless ``--bootstrap-servers`` is given, and creates (then drops) a
database on the PostgreSQL server at ``--pg-server`` unless ``--db`` names one (which it
migrates). tests/reliability/test_soak.py runs it with 20,000 alerts in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy import func, select, text

from harness.consumer_process import rss_kib
from harness.hostile_packets import valid_stream
from harness.paths import ROOT
from harness.reliability import Ledger, exactly_once_counts
from harness.stream_helpers import committed, produce
from lenscast.db.engine import make_engine, parse_url, redact
from lenscast.db.migrate import upgrade
from lenscast.db.models import rejected_table, results_table
from lenscast.model.predictor import DEFAULT_MODEL_PATH
from lenscast.tools.local_broker import LocalBroker

MALFORMED_EVERY = 50


def produce_stream(bootstrap: str, topic: str, expected: list[str | None], partitions: int,
                   n: int) -> None:  # fmt: skip
    """Produce ``n`` packets round-robin, appending each one's alert id (None: malformed)."""

    def values() -> Iterator[bytes]:
        for alert_id, raw in valid_stream(n, prefix=topic, malformed_every=MALFORMED_EVERY):
            expected.append(alert_id)
            yield raw

    produce(bootstrap, topic, values(), partitions=partitions)


def count_rows(engine: Any, topic: str) -> int:
    """Results plus rejected rows of ``topic``."""
    with engine.connect() as conn:
        r = conn.execute(
            select(func.count()).where(results_table.c.source_topic == topic)
        ).scalar_one()
        j = conn.execute(
            select(func.count()).where(rejected_table.c.source_topic == topic)
        ).scalar_one()
    return int(r) + int(j)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak; return the report."""
    prefix = f"soak-{uuid.uuid4().hex[:8]}"
    broker = None
    bootstrap = args.bootstrap_servers
    if not bootstrap:
        broker = LocalBroker().start()
        bootstrap = broker.bootstrap_servers
    made_db = None
    if args.db:
        db_url = args.db
    else:
        made_db = f"lenscast_soak_{uuid.uuid4().hex[:8]}"
        admin = make_engine(args.pg_server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{made_db}"'))
        admin.dispose()
        db_url = parse_url(args.pg_server).set(database=made_db).render_as_string(False)
    engine = make_engine(db_url)
    upgrade(engine)
    topic, group = prefix, f"{prefix}-g"
    report: dict[str, Any] = {"alerts": args.alerts, "chunk": args.chunk, "db": redact(db_url)}
    process = None
    try:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin_client = AdminClient({"bootstrap.servers": bootstrap})
        admin_client.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)
        expected: list[str | None] = []
        producer = threading.Thread(
            target=produce_stream,
            args=(bootstrap, topic, expected, args.partitions, args.alerts),
            daemon=True,
        )
        producer.start()
        env = {**os.environ, "LENSCAST_MC_SAMPLES": str(args.mc_samples), "OMP_NUM_THREADS": "1"}
        command = [
            sys.executable, "-m", "lenscast", "consume", "--bootstrap-servers", bootstrap,
            "--topic", topic, "--group-id", group, "--db", db_url, "--model", str(args.model),
            "--batch-size", str(args.batch_size), "--metrics-port", "0",
            "--session-timeout-ms", "6000", "--log-format", "json", "--log-level", "WARNING",
        ]  # fmt: skip
        log = open(args.log, "ab") if args.log else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=ROOT)  # fmt: skip
        started = time.monotonic()
        rss_start = None
        chunks: list[dict[str, Any]] = []
        last_t, last_n, next_mark = None, 0, args.chunk
        deadline = started + args.timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the consumer exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out with {count_rows(engine, topic)} rows stored")
            n = count_rows(engine, topic)
            now = time.monotonic()
            if last_t is None and n > 0:
                # First rows stored: start-up and group join are over; the clock starts here.
                last_t, last_n = now, n
                rss_start = rss_kib(process.pid)[0]
            while last_t is not None and n >= next_mark:
                chunks.append({
                    "upto": next_mark,
                    "alerts_per_s": round((n - last_n) / max(now - last_t, 1e-6), 1),
                    "rss_mib": round(rss_kib(process.pid)[0] / 1024, 1),
                })  # fmt: skip
                last_t, last_n = now, n
                next_mark += args.chunk
            if n >= args.alerts:
                break
            time.sleep(0.5)
        producer.join(60)
        ends = [len(range(p, args.alerts, args.partitions)) for p in range(args.partitions)]
        while committed(bootstrap, group, topic, args.partitions) != ends:
            if time.monotonic() > deadline:
                raise RuntimeError("final offsets not committed")
            time.sleep(0.5)
        rss_end, peak = rss_kib(process.pid)
        rates = [c["alerts_per_s"] for c in chunks[1:]] or [c["alerts_per_s"] for c in chunks]
        report.update(
            seconds=round(time.monotonic() - started, 1),
            chunks=chunks,
            rate_median=median(rates),
            rate_min=min(rates),
            rate_max=max(rates),
            rss_mib={"start": round((rss_start or 0) / 1024, 1),
                     "end": round(rss_end / 1024, 1), "peak": round(peak / 1024, 1)},
            broker_rss_mib=round(rss_kib(broker._process.pid)[0] / 1024, 1)
            if broker is not None and broker._process is not None else None,
            mc_samples=args.mc_samples,
            batch_size=args.batch_size,
            **exactly_once_counts(Ledger.read(engine, topic), expected, args.partitions),
        )  # fmt: skip
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            report["consumer_exit"] = process.wait(60)
        engine.dispose()
        if made_db:
            admin = make_engine(args.pg_server, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{made_db}" WITH (FORCE)'))
            admin.dispose()
        if broker is not None:
            broker.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the soak, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=10_000, help="alerts per reported rate")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--mc-samples", type=int, default=64, help="LENSCAST_MC_SAMPLES")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--bootstrap-servers", help="use this broker (default: start Tansu)")
    parser.add_argument("--db", help="database URL (default: a new database on --pg-server)")
    parser.add_argument("--pg-server", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    parser.add_argument("--timeout", type=float, default=7200.0, help="give up after, seconds")
    parser.add_argument("--log", type=Path, help="the consumer's log file")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if not args.model.exists():
        parser.error(f"no model at {args.model}: pass --model")
    report = run(args)
    text_out = json.dumps(report, indent=1)
    print(text_out)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text_out)
    ok = report["missing"] == report["misplaced"] == report["duplicates"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

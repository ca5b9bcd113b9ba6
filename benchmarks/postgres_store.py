"""PostgreSQL batch writes: COPY via a staging table against INSERT ... ON CONFLICT, side by side.

The stream writes each batch's results and images in one transaction (:mod:`lenscast.db.writer`). On
psycopg2 it uses ``COPY`` (:mod:`lenscast.db.postgres_copy`); the SQLAlchemy ``INSERT ... VALUES ...
ON CONFLICT`` path (:func:`lenscast.db.writer.upsert_results_and_images`) is what SQLite and other
drivers use. This script writes the same real rows (the shipped sample stream re-keyed, through the
pipeline with the default model) both ways, alternating, into a scratch database, and reports
per alert: the wall time of the transaction, the CPU time of the writing thread (it holds the
GIL the model thread and the pipeline also need) and, when the server runs on this machine, the
CPU time of its backend process (a mean: it is read in 10 ms clock ticks), else medians of all
transactions of ``--rounds`` alternations; the ratios are INSERT over COPY.

Run::

    python -m benchmarks.postgres_store \\
        --postgres-server postgresql+psycopg2://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from benchmarks.stream_throughput import process_cpu_s, sample_batches
from lenscast.consumer.pipeline import BatchOutcome, process_batch
from lenscast.consumer.settings import PipelineSettings
from lenscast.db.engine import make_engine
from lenscast.db.migrate import upgrade
from lenscast.db.postgres_copy import copy_results_and_images
from lenscast.db.writer import upsert_results_and_images
from lenscast.model.predictor import DEFAULT_MODEL_PATH, OnnxMassPredictor

Writer = Callable[[Connection, Sequence[dict[str, Any]], Sequence[dict[str, Any]]], None]
PATHS: dict[str, Writer] = {"copy": copy_results_and_images, "insert": upsert_results_and_images}


def _backend_cpu_s(pid: int) -> float | None:
    """CPU seconds of server process ``pid``, or None when it does not run on this machine."""
    try:
        return process_cpu_s(pid)
    except OSError:
        return None


def outcomes(n_batches: int, batch_size: int, model: Path) -> list[BatchOutcome]:
    """``n_batches`` processed batches of real packets, every alert id unique."""
    predictor = OnnxMassPredictor(model, intra_op_threads=1)
    return [
        process_batch(batch, predictor=predictor, settings=PipelineSettings())
        for batch in sample_batches(n_batches, batch_size, uuid.uuid4().hex[:8])
    ]


def measure(engine: Any, write: Writer, batches: Sequence[BatchOutcome]) -> list[dict[str, float]]:
    """Write each batch in its own transaction; per-batch wall, thread and backend CPU seconds."""
    samples = []
    for outcome in batches:
        wall, cpu = time.perf_counter(), time.thread_time()
        with engine.begin() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            server = _backend_cpu_s(pid)
            write(conn, outcome.results, outcome.images)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        after = _backend_cpu_s(pid)
        sample = {"wall_s": wall, "client_cpu_s": cpu}
        if server is not None and after is not None:
            sample["server_cpu_s"] = after - server
        samples.append(sample)
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; print (and write) the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-server", required=True, metavar="URL")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--batch-size", type=int, default=256, help="alerts per transaction")
    parser.add_argument("--batches", type=int, default=8, help="distinct batches per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the two paths")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    admin = make_engine(args.postgres_server, isolation_level="AUTOCOMMIT")
    scratch = f"lenscast_store_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{scratch}"'))
    engine = make_engine(admin.url.set(database=scratch))
    try:
        upgrade(engine)
        batches = outcomes(args.batches, args.batch_size, args.model)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in PATHS}
        for _ in range(args.rounds):
            for name, write in PATHS.items():
                with engine.begin() as conn:  # every round inserts (no conflicts)
                    conn.execute(text("DELETE FROM lens_results"))
                samples[name] += measure(engine, write, batches)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        admin.dispose()

    def per_alert(runs: list[dict[str, float]], key: str) -> float:
        # The server's CPU is read in clock ticks (10 ms, a transaction's order): mean, not median.
        values = [s[key] for s in runs]
        centre = statistics.fmean(values) if key == "server_cpu_s" else statistics.median(values)
        return round(1000 * centre / args.batch_size, 4)

    costs = {
        name: {f"{key[:-2]}_ms_per_alert": per_alert(runs, key) for key in runs[0]}
        for name, runs in samples.items()
    }
    report = {
        "command": "python -m benchmarks.postgres_store " + " ".join(sys.argv[1:]),
        "cpus": os.cpu_count(),
        "batch_size": args.batch_size,
        "images_per_alert": round(
            sum(len(o.images) for o in batches) / (args.batch_size * len(batches)), 3
        ),
        "transactions_per_path": args.batches * args.rounds,
        **costs,
        "insert_over_copy": {
            key: round(costs["insert"][key] / costs["copy"][key], 2)
            for key in costs["copy"]
            if costs["copy"][key] > 0
        },
    }
    text_out = json.dumps(report, indent=2)
    print(text_out)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text_out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""End-to-end stream throughput and latency per cutout header style, beside bare onnxruntime.

What it measures, in one run on this machine:

1. **bare**: one onnxruntime call per batch (``OnnxMassPredictor(run_batch=None).predict``) on
   real sample cutouts with 1 intra-op thread (the consumer's model setting), in batches of 2,
   4, 8, 16, of the pipeline's chunk size and of the batch size, the fastest being the model's
   ceiling on its core (alerts/s), measured again at that
   batch size after each end-to-end run below, because a shared machine's speed drifts within a
   run: each end-to-end rate is divided by the mean of the bare windows just before and just
   after it; ``bare_onnx_alerts_per_s`` is the median of all the windows; and, for reference, two
   such sessions running at once, one per core;
2. **end to end, per header style**: the sample cutouts with their WCS written the way real
   producers write it (``--header-styles``, :mod:`header_styles`: lenscast's own CD header,
   astropy's ``WCS.to_header()``, a survey CD-matrix header in an image extension with IRAF and
   alternate-WCS cards, a SIP-distorted header, and a TPV one that always takes the astropy
   path); for each, ``--repeats`` backlogs of ``--alerts`` packets on a local Tansu topic (styles
   interleaved), each consumed by the service
   (:class:`lenscast.consumer.kafka_loop.ConsumerService`: decode, the model on its own thread in
   chunks of ``--chunk``, physics with ``--mc-samples`` Monte Carlo draws, database writes on the
   writer thread, offset commit) — alerts/s from the first to the last committed batch (the group
   join is excluded), its ratio to the bare rate beside it, the time per alert of each stage, the
   CPU per alert of the consumer, the broker and the whole machine, and the astropy WCSs built per
   alert; per style the medians over the repeats; with ``--ablations``, also without the writer
   thread and without the model thread;
3. **latency, per style**: packets produced at a steady 50 % of the style's median rate for
   ``--latency-seconds`` by a process of their own (:func:`produce_elsewhere`);
   produce-to-commit latency (message CreateTime to the offset commit) p50/p99.

The machine's 1-minute load average is sampled throughout (``machine.load_average_1m_during``).
Packets are the shipped sample stream (``consumer/samples/hsc-sample.avro``) re-keyed with unique
alert ids. Output: one JSON object (stdout, and ``--out``). Run::

    python -m benchmarks.stream_throughput --alerts 3000 --out runs/stream_throughput.json
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL

from benchmarks.header_styles import SAMPLE, STYLES, rekeyed_packets, wcs_path
from benchmarks.json_report import emit
from lenscast.consumer.cutouts_wcs_header import ASTROPY_CACHE
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.framing import read_alert_file
from lenscast.consumer.kafka_loop import ConsumerService
from lenscast.consumer.pipeline import BatchOutcome, RawMessage
from lenscast.consumer.settings import ConsumerSettings, PipelineSettings
from lenscast.consumer.shutdown import StopFlag
from lenscast.db.engine import make_engine, parse_url, redact
from lenscast.db.migrate import upgrade
from lenscast.db.models import results_table
from lenscast.model.predictor import DEFAULT_MODEL_PATH, OnnxMassPredictor
from lenscast.tools.kafka_produce import produce_all
from lenscast.tools.local_broker import LocalBroker


def sample_batches(n_batches: int, batch_size: int, run_id: str) -> list[list[RawMessage]]:
    """``n_batches`` batches of :func:`rekeyed_packets` as the consumer receives them."""
    packets = rekeyed_packets(n_batches * batch_size, run_id)
    return [
        [
            RawMessage(value, "bench", 0, b * batch_size + i)
            for i, value in enumerate(packets[b * batch_size : (b + 1) * batch_size])
        ]
        for b in range(n_batches)
    ]


def bare_rate(predictor: OnnxMassPredictor, *, batch: int, seconds: float = 5.0) -> float:
    """Alerts/s of the model alone on real cutouts, in batches of ``batch``."""
    cutouts = np.stack([decode_alert(raw).cutouts for raw in read_alert_file(SAMPLE)])
    inputs = np.resize(cutouts, (batch, *cutouts.shape[1:])).astype(np.float32)
    predictor.predict(inputs)  # warm up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predictor.predict(inputs)
        done += batch
    return done / (time.perf_counter() - start)


def bare_cpu_ms_per_alert(
    predictor: OnnxMassPredictor, *, batch: int, seconds: float = 3.0
) -> float:
    """CPU ms per alert of the model alone (this thread's CPU time; onnxruntime with one
    intra-op thread runs on the calling thread), insensitive to other work on the machine."""
    inputs = np.resize(
        np.stack([decode_alert(raw).cutouts for raw in read_alert_file(SAMPLE)]),
        (batch, 4, 64, 64),
    ).astype(np.float32)
    predictor.predict(inputs)  # warm up
    done, start, cpu = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - start < seconds:
        predictor.predict(inputs)
        done += batch
    return 1000 * (time.thread_time() - cpu) / done


def bare_rate_all_cores(model: Path, *, batch: int, sessions: int, seconds: float = 5.0) -> float:
    """Alerts/s of ``sessions`` one-thread model sessions running at once (threads; no GIL)."""
    predictors = [
        OnnxMassPredictor(model, intra_op_threads=1, run_batch=None) for _ in range(sessions)
    ]
    rates = [0.0] * sessions
    threads = [
        threading.Thread(
            target=lambda i=i: rates.__setitem__(
                i, bare_rate(predictors[i], batch=batch, seconds=seconds)
            )
        )
        for i in range(sessions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(rates)


def produce(bootstrap: str, topic: str, packets: Sequence[bytes], *, rate: float | None) -> None:
    """Produce ``packets`` (CreateTime set by the client), at ``rate`` per second if given."""
    config = {"bootstrap.servers": bootstrap, "linger.ms": 2 if rate else 20}
    produce_all(packets, topic=topic, config=config, rate=rate)


def produce_elsewhere(bootstrap: str, topic: str, packets: Sequence[bytes], *, rate: float) -> None:
    """:func:`produce` in a process of its own, as a survey's producer is.

    A producer paced in the consumer's process wakes every few ms and takes the interpreter's
    lock from the pipeline's thread each time; the latency would then measure that contention,
    which no deployment has. The two processes still share the machine's cores.
    """
    child = multiprocessing.get_context("spawn").Process(
        target=produce, args=(bootstrap, topic, list(packets)), kwargs={"rate": rate}
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"the producer process exited with {child.exitcode}")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over cores."""
    # user nice system idle iowait irq softirq steal; guest time is already inside user.
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def cpu_snapshot(broker_pid: int | None) -> dict[str, float]:
    """CPU seconds so far: this process (consumer, all threads), the broker, the machine."""
    busy, total = _machine_cpu_s()
    snap = {"consumer_process": time.process_time(), "machine_busy": busy, "machine_total": total}
    if broker_pid is not None:
        snap["broker"] = process_cpu_s(broker_pid)
    return snap


def _cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; ``platform.processor()`` where absent)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


class LoadSampler:
    """Samples the machine's 1-minute load average every few seconds, on a daemon thread.

    On a shared machine the load says how many runnable tasks competed for the cores.
    """

    def __init__(self, every_s: float = 5.0) -> None:
        self.samples: list[float] = []
        self._every_s = every_s
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            time.sleep(self._every_s)

    def summary(self) -> dict[str, float]:
        """Median, min and max of the samples so far."""
        values = list(self.samples)
        return {
            "median": round(float(np.median(values)), 2),
            "min": round(min(values), 2),
            "max": round(max(values), 2),
        }


class Recorder:
    """Collects each committed batch: commit time, messages, stage timings, CPU snapshot."""

    def __init__(self, broker_pid: int | None = None) -> None:
        self.lock = threading.Lock()
        self.batches: list[tuple[float, list[RawMessage], dict[str, float]]] = []
        self.cpu: list[dict[str, float]] = []
        self.count = 0
        self.broker_pid = broker_pid

    def __call__(self, batch: Sequence[RawMessage], outcome: BatchOutcome) -> None:
        with self.lock:
            self.batches.append((time.time(), list(batch), dict(outcome.timings_s)))
            self.cpu.append(cpu_snapshot(self.broker_pid))
            self.count += len(batch)

    def cpu_per_alert(self) -> dict[str, float]:
        """CPU ms per alert from the first to the last committed batch, and machine load.

        ``machine`` is every process on the machine (consumer, broker, database server and
        whatever else runs); ``machine_utilisation`` is the busy fraction of all cores.
        """
        first, last = self.cpu[0], self.cpu[-1]
        n = self.count - len(self.batches[0][1])
        out = {
            name: round(1000 * (last[name] - first[name]) / max(1, n), 3)
            for name in ("consumer_process", "broker")
            if name in first
        }
        busy = last["machine_busy"] - first["machine_busy"]
        out["machine"] = round(1000 * busy / max(1, n), 3)
        total = last["machine_total"] - first["machine_total"]
        out["machine_utilisation"] = round(busy / total, 3) if total > 0 else float("nan")
        return out


def run_service(
    settings: ConsumerSettings, predictor: OnnxMassPredictor, engine: Any, recorder: Recorder
) -> tuple[ConsumerService, threading.Thread]:
    """Start a consumer service in a thread."""
    service = ConsumerService(
        settings, predictor=predictor, engine=engine, stop=StopFlag(), on_batch_committed=recorder
    )
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    return service, thread


def wait(predicate: Any, timeout_s: float) -> None:
    """Poll ``predicate`` until true; raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        time.sleep(0.05)


def backlog_rate(
    broker: LocalBroker,
    settings_for: Any,
    predictor: OnnxMassPredictor,
    engine: Any,
    run_id: str,
    args: argparse.Namespace,
    *,
    model_thread: bool,
    writer_thread: bool,
    style: str = "ours",
) -> tuple[float, dict[str, Any]]:
    """Alerts/s of one service draining a backlog of ``args.alerts``, and its stage times.

    ``run_id`` must be new for each call (it names the topic and the alert ids).
    """
    tag = f"{run_id}{'m' if model_thread else ''}{'w' if writer_thread else ''}"
    topic = f"bench-{tag}"
    broker.create_topic(topic, partitions=args.partitions)
    produce(broker.bootstrap_servers, topic, rekeyed_packets(args.alerts, tag, style), rate=None)
    builds = ASTROPY_CACHE.builds
    recorder = Recorder(broker.pid)
    settings = settings_for(topic, model_thread=model_thread, writer_thread=writer_thread)
    service, thread = run_service(settings, predictor, engine, recorder)
    wait(lambda: recorder.count >= args.alerts, timeout_s=1800)
    service.stop.set()
    thread.join(60)
    first_time, first_batch, _ = recorder.batches[0]
    last_time = recorder.batches[-1][0]
    rate = (recorder.count - len(first_batch)) / max(1e-9, last_time - first_time)
    stages: dict[str, float] = {}
    for _, _, timings in recorder.batches:
        for k, v in timings.items():
            stages[k] = stages.get(k, 0.0) + v
    return rate, {
        "stored": {"results": service.stored, "rejected": service.rejected},
        "ms_per_alert": {
            **{k: round(1000 * v / recorder.count, 3) for k, v in stages.items()},
            "all_in": round(1000 / rate, 3),
        },
        "cpu_ms_per_alert": recorder.cpu_per_alert(),
        "astropy_wcs_builds_per_alert": round((ASTROPY_CACHE.builds - builds) / recorder.count, 3),
    }


def steady_latency(
    broker: LocalBroker,
    settings_for: Any,
    predictor: OnnxMassPredictor,
    engine: Any,
    tag: str,
    args: argparse.Namespace,
    *,
    rate: float,
    writer_thread: bool,
    style: str = "ours",
) -> dict[str, float]:
    """Produce-to-commit latency (s) of packets produced at a steady ``rate`` (alerts/s)."""
    n_steady = max(50, int(rate * args.latency_seconds))
    topic = f"bench-lat-{tag}"
    broker.create_topic(topic, partitions=args.partitions)
    recorder = Recorder()
    settings = settings_for(topic, writer_thread=writer_thread)
    service, thread = run_service(settings, predictor, engine, recorder)
    wait(lambda: bool(service._assigned), timeout_s=60)
    produce_elsewhere(
        broker.bootstrap_servers, topic, rekeyed_packets(n_steady, tag, style), rate=rate
    )
    wait(lambda: recorder.count >= n_steady, timeout_s=600)
    service.stop.set()
    thread.join(60)
    latencies = np.array(
        [
            commit_time - m.timestamp.timestamp()
            for commit_time, batch, _ in recorder.batches
            for m in batch
            if m.timestamp is not None
        ]
    )
    sizes = [len(batch) for _, batch, _ in recorder.batches]
    # Where the latency goes: the wait for a batch to close, then its processing (wall time).
    processing = [timings.get("total", math.nan) for _, _, timings in recorder.batches]
    return {
        "rate_alerts_per_s": round(rate, 1),
        "alerts": int(latencies.size),
        "p50_s": round(float(np.percentile(latencies, 50)), 4),
        "p99_s": round(float(np.percentile(latencies, 99)), 4),
        "max_s": round(float(latencies.max()), 4),
        "batches": len(sizes),
        "batch_messages_median": float(np.median(sizes)),
        "batch_processing_s_median": round(float(np.nanmedian(processing)), 4),
        "batch_processing_s_max": round(float(np.nanmax(processing)), 4),
    }


def scale_out_rate(
    args: argparse.Namespace, broker: LocalBroker, db_url: URL, engine: Any, run_id: str
) -> dict[str, Any]:
    """Alerts/s of K ``lenscast consume`` processes sharing a backlog in one group.

    The rate is measured in the database: rows of this topic over the span of their
    ``processed_at`` (set when each row is built, just before its batch is written).
    """
    topic = f"bench-scale-{run_id}"
    partitions = max(args.partitions, args.scale_out)
    broker.create_topic(topic, partitions=partitions)
    log = Path(tempfile.mkdtemp(prefix="lenscast-scale-")) / "consume.log"
    command = [sys.executable, "-m", "lenscast", "consume", "--bootstrap-servers",
               broker.bootstrap_servers, "--topic", topic, "--group-id", f"scale-{run_id}",
               "--db", db_url.render_as_string(hide_password=False), "--model",
               str(args.model), "--batch-size", str(args.batch_size), "--batch-wait",
               str(args.batch_wait), "--metrics-port", "0", "--session-timeout-ms", "6000",
               "--log-format", "json"]  # fmt: skip
    env = {
        **os.environ,
        "LENSCAST_MC_SAMPLES": str(args.mc_samples),
        "LENSCAST_INFERENCE_CHUNK": str(args.chunk),
    }
    with log.open("ab") as out:
        processes = [subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
                     for _ in range(args.scale_out)]  # fmt: skip

    def assigned() -> int:
        lines = log.read_text().splitlines() if log.exists() else []
        return sum('"partitions assigned"' in line for line in lines)

    def rows() -> int:
        with engine.connect() as conn:
            return int(conn.execute(
                select(func.count()).where(results_table.c.source_topic == topic)
            ).scalar_one())  # fmt: skip

    try:
        wait(lambda: assigned() >= args.scale_out, timeout_s=120)
        time.sleep(8)  # let the group settle: every member gets its partitions
        produce(
            broker.bootstrap_servers, topic, rekeyed_packets(args.alerts, run_id + "s"), rate=None
        )
        wait(lambda: rows() >= args.alerts, timeout_s=1800)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
    with engine.connect() as conn:
        first, last, n = conn.execute(
            select(func.min(results_table.c.processed_at), func.max(results_table.c.processed_at),
                   func.count()).where(results_table.c.source_topic == topic)
        ).one()  # fmt: skip
    assignments = [
        json.loads(line)["partitions"]
        for line in log.read_text().splitlines()
        if '"partitions assigned"' in line
    ]
    seconds = max(1e-9, (last - first).total_seconds())
    return {
        "processes": args.scale_out,
        "partitions": partitions,
        "alerts": int(n),
        "alerts_per_s": round((n - 1) / seconds, 1),
        "assignments": assignments,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print (and write) the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=3000, help="backlog size")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="ONNX model")
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument(
        "--postgres-server",
        metavar="URL",
        help="instead of --db: create a scratch database on this PostgreSQL "
        "server (e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/postgres) "
        "and drop it afterwards",
    )
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batch-wait", type=float, default=0.1, help="seconds")
    parser.add_argument("--mc-samples", type=int, default=64, help="draws per alert")
    parser.add_argument("--chunk", type=int, default=32, help="packets per model call")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument(
        "--kafka-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra librdkafka consumer setting (repeatable)",
    )
    parser.add_argument(
        "--scale-out",
        type=int,
        default=0,
        metavar="K",
        help="also measure K `lenscast consume` processes in one group (one per core)",
    )
    parser.add_argument(
        "--header-styles",
        default=",".join(STYLES),
        help=f"cutout header styles to stream, comma-separated (of {', '.join(STYLES)})",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="backlog runs per style (interleaved; medians)"
    )
    parser.add_argument(
        "--ablations",
        action="store_true",
        help="also drain a backlog without the writer thread and without the model thread",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    args.styles = [style.strip() for style in args.header_styles.split(",") if style.strip()]
    unknown = sorted(set(args.styles) - set(STYLES))
    if unknown or not args.styles or args.repeats < 1:
        parser.error(f"--header-styles: unknown {unknown}, known {list(STYLES)}; --repeats >= 1")
    args.argv = list(sys.argv[1:] if argv is None else argv)

    run_id = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="lenscast-bench-"))
    db_url = parse_url(args.db or f"sqlite:///{tmp / 'bench.sqlite'}")
    admin = None
    if args.postgres_server:
        admin = make_engine(args.postgres_server, isolation_level="AUTOCOMMIT")
        scratch = f"lenscast_bench_{run_id}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{scratch}"'))
        db_url = admin.url.set(database=scratch)
    try:
        return _run(args, run_id, tmp, db_url)
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_url.database}" WITH (FORCE)'))
            admin.dispose()


def _run(args: argparse.Namespace, run_id: str, tmp: Path, db_url: URL) -> int:
    engine = make_engine(db_url)
    upgrade(engine)
    predictor = OnnxMassPredictor(args.model, intra_op_threads=1)
    # The bare reference makes one call per batch, at the batch size that is fastest.
    bare_model = OnnxMassPredictor(args.model, intra_op_threads=1, run_batch=None)
    print(
        f"model {predictor.identity.name} {predictor.identity.version}; db {redact(db_url)}",
        file=sys.stderr,
    )
    bare_by_batch = {
        size: bare_rate(bare_model, batch=size)
        for size in sorted({2, 4, 8, 16, args.chunk, args.batch_size})
    }
    best_batch = max(bare_by_batch, key=lambda size: bare_by_batch[size])
    bare_windows = [bare_by_batch[best_batch]]
    bare = bare_windows[0]
    load = LoadSampler()
    cores = os.cpu_count() or 1
    bare_cores = bare_rate_all_cores(args.model, batch=best_batch, sessions=cores)
    print(
        f"bare onnxruntime: {bare:.0f} alerts/s on one core, {bare_cores:.0f} on {cores}",
        file=sys.stderr,
    )

    report: dict[str, Any] = {
        "command": "python -m benchmarks.stream_throughput " + " ".join(args.argv),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Other work on the machine (e.g. a training job) competes for the same cores.
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        },
        "model": {
            "name": predictor.identity.name,
            "version": predictor.identity.version,
            "onnx_sha256": predictor.identity.onnx_sha256,
        },
        "database": db_url.get_backend_name(),
        "settings": {
            "alerts": args.alerts,
            "partitions": args.partitions,
            "batch_size": args.batch_size,
            "batch_wait_s": args.batch_wait,
            "mc_samples": args.mc_samples,
            "inference_chunk": args.chunk,
            "onnx_threads": 1,
            "consumers": 1,
        },
        "header_styles": args.styles,
        "repeats": args.repeats,
        "bare_onnx_alerts_per_s": round(bare, 1),
        "bare_onnx_alerts_per_s_by_batch": {str(k): round(v, 1) for k, v in bare_by_batch.items()},
        f"bare_onnx_alerts_per_s_{cores}_sessions": round(bare_cores, 1),
        # What the model alone costs per alert; the consumer's CPU per alert beyond it is the
        # work that must fit on the other core for the stream to keep up with the model.
        "bare_onnx_cpu_ms_per_alert": round(bare_cpu_ms_per_alert(bare_model, batch=best_batch), 3),
    }
    with LocalBroker(log_path=tmp / "broker.log") as broker:

        def settings_for(
            topic: str, *, model_thread: bool = True, writer_thread: bool = True
        ) -> ConsumerSettings:
            return ConsumerSettings(
                bootstrap_servers=broker.bootstrap_servers,
                db_url=db_url,
                topics=(topic,),
                group_id=f"bench-{uuid.uuid4().hex[:6]}",
                overlap_store=writer_thread,
                model_path=args.model,
                batch_max_messages=args.batch_size,
                batch_max_wait_s=args.batch_wait,
                session_timeout_ms=6000,
                metrics_port=None,
                pipeline=PipelineSettings(
                    n_mc_samples=args.mc_samples,
                    inference_chunk=args.chunk,
                    overlap_inference=model_thread,
                ),
                extra_kafka=dict(kv.split("=", 1) for kv in args.kafka_option),
            )

        def drain(tag: str, style: str, model_thread: bool, writer_thread: bool) -> dict:
            """One backlog run and the bare window after it, as a report entry."""
            rate, measured = backlog_rate(
                broker, settings_for, predictor, engine, tag, args,
                model_thread=model_thread, writer_thread=writer_thread, style=style,
            )  # fmt: skip
            bare_windows.append(bare_rate(bare_model, batch=best_batch))
            bare = (bare_windows[-2] + bare_windows[-1]) / 2  # the windows either side
            print(f"{style} ({tag}): {rate:.0f} alerts/s ({rate / bare:.1%} of bare)",
                  file=sys.stderr)  # fmt: skip
            return {
                "alerts_per_s": round(rate, 1),
                "over_bare": round(rate / bare, 3),
                "bare_beside_alerts_per_s": round(bare, 1),
                **measured,
            }

        # -- ablations (optional): all on one thread, + model thread, on the first style -------
        if args.ablations:
            for suffix, model_thread in (("_without_model_thread", False),
                                         ("_without_writer_thread", True)):  # fmt: skip
                run = drain(f"{run_id}a{suffix[9]}", args.styles[0], model_thread, False)
                report[f"end_to_end{suffix}_alerts_per_s"] = run["alerts_per_s"]
                report[f"end_to_end{suffix}_over_bare"] = run["over_bare"]
                for name in ("stored", "ms_per_alert", "cpu_ms_per_alert"):
                    report[f"{name}{suffix}"] = run[name]

        # -- throughput on a backlog per header style, styles interleaved, production settings --
        runs: dict[str, list[dict[str, Any]]] = {style: [] for style in args.styles}
        for repeat in range(args.repeats):
            for k, style in enumerate(args.styles):
                runs[style].append(drain(f"{run_id}r{repeat}s{k}", style, True, True))
        styles: dict[str, Any] = {}
        for style, style_runs in runs.items():
            ratios = [run["over_bare"] for run in style_runs]
            median_run = sorted(style_runs, key=lambda run: run["over_bare"])[len(ratios) // 2]
            styles[style] = {
                "wcs_path": wcs_path(style),
                "end_to_end_alerts_per_s": round(
                    float(np.median([run["alerts_per_s"] for run in style_runs])), 1
                ),
                "end_to_end_over_bare": round(float(np.median(ratios)), 3),
                "bare_beside_alerts_per_s": round(
                    float(np.median([run["bare_beside_alerts_per_s"] for run in style_runs])), 1
                ),
                "ms_per_alert_median_run": median_run["ms_per_alert"],
                "cpu_ms_per_alert_median_run": median_run["cpu_ms_per_alert"],
                "astropy_wcs_builds_per_alert": median_run["astropy_wcs_builds_per_alert"],
                "consumer_cpu_ms_per_alert_beyond_model": round(
                    float(
                        np.median(
                            [run["cpu_ms_per_alert"]["consumer_process"] for run in style_runs]
                        )
                    )
                    - report["bare_onnx_cpu_ms_per_alert"],
                    3,
                ),
                "runs": style_runs,
            }
        report["bare_onnx_alerts_per_s"] = round(float(np.median(bare_windows)), 1)
        report["bare_onnx_alerts_per_s_windows"] = [round(v, 1) for v in bare_windows]

        # -- latency at a steady 50 % of each style's rate (writer thread as in production) ----
        for k, style in enumerate(args.styles):
            styles[style]["latency_at_half_load"] = steady_latency(
                broker, settings_for, predictor, engine, f"{run_id}l{k}", args,
                rate=0.5 * styles[style]["end_to_end_alerts_per_s"], writer_thread=True,
                style=style,
            )  # fmt: skip
        report["styles"] = styles
        if args.scale_out > 1:
            report["scale_out"] = scale_out_rate(args, broker, db_url, engine, run_id)
            print(
                f"{args.scale_out} processes: {report['scale_out']['alerts_per_s']:.0f} alerts/s",
                file=sys.stderr,
            )
    report["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    report["machine"]["load_average_1m_during"] = load.summary()
    report["targets"] = {
        style: {
            "end_to_end_over_bare>=0.85": entry["end_to_end_over_bare"] >= 0.85,
            "p99<1s": entry["latency_at_half_load"]["p99_s"] < 1.0,
        }
        for style, entry in styles.items()
    }
    engine.dispose()
    emit(report, args.out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The lens-evidence head's cost to the stream: the same model with and without ``p_lens``.

The model given (``--model``, with a ``p_lens`` output) and the same graph with that output and
every node only it needs cut away (``onnx.utils.Extractor``: same weights, same mass-model
outputs) process the same batches alternately (ABBA order in each round, so a drift of a shared
machine's speed falls on both), each batch as the consumer does it: the pipeline
(:func:`lenscast.consumer.pipeline.process_batch` with the service's default settings: chunks of 32
on the inference thread, 64 Monte Carlo draws) and one SQLite transaction
(:func:`lenscast.db.writer.write_batch`; the rows re-keyed per batch so that every write inserts).
Without the broker: it costs both the same, so the ratio here is the stricter bound on the stream's.

Reported per variant: the median over rounds of alerts per second (wall time) and of CPU time per
alert (the whole process, both threads; steadier than wall time on a machine others use too),
and their ratios with over without the head. On a machine others load too, those windows scatter
by several per cent, so the head's own cost is also measured directly: the two models called in
turn on the same chunk of 32 sample cutouts (``--calls`` pairs, CPU time of the calling thread,
which runs onnxruntime's single intra-op thread), the median paired difference per alert, and that
cost as a fraction of the pipeline's CPU time per alert without the head
(``head_cpu_fraction_of_stream``); ``within_5_percent`` says whether the throughput
with the head is at least 95 % of the throughput without it, ``within_5_percent_by_cpu`` the
same for the throughput the CPU time per alert allows (what bounds a saturated machine). Run::

    python -m benchmarks.p_lens_overhead --model /path/to/model-with-p-lens.onnx \\
        --out benchmarks/results/p_lens_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.json_report import emit
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.framing import read_alert_file
from lenscast.consumer.pipeline import RawMessage, process_batch
from lenscast.consumer.settings import PipelineSettings
from lenscast.db.engine import make_engine
from lenscast.db.migrate import upgrade
from lenscast.db.writer import write_batch
from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import OnnxMassPredictor

SAMPLE = Path(__file__).resolve().parents[1] / "consumer" / "samples" / "hsc-sample.avro"


def without_head(model: Path, directory: Path) -> Path:
    """``model`` with its ``p_lens`` output and the nodes only it needs removed, card beside it."""
    import onnx
    from onnx.utils import Extractor

    graph = onnx.load(str(model))
    inputs = [i.name for i in graph.graph.input]
    outputs = [spec.ONNX_MEAN_NAME, spec.ONNX_SIGMA_NAME]
    pruned = Extractor(graph).extract_model(inputs, outputs)
    path = directory / f"{model.stem}-without-p-lens.onnx"
    onnx.save(pruned, str(path))
    card = json.loads(model.with_suffix(".json").read_text())
    card.pop("lens_evidence", None)
    card["version"] = f"{card['version']}-without-p-lens"
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


def batches(n_batches: int, size: int) -> list[list[RawMessage]]:
    """``n_batches`` batches of ``size`` packets, cycling through the shipped sample stream."""
    values = read_alert_file(SAMPLE)
    return [
        [
            RawMessage(values[(b * size + i) % len(values)], "bench", 0, b * size + i)
            for i in range(size)
        ]
        for b in range(n_batches)
    ]


def _rekeyed(rows: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [{**row, "alert_id": f"{prefix}-{row['alert_id']}"} for row in rows]


def window(
    predictor: OnnxMassPredictor, work: Sequence[list[RawMessage]], db_url: str, prefix: str
) -> dict[str, float]:
    """Process and store ``work`` once; alerts/s (wall) and CPU ms per alert (whole process)."""
    settings = PipelineSettings()
    engine = make_engine(db_url)
    n = sum(len(batch) for batch in work)
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for k, batch in enumerate(work):
            out = process_batch(batch, predictor=predictor, settings=settings)
            tag = f"{prefix}-{k}"
            write_batch(
                engine,
                results=_rekeyed(out.results, tag),
                images=_rekeyed(out.images, tag),
                rejected=out.rejected,
            )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        engine.dispose()
    return {"alerts_per_s": n / wall, "cpu_ms_per_alert": 1e3 * cpu / n}


def head_cost(
    with_head: OnnxMassPredictor, bare: OnnxMassPredictor, chunk: np.ndarray, calls: int
) -> dict[str, float]:
    """CPU ms per alert of each model on ``chunk``, in turn, and their median paired difference."""
    cost: dict[str, list[float]] = {"with_p_lens": [], "without_p_lens": []}
    for predictor in (with_head, bare):  # warm both
        predictor.predict(chunk)
    for k in range(calls):
        pair = [("with_p_lens", with_head), ("without_p_lens", bare)]
        for name, predictor in pair if k % 2 == 0 else pair[::-1]:
            started = time.thread_time()
            predictor.predict(chunk)
            cost[name].append(1e3 * (time.thread_time() - started) / len(chunk))
    differences = [a - b for a, b in zip(cost["with_p_lens"], cost["without_p_lens"], strict=True)]
    return {
        "with_p_lens_cpu_ms_per_alert": statistics.median(cost["with_p_lens"]),
        "without_p_lens_cpu_ms_per_alert": statistics.median(cost["without_p_lens"]),
        "head_cpu_ms_per_alert": statistics.median(differences),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="ONNX model with p_lens")
    parser.add_argument("--rounds", type=int, default=6, help="ABBA rounds (default 6)")
    parser.add_argument("--batches", type=int, default=3, help="256-alert batches per window")
    parser.add_argument("--calls", type=int, default=200, help="paired model calls (default 200)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    with_head = OnnxMassPredictor(args.model)
    if not with_head.has_p_lens:
        print(f"{args.model} has no {spec.ONNX_P_LENS_NAME} output", file=sys.stderr)
        return 2
    work = batches(args.batches, 256)
    with tempfile.TemporaryDirectory(prefix="p-lens-overhead-") as tmp:
        bare = OnnxMassPredictor(without_head(args.model, Path(tmp)))
        variants = {"with_p_lens": with_head, "without_p_lens": bare}
        urls = {name: f"sqlite:///{Path(tmp) / name}.sqlite" for name in variants}
        for url in urls.values():
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
        window(bare, work[:1], urls["without_p_lens"], "warm")  # imports, JIT, caches
        window(with_head, work[:1], urls["with_p_lens"], "warm")
        chunk = np.stack(
            [decode_alert(m.value).cutouts for m in work[0][: PipelineSettings().inference_chunk]]
        )
        model = head_cost(with_head, bare, chunk, args.calls)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(variants)[::-1]
            for name in (*order, *order[::-1]):
                prefix = f"r{r}-{len(runs[name])}"
                runs[name].append(window(variants[name], work, urls[name], prefix))

    def median(name: str, key: str) -> float:
        return statistics.median(w[key] for w in runs[name])

    rate = {name: median(name, "alerts_per_s") for name in variants}
    cpu = {name: median(name, "cpu_ms_per_alert") for name in variants}
    throughput_ratio = rate["with_p_lens"] / rate["without_p_lens"]
    report = {
        "benchmark": "p_lens_overhead",
        "model": str(args.model),
        "model_name": with_head.identity.name,
        "model_version": with_head.identity.version,
        "onnx_sha256": with_head.identity.onnx_sha256,
        "alerts_per_window": 256 * args.batches,
        "rounds": args.rounds,
        "windows_per_variant": len(runs["with_p_lens"]),
        "alerts_per_s": rate,
        "cpu_ms_per_alert": cpu,
        "throughput_ratio_with_over_without": throughput_ratio,
        "cpu_ratio_with_over_without": cpu["with_p_lens"] / cpu["without_p_lens"],
        "model_calls": {"pairs": args.calls, "chunk": len(chunk), **model},
        "head_cpu_fraction_of_stream": model["head_cpu_ms_per_alert"] / cpu["without_p_lens"],
        "within_5_percent": throughput_ratio >= 0.95,
        "within_5_percent_by_cpu": cpu["without_p_lens"] / cpu["with_p_lens"] >= 0.95,
        "windows": runs,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python", "benchmarks/p_lens_overhead.py", *(argv or sys.argv[1:])]),
    }
    emit(report, args.out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

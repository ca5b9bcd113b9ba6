"""onnxruntime throughput of the shipped mass-model CNN, per CPU core.

One intra-op thread (how the consumer runs it: one process per core), batch 1 (an alert at a
time) and batch 64 (a poll's worth), median over repeats of images per second of wall-clock
time and of the process's CPU time (the per-core figure on a shared machine); plus the
network's FLOPs per image from the ONNX graph's Conv and Gemm nodes (1 MAC = 2 FLOP) and the
1-minute load average during the run.

Usage::

    python -m benchmarks.onnx_throughput --model model/weights/lenscast-hsc.onnx \
        --out runs/onnx_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper, shape_inference

from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import DEFAULT_MODEL_PATH


def onnx_macs(path: Path) -> int:
    """Multiply-accumulates per image of the Conv and Gemm/MatMul nodes (batch 1)."""
    model = onnx.load(str(path))
    batch_one = model.graph.input[0].type.tensor_type.shape.dim[0]
    batch_one.ClearField("dim_param")
    batch_one.dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(model.graph.value_info) + list(model.graph.output)
    }
    weights = {w.name: numpy_helper.to_array(w).shape for w in model.graph.initializer}
    # A graph that runs the network twice (two views, older exports) reads the shared weights
    # through Identity nodes: follow them back to the initializer.
    # An int8 (QDQ) graph reads them through DequantizeLinear nodes (same shape) likewise.
    for node in model.graph.node:
        if node.op_type in ("Identity", "DequantizeLinear") and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    macs = 0
    for node in model.graph.node:
        # Whole output shapes, batch included: a graph may run an image's views as one batch.
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            kernel = weights[node.input[1]]  # (out_c, in_c / groups, kh, kw)
            macs += int(np.prod(out)) * int(np.prod(kernel[1:]))
        elif node.op_type in ("Gemm", "MatMul") and len(weights.get(node.input[1], ())) == 2:
            # Fully connected layers; the views' 7x7 back-transforms (3-D constants) are not.
            rows = shapes[node.output[0]][0]
            macs += rows * int(np.prod(weights[node.input[1]]))
    return macs


def images_per_second(
    session: ort.InferenceSession, batch: int, *, repeats: int, seconds: float
) -> tuple[list[float], list[float]]:
    """Images per wall-clock second and per CPU second, ``repeats`` windows of ``seconds``.

    The CPU-time rate is what one core delivers when it is not shared: on a busy machine
    (other processes taking turns on the cores) the wall-clock rate understates it, while
    the process's own CPU time (one onnxruntime thread) does not count the waiting.
    """
    rng = np.random.default_rng(0)
    shape = (batch, len(spec.BANDS), spec.CUTOUT_SIZE_PIX, spec.CUTOUT_SIZE_PIX)
    cutouts = rng.normal(0.0, 0.08, shape).astype(np.float32)
    feed = {spec.ONNX_INPUT_NAME: cutouts}
    for _ in range(5):
        session.run(None, feed)  # warm-up: allocations, kernel selection
    wall_rates, cpu_rates = [], []
    for _ in range(repeats):
        count, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while (elapsed := time.perf_counter() - start) < seconds:
            session.run(None, feed)
            count += batch
        wall_rates.append(count / elapsed)
        cpu_rates.append(count / (time.process_time() - cpu_start))
    return wall_rates, cpu_rates


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write and print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--out", type=Path, default=None, help="JSON output")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed window")
    args = parser.parse_args(argv)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(args.model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    macs = onnx_macs(args.model)
    result: dict[str, object] = {
        "model": str(args.model),
        "onnxruntime": ort.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": 1,
        "macs_per_image": macs,
        "flops_per_image": 2 * macs,
    }
    result["load_average_1min"] = os.getloadavg()[0]
    for batch in (1, 64):
        wall, cpu = images_per_second(session, batch, repeats=args.repeats, seconds=args.seconds)
        result[f"batch_{batch}"] = {
            "images_per_wall_second_median": float(np.median(wall)),
            "images_per_cpu_second_median": float(np.median(cpu)),
            "images_per_wall_second_all": [round(r, 1) for r in wall],
            "ms_cpu_per_image_median": 1000.0 / float(np.median(cpu)),
        }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

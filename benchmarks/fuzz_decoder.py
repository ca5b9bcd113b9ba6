"""Coverage-guided fuzzing of ``decode_alert`` with atheris (libFuzzer) for a fixed time.

Every input goes through :func:`lenscast.consumer.decoding.decode_alert`; anything but an
:class:`~lenscast.consumer.alert.AlertRejected` escaping it, or a ``decode.internal_error``
rejection (a decoder bug caught by its last-resort handler), is a crash, and so is an input that
takes more than ``--input-timeout`` seconds or pushes the process past ``--rss-limit-mb``. The
corpus starts from real packets: the committed v1.0 sample packets (``tests/data``), the shipped
sample stream, and one packet of each kind of the reliability tests' hostile stream
(``harness/hostile_packets.py``; :func:`harness.decoder_fuzzing.seed_corpus`), so the fuzzer
begins inside valid Avro and FITS and mutates its way through the cutout parser.

Output: one JSON object (stdout, and ``--json``) with the executions, their rate, libFuzzer's
coverage counters (``cov``: edges, ``ft``: features), the corpus size, peak RSS and the crashes,
hangs and out-of-memory inputs found (their files are kept under ``--artifacts``)::

    python -m benchmarks.fuzz_decoder --seconds 600 --json runs/fuzz_decoder.json

libFuzzer ends its process when it stops, so the fuzzing runs in a child process of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.decoder_fuzzing import fuzz_decode_alert, seed_corpus
from harness.paths import ROOT


def _stats(log: str) -> dict[str, Any]:
    """Pull libFuzzer's counters out of its log."""
    out: dict[str, Any] = {}
    for key, value in re.findall(r"stat::(\w+):\s+(\d+)", log):
        out[key] = int(value)
    progress = re.findall(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", log)
    if progress:
        runs, cov, ft, corp, corp_size = progress[-1]
        out.update(last_run=int(runs), cov=int(cov), ft=int(ft), corpus=int(corp),
                   corpus_size=corp_size)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Fuzz for ``--seconds`` and print the JSON report; exit 1 if anything was found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--input-timeout", type=int, default=10, help="seconds per input")
    parser.add_argument("--max-len", type=int, default=200_000, help="largest input, bytes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--artifacts", type=Path, help="where crashing inputs are kept")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        n_seeds = seed_corpus(corpus)
        artifacts = args.artifacts or Path(tmp) / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        flags = [
            f"-max_total_time={args.seconds}", f"-rss_limit_mb={args.rss_limit_mb}",
            f"-timeout={args.input_timeout}", f"-max_len={args.max_len}", f"-seed={args.seed}",
            "-print_final_stats=1", f"-artifact_prefix={artifacts}/", str(corpus),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, __file__, "--child", *flags],
            capture_output=True, text=True, env=env, check=False,
            timeout=args.seconds + 600,
        )  # fmt: skip
        wall = time.monotonic() - started
        found = sorted(p.name for p in artifacts.iterdir())
    log = result.stderr
    stats = _stats(log)
    executions = stats.get("number_of_executed_units", stats.get("last_run", 0))
    report = {
        "target": "lenscast.consumer.decoding.decode_alert",
        "seconds": args.seconds,
        "wall_s": round(wall, 1),
        "seed_inputs": n_seeds,
        "executions": executions,
        "executions_per_s": round(executions / max(args.seconds, 1), 1),
        "coverage_edges": stats.get("cov"),
        "features": stats.get("ft"),
        "corpus_inputs": stats.get("corpus"),
        "new_units_added": stats.get("new_units_added"),
        "peak_rss_mb": stats.get("peak_rss_mb"),
        "crashes": sum(name.startswith("crash-") for name in found),
        "timeouts": sum(name.startswith("timeout-") for name in found),
        "out_of_memory": sum(name.startswith("oom-") for name in found),
        "artifacts": found,
        "exit_status": result.returncode,
    }
    if result.returncode != 0:
        report["log_tail"] = log[-3000:]
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    return 0 if result.returncode == 0 and not found else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        fuzz_decode_alert([sys.argv[0], *sys.argv[2:]])
    else:
        sys.exit(main())

"""The fuzzing benchmark runs and finds nothing in a short CI run (the long run is by hand).

``benchmarks/fuzz_decoder.py --seconds 600`` is the real fuzzing; this keeps the script working
and reports its counters in the CI log (tests/consumer/test_decoding_atheris.py fuzzes too, from the
committed packets alone).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.paths import ROOT
from harness.services import service_missing

SECONDS = 10


def test_fuzz_benchmark_reports_no_crash(
    tmp_path: Path, reliability_report: dict[str, Any]
) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        service_missing("atheris (the coverage-guided fuzzer)")
    out = tmp_path / "fuzz.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.fuzz_decoder", "--seconds", str(SECONDS),
         "--artifacts", str(tmp_path / "artifacts"), "--json", str(out)],
        capture_output=True, text=True, timeout=SECONDS + 300, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.exists(), result.stderr[-3000:]
    report = json.loads(out.read_text())
    reliability_report.update({k: report[k] for k in (
        "seconds", "executions", "executions_per_s", "coverage_edges", "features",
        "corpus_inputs", "crashes", "timeouts", "out_of_memory")})  # fmt: skip
    assert result.returncode == 0, report
    assert report["crashes"] == report["timeouts"] == report["out_of_memory"] == 0
    assert report["executions"] > 1000
    assert report["seed_inputs"] > 40  # the hostile kinds are in the corpus

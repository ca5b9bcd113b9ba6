"""Coverage-guided fuzzing of ``decode_alert`` with atheris (libFuzzer).

Run as a script it is the fuzz harness: every input goes through ``decode_alert`` and anything
but :class:`~lenscast.consumer.alert.AlertRejected` (or a ``decode.internal_error`` rejection) is a
crash that libFuzzer reports with the input that caused it. Seeds are real packets
(:func:`harness.decoder_fuzzing.seed_corpus`), so the fuzzer starts from valid alerts and mutates
its way into the cutouts::

    python tests/consumer/test_decoding_atheris.py -max_total_time=600 -rss_limit_mb=2048

The test below runs it for a short fixed time in a subprocess (libFuzzer exits the process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.decoder_fuzzing import fuzz_decode_alert, seed_corpus
from harness.paths import ROOT

#: Fuzzing time of the CI test, seconds (the benchmark runs it longer).
CI_SECONDS = 10


#: Starts a command from a forked shell, so that it does not inherit this process's peak RSS.
#: libFuzzer's memory limit reads the peak RSS (``ru_maxrss``), and Linux carries the parent's
#: peak into a child that Python starts with vfork and exec: after the whole test suite this
#: process has peaked near 3 GB, and the fuzzer would stop at its first memory check with an
#: "out-of-memory" that is not its own. The shell's child is forked from the small shell, and
#: ``exit $?`` keeps the shell from exec-ing the command in its own place.
_FRESH_PEAK_RSS = ["/bin/sh", "-c", '"$@"; exit $?', "sh"]


def test_coverage_guided_fuzzing_finds_no_crash() -> None:
    pytest.importorskip("atheris", reason="atheris (coverage-guided fuzzer) is not installed")
    root = ROOT
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        seed_corpus(corpus)
        env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
        fuzzer = [sys.executable, __file__, f"-max_total_time={CI_SECONDS}", "-rss_limit_mb=2048",
                  "-max_len=200000", "-seed=1", f"-artifact_prefix={tmp}/", str(corpus)]
        result = subprocess.run(
            [*_FRESH_PEAK_RSS, *fuzzer],
            capture_output=True, text=True, timeout=CI_SECONDS + 120, env=env, check=False,
        )  # fmt: skip
    tail = result.stderr[-3000:]
    assert result.returncode == 0, tail
    assert "Done" in tail, tail
    print(tail.splitlines()[-1])


if __name__ == "__main__":  # pragma: no cover
    fuzz_decode_alert(sys.argv, include=["consumer", "model"])

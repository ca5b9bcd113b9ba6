"""CPU time to decode an alert, per cutout header style (no broker, no database, no model).

For each style of :mod:`header_styles`, ``--alerts`` packets of the sample stream (unique ids;
the SIP style with per-alert coefficients) are decoded by
:func:`lenscast.consumer.decoding.decode_alert` on this thread, three passes, and the median CPU ms
per alert of a pass is reported (this thread's CPU time, so other work on a shared machine changes
it little), with the WCS class the first cutout gets. Decoding is where the WCS is read, so this
isolates the cost of each style. ``--checkout DIR`` runs the same benchmark with another
checkout's code instead (e.g. ``git archive`` of an earlier commit, unpacked in DIR: its own
benchmark, its own styles), for a before/after comparison. Output: one JSON object (stdout, and
``--out``)::

    python -m benchmarks.decode_header_styles --alerts 400 --out runs/decode_header_styles.json
    python -m benchmarks.decode_header_styles --alerts 400 --checkout /tmp/before
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.header_styles import STYLES, rekeyed_packets, wcs_path
from benchmarks.json_report import emit
from lenscast import consumer
from lenscast.consumer.decoding import decode_alert


def _revision(package_dir: Path) -> str:
    """The git commit of the checkout holding ``package_dir`` ('unknown' outside git)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(package_dir), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


#: Runs this benchmark in another checkout (``python -c`` looks in the working directory first)
#: without the editable install's import hook, which would find this checkout's ``lenscast``.
_FROM_OTHER_CHECKOUT = (
    "import runpy, sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
    "sys.argv[0] = 'decode_header_styles'; "
    "runpy.run_module('benchmarks.decode_header_styles', run_name='__main__', alter_sys=True)"
)


def decode_cpu_ms(packets: Sequence[bytes], passes: int = 3) -> float:
    """Median over ``passes`` of the CPU ms per alert to decode ``packets`` on this thread."""
    decode_alert(packets[0])  # warm caches of the first alert's cards
    per_pass = []
    for _ in range(passes):
        start = time.thread_time()
        for packet in packets:
            decode_alert(packet)
        per_pass.append(1000 * (time.thread_time() - start) / len(packets))
    return statistics.median(per_pass)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print (and write) the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=400, help="packets per style")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--checkout", type=Path,
                        help="run the benchmark of this other checkout, with its code")
    args = parser.parse_args(argv)
    if args.checkout is not None:
        forwarded = ["--alerts", str(args.alerts)]
        forwarded += ["--out", str(args.out.resolve())] if args.out is not None else []
        command = [sys.executable, "-c", _FROM_OTHER_CHECKOUT, *forwarded]
        return subprocess.run(command, cwd=args.checkout, check=False).returncode
    package = Path(consumer.__file__).resolve().parent
    report: dict = {
        "command": "python -m benchmarks.decode_header_styles " + " ".join(sys.argv[1:]),
        "consumer_package": str(package),
        "consumer_revision": _revision(package),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        },
        "alerts": args.alerts,
        "styles": {},
    }
    for style in STYLES:
        packets = rekeyed_packets(args.alerts, f"decode-{style}", style)
        report["styles"][style] = {
            "wcs_path": wcs_path(style),
            "decode_cpu_ms_per_alert": round(decode_cpu_ms(packets), 3),
        }
        print(style, report["styles"][style], file=sys.stderr)
    report["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    emit(report, args.out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

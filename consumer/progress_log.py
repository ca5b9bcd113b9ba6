"""The consumer's periodic progress line: throughput, lag and rejections since the last line.

A healthy ``lenscast consume`` logs nothing per batch (``batch stored`` is DEBUG); every
``log_interval_s`` seconds it logs one INFO line instead, also when no alert arrived (then it
says 0 alerts/s, which is news too: an idle topic or a broker that cannot be reached)::

    progress: 812.4 alerts/s, lag 1024, stored 48650, rejected 94 (cutout.no_wcs 90,
    avro.invalid 4) in 60.0 s

In JSON logs the same numbers are fields: ``alerts_per_s``, ``lag``, ``stored``, ``rejected``,
``rejected_by_reason``, ``interval_s``, and the totals since start ``stored_total``,
``rejected_total``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

log = logging.getLogger("lenscast.progress")


class ProgressLog:
    """Count stored and rejected alerts and log them every ``interval_s`` seconds.

    Parameters
    ----------
    interval_s : float
        Seconds between lines; 0 switches the lines off.
    clock : callable, optional
        Monotonic clock, seconds (tests pass a fake one).
    """

    def __init__(self, interval_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._since = clock()
        self._stored = 0
        self._rejected: Counter[str] = Counter()
        self.stored_total = 0
        self.rejected_total = 0

    def record(self, stored: int, rejected_reasons: Iterable[str]) -> None:
        """Count one committed batch: its stored results and its rejections' reason codes."""
        reasons = list(rejected_reasons)
        self._stored += stored
        self._rejected.update(reasons)
        self.stored_total += stored
        self.rejected_total += len(reasons)

    def maybe_log(self, lag: int | None) -> bool:
        """Log the line when ``interval_s`` has passed since the last; return whether it did.

        Parameters
        ----------
        lag : int or None
            Messages behind the partitions' high watermarks (None: not known yet).
        """
        now = self._clock()
        elapsed = now - self._since
        if self.interval_s <= 0 or elapsed < self.interval_s:
            return False
        rejected = sum(self._rejected.values())
        by_reason = dict(self._rejected.most_common())
        rate = (self._stored + rejected) / elapsed
        reasons = ", ".join(f"{reason} {n}" for reason, n in by_reason.items())
        log.info(
            "progress: %.1f alerts/s, lag %s, stored %d, rejected %d%s in %.1f s",
            rate,
            "unknown" if lag is None else lag,
            self._stored,
            rejected,
            f" ({reasons})" if reasons else "",
            elapsed,
            extra={
                "fields": {
                    "alerts_per_s": round(rate, 2),
                    "lag": lag,
                    "stored": self._stored,
                    "rejected": rejected,
                    "rejected_by_reason": by_reason,
                    "interval_s": round(elapsed, 3),
                    "stored_total": self.stored_total,
                    "rejected_total": self.rejected_total,
                }
            },
        )
        self._since = now
        self._stored = 0
        self._rejected.clear()
        return True

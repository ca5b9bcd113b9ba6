"""What a committed batch adds to the service's counts: totals, metrics, health, progress, log."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from lenscast.consumer.health import HealthState
from lenscast.consumer.metrics import ConsumerMetrics
from lenscast.consumer.pipeline import BatchOutcome, RawMessage
from lenscast.consumer.progress_log import ProgressLog

log = logging.getLogger(__name__)


class BatchTally:
    """Totals since start, and the metrics and lines each committed batch updates.

    Parameters
    ----------
    metrics : ConsumerMetrics
    health : HealthState
    progress : ProgressLog
    """

    def __init__(self, metrics: ConsumerMetrics, health: HealthState, progress: ProgressLog):
        self.metrics = metrics
        self.health = health
        self.progress = progress
        #: Results stored, rejected rows stored, and batches committed since start.
        self.stored = 0
        self.rejected = 0
        self.batches = 0

    def record(self, batch: Sequence[RawMessage], outcome: BatchOutcome, started: float) -> None:
        """Count a batch whose offsets were just committed.

        Parameters
        ----------
        batch : sequence of RawMessage
        outcome : BatchOutcome
            Its rows, as stored, and its stage times in ``timings_s`` (seconds).
        started : float
            ``time.perf_counter()`` when its processing began, seconds.
        """
        now = datetime.now(UTC)
        self.batches += 1
        self.stored += len(outcome.results)
        self.rejected += len(outcome.rejected)
        self.metrics.processed.inc(len(outcome.results))
        self.metrics.no_lens.inc(sum(bool(row.get("no_lens")) for row in outcome.results))
        for row in outcome.rejected:
            self.metrics.rejected.labels(row["reason"]).inc()
        self.progress.record(len(outcome.results), (row["reason"] for row in outcome.rejected))
        self.metrics.batch_size.observe(len(batch))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        for m in batch:
            if m.timestamp is not None:
                self.metrics.latency.observe(max(0.0, (now - m.timestamp).total_seconds()))
        self.health.beat(stored=self.stored, rejected=self.rejected)
        log.debug(
            "batch stored",
            extra={
                "fields": {
                    "messages": len(batch),
                    "results": len(outcome.results),
                    "rejected": len(outcome.rejected),
                    "seconds": round(time.perf_counter() - started, 4),
                    **{f"{k}_s": round(v, 4) for k, v in outcome.timings_s.items()},
                }
            },
        )

"""Prometheus metrics of the consumer (one registry per service instance).

``lenscast_alerts_processed_total``, ``lenscast_alerts_no_lens_total`` (stored, flagged: the
model's ``p_lens`` below the threshold), ``lenscast_alerts_rejected_total{reason}``,
``lenscast_batch_seconds`` (pipeline + write + commit), ``lenscast_batch_size``,
``lenscast_alert_latency_seconds`` (message timestamp to stored), ``lenscast_consumer_lag``
``{topic,partition}`` (high watermark minus committed offset), ``lenscast_db_up``,
``lenscast_paused``, ``lenscast_db_retries_total`` and ``lenscast_batches_cut_short_total``
(batches whose processing reached its share of ``max.poll.interval.ms``);
``lenscast_build_info{version}`` and
``lenscast_model_info{name, version, onnx_sha256, parameter_spec_version}`` (value 1, labels say
what runs); and the standard ``process_*`` (CPU seconds, resident memory, open file
descriptors, start time) and ``python_info`` metrics of ``prometheus_client``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from lenscast import __version__

if TYPE_CHECKING:
    from lenscast.model.predictor import ModelIdentity

_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class ConsumerMetrics:
    """The consumer's metrics, registered in their own :class:`CollectorRegistry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Every family of this instance goes to its own registry.
        counter = partial(Counter, registry=r)
        gauge = partial(Gauge, registry=r)
        histogram = partial(Histogram, registry=r)
        self.processed = counter("lenscast_alerts_processed", "Alerts stored as results")
        self.no_lens = counter(
            "lenscast_alerts_no_lens", "Alerts stored flagged no_lens (p_lens below the threshold)"
        )
        self.rejected = counter("lenscast_alerts_rejected", "Alerts stored as rejected", ["reason"])
        self.batch_seconds = histogram(
            "lenscast_batch_seconds",
            "Batch wall time: pipeline, write and commit",
            buckets=_BATCH_BUCKETS,
        )
        self.batch_size = histogram(
            "lenscast_batch_size", "Messages per batch", buckets=(1, 4, 16, 64, 128, 256, 512, 1024)
        )
        self.latency = histogram(
            "lenscast_alert_latency_seconds",
            "Message timestamp to committed row",
            buckets=_LATENCY_BUCKETS,
        )
        self.lag = gauge(
            "lenscast_consumer_lag", "High watermark minus committed offset", ["topic", "partition"]
        )
        self.db_up = gauge("lenscast_db_up", "1 when the last database write succeeded")
        self.paused = gauge("lenscast_paused", "1 while consumption is paused (database down)")
        self.db_retries = counter("lenscast_db_retries", "Failed batch writes that were retried")
        self.batches_cut_short = counter(
            "lenscast_batches_cut_short",
            "Batches stored in part because their processing reached its deadline",
        )
        self.db_up.set(1)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)  # python_info{version, implementation}
        Info("lenscast_build", "The running lenscast", registry=r).info({"version": __version__})
        self.model_info = Info("lenscast_model", "The mass model in use", registry=r)

    def set_model(self, identity: ModelIdentity) -> None:
        """Label ``lenscast_model_info`` with the loaded model's identity."""
        self.model_info.info(
            {
                "name": identity.name,
                "version": identity.version,
                "onnx_sha256": identity.onnx_sha256,
                "parameter_spec_version": identity.parameter_spec_version,
            }
        )

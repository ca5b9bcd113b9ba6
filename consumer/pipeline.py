"""The pipeline: raw packets in, result rows, image rows and rejected rows out.

:func:`process_batch` is pure steps, no I/O besides the model call (docs/architecture.md):

1. **decode** every packet (:func:`lenscast.consumer.decoding.decode_alert`); a failure is a
rejected
   row with the decoder's reason;
2. **stack** the cutouts and run the CNN **once per chunk** of ``inference_chunk`` packets
   (:class:`lenscast.model.predictor.OnnxMassPredictor`), on a background thread while this thread
   decodes the next chunk and solves the previous one (:mod:`lenscast.consumer.inference_thread`);
   non-finite outputs reject that alert (``inference.non_finite``); a model with a lens-evidence
   output gives each alert its ``p_lens``, and alerts below the threshold in force
   (:func:`p_lens_threshold`) are kept but flagged ``no_lens``: their images and arrival dates
   are still stored, and the flag on their row says the model sees no lens there;
3. **physics** (:mod:`lenscast.model.image_prediction`, :mod:`lenscast.model.uncertainty`): when the
alert carries a
   transient, its position is one observed lensed image, which fixes the source; all images,
   magnifications, time delays and their 16/50/84 percentiles (Monte Carlo over the predicted
   sigma) follow, and for each image the predicted arrival MJD of the transient
   (:mod:`lenscast.consumer.pipeline_physics`). Without a
   transient the source position is not observable: only the lens parameters (which need no
   source) are stored, with no images. Redshift errors are drawn with the mass model, and a
   missing redshift comes from a prior, so every transient alert gets delays and arrival dates
   (the result records which redshifts were measured);
4. **rows**: one result row per alert (:class:`lenscast.db.models.LensResult` columns, parameter
names
   from :mod:`lenscast.model.parameter_spec`), one image row per predicted image.

Every packet ends in exactly one of ``results`` or ``rejected`` (checked at the end of each call);
a failure in any step for one alert becomes its rejected row with a reason code and the raw
bytes, never an exception that loses the batch and never a silently dropped alert. Each step
turns what it expects to go wrong into its own reason; anything else that raises while one
alert is handled (building its row, or a bug anywhere in a batch) is caught here too: the batch
is then processed again one packet at a time, and a packet that still raises is rejected as
``pipeline.internal_error`` (logged with its traceback). :func:`process_batch` therefore never
raises on its input.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from lenscast.consumer.alert import AlertRejected, LensCandidateAlert
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.inference_thread import inference_pool
from lenscast.consumer.pipeline_physics import solve_images
from lenscast.consumer.settings import PipelineSettings
from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import MassPrediction, ModelIdentity
from lenscast.model.redshifts import MEASURED

log = logging.getLogger(__name__)

Row = dict[str, Any]
#: Bytes of a packet over the size limit kept in its rejected row (the rest is only hashed).
OVERSIZED_HEAD_BYTES = 65536
#: Reason of a packet whose alert id already has a result from another packet
#: (:mod:`lenscast.db.writer` keeps the first; a redelivery of the same packet is not a duplicate).
DUPLICATE_ID = "alert.duplicate_id"
#: Reason of a packet whose processing raised where no step expected it (a bug).
INTERNAL_ERROR = "pipeline.internal_error"


class Predictor(Protocol):
    """What the pipeline needs of :class:`lenscast.model.predictor.OnnxMassPredictor`."""

    identity: ModelIdentity
    default_p_lens_threshold: float

    @property
    def input_shape(self) -> tuple[int, int, int]: ...  # noqa: D102

    def predict(self, cutouts: NDArray[np.floating]) -> MassPrediction: ...  # noqa: D102


@dataclass(frozen=True)
class RawMessage:
    """One packet and where it came from.

    Attributes
    ----------
    value : bytes
        The message value as received (Confluent wire format or an Avro container).
    topic : str
        Kafka topic, or ``file:<path>`` for archive files.
    partition, offset : int
        Kafka partition and offset, or 0 and the packet's index in the file.
    timestamp : datetime or None
        The message's (producer or broker) timestamp, UTC.
    """

    value: bytes
    topic: str
    partition: int
    offset: int
    timestamp: datetime | None = None


@dataclass
class BatchOutcome:
    """What one batch produced; each input message is in ``results`` or ``rejected``.

    Attributes
    ----------
    results : list of dict
        ``lens_results`` rows.
    images : list of dict
        ``lens_images`` rows.
    rejected : list of dict
        ``rejected_alerts`` rows.
    timings_s : dict of str to float
        Wall time of each step (``decode``, ``infer``, ``physics``, ``total``), seconds.
    """

    results: list[Row] = field(default_factory=list)
    images: list[Row] = field(default_factory=list)
    rejected: list[Row] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def n_messages(self) -> int:
        """Messages accounted for (results plus rejected)."""
        return len(self.results) + len(self.rejected)


@dataclass
class _Accepted:
    """An alert that is still on its way to a result row."""

    message: RawMessage
    alert: LensCandidateAlert
    mean: dict[str, float] = field(default_factory=dict)
    sigma: dict[str, float] = field(default_factory=dict)
    p_lens: float | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def rejected_row(
    message: RawMessage,
    reason: str,
    detail: str,
    *,
    alert_id: str | None = None,
    model_version: str | None = None,
) -> Row:
    """Build the ``rejected_alerts`` row for ``message``."""
    return {
        "alert_id": alert_id,
        "source_topic": message.topic,
        "source_partition": message.partition,
        "source_offset": message.offset,
        "reason": reason,
        "detail": detail[:1000],
        "raw": bytes(message.value),
        "model_version": model_version,
        "message_timestamp": message.timestamp,
        "rejected_at": _now(),
    }


def _oversized_row(message: RawMessage, exc: AlertRejected) -> Row:
    """The rejected row of a packet over the size limit: its head, its size and its hash.

    Storing tens of megabytes whole would cost several copies of them in the driver and the
    database (1 GiB of RSS for one 95 MB message): the first :data:`OVERSIZED_HEAD_BYTES` bytes
    identify the packet, the SHA-256 of all of it proves which one it was.
    """
    value = message.value
    digest = hashlib.sha256(value).hexdigest()
    detail = f"{exc.detail}; stored its first {OVERSIZED_HEAD_BYTES} bytes; sha256 {digest}"
    row = rejected_row(message, exc.reason, detail, alert_id=exc.alert_id)
    row["raw"] = bytes(memoryview(value)[:OVERSIZED_HEAD_BYTES])
    return row


def _decode(
    messages: Sequence[RawMessage],
    settings: PipelineSettings,
    input_shape: tuple[int, int, int],
    outcome: BatchOutcome,
    seen: dict[str, RawMessage],
) -> list[_Accepted]:
    """Decode a chunk; ``seen`` (alert id to packet, across the batch's chunks) is updated."""
    accepted: list[_Accepted] = []
    for message in messages:
        try:
            alert = decode_alert(bytes(message.value), settings=settings.decoding)
        except AlertRejected as exc:
            if exc.reason == "packet.too_large" and len(message.value) > OVERSIZED_HEAD_BYTES:
                outcome.rejected.append(_oversized_row(message, exc))
            else:
                outcome.rejected.append(
                    rejected_row(message, exc.reason, exc.detail, alert_id=exc.alert_id)
                )
            continue
        except Exception as exc:  # a decoder bug must not take the consumer down
            log.exception(
                "decoder failed unexpectedly on %s[%d]@%d",
                message.topic,
                message.partition,
                message.offset,
            )
            outcome.rejected.append(
                rejected_row(message, "decode.internal_error", f"{type(exc).__name__}: {exc}")
            )
            continue
        if tuple(alert.cutouts.shape) != input_shape:
            outcome.rejected.append(
                rejected_row(
                    message,
                    "cutout.model_shape",
                    f"cutouts {tuple(alert.cutouts.shape)} but the model takes {input_shape}",
                    alert_id=alert.alert_id,
                )
            )
            continue
        first = seen.setdefault(alert.alert_id, message)
        if first is not message:  # one result per alert id: the batch's first packet keeps it
            outcome.rejected.append(
                rejected_row(
                    message,
                    DUPLICATE_ID,
                    f"alert id already taken in this batch by {_where(first)}",
                    alert_id=alert.alert_id,
                )
            )
            continue
        accepted.append(_Accepted(message, alert))
    return accepted


def _where(message: RawMessage) -> str:
    return f"{message.topic}[{message.partition}]@{message.offset}"


@dataclass(frozen=True)
class _ModelCall:
    """The model's answer for one chunk: a prediction or the exception it raised."""

    prediction: MassPrediction | None
    error: Exception | None
    seconds: float


@dataclass
class _Chunk:
    """A slice of the batch on its way through the pipeline."""

    accepted: list[_Accepted]
    outcome: BatchOutcome
    inference: Future[_ModelCall]


def _call_model(accepted: list[_Accepted], predictor: Predictor) -> _ModelCall:
    """One model call for a chunk (thread-safe: touches nothing but the predictor)."""
    if not accepted:
        return _ModelCall(None, None, 0.0)
    started = time.perf_counter()
    try:
        cutouts = np.stack([a.alert.cutouts for a in accepted]).astype(np.float32, copy=False)
        prediction = predictor.predict(cutouts)
    except Exception as exc:  # handed to the caller's thread, which rejects the chunk
        return _ModelCall(None, exc, time.perf_counter() - started)
    return _ModelCall(prediction, None, time.perf_counter() - started)


def _apply_prediction(
    accepted: list[_Accepted], call: _ModelCall, predictor: Predictor, outcome: BatchOutcome
) -> list[_Accepted]:
    """Attach the model outputs; alerts whose outputs are not finite are rejected."""
    if not accepted:
        return []
    version = predictor.identity.version
    if call.prediction is None:  # the model failing for the chunk rejects each alert, with why
        exc = call.error
        log.error("model call failed for a chunk of %d", len(accepted), exc_info=exc)
        for a in accepted:
            outcome.rejected.append(
                rejected_row(
                    a.message,
                    "inference.error",
                    f"{type(exc).__name__}: {exc}",
                    alert_id=a.alert.alert_id,
                    model_version=version,
                )
            )
        return []
    prediction = call.prediction
    names = spec.MASS_PARAMETER_NAMES
    # Python floats per parameter, converted once per chunk rather than once per element.
    means = {n: np.asarray(prediction.mean[n], dtype=float).tolist() for n in names}
    sigmas = {n: np.asarray(prediction.sigma[n], dtype=float).tolist() for n in names}
    p_lens = None if prediction.p_lens is None else np.asarray(prediction.p_lens, float).tolist()
    kept: list[_Accepted] = []
    for i, a in enumerate(accepted):
        a.mean = {n: means[n][i] for n in names}
        a.sigma = {n: sigmas[n][i] for n in names}
        a.p_lens = None if p_lens is None else p_lens[i]
        values = [*a.mean.values(), *a.sigma.values()]
        if a.p_lens is not None:
            values.append(a.p_lens)
        if not all(map(math.isfinite, values)):
            bad = [
                n
                for n in spec.MASS_PARAMETER_NAMES
                if not (np.isfinite(a.mean[n]) and np.isfinite(a.sigma[n]))
            ]
            if a.p_lens is not None and not np.isfinite(a.p_lens):
                bad.append(spec.LENS_PROBABILITY.name)
            outcome.rejected.append(
                rejected_row(
                    a.message,
                    "inference.non_finite",
                    f"non-finite prediction for {', '.join(bad)}",
                    alert_id=a.alert.alert_id,
                    model_version=version,
                )
            )
            continue
        kept.append(a)
    return kept


def _out_of_range(mean: dict[str, float], p_lens: float | None) -> str | None:
    names = [p.name for p in spec.MASS_PARAMETERS if not p.low <= mean[p.name] <= p.high]
    evidence = spec.LENS_PROBABILITY
    if p_lens is not None and not evidence.low <= p_lens <= evidence.high:
        names.append(evidence.name)
    return ",".join(names) or None


def p_lens_threshold(settings: PipelineSettings, predictor: Predictor) -> float:
    """The ``p_lens`` threshold in force: the settings', else the model card's default."""
    if settings.p_lens_threshold is not None:
        return settings.p_lens_threshold
    return predictor.default_p_lens_threshold


def lens_evidence_fields(p_lens: float | None, threshold: float) -> Row:
    """``p_lens``, the threshold applied and the ``no_lens`` flag of one result row.

    Parameters
    ----------
    p_lens : float or None
        The model's probability that the cutout shows a galaxy-scale strong lens (0..1);
        None for a model without that output.
    threshold : float
        Results with ``p_lens`` below it are flagged (kept, with ``no_lens`` true).

    Returns
    -------
    dict
        All three NULL when there is no ``p_lens``: nothing is flagged then.
    """
    if p_lens is None:
        return {"p_lens": None, "p_lens_threshold": None, "no_lens": None}
    return {"p_lens": p_lens, "p_lens_threshold": threshold, "no_lens": p_lens < threshold}


def _result_row(
    a: _Accepted, identity: ModelIdentity, settings: PipelineSettings, threshold: float
) -> Row:
    alert, message = a.alert, a.message
    transient = alert.transient
    processed_at = _now()
    latency = (processed_at - message.timestamp).total_seconds() if message.timestamp else None
    has_z = alert.z_lens is not None and alert.z_source is not None
    row: Row = {
        "alert_id": alert.alert_id,
        "candidate_id": alert.candidate_id,
        "ra": alert.ra,
        "dec": alert.dec,
        "mjd": alert.mjd,
        "survey": alert.provenance.survey,
        "upstream_broker": alert.provenance.broker,
        "upstream_alert_id": alert.provenance.upstream_alert_id,
        "model_name": identity.name,
        "model_version": identity.version,
        "onnx_sha256": identity.onnx_sha256,
        "parameter_spec_version": identity.parameter_spec_version,
        "alert_schema_version": alert.schema_version,
        **a.mean,
        **{p.sigma_name: a.sigma[p.name] for p in spec.MASS_PARAMETERS},
        "out_of_range": _out_of_range(a.mean, a.p_lens),
        **lens_evidence_fields(a.p_lens, threshold),
        "source_x": None,
        "source_y": None,
        "n_images": None,
        "image_count_mismatch_fraction": None,
        "z_lens": alert.z_lens,
        "z_lens_err": alert.z_lens_err,
        "z_source": alert.z_source,
        "z_source_err": alert.z_source_err,
        # The physics step marks prior redshifts for the transient alerts it solves.
        "z_lens_origin": MEASURED if alert.z_lens is not None else None,
        "z_source_origin": MEASURED if alert.z_source is not None else None,
        "z_lens_used": None,
        "z_source_used": None,
        "time_delay_distance_mpc": None,
        "cosmology": settings.cosmology.label if has_z else None,
        "cosmology_h0": settings.cosmology.h0 if has_z else None,
        "cosmology_om0": settings.cosmology.om0 if has_z else None,
        "has_transient": transient is not None,
        "transient_dia_source_id": transient.dia_source_id if transient else None,
        "transient_ra": transient.ra if transient else None,
        "transient_dec": transient.dec if transient else None,
        "transient_mjd": transient.mjd if transient else None,
        "transient_band": transient.band if transient else None,
        "transient_flux": transient.flux if transient else None,
        "transient_x": transient.x_arcsec if transient else None,
        "transient_y": transient.y_arcsec if transient else None,
        "source_topic": message.topic,
        "source_partition": message.partition,
        "source_offset": message.offset,
        "message_timestamp": message.timestamp,
        "processed_at": processed_at,
        "latency_s": latency,
    }
    return row


def _start_inference(
    accepted: list[_Accepted], predictor: Predictor, pool: ThreadPoolExecutor | None
) -> Future[_ModelCall]:
    """Run the model on a chunk, on the inference thread when there is one."""
    if pool is not None:
        return pool.submit(_call_model, accepted, predictor)
    done: Future[_ModelCall] = Future()
    done.set_result(_call_model(accepted, predictor))
    return done


def _finish_chunk(
    chunk: _Chunk, predictor: Predictor, settings: PipelineSettings, timings: dict[str, float]
) -> None:
    """Model outputs to rows for one chunk (waits for its model call)."""
    call = chunk.inference.result()
    timings["infer"] += call.seconds
    started = time.perf_counter()
    accepted = _apply_prediction(chunk.accepted, call, predictor, chunk.outcome)
    identity = predictor.identity
    # Asked only of a model that gave p_lens: one without needs no threshold at all.
    rated = any(a.p_lens is not None for a in accepted)
    threshold = p_lens_threshold(settings, predictor) if rated else spec.DEFAULT_P_LENS_THRESHOLD
    names = spec.MASS_PARAMETER_NAMES
    physics = solve_images(
        [a.alert for a in accepted],
        {n: np.array([a.mean[n] for a in accepted]) for n in names},
        {n: np.array([a.sigma[n] for a in accepted]) for n in names},
        settings=settings,
        model_version=identity.version,
    )
    for a, solved in zip(accepted, physics, strict=True):
        if isinstance(solved, AlertRejected):
            chunk.outcome.rejected.append(
                rejected_row(
                    a.message,
                    solved.reason,
                    solved.detail,
                    alert_id=a.alert.alert_id,
                    model_version=identity.version,
                )
            )
            continue
        try:
            row = _result_row(a, identity, settings, threshold)
            row.update(solved.result_fields)
        except Exception as exc:  # a bug must cost this alert, not the batch
            log.exception("building the row of %r failed", a.alert.alert_id)
            chunk.outcome.rejected.append(
                rejected_row(
                    a.message,
                    INTERNAL_ERROR,
                    f"{type(exc).__name__}: {exc}",
                    alert_id=a.alert.alert_id,
                    model_version=identity.version,
                )
            )
            continue
        chunk.outcome.results.append(row)
        chunk.outcome.images.extend(solved.images)
    timings["physics"] += time.perf_counter() - started


#: Fewest packets per model call when a small batch is cut up so that the model still overlaps.
MIN_OVERLAP_CHUNK = 4


def chunk_size(n: int, settings: PipelineSettings) -> int:
    """Packets per model call for an ``n``-packet batch.

    ``settings.inference_chunk``, except that with the inference thread a batch of fewer than
    four such chunks is cut into about four (of at least :data:`MIN_OVERLAP_CHUNK`): at low
    load, batches close on their time limit with a few dozen packets, and in one or three
    chunks the model would barely overlap decoding and physics (batches of 24 and 48 sample
    packets, fast model: 15 % less wall time, 2026-11-27; 12 packets: no change).
    """
    size = max(1, settings.inference_chunk)
    if not settings.overlap_inference:
        return size
    return min(size, max(MIN_OVERLAP_CHUNK, -(-n // 4)))


def chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each chunk of an ``n``-packet batch: short at both ends.

    With the model on its own thread, it waits for the first chunk's decoding and this thread
    waits for the last chunk's inference before that chunk's physics: the two cores overlap
    everywhere but there. A first and a last chunk of ``size // 4`` packets shrink those
    waits (by ~0.1 ms per alert at 256-packet batches) at the cost of two smaller model calls.

    Parameters
    ----------
    n : int
        Packets in the batch.
    size : int
        Packets per model call in the middle of the batch (``inference_chunk``, >= 1).
    """
    if n <= size:
        return [(0, n)] if n else []
    edge = max(1, size // 4)
    cuts = [0, edge]
    while n - cuts[-1] > size + edge:
        cuts.append(cuts[-1] + size)
    if n - cuts[-1] > edge:
        cuts.append(n - edge)
    cuts.append(n)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def process_batch(
    messages: Sequence[RawMessage],
    *,
    predictor: Predictor,
    settings: PipelineSettings,
    deadline: float | None = None,
) -> BatchOutcome:
    """Turn a batch of packets (or, by a deadline, its first ones) into rows; never raises.

    The batch is cut into chunks of ``settings.inference_chunk`` packets (shorter ones at both
    ends, :func:`chunk_bounds`; smaller ones in a small batch, :func:`chunk_size`). With
    ``settings.overlap_inference`` the model runs on a chunk in a background thread
    (onnxruntime releases the GIL) while this thread decodes the next chunk and solves the
    physics of the previous one, so a second core hides the cheaper of the two; the rows are
    the same either way, in the order of ``messages``.

    With a ``deadline``, no new chunk is started once it has passed (the first always is): the
    outcome then covers the first ``outcome.n_messages`` packets only, and the caller keeps the
    others for later. The Kafka loop passes one so that a batch of costly packets can never hold
    it away from polling past ``max.poll.interval.ms``.

    Parameters
    ----------
    messages : sequence of RawMessage
        Packets in any framing; the order is kept in the rows.
    predictor : Predictor
        The ONNX mass-model predictor (called once per chunk).
    settings : PipelineSettings
        Cosmology, Monte Carlo samples and seed, decoding settings, chunking.
    deadline : float, optional
        ``time.monotonic()`` after which no further chunk is started, seconds.

    Returns
    -------
    BatchOutcome
        ``len(results) + len(rejected) == len(messages)`` (the first ``n_messages`` of them
        when the deadline cut the batch short), in order; ``timings_s`` holds the time spent
        in each step (``decode``, ``infer``, ``physics``; seconds, summed over chunks, so with
        overlap they add up to more than the wall time) and ``total`` (wall time). A packet
        whose processing raised is rejected as ``pipeline.internal_error``.
    """
    try:
        return _process(messages, predictor, settings, deadline)
    except Exception:  # a bug in a step: find the packet it is about, keep the others
        log.exception("batch of %d failed; processing it packet by packet", len(messages))
    started = time.perf_counter()
    merged = BatchOutcome(timings_s={"decode": 0.0, "infer": 0.0, "physics": 0.0})
    for message in messages:
        if merged.n_messages and _past(deadline):
            break
        try:
            single = _process([message], predictor, settings)
        except Exception as exc:
            log.exception(
                "processing failed on %s[%d]@%d", message.topic, message.partition, message.offset
            )
            single = BatchOutcome(
                rejected=[rejected_row(message, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")]
            )
        merged.results.extend(single.results)
        merged.images.extend(single.images)
        merged.rejected.extend(single.rejected)
        for step, seconds in single.timings_s.items():
            if step != "total":
                merged.timings_s[step] += seconds
    merged.timings_s["total"] = time.perf_counter() - started
    return merged


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _process(
    messages: Sequence[RawMessage],
    predictor: Predictor,
    settings: PipelineSettings,
    deadline: float | None = None,
) -> BatchOutcome:
    """:func:`process_batch` without its safety net (raises on a bug)."""
    started = time.perf_counter()
    timings = {"decode": 0.0, "infer": 0.0, "physics": 0.0}
    size = chunk_size(len(messages), settings)
    pool = inference_pool() if settings.overlap_inference and len(messages) > size else None
    chunks: list[_Chunk] = []
    seen: dict[str, RawMessage] = {}
    taken = 0
    for first, stop in chunk_bounds(len(messages), size):
        if chunks and _past(deadline):
            log.warning("batch cut short by its deadline at %d of %d packets", first, len(messages))
            break
        taken = stop
        t0 = time.perf_counter()
        outcome = BatchOutcome()
        accepted = _decode(messages[first:stop], settings, predictor.input_shape, outcome, seen)
        timings["decode"] += time.perf_counter() - t0
        chunks.append(_Chunk(accepted, outcome, _start_inference(accepted, predictor, pool)))
        if len(chunks) > 1:  # the model works on this chunk while we finish the one before
            _finish_chunk(chunks[-2], predictor, settings, timings)
    if chunks:
        _finish_chunk(chunks[-1], predictor, settings, timings)
    merged = BatchOutcome()
    for chunk in chunks:
        merged.results.extend(chunk.outcome.results)
        merged.images.extend(chunk.outcome.images)
        merged.rejected.extend(chunk.outcome.rejected)
    merged.timings_s = {**timings, "total": time.perf_counter() - started}
    if merged.n_messages != taken:  # an invariant, not input validation
        raise AssertionError(f"pipeline accounted for {merged.n_messages} of {taken} messages")
    return merged

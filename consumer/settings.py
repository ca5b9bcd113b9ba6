"""Typed settings of the pipeline and the Kafka consumer service, built once in ``main()``.

Values come from ``LENSCAST_*`` environment variables, overridden by command-line options;
the ``*_from_env`` functions are the only places that read the environment, and they run in
the CLI's ``run()``, never at import. Secrets (SASL password, SSL key password, database
password) may come from files (``*_FILE`` variables, for Docker/Kubernetes secrets) and are
shown only through :meth:`ConsumerSettings.redacted`.

Environment variables
---------------------
The table of ``LENSCAST_*`` variables, their defaults and meanings is
:data:`lenscast.consumer.settings_table.ROWS`, rendered into ``consumer/SERVICE.md`` (``python -m
lenscast.consumer.settings_table``); the physics defaults are :mod:`lenscast.model.defaults`.

A value that does not parse is an error naming its variable, e.g.
``LENSCAST_BATCH_MAX_MESSAGES='abc': not an integer``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import URL

from lenscast.consumer.decode_settings import DecodeSettings
from lenscast.db.engine import parse_url, redact, url_from_env
from lenscast.model.cosmology_limits import cosmology_problem
from lenscast.model.defaults import DEFAULT_H0, DEFAULT_MC_SAMPLES, DEFAULT_OM0
from lenscast.model.predictor import DEFAULT_MODEL_PATH

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
#: librdkafka keys whose values are secrets: never logged.
_SECRET_MARKERS = ("password", "secret", "oauthbearer.config", "key.pem", "jaas")


def parse_bool(value: str | bool) -> bool:
    """Parse ``"true"/"1"/"yes"/"on"`` and ``"false"/"0"/"no"/"off"/""`` (any case).

    Raises
    ------
    ValueError
        For anything else (a typo must not silently mean true).
    """
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


#: An integer or a float setting.
_Number = TypeVar("_Number", int, float)


def _env_number(
    env: Mapping[str, str], name: str, default: _Number, parse: Callable[[str], _Number], what: str
) -> _Number:
    """``parse`` of variable ``name``, ``default`` when unset or empty; ``what`` names the kind."""
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        return parse(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: not {what}") from None


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """Integer variable ``name`` (``default`` when unset or empty).

    Raises
    ------
    ValueError
        ``NAME='value': not an integer``.
    """
    return _env_number(env, name, default, int, "an integer")


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    """Finite number variable ``name`` (``default`` when unset or empty).

    Raises
    ------
    ValueError
        ``NAME='value': not a number`` (or ``not a finite number``).
    """
    value = _env_number(env, name, default, float, "a number")
    if not math.isfinite(value):
        raise ValueError(f"{name}={env.get(name)!r}: not a finite number")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """Boolean variable ``name`` (:func:`parse_bool`; ``default`` when unset).

    Raises
    ------
    ValueError
        ``NAME='value': not a boolean (1/0, true/false, yes/no, on/off)``.
    """
    text = env.get(name)
    if text is None:
        return default
    try:
        return parse_bool(text)
    except ValueError:
        raise ValueError(
            f"{name}={text!r}: not a boolean (1/0, true/false, yes/no, on/off)"
        ) from None


def is_secret_key(key: str) -> bool:
    """Whether a librdkafka configuration key holds a secret."""
    return any(marker in key.lower() for marker in _SECRET_MARKERS)


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``config`` with secret values replaced by ``***`` (for logs and errors)."""
    return {k: ("***" if is_secret_key(k) and v else v) for k, v in config.items()}


@dataclass(frozen=True)
class Cosmology:
    """Flat Lambda-CDM cosmology used for time delays (astropy ``FlatLambdaCDM``).

    Attributes
    ----------
    h0 : float
        Hubble constant, km/s/Mpc, in :data:`lenscast.model.cosmology_limits.H0_RANGE`.
    om0 : float
        Matter density today, in :data:`lenscast.model.cosmology_limits.OM0_RANGE`.

    Raises
    ------
    ValueError
        For values outside those ranges or not finite.
    """

    h0: float = DEFAULT_H0
    om0: float = DEFAULT_OM0

    def __post_init__(self) -> None:
        problem = cosmology_problem(self.h0, self.om0)
        if problem is not None:
            raise ValueError(f"cosmology: {problem}")

    @property
    def label(self) -> str:
        """Short text stored with each result, e.g. ``FlatLambdaCDM(H0=70, Om0=0.3)``."""
        return f"FlatLambdaCDM(H0={self.h0:g}, Om0={self.om0:g})"


@dataclass(frozen=True)
class PipelineSettings:
    """Settings of :func:`lenscast.consumer.pipeline.process_batch` (broker-independent).

    Attributes
    ----------
    cosmology : Cosmology
    n_mc_samples : int
        Monte Carlo draws per alert for the image and delay percentiles (0: no percentiles).
    seed : int
        Seed of those draws (results are reproducible).
    decoding : DecodeSettings or None
        Settings handed to :func:`lenscast.consumer.decoding.decode_alert` (None: its defaults).
    inference_chunk : int
        Packets per model call; a batch is processed in chunks of this size.
    overlap_inference : bool
        Run the model on a background thread, overlapping decoding and physics (two cores).
    p_lens_threshold : float or None
        Results whose ``p_lens`` (probability of a lens, 0..1) is below this are flagged
        ``no_lens``; None: the model card's ``lens_evidence.default_threshold``, else 0.5.
    """

    cosmology: Cosmology = field(default_factory=Cosmology)
    n_mc_samples: int = DEFAULT_MC_SAMPLES
    seed: int = 0
    decoding: DecodeSettings | None = None
    inference_chunk: int = 32
    overlap_inference: bool = True
    p_lens_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.n_mc_samples < 0:
            raise ValueError(f"n_mc_samples must be >= 0, not {self.n_mc_samples}")
        if self.inference_chunk < 1:
            raise ValueError(f"inference_chunk must be >= 1, not {self.inference_chunk}")
        threshold = self.p_lens_threshold
        if threshold is not None and not 0.0 <= threshold <= 1.0:  # NaN fails this too
            raise ValueError(f"p_lens_threshold must be in [0, 1], not {threshold}")


@dataclass(frozen=True)
class KafkaSecurity:
    """SASL/SSL settings passed through to librdkafka unchanged (None: not set)."""

    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)

    def kafka_config(self) -> dict[str, str]:
        """The librdkafka keys for the values that are set."""
        pairs = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password,
        }
        return {k: v for k, v in pairs.items() if v is not None}


@dataclass(frozen=True)
class ConsumerSettings:
    """Everything ``lenscast consume`` needs; see the module docstring for the variables.

    Attributes
    ----------
    bootstrap_servers : str
    topics : tuple of str
    group_id : str
    db_url : URL
    model_path : Path
    batch_max_messages : int
        A batch is processed when it holds this many messages ...
    batch_max_wait_s : float
        ... or when this long has passed since its first message.
    auto_offset_reset : str
    session_timeout_ms, max_poll_interval_ms : int
    queued_max_kbytes, fetch_max_bytes : int
        Bounds on the client's prefetch queue (librdkafka's default is 64 MB per consumer).
    fetch_wait_max_ms : int
        Longest time the broker may hold a fetch waiting for data (latency on a quiet topic).
    overlap_store : bool
        Under a backlog (a full batch), write the batch on a writer thread while the next one
        is polled and processed (its offsets are committed only after its transaction, in
        order); a batch that closed on its time limit is written at once, which commits it
        sooner. Off for an in-memory SQLite database, which a second thread cannot see.
    security : KafkaSecurity
    extra_kafka : dict of str to str
        Further librdkafka settings (``--kafka-option key=value``), applied last.
    pipeline : PipelineSettings
    metrics_port : int or None
        Port of the HTTP endpoint serving ``/metrics`` (Prometheus) and ``/healthz``.
    metrics_host : str
        Address that endpoint binds (``0.0.0.0``: all interfaces, for a container's health
        check and scrapes from other containers).
    log_interval_s : float
        Seconds between progress lines (alerts/s, lag, rejections by reason) while consuming;
        0 switches them off.
    health_file : Path or None
        File rewritten after every loop iteration (liveness for file-based health checks).
    db_retry_initial_s, db_retry_max_s : float
        Exponential backoff while the database is unreachable.
    log_format : str
        ``"json"`` (one object per line) or ``"text"``.
    log_level : str
    """

    bootstrap_servers: str
    db_url: URL
    topics: tuple[str, ...] = ("lens-candidates",)
    group_id: str = "lenscast"
    model_path: Path = DEFAULT_MODEL_PATH
    batch_max_messages: int = 256
    batch_max_wait_s: float = 0.25
    auto_offset_reset: str = "earliest"
    session_timeout_ms: int = 45000
    max_poll_interval_ms: int = 300000
    # Room for two default batches of ~70 KB packets: the client fetches the next batch while
    # this one is processed (16 MiB held fewer than one batch and stalled the loop on fetches).
    queued_max_kbytes: int = 65536
    fetch_max_bytes: int = 8 * 2**20
    # librdkafka waits up to 500 ms by default for a fetch to fill; an alert that arrives on a
    # quiet topic should not wait that long (p50 latency 0.41 -> 0.34 s at half load).
    fetch_wait_max_ms: int = 100
    overlap_store: bool = True
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    extra_kafka: dict[str, str] = field(default_factory=dict, repr=False)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    metrics_port: int | None = 9108
    metrics_host: str = "0.0.0.0"
    log_interval_s: float = 60.0
    health_file: Path | None = None
    db_retry_initial_s: float = 0.5
    db_retry_max_s: float = 30.0
    log_format: str = "json"
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.batch_max_messages < 1:
            raise ValueError("batch_max_messages must be >= 1")
        if self.batch_max_wait_s <= 0:
            raise ValueError("batch_max_wait_s must be > 0")
        if not self.topics or not all(t.strip() for t in self.topics):
            raise ValueError(f"topics must be non-empty names, got {list(self.topics)}")
        if self.log_interval_s < 0:
            raise ValueError("log_interval_s must be >= 0")
        if self.log_format not in ("json", "text"):
            raise ValueError(f"log_format must be json or text, not {self.log_format!r}")

    def kafka_config(self) -> dict[str, Any]:
        """The confluent-kafka consumer configuration (holds secrets: never log it raw).

        Auto-commit and offset auto-store are off: the loop commits exactly the offsets of what
        it stored, after the database transaction commits.
        """
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.auto_offset_reset,
            "session.timeout.ms": self.session_timeout_ms,
            "max.poll.interval.ms": self.max_poll_interval_ms,
            "queued.max.messages.kbytes": self.queued_max_kbytes,
            "queued.min.messages": max(1000, 2 * self.batch_max_messages),
            "fetch.max.bytes": self.fetch_max_bytes,
            "max.partition.fetch.bytes": min(self.fetch_max_bytes, 2**21),
            "fetch.wait.max.ms": self.fetch_wait_max_ms,
            "client.id": f"lenscast-{os.getpid()}",
            "statistics.interval.ms": 0,
        }
        config.update(self.security.kafka_config())
        config.update(self.extra_kafka)
        return config

    def redacted(self) -> dict[str, Any]:
        """A loggable summary: secrets replaced by ``***``, the database URL without password."""
        return {
            "kafka": redact_config(self.kafka_config()),
            "topics": list(self.topics),
            "db_url": redact(self.db_url),
            "model_path": str(self.model_path),
            "batch_max_messages": self.batch_max_messages,
            "batch_max_wait_s": self.batch_max_wait_s,
            "metrics_port": self.metrics_port,
            "metrics_host": self.metrics_host,
            "log_interval_s": self.log_interval_s,
            "health_file": str(self.health_file) if self.health_file else None,
            "cosmology": self.pipeline.cosmology.label,
            "n_mc_samples": self.pipeline.n_mc_samples,
            "inference_chunk": self.pipeline.inference_chunk,
            "overlap_inference": self.pipeline.overlap_inference,
            "p_lens_threshold": self.pipeline.p_lens_threshold,
            "overlap_store": self.overlap_store,
        }


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``name`` from the environment, or the stripped contents of the file ``name_FILE``."""
    path = env.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return env.get(name) or None


def kafka_security_from_env(environ: Mapping[str, str] | None = None) -> KafkaSecurity:
    """SASL/SSL settings from ``LENSCAST_KAFKA_*`` variables (passwords also from ``*_FILE``)."""
    env = os.environ if environ is None else environ
    pre = "LENSCAST_KAFKA_"
    return KafkaSecurity(
        security_protocol=env.get(pre + "SECURITY_PROTOCOL") or None,
        sasl_mechanism=env.get(pre + "SASL_MECHANISM") or None,
        sasl_username=env.get(pre + "SASL_USERNAME") or None,
        sasl_password=_secret(env, pre + "SASL_PASSWORD"),
        ssl_ca_location=env.get(pre + "SSL_CA_LOCATION") or None,
        ssl_certificate_location=env.get(pre + "SSL_CERTIFICATE_LOCATION") or None,
        ssl_key_location=env.get(pre + "SSL_KEY_LOCATION") or None,
        ssl_key_password=_secret(env, pre + "SSL_KEY_PASSWORD"),
    )


def decode_settings_from_env(environ: Mapping[str, str] | None = None) -> DecodeSettings | None:
    """The decoder's size limits from ``LENSCAST_MAX_*`` variables (None: all defaults).

    Returns
    -------
    DecodeSettings or None
    """

    env = os.environ if environ is None else environ
    names = {
        "max_packet_bytes": "LENSCAST_MAX_PACKET_BYTES",
        "max_cutout_bytes": "LENSCAST_MAX_CUTOUT_BYTES",
        "max_cutout_pixels": "LENSCAST_MAX_CUTOUT_PIXELS",
        "max_entries": "LENSCAST_MAX_AVRO_ENTRIES",
    }
    limits: dict[str, Any] = {
        key: env_int(env, var, 0) for key, var in names.items() if env.get(var)
    }
    if any(value < 1 for value in limits.values()):
        raise ValueError(f"size limits must be positive: {limits}")
    if not limits:
        return None
    return replace(DecodeSettings(), **limits)


def p_lens_threshold_from_env(environ: Mapping[str, str] | None = None) -> float | None:
    """``LENSCAST_P_LENS_THRESHOLD`` as a float, or None when unset (the model's default)."""
    env = os.environ if environ is None else environ
    text = env.get("LENSCAST_P_LENS_THRESHOLD", "").strip()
    return float(text) if text else None


def cosmology_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    h0: float | None = None,
    om0: float | None = None,
) -> Cosmology:
    """The time-delay cosmology: ``h0``/``om0`` when given, else ``LENSCAST_COSMOLOGY_*``.

    Parameters
    ----------
    environ : mapping, optional
        Defaults to ``os.environ``; ``LENSCAST_COSMOLOGY_H0`` (km/s/Mpc) and
        ``LENSCAST_COSMOLOGY_OM0``, each :data:`lenscast.model.defaults.DEFAULT_H0` /
        ``DEFAULT_OM0`` when unset.
    h0, om0 : float, optional
        Command-line values (km/s/Mpc; matter density); each overrides its variable.

    Raises
    ------
    ValueError
        For a variable that is not a finite number, or a cosmology outside the accepted ranges.
    """
    env = os.environ if environ is None else environ
    return Cosmology(
        h0=env_float(env, "LENSCAST_COSMOLOGY_H0", DEFAULT_H0) if h0 is None else h0,
        om0=env_float(env, "LENSCAST_COSMOLOGY_OM0", DEFAULT_OM0) if om0 is None else om0,
    )


def add_cosmology(parser: argparse.ArgumentParser) -> None:
    """Add ``--h0`` and ``--om0`` (``consume`` and ``process`` share them)."""
    parser.add_argument(
        "--h0",
        type=float,
        help=f"H0 for time delays, km/s/Mpc (default: LENSCAST_COSMOLOGY_H0, else {DEFAULT_H0:g})",
    )
    parser.add_argument(
        "--om0",
        type=float,
        help=f"Omega_m for time delays (default: LENSCAST_COSMOLOGY_OM0, else {DEFAULT_OM0:g})",
    )


def add_p_lens_threshold(parser: argparse.ArgumentParser) -> None:
    """Add ``--p-lens-threshold`` (``consume``, ``process`` and ``demo`` share it)."""
    parser.add_argument(
        "--p-lens-threshold",
        type=float,
        help="flag results whose p_lens is below this as no_lens (default: "
        "LENSCAST_P_LENS_THRESHOLD, else the model card's default, else 0.5)",
    )


def consumer_settings_from_env(
    environ: Mapping[str, str] | None = None, **overrides: Any
) -> ConsumerSettings:
    """Build :class:`ConsumerSettings` from ``LENSCAST_*`` variables, then ``overrides``.

    Parameters
    ----------
    environ : mapping, optional
        Defaults to ``os.environ``.
    **overrides
        Field values (e.g. from command-line options); ``None`` values are ignored.

    Raises
    ------
    ValueError
        When a required value (bootstrap servers, database URL) is missing or malformed.
    """
    env = os.environ if environ is None else environ
    pre = "LENSCAST_"
    values: dict[str, Any] = {}

    def put(key: str, var: str, convert: Any = str) -> None:
        if env.get(pre + var):
            values[key] = convert(env[pre + var])

    def put_int(key: str, var: str) -> None:
        if env.get(pre + var):
            values[key] = env_int(env, pre + var, 0)

    def put_float(key: str, var: str) -> None:
        if env.get(pre + var):
            values[key] = env_float(env, pre + var, 0.0)

    put("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS")
    split = lambda v: tuple(t.strip() for t in v.split(",") if t.strip())  # noqa: E731
    put("topics", "KAFKA_TOPIC", split)
    put("topics", "KAFKA_TOPICS", split)
    put("group_id", "KAFKA_GROUP_ID")
    put("auto_offset_reset", "KAFKA_AUTO_OFFSET_RESET")
    put_int("session_timeout_ms", "KAFKA_SESSION_TIMEOUT_MS")
    put_int("max_poll_interval_ms", "KAFKA_MAX_POLL_INTERVAL_MS")
    put_int("queued_max_kbytes", "KAFKA_QUEUED_MAX_KBYTES")
    put_int("fetch_max_bytes", "KAFKA_FETCH_MAX_BYTES")
    put_int("fetch_wait_max_ms", "KAFKA_FETCH_WAIT_MAX_MS")
    put("model_path", "MODEL_PATH", Path)
    put_int("batch_max_messages", "BATCH_MAX_MESSAGES")
    put_float("batch_max_wait_s", "BATCH_MAX_WAIT_S")
    if env.get(pre + "OVERLAP_STORE"):
        values["overlap_store"] = env_bool(env, pre + "OVERLAP_STORE", True)
    if pre + "METRICS_PORT" in env:  # "" or "0" switches the endpoint off
        values["metrics_port"] = env_int(env, pre + "METRICS_PORT", 0) or None
    put("metrics_host", "METRICS_HOST")
    put_float("log_interval_s", "LOG_INTERVAL_S")
    put("health_file", "HEALTH_FILE", Path)
    put_float("db_retry_max_s", "DB_RETRY_MAX_S")
    put("log_format", "LOG_FORMAT")
    put("log_level", "LOG_LEVEL")
    db_url = url_from_env(env)
    if db_url is not None:
        values["db_url"] = db_url
    values["security"] = kafka_security_from_env(env)
    default = PipelineSettings()
    values["pipeline"] = PipelineSettings(
        cosmology=cosmology_from_env(env),
        n_mc_samples=env_int(env, pre + "MC_SAMPLES", default.n_mc_samples),
        decoding=decode_settings_from_env(env),
        inference_chunk=env_int(env, pre + "INFERENCE_CHUNK", default.inference_chunk),
        overlap_inference=env_bool(env, pre + "OVERLAP_INFERENCE", default.overlap_inference),
        p_lens_threshold=p_lens_threshold_from_env(env),
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(values.get("db_url"), str):
        values["db_url"] = parse_url(values["db_url"])
    for required in ("bootstrap_servers", "db_url"):
        if not values.get(required):
            raise ValueError(f"missing setting {required} (see lenscast consume --help)")
    return ConsumerSettings(**values)


def with_pipeline(settings: ConsumerSettings, **changes: Any) -> ConsumerSettings:
    """Return ``settings`` with fields of its :class:`PipelineSettings` replaced."""
    return replace(settings, pipeline=replace(settings.pipeline, **changes))

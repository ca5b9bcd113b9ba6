"""The environment-variable table of ``consumer/SERVICE.md``, generated from the settings.

Each row names its variables and the settings fields they set; the defaults are read from
:class:`lenscast.consumer.settings.ConsumerSettings` and
:class:`lenscast.consumer.settings.PipelineSettings` (and so from
:mod:`lenscast.model.defaults`), so the documentation cannot state a default the code does not
use. ``tests/consumer/test_settings_table.py`` checks that the committed table is this one
and that every variable the settings read has a row.

Run ``python -m lenscast.consumer.settings_table`` to print the table, ``--write
consumer/SERVICE.md`` to replace it between the ``<!-- settings-table -->`` markers.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from lenscast.consumer.settings import ConsumerSettings, PipelineSettings
from lenscast.model.defaults import DEFAULT_H0, DEFAULT_OM0

MARKER = "settings-table"


@dataclass(frozen=True)
class Row:
    """One line of the table.

    Attributes
    ----------
    variables : tuple of str
        The variables, written in full (shown in code spans, joined by commas).
    fields : tuple of str
        ``ConsumerSettings`` or ``PipelineSettings`` fields whose defaults are the default
        column, in order; empty: ``default`` is shown instead.
    meaning : str
    default : str
        The default column when ``fields`` is empty (a default that is no single field's).
    note : str
        Appended to the derived defaults, e.g. ``(`0`: off)``.
    """

    variables: tuple[str, ...]
    fields: tuple[str, ...]
    meaning: str
    default: str = ""
    note: str = ""


_K = "LENSCAST_KAFKA_"
ROWS = (
    Row((_K + "BOOTSTRAP_SERVERS",), (), "broker list", default="— (required)"),
    Row((_K + "TOPIC", _K + "TOPICS"), ("topics",), "topic(s), comma-separated"),
    Row((_K + "GROUP_ID",), ("group_id",), "consumer group (replicas share partitions)"),
    Row((_K + "AUTO_OFFSET_RESET",), ("auto_offset_reset",), "where a new group starts"),
    Row(
        (_K + "SESSION_TIMEOUT_MS",),
        ("session_timeout_ms",),
        "group session timeout (6000 for the local Tansu broker)",
    ),
    Row((_K + "MAX_POLL_INTERVAL_MS",), ("max_poll_interval_ms",), ""),
    Row(
        (_K + "QUEUED_MAX_KBYTES", _K + "FETCH_MAX_BYTES"),
        ("queued_max_kbytes", "fetch_max_bytes"),
        "prefetch bounds",
    ),
    Row(
        tuple(
            _K + name
            for name in (
                "SECURITY_PROTOCOL",
                "SASL_MECHANISM",
                "SASL_USERNAME",
                "SASL_PASSWORD[_FILE]",
                "SSL_CA_LOCATION",
                "SSL_CERTIFICATE_LOCATION",
                "SSL_KEY_LOCATION",
                "SSL_KEY_PASSWORD[_FILE]",
            )
        ),
        (),
        "SASL/TLS, passed to librdkafka; secrets never logged",
        default="unset",
    ),
    Row(
        ("LENSCAST_DB_URL",)
        + tuple(
            "LENSCAST_DB_" + name
            for name in ("HOST", "PORT", "NAME", "USER", "PASSWORD[_FILE]", "DRIVER", "SSLMODE")
        ),
        (),
        "results database, the URL or its parts (see `db/README.md`)",
        default="— (required)",
    ),
    Row(
        ("LENSCAST_MODEL_PATH",),
        (),
        "model (its card must sit beside it); also shipped: `lenscast-hsc-fast.onnx` "
        "(2 views), `lenscast-hsc-fast-int8.onnx` (int8, for VNNI/AMX CPUs)",
        default="shipped `model/weights/lenscast-hsc.onnx`",
    ),
    Row(
        ("LENSCAST_BATCH_MAX_MESSAGES", "LENSCAST_BATCH_MAX_WAIT_S"),
        ("batch_max_messages", "batch_max_wait_s"),
        "micro-batching (a batch of messages that queued while the previous one was "
        "processed closes at once)",
    ),
    Row(
        ("LENSCAST_MC_SAMPLES",),
        ("n_mc_samples",),
        "Monte Carlo draws (Latin hypercube) for the 16/50/84 percentiles (0: none)",
    ),
    Row(
        ("LENSCAST_INFERENCE_CHUNK",),
        ("inference_chunk",),
        "packets per chunk: one model call (run in slices of 8) and one physics step",
    ),
    Row(
        (_K + "FETCH_WAIT_MAX_MS",),
        ("fetch_wait_max_ms",),
        "longest a fetch waits for data on a quiet topic (librdkafka's default is 500)",
    ),
    Row(
        ("LENSCAST_OVERLAP_INFERENCE",),
        ("overlap_inference",),
        "run the model on its own thread beside decoding and physics (uses a second core)",
    ),
    Row(
        ("LENSCAST_OVERLAP_STORE",),
        ("overlap_store",),
        "under a backlog (full batches), write each batch on a writer thread while the next "
        "one is polled and processed; its offsets are committed only after its transaction, "
        "batches in order (a batch that closed on its time limit is written at once: lower "
        "latency)",
    ),
    Row(
        ("LENSCAST_COSMOLOGY_H0", "LENSCAST_COSMOLOGY_OM0"),
        (),
        "flat ΛCDM for time delays, H0 in km/s/Mpc (`--h0`, `--om0`, also for `process`)",
        default=f"{DEFAULT_H0:g}, {DEFAULT_OM0:g}",
    ),
    Row(
        ("LENSCAST_P_LENS_THRESHOLD",),
        (),
        "results whose `p_lens` (the model's probability of a lens) is below it are kept but "
        "flagged `no_lens`; models without a `p_lens` output store NULL and flag nothing "
        "(`--p-lens-threshold`, also for `process` and `demo`)",
        default="the model card's `lens_evidence.default_threshold`, else 0.5",
    ),
    Row(
        tuple(
            "LENSCAST_MAX_" + name
            for name in ("PACKET_BYTES", "CUTOUT_BYTES", "CUTOUT_PIXELS", "AVRO_ENTRIES")
        ),
        (),
        "size limits on hostile input",
        default="decoder defaults",
    ),
    Row(
        ("LENSCAST_METRICS_PORT",),
        ("metrics_port",),
        "HTTP `/metrics`, `/healthz`, `/readyz`",
        note="(`0`: off)",
    ),
    Row(
        ("LENSCAST_METRICS_HOST",),
        ("metrics_host",),
        "address of that endpoint (`127.0.0.1`: this host only)",
    ),
    Row(
        ("LENSCAST_LOG_INTERVAL_S",),
        ("log_interval_s",),
        "seconds between progress lines",
        note="(`0`: off)",
    ),
    Row(
        ("LENSCAST_HEALTH_FILE",),
        (),
        "JSON health state rewritten every second",
        default="unset",
    ),
    Row(
        ("LENSCAST_DB_RETRY_MAX_S",),
        ("db_retry_max_s",),
        "longest backoff while the database is down",
    ),
    Row(
        ("LENSCAST_LOG_FORMAT", "LENSCAST_LOG_LEVEL"),
        ("log_format", "log_level"),
        "one JSON object per line on stderr",
    ),
)


def _field_default(name: str) -> object:
    for cls in (ConsumerSettings, PipelineSettings):
        for f in fields(cls):
            if f.name == name:
                if f.default is not MISSING:
                    return f.default
                if f.default_factory is not MISSING:
                    return f.default_factory()
    raise KeyError(f"no settings field {name!r}")


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, tuple):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def default_text(row: Row) -> str:
    """The default column of ``row``: its fields' defaults, or its literal text."""
    if not row.fields:
        return row.default
    text = ", ".join(_show(_field_default(name)) for name in row.fields)
    return f"{text} {row.note}" if row.note else text


def markdown() -> str:
    """The table, header included, one line per :data:`ROWS` entry (no trailing newline)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for row in ROWS:
        names = ", ".join(f"`{v}`" for v in row.variables)
        lines.append(f"| {names} | {default_text(row)} | {row.meaning} |".replace("|  |", "| |"))
    return "\n".join(lines)


def documented_variables() -> set[str]:
    """Every variable named in the table (``[_FILE]`` spelled out both ways)."""
    out: set[str] = set()
    for row in ROWS:
        for name in row.variables:
            base = name.replace("[_FILE]", "")
            out.update({base, base + "_FILE"} if base != name else {name})
    return out


def replace_block(text: str, table: str) -> str:
    """``text`` with the part between the ``settings-table`` markers replaced by ``table``.

    Raises
    ------
    ValueError
        When the markers are missing.
    """
    start, end = f"<!-- {MARKER} -->\n", f"\n<!-- /{MARKER} -->"
    head, sep, rest = text.partition(start)
    _, sep2, tail = rest.partition(end)
    if not sep or not sep2:
        raise ValueError(f"no <!-- {MARKER} --> ... <!-- /{MARKER} --> block")
    return f"{head}{start}{table}{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Print the table, or write it into a Markdown file between the markers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="Markdown file to update in place")
    args = parser.parse_args(argv)
    if args.write is None:
        print(markdown())
        return 0
    try:
        text = args.write.read_text()
        args.write.write_text(replace_block(text, markdown()))
    except (OSError, ValueError) as exc:
        print(f"settings_table: {args.write}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``lenscast process FILES --db URL``: the consumer's pipeline straight from alert files.

No broker: each file's records (:func:`lenscast.consumer.framing.read_alert_file`) go through
:func:`lenscast.consumer.pipeline.process_batch` in micro-batches and are written like the consumer
writes them. Packets are identified by ``file:<path>`` and their index in the file, so processing a
file again updates rather than duplicates. A file that cannot be read as alerts at all is stored
as one rejected row (its reason, its bytes). The database schema is created or upgraded first.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from lenscast.consumer.settings import (
    PipelineSettings,
    add_cosmology,
    add_p_lens_threshold,
    cosmology_from_env,
    decode_settings_from_env,
    p_lens_threshold_from_env,
)
from lenscast.model.defaults import DEFAULT_MC_SAMPLES


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``process`` options to ``parser``."""
    parser.add_argument("files", nargs="+", type=Path, help="alert archives (.avro)")
    parser.add_argument("--db", required=True, help="database URL or SQLite file path")
    parser.add_argument("--model", type=Path, help="ONNX model (default: the shipped model)")
    add_p_lens_threshold(parser)
    parser.add_argument("--batch-size", type=int, default=256, help="alerts per model call")
    add_cosmology(parser)
    parser.add_argument(
        "--mc-samples",
        type=int,
        default=DEFAULT_MC_SAMPLES,
        help="Monte Carlo draws for percentiles (0: none)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Process the files into the database; print a summary."""
    from lenscast.consumer.alert import AlertRejected
    from lenscast.consumer.batch_store import write_outcome
    from lenscast.consumer.framing import read_alert_file
    from lenscast.consumer.pipeline import RawMessage, p_lens_threshold, process_batch, rejected_row
    from lenscast.db.engine import make_engine, redact
    from lenscast.db.migrate import upgrade
    from lenscast.db.writer import write_batch
    from lenscast.model.predictor import OnnxMassPredictor
    from lenscast.progress import progress_bar

    try:
        threshold = args.p_lens_threshold
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, not {args.batch_size}")
        settings = PipelineSettings(
            cosmology=cosmology_from_env(h0=args.h0, om0=args.om0),
            n_mc_samples=args.mc_samples,
            decoding=decode_settings_from_env(),  # LENSCAST_MAX_* size limits, as the consumer
            p_lens_threshold=p_lens_threshold_from_env() if threshold is None else threshold,
        )
    except ValueError as exc:
        print(f"lenscast process: {exc}", file=sys.stderr)
        return 2
    try:
        predictor = OnnxMassPredictor(args.model)
    except (FileNotFoundError, ValueError) as exc:  # missing model or card, or a card mismatch
        print(f"lenscast process: cannot load the model: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(args.db)
    upgrade(engine)
    stored = 0
    reasons: Counter[str] = Counter()
    flagged = 0
    started = time.monotonic()
    try:
        for path in args.files:
            topic = f"file:{path}"
            try:
                values = read_alert_file(path)
            except (OSError, AlertRejected) as exc:
                whole = RawMessage(path.read_bytes() if path.is_file() else b"", topic, 0, 0)
                reason = exc.reason if isinstance(exc, AlertRejected) else "file.unreadable"
                row = rejected_row(whole, reason, str(exc))
                write_batch(engine, results=[], images=[], rejected=[row])
                reasons[reason] += 1
                continue
            messages = [RawMessage(v, topic, 0, i) for i, v in enumerate(values)]
            progress = progress_bar(
                total=len(messages),
                unit="alert",
                desc=path.name,
                disable=args.no_progress or not sys.stderr.isatty(),
            )
            for start in range(0, len(messages), args.batch_size):
                batch = messages[start : start + args.batch_size]
                outcome = process_batch(batch, predictor=predictor, settings=settings)
                write_outcome(engine, batch, outcome)
                stored += len(outcome.results)
                flagged += sum(bool(r["no_lens"]) for r in outcome.results)
                reasons.update(r["reason"] for r in outcome.rejected)
                progress.update(len(batch))
            progress.close()
    finally:
        engine.dispose()
    seconds = time.monotonic() - started
    rejected = sum(reasons.values())
    evidence = (
        f"; {flagged} flagged no_lens (p_lens < {p_lens_threshold(settings, predictor):g})"
        if predictor.has_p_lens
        else "; the model has no p_lens output"
    )
    print(
        f"{redact(args.db)}: stored {stored} results, rejected {rejected} "
        f"({', '.join(f'{k}: {v}' for k, v in reasons.most_common()) or 'none'}) "
        f"in {seconds:.1f} s with model {predictor.identity.name} {predictor.identity.version}"
        + evidence
    )
    return 0

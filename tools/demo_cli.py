"""``lenscast demo``: the whole stream on one machine, in under two minutes.

Starts the local Tansu broker, creates a topic, replays the shipped sample stream into it and
consumes it with the production consumer loop into SQLite until every sample alert is stored or
rejected (:mod:`lenscast.tools.demo_stream`), then prints predicted versus true for the sample (its
truths ship beside it; :mod:`lenscast.tools.demo_summary`) and draws pictures: one plot per selected
alert and a gallery (:mod:`lenscast.plotting.figure`).

Everything it writes goes to ``--workdir`` (default ``./lenscast-demo``)::

    lenscast-demo.sqlite     the results (query it: lenscast query --db sqlite:///...)
    alert-<ALERT_ID>.png     cutout, critical curve, caustic, predicted images, delays
    gallery.png              a grid of the sample's alerts
    summary.txt              the table printed at the end
    tansu.log                the broker's log
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from lenscast.consumer.settings import add_p_lens_threshold, p_lens_threshold_from_env

if TYPE_CHECKING:
    from lenscast.plotting.figure import TruthOverlay
    from lenscast.plotting.plot_data import AlertPicture

#: The sample stream shipped with the package, and its truths (``lenscast make-stream`` output).
SAMPLES_DIR = Path(__file__).parents[1] / "consumer" / "samples"
DEFAULT_ALERTS = SAMPLES_DIR / "hsc-sample.avro"
DEFAULT_TRUTHS = SAMPLES_DIR / "hsc-sample-truths.jsonl"
#: The demo's SQLite database, inside its working folder.
DB_FILE = "lenscast-demo.sqlite"


@dataclass(frozen=True)
class DemoSettings:
    """Everything the demo needs, built once in :func:`run`.

    Attributes
    ----------
    workdir : Path
        Where the database and pictures go.
    db_url : URL
        Results database (SQLite in ``workdir`` by default).
    alerts : Path
        Alert archive replayed into the broker.
    truths : Path or None
        JSON Lines truths of ``alerts`` (None: no predicted-vs-true table).
    model_path : Path or None
        ONNX model (None: the shipped model).
    partitions : int
        Partitions of the demo topic.
    plots : int
        Alerts drawn one per file.
    gallery : int
        Alerts in the gallery.
    rows : int
        Alerts listed one per line in the summary table.
    timeout_s : float
        Give up when the sample is not stored by then.
    p_lens_threshold : float or None
        Flag results whose ``p_lens`` is below this (None: ``LENSCAST_P_LENS_THRESHOLD``, else
        the model card's default, else 0.5).
    """

    workdir: Path
    db_url: URL
    alerts: Path
    truths: Path | None
    model_path: Path | None
    partitions: int = 2
    plots: int = 3
    gallery: int = 12
    rows: int = 12
    timeout_s: float = 110.0
    p_lens_threshold: float | None = None


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options to ``parser``."""
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("lenscast-demo"),
        help="directory for the database, pictures and logs (default ./lenscast-demo)",
    )
    parser.add_argument("--db", help=f"results database URL (default sqlite:///WORKDIR/{DB_FILE})")
    parser.add_argument(
        "--alerts", type=Path, default=DEFAULT_ALERTS, help="alert archive to replay (the sample)"
    )
    parser.add_argument(
        "--truths",
        type=Path,
        help="truths of --alerts, JSON Lines (default: the sample's; none for other archives)",
    )
    parser.add_argument("--model", type=Path, help="ONNX model (default: the shipped model)")
    add_p_lens_threshold(parser)
    parser.add_argument("--partitions", type=int, default=2, help="topic partitions (default 2)")
    parser.add_argument("--plots", type=int, default=3, help="alerts drawn one per PNG (3)")
    parser.add_argument("--gallery", type=int, default=12, help="alerts in the gallery (12)")
    parser.add_argument("--rows", type=int, default=12, help="alerts listed in the table (12)")
    parser.add_argument(
        "--timeout", type=float, default=110.0, help="give up after this many seconds (110)"
    )


def build_settings(args: argparse.Namespace) -> DemoSettings:
    """Turn the command line into :class:`DemoSettings`."""
    from lenscast.db.engine import parse_url

    workdir = Path(args.workdir)
    threshold = (
        p_lens_threshold_from_env() if args.p_lens_threshold is None else args.p_lens_threshold
    )
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"--p-lens-threshold must be in [0, 1], not {threshold}")
    truths = args.truths
    if truths is None and Path(args.alerts).resolve() == DEFAULT_ALERTS.resolve():
        truths = DEFAULT_TRUTHS
    return DemoSettings(
        workdir=workdir,
        db_url=parse_url(args.db or f"sqlite:///{workdir / DB_FILE}"),
        alerts=Path(args.alerts),
        truths=truths,
        model_path=args.model,
        partitions=args.partitions,
        plots=args.plots,
        gallery=args.gallery,
        rows=args.rows,
        timeout_s=args.timeout,
        p_lens_threshold=threshold,
    )


class _Step:
    """Prints ``[  1.2 s] what`` lines: the demo's narration."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {text}", file=self.out, flush=True)


def truth_overlay(truth: Mapping[str, Any] | None) -> TruthOverlay | None:
    """True image and source positions of one truths row, for the pictures."""
    import numpy as np

    from lenscast.plotting.figure import TruthOverlay

    if truth is None:
        return None
    xy = np.column_stack([truth["image_x"], truth["image_y"]]).reshape(-1, 2).astype(float)
    source = None
    if truth.get("source_x") is not None and truth.get("source_y") is not None:
        source = (float(truth["source_x"]), float(truth["source_y"]))
    theta_e = truth.get("theta_e")
    return TruthOverlay(
        images=xy, source=source, theta_e=None if theta_e is None else float(theta_e)
    )


#: Characters kept as they are in a file name made from an alert id.
_FILE_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Characters of an alert id kept in its file name (names stay under every file system's 255).
_FILE_NAME_CHARS = 100


def picture_name(alert_id: str) -> str:
    """The file name of an alert's picture: one path component, whatever the id holds.

    The id comes from the packet, so it may hold ``/``, ``..``, NUL or anything else: every
    character but ASCII letters, digits, ``.``, ``_`` and ``-`` becomes ``_``, and when that
    (or cutting a long id) changed it, 8 hex digits of the id's SHA-256 keep names distinct.
    """
    safe = _FILE_NAME_UNSAFE.sub("_", alert_id)[:_FILE_NAME_CHARS]
    if safe != alert_id:
        digest = hashlib.sha256(alert_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        safe = f"{safe}-{digest}"
    return f"alert-{safe}.png"


def draw(
    settings: DemoSettings,
    pictures: Sequence[AlertPicture],
    truths: Mapping[str, Mapping[str, Any]],
    title: str,
) -> list[Path]:
    """Write one PNG for each of the first ``settings.plots`` pictures and the gallery."""
    from lenscast.plotting.figure import lens_curves, plot_alert, plot_gallery
    from lenscast.plotting.plot_data import find_cutouts

    chosen = list(pictures[: max(settings.plots, settings.gallery)])
    cutouts = find_cutouts([settings.alerts], [p.alert_id for p in chosen])
    chosen = [
        replace(p, cutouts=cutouts[p.alert_id][0], pixel_scale_arcsec=cutouts[p.alert_id][1])
        if p.alert_id in cutouts
        else p
        for p in chosen
    ]
    overlays = [truth_overlay(truths.get(p.alert_id)) for p in chosen]
    curves = [lens_curves(p) for p in chosen]
    written = [
        plot_alert(p, settings.workdir / picture_name(p.alert_id), curves=c, truth=t)
        for p, c, t in list(zip(chosen, curves, overlays, strict=True))[: settings.plots]
    ]
    n = min(settings.gallery, len(chosen))
    if n:
        gallery = settings.workdir / "gallery.png"
        written.append(
            plot_gallery(chosen[:n], gallery, curves=curves[:n], truths=overlays[:n], title=title)
        )
    return written


def stored_alert_ids(engine: Engine, model_version: str) -> list[str]:
    """Alert ids with a result by ``model_version`` (newest alert first)."""
    from lenscast.db.queries import ResultFilter, fetch_results

    rows = fetch_results(engine, ResultFilter(model_version=model_version, limit=None))
    return [row["alert_id"] for row in rows]


def run_demo(settings: DemoSettings, out: TextIO = sys.stdout) -> int:
    """Run the demo; return the exit status (0 when every sample alert was accounted for)."""
    from lenscast.db.engine import make_engine, redact
    from lenscast.db.migrate import upgrade
    from lenscast.model.predictor import OnnxMassPredictor
    from lenscast.plotting.plot_data import load_pictures
    from lenscast.tools.demo_stream import stream_archive
    from lenscast.tools.demo_summary import (
        compare,
        is_lens,
        load_truths,
        order_for_display,
        pointing_lines,
        summary_text,
    )

    step = _Step(out)
    settings.workdir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    try:
        upgrade(engine)
        step(f"results database ready: {redact(settings.db_url)}")
        predictor = OnnxMassPredictor(settings.model_path)
        identity = predictor.identity
        step(f"model {identity.name} {identity.version} (sha256 {identity.onnx_sha256[:12]}...)")
        if predictor.has_p_lens:
            threshold = settings.p_lens_threshold
            threshold = predictor.default_p_lens_threshold if threshold is None else threshold
            step(f"lens evidence: alerts with p_lens < {threshold:g} are flagged no_lens")
        else:
            step("lens evidence: the model has no p_lens output, nothing is flagged")
        try:
            stored, rejected = stream_archive(
                settings.alerts,
                db_url=settings.db_url,
                predictor=predictor,
                partitions=settings.partitions,
                timeout_s=settings.timeout_s,
                broker_log=settings.workdir / "tansu.log",
                step=step,
                p_lens_threshold=settings.p_lens_threshold,
            )
        except (TimeoutError, RuntimeError) as exc:
            print(f"lenscast demo: {exc}", file=sys.stderr)
            return 1
        step(f"consumed: {stored} stored, {rejected} rejected")
        truths = load_truths(settings.truths) if settings.truths else {}
        ids = list(truths) or stored_alert_ids(engine, identity.version)
        pictures = load_pictures(engine, ids, model_version=identity.version)
    finally:
        engine.dispose()

    comparisons = [
        compare(pictures[a], truths[a]) for a in truths if a in pictures and is_lens(truths[a])
    ]
    non_lenses = [pictures[a] for a in truths if a in pictures and not is_lens(truths[a])]
    lines = summary_text(comparisons, settings.rows, non_lenses)
    lines += ["", *pointing_lines(pictures.values(), settings.rows)]
    print("\n" + "\n".join(lines) + "\n", file=out)
    (settings.workdir / "summary.txt").write_text("\n".join(lines) + "\n")

    if comparisons:
        lenses = [pictures[c.alert_id] for c in order_for_display(comparisons)]
        # Non-lenses early enough to be drawn one per file and in the gallery.
        ordered = lenses[:2] + non_lenses + lenses[2:]
    else:
        ordered = [pictures[a] for a in ids if a in pictures]
    title = f"lenscast demo: {identity.name} {identity.version} on {settings.alerts.name}"
    if truths:
        title += "  (green +: true images)"
    written = draw(settings, ordered, truths, title)
    step("pictures: " + ", ".join(str(p) for p in written))
    db = redact(settings.db_url)
    print(f"\nNext: lenscast query --db {db} --has-transient --images --format table", file=out)
    if ordered:
        print(
            f"      lenscast plot {ordered[0].alert_id} --db {db} "
            f"--alerts {settings.alerts} --out alert.png",
            file=out,
        )
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``lenscast demo``; return the exit status."""
    from lenscast.consumer.alert import AlertRejected
    from lenscast.consumer.structured_logging import configure_logging
    from lenscast.tools.local_broker import LocalBrokerError

    configure_logging(fmt="text", level="WARNING")
    try:
        settings = build_settings(args)
    except ValueError as exc:  # a threshold that is not a probability
        print(f"lenscast demo: {exc}", file=sys.stderr)
        return 2
    try:
        return run_demo(settings)
    except (OSError, LocalBrokerError, AlertRejected) as exc:
        # A missing file, model or broker binary: say what, no traceback.
        print(f"lenscast demo: {exc}", file=sys.stderr)
        return 2

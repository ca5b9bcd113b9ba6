"""``lenscast plot ALERT_ID``: one alert's cutout, critical curve, caustic and predicted images.

The prediction comes from the results database; the cutout pixels from the alert archive
(``--alerts``), since the database does not keep them. Without ``--alerts`` (or when the alert
is not in the archives) the command says so and the panel is marked "cutout not available".

Example::

    lenscast plot lenscast-sim-7-000003 --db sqlite:///lenscast-demo.sqlite \\
        --alerts consumer/samples/hsc-sample.avro --out alert.png
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from lenscast.consumer.alert import AlertRejected
from lenscast.db.engine import make_engine, redact, url_from_env
from lenscast.db.migrate import require_schema


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``plot`` arguments to ``parser``."""
    parser.add_argument("alert_id", metavar="ALERT_ID", help="the alert to draw")
    parser.add_argument(
        "--db",
        help="results database URL (postgresql+psycopg2://..., sqlite:///path or a file path); "
        "default from LENSCAST_DB_URL / LENSCAST_DB_* variables",
    )
    parser.add_argument(
        "--out", type=Path, help="PNG to write (default: ALERT_ID.png in the current directory)"
    )
    parser.add_argument(
        "--alerts",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="alert archive holding the alert, for its cutout (repeatable)",
    )
    parser.add_argument(
        "--model-version", help="which model's prediction (default: the latest processed)"
    )


def run(args: argparse.Namespace) -> int:
    """Draw the alert; return 0, or 1 when it has no stored result."""
    from lenscast.plotting.figure import PlottingUnavailable, plot_alert
    from lenscast.plotting.plot_data import find_cutouts, load_picture

    url = args.db or url_from_env()
    if url is None:
        print("lenscast plot: no database given (--db or LENSCAST_DB_URL)", file=sys.stderr)
        return 2
    engine = make_engine(url, create=False)  # a reader creates no database
    try:
        require_schema(engine)
        picture = load_picture(engine, args.alert_id, model_version=args.model_version)
    except LookupError as exc:
        print(f"lenscast plot: {exc} in {redact(url)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if not args.alerts:
        print(
            f"lenscast plot: no --alerts archive given: {args.alert_id} is drawn without its "
            "cutout (the database does not keep pixels)",
            file=sys.stderr,
        )
    else:
        try:
            found = find_cutouts(args.alerts, [args.alert_id])
        except (OSError, AlertRejected) as exc:  # a missing file, or one that holds no alerts
            print(f"lenscast plot: cannot read --alerts: {exc}", file=sys.stderr)
            return 2
        if args.alert_id in found:
            cutouts, scale = found[args.alert_id]
            picture = replace(picture, cutouts=cutouts, pixel_scale_arcsec=scale)
        else:
            names = ", ".join(str(p) for p in args.alerts)
            print(
                f"lenscast plot: {args.alert_id} not in {names}; drawing without cutout",
                file=sys.stderr,
            )
    out = args.out or Path(f"{args.alert_id}.png")
    try:
        plot_alert(picture, out)
    except PlottingUnavailable as exc:
        print(f"lenscast plot: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0

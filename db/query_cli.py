"""``lenscast query``: stored results with their images, as a table, CSV, JSON, FITS or VOTable.

Examples::

    lenscast query --db results.sqlite --theta-e-min 1.0 --has-transient --format table
    lenscast query --db $URL --min-time-delay 10 --format json > delays.json
    lenscast query --db $URL --images --format votable --output images.vot   # opens in TOPCAT

JSON nests each result's images; the tabular formats give one row per result, or with
``--images`` one row per predicted image (result fields repeated).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from lenscast.db.queries import ResultFilter

FORMATS = ("table", "csv", "json", "fits", "votable")
#: Columns of ``--format table`` (the full record is in the other formats).
TABLE_COLUMNS = ("alert_id", "candidate_id", "mjd", "theta_e", "sigma_theta_e", "has_transient",
                 "n_images", "max_delay_days", "model_version")  # fmt: skip


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a timezone, e.g. {text}+00:00")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``query`` options to ``parser``."""
    parser.add_argument("--db", help="database URL or SQLite path (default LENSCAST_DB_*)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument("--output", type=Path, help="output file (required for fits/votable)")
    parser.add_argument("--images", action="store_true", help="one row per predicted image")
    parser.add_argument("--mjd-min", type=float, help="alert time from (MJD)")
    parser.add_argument("--mjd-max", type=float, help="alert time to (MJD)")
    parser.add_argument("--since", type=_time, help="processed at or after (ISO 8601, with tz)")
    parser.add_argument("--until", type=_time, help="processed at or before (ISO 8601, with tz)")
    parser.add_argument("--theta-e-min", type=float, help="Einstein radius at least (arcsec)")
    parser.add_argument("--theta-e-max", type=float, help="Einstein radius at most (arcsec)")
    parser.add_argument(
        "--min-time-delay",
        type=float,
        help="some image arrives at least this many days after the first",
    )
    transient = parser.add_mutually_exclusive_group()
    transient.add_argument(
        "--has-transient",
        dest="has_transient",
        action="store_const",
        const=True,
        help="only alerts with a triggering transient",
    )
    transient.add_argument(
        "--no-transient",
        dest="has_transient",
        action="store_const",
        const=False,
        help="only alerts without one",
    )
    parser.add_argument("--model-version", help="only predictions of this model version")
    parser.add_argument("--candidate-id", help="only this lens candidate")
    parser.add_argument("--alert-id", help="only this alert")
    parser.add_argument("--limit", type=int, default=1000, help="most results (default 1000)")
    parser.add_argument(
        "--rejected", action="store_true", help="instead: count rejected packets per reason"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _max_delay(result: dict[str, Any]) -> float | None:
    delays = [i["time_delay_days"] for i in result["images"] if i["time_delay_days"] is not None]
    return max(delays) if delays else None


def write_table(rows: list[dict[str, Any]], columns: tuple[str, ...], out: TextIO) -> None:
    """Write an aligned plain-text table."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3f}"
        return str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")
    out.write(f"({len(rows)} rows)\n")


def write_astropy(rows: list[dict[str, Any]], path: Path, fmt: str) -> None:
    """Write rows as a FITS binary table or a VOTable (units from :data:`.queries.UNITS`)."""
    from astropy.table import MaskedColumn, Table

    from lenscast.db.queries import UNITS

    table = Table()
    for name in rows[0] if rows else ():
        values = [_plain(r[name]) for r in rows]
        mask = [v is None for v in values]
        sample = next((v for v in values if v is not None), "")
        filler: Any = (
            False
            if isinstance(sample, bool)
            else 0
            if isinstance(sample, int)
            else math.nan
            if isinstance(sample, float)
            else ""
        )
        column = MaskedColumn(
            [filler if m else v for v, m in zip(values, mask, strict=True)], name=name, mask=mask
        )
        if name.removeprefix("image_") in UNITS and UNITS[name.removeprefix("image_")]:
            column.unit = UNITS[name.removeprefix("image_")]
        table[name] = column
    table.write(path, format="fits" if fmt == "fits" else "votable", overwrite=True)


def run(args: argparse.Namespace) -> int:
    """Run the query and write the output."""
    from lenscast.db.engine import make_engine, url_from_env
    from lenscast.db.queries import fetch_results, flatten_images, rejected_summary

    url = args.db or url_from_env()
    if url is None:
        print("lenscast query: no database given (--db or LENSCAST_DB_URL)", file=sys.stderr)
        return 2
    if args.format in ("fits", "votable") and args.output is None:
        print(f"lenscast query: --format {args.format} needs --output FILE", file=sys.stderr)
        return 2
    engine = make_engine(url)
    try:
        if args.rejected:
            summary = rejected_summary(engine)
            write_table(
                [{"reason": r, "count": n} for r, n in summary], ("reason", "count"), sys.stdout
            )
            return 0
        results = fetch_results(
            engine,
            ResultFilter(
                mjd_min=args.mjd_min,
                mjd_max=args.mjd_max,
                processed_after=args.since,
                processed_before=args.until,
                theta_e_min=args.theta_e_min,
                theta_e_max=args.theta_e_max,
                min_time_delay_days=args.min_time_delay,
                has_transient=args.has_transient,
                model_version=args.model_version,
                candidate_id=args.candidate_id,
                alert_id=args.alert_id,
                limit=args.limit,
            ),
        )
    finally:
        engine.dispose()
    for result in results:
        result["max_delay_days"] = _max_delay(result)
    rows = (
        flatten_images(results)
        if args.images
        else [{k: v for k, v in r.items() if k != "images"} for r in results]
    )
    if args.format in ("fits", "votable"):
        write_astropy(rows, args.output, args.format)
        print(f"wrote {len(rows)} rows to {args.output}")
        return 0
    out = args.output.open("w", newline="") if args.output else sys.stdout
    try:
        if args.format == "json":
            payload = rows if args.images else results
            json.dump(
                [
                    {
                        k: (
                            _plain(v)
                            if k != "images"
                            else [{ik: _plain(iv) for ik, iv in i.items()} for i in v]
                        )
                        for k, v in r.items()
                    }
                    for r in payload
                ],
                out,
                indent=1,
            )
            out.write("\n")
        elif args.format == "csv":
            writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows([{k: _plain(v) for k, v in r.items()} for r in rows])
        else:
            columns = (
                TABLE_COLUMNS
                if not args.images
                else (
                    "alert_id",
                    "image_index",
                    "x",
                    "y",
                    "magnification",
                    "time_delay_days",
                    "time_delay_p16",
                    "time_delay_p84",
                    "arrival_mjd",
                    "is_observed",
                )
            )
            write_table(rows, columns, out)
    finally:
        if args.output:
            out.close()
    return 0

"""``lenscast query``: stored results with their images: table, CSV, JSON, FITS, VOTable or ECSV.

Examples::

    lenscast query --db results.sqlite --theta-e-min 1.0 --has-transient --format table
    lenscast query --db $URL --min-time-delay 10 --format json > delays.json
    lenscast query --db $URL --min-p-lens 0.9 --has-transient --images   # likely lenses only
    lenscast query --db $URL --images --format votable --output images.vot   # opens in TOPCAT

JSON nests each result's images; the tabular formats give one row per result, or with
``--images`` one row per predicted image (result fields repeated). ``no_lens`` is true where the
model's ``p_lens`` was below the threshold in force: that row's mass model, images and arrival
dates describe a lens the model does not see (``-`` for models without ``p_lens``).
``--images`` one row per predicted image (result fields repeated). ``z_lens_origin`` and
``z_source_origin`` say whether the redshifts behind the delays were measured or drawn from the
prior; ``--format table`` shows them as ``z l/s`` (``m``: measured, ``p``: prior).
``--images`` one row per predicted image (result fields repeated; image fields the result also
has, such as the image's ``ra``/``dec``, are prefixed ``image_``). FITS, VOTable and ECSV carry
every column's unit, UCD and description and the table's provenance
(:mod:`lenscast.db.export_tables`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from lenscast.db.export_tables import plain_value
from lenscast.db.queries import ResultFilter

FORMATS = ("table", "csv", "json", "fits", "votable", "ecsv")
#: Formats written through astropy, with units, UCDs, descriptions and provenance.
ASTROPY_FORMATS = ("fits", "votable", "ecsv")
#: Binary formats, which need ``--output``.
FILE_ONLY_FORMATS = ("fits", "votable")
#: Columns of ``--format table`` (the full record is in the other formats).
TABLE_COLUMNS = ("alert_id", "candidate_id", "mjd", "theta_e", "sigma_theta_e", "p_lens",
                 "no_lens", "has_transient", "n_images", "max_delay_days", "z l/s",
                 "model_version")  # fmt: skip


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a timezone, e.g. {text}+00:00")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability in [0, 1]")
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
    parser.add_argument(
        "--min-p-lens",
        type=_probability,
        help="the model's probability of a lens at least this (0..1; excludes models without it)",
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


def _max_delay(result: dict[str, Any]) -> float | None:
    delays = [i["time_delay_days"] for i in result["images"] if i["time_delay_days"] is not None]
    return max(delays) if delays else None


def origin_code(row: dict[str, Any]) -> str | None:
    """``m/p``: lens redshift measured, source from the prior; None when neither was used."""
    origins = (row.get("z_lens_origin"), row.get("z_source_origin"))
    if None in origins:
        return None
    return "/".join("p" if o == "prior" else "m" for o in origins)


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


def query_options(args: argparse.Namespace) -> str:
    """The filters of this query as the ``lenscast query`` options that select the same rows."""
    options = [
        ("--mjd-min", args.mjd_min),
        ("--mjd-max", args.mjd_max),
        ("--since", args.since.isoformat() if args.since else None),
        ("--until", args.until.isoformat() if args.until else None),
        ("--theta-e-min", args.theta_e_min),
        ("--theta-e-max", args.theta_e_max),
        ("--min-time-delay", args.min_time_delay),
        ("--model-version", args.model_version),
        ("--candidate-id", args.candidate_id),
        ("--alert-id", args.alert_id),
        ("--limit", args.limit),
    ]
    words = [f"{flag} {value}" for flag, value in options if value is not None]
    if args.has_transient is not None:
        words.append("--has-transient" if args.has_transient else "--no-transient")
    if args.images:
        words.append("--images")
    return " ".join(words)


def run(args: argparse.Namespace) -> int:
    """Run the query and write the output."""
    from lenscast.db.engine import make_engine, url_from_env
    from lenscast.db.migrate import require_schema
    from lenscast.db.queries import fetch_results, flatten_images, rejected_summary

    url = args.db or url_from_env()
    if url is None:
        print("lenscast query: no database given (--db or LENSCAST_DB_URL)", file=sys.stderr)
        return 2
    if args.format in FILE_ONLY_FORMATS and args.output is None:
        print(f"lenscast query: --format {args.format} needs --output FILE", file=sys.stderr)
        return 2
    if args.output is not None and not args.output.parent.is_dir():
        print(f"lenscast query: no folder {args.output.parent} for --output", file=sys.stderr)
        return 2
    engine = make_engine(url, create=False)  # a reader creates no database
    try:
        require_schema(engine)
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
                min_p_lens=args.min_p_lens,
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
    if args.format in ASTROPY_FORMATS:
        from lenscast.db.export_tables import write_table as write_self_describing

        kind = "one row per predicted image" if args.images else "one row per result"
        target = args.output if args.output is not None else sys.stdout
        write_self_describing(rows, target, args.format, query=query_options(args), row_kind=kind)
        if args.output is not None:
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
                            plain_value(v)
                            if k != "images"
                            else [{ik: plain_value(iv) for ik, iv in i.items()} for i in v]
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
            writer.writerows([{k: plain_value(v) for k, v in r.items()} for r in rows])
        else:
            columns = (
                TABLE_COLUMNS
                if not args.images
                else (
                    "alert_id",
                    "image_index",
                    "x",
                    "y",
                    "image_ra",
                    "image_dec",
                    "magnification",
                    "time_delay_days",
                    "time_delay_p16",
                    "time_delay_p84",
                    "arrival_mjd",
                    "arrival_mjd_p16",
                    "arrival_mjd_p84",
                    "is_observed",
                    "z l/s",
                    "no_lens",
                )
            )
            shown = [r | {"z l/s": origin_code(r)} for r in rows]
            write_table(shown, columns, out)
    finally:
        if args.output:
            out.close()
    return 0

"""Self-describing FITS, VOTable and ECSV tables of query results.

Every column carries its unit, UCD and description (:mod:`lenscast.db.column_docs`), and every table
its provenance (:func:`provenance`): the lenscast version, when it was written, the model(s) (name,
version, ONNX SHA-256) and cosmology of the rows, the parameter-spec version, the query's
filters and the coordinate conventions. Where each format keeps them:

=========  ======================================  ==========================================
format     columns                                 table
=========  ======================================  ==========================================
FITS       ``TUNITn``, ``TCOMMn`` (description),   header keywords (``CREATOR``, ``DATE``,
           ``TUCDn`` (UCD), as TOPCAT reads them;  ``MODEL``, ``MODELVER``, ``MODELSHA``,
           also astropy's serialized columns       ``COSMO``, ``PARSPEC``, ``QUERY``, ...)
VOTable    ``FIELD`` ``unit``, ``ucd``,            ``INFO`` elements of the ``RESOURCE``
           ``DESCRIPTION``
ECSV       the YAML header (plain text)            the YAML header's ``meta``
=========  ======================================  ==========================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from lenscast.db.column_docs import column_doc
from lenscast.model import parameter_spec as spec

#: Conventions of the positions and times in every table.
CONVENTIONS = (
    "x = dRA cos(Dec) (east positive), y = dDec (north positive), arcsec from the cutout "
    "centre; RA, Dec ICRS degrees; MJD in days; time delays in days after the first image"
)


@dataclass(frozen=True)
class ProvenanceItem:
    """One piece of table metadata.

    Attributes
    ----------
    key : str
        Name in VOTable ``INFO`` and ECSV ``meta``.
    fits_key : str
        FITS header keyword (8 characters at most).
    value : str
    comment : str
        FITS card comment.
    """

    key: str
    fits_key: str
    value: str
    comment: str


def _distinct(rows: Sequence[Mapping[str, Any]], name: str) -> str:
    """The distinct non-null values of a field, in first-seen order, comma-separated."""
    seen: dict[str, None] = {}
    for row in rows:
        if row.get(name) is not None:
            seen.setdefault(str(row[name]), None)
    return ",".join(seen)


def provenance(
    rows: Sequence[Mapping[str, Any]], *, query: str, row_kind: str
) -> list[ProvenanceItem]:
    """The metadata of a table of ``rows``.

    Parameters
    ----------
    rows : sequence of mapping
        The exported rows (result fields, possibly with image fields).
    query : str
        The query's filters, as the ``lenscast query`` options that select the rows.
    row_kind : str
        What one row is (``"one row per result"``, ``"one row per predicted image"``).
    """
    from lenscast import __version__

    created = datetime.now(UTC).isoformat(timespec="seconds")
    return [
        ProvenanceItem("creator", "CREATOR", f"lenscast {__version__}", "software that wrote it"),
        ProvenanceItem("lenscast_version", "LCVERS", __version__, "lenscast version"),
        ProvenanceItem("date", "DATE", created, "UTC time the table was written"),
        ProvenanceItem("model_name", "MODEL", _distinct(rows, "model_name"), "mass model(s)"),
        ProvenanceItem(
            "model_version", "MODELVER", _distinct(rows, "model_version"), "model version(s)"
        ),
        ProvenanceItem(
            "onnx_sha256", "MODELSHA", _distinct(rows, "onnx_sha256"), "SHA-256 of the ONNX file(s)"
        ),
        ProvenanceItem("cosmology", "COSMO", _distinct(rows, "cosmology"), "of the time delays"),
        ProvenanceItem(
            "parameter_spec_version", "PARSPEC", spec.PARAMETER_SPEC_VERSION, "parameter spec"
        ),
        ProvenanceItem("query", "QUERY", query, "lenscast query filters"),
        ProvenanceItem("rows", "ROWS", row_kind, "what one row is"),
        ProvenanceItem("conventions", "CONVENT", CONVENTIONS, "positions and times"),
    ]


def plain_value(value: Any) -> Any:
    """A value as JSON, CSV and the table writers take it: ISO 8601 times, hex bytes, NULL
    for non-finite floats."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fits_text(value: Any) -> Any:
    """FITS holds ASCII text only: other characters become Python escapes (``\\U0001f52d``)."""
    if isinstance(value, str) and not value.isascii():
        return value.encode("ascii", "backslashreplace").decode("ascii")
    return value


def astropy_table(rows: Sequence[Mapping[str, Any]], *, ascii_text: bool = False) -> Any:
    """The rows as an astropy ``Table``, NULL masked, every column with its unit, UCD and
    description (:func:`lenscast.db.column_docs.column_doc`).

    With ``ascii_text`` (FITS) text that is not ASCII (an alert id may hold any printable
    character) is written with Python escapes; VOTable, ECSV, JSON and CSV keep it as it is.
    """
    from astropy.table import MaskedColumn, Table

    table = Table()
    for name in rows[0] if rows else ():
        values = [plain_value(r[name]) for r in rows]
        if ascii_text:
            values = [fits_text(v) for v in values]
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
        doc = column_doc(name)
        if doc is not None:
            column.unit = doc.unit or None
            column.description = doc.description
            column.meta["ucd"] = doc.ucd
        table[name] = column
    return table


def _write_fits(table: Any, path: Path, items: Sequence[ProvenanceItem]) -> None:
    from astropy.io import fits

    # astropy's writer keeps descriptions and UCDs for astropy readers (serialized columns);
    # TCOMMn / TUCDn and the provenance keywords are added for every other FITS reader.
    table.write(path, format="fits", overwrite=True)
    with fits.open(path, mode="update") as hdus:
        header = hdus[1].header
        for n, name in enumerate(table.colnames, start=1):
            doc = column_doc(name)
            if doc is not None:
                header[f"TCOMM{n}"] = doc.description
                header[f"TUCD{n}"] = doc.ucd
        for item in items:
            # An 80-character card: long values (hashes, CONTINUE'd text) go without comment.
            value = fits_text(item.value)  # the query's filters may name a non-ASCII alert id
            fits_in_a_card = len(value) + len(item.comment) <= 60
            header[item.fits_key] = (value, item.comment) if fits_in_a_card else value
        header["EXTNAME"] = "LENSCAST"


def _write_votable(table: Any, path: Path, items: Sequence[ProvenanceItem]) -> None:
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    votable = from_table(table)
    resource = votable.resources[0]
    for item in items:
        resource.infos.append(Info(name=item.key, value=item.value))
    votable.get_first_table().description = "lenscast query results: " + CONVENTIONS
    votable.to_xml(str(path))


def write_table(
    rows: Sequence[Mapping[str, Any]],
    out: Path | TextIO,
    fmt: str,
    *,
    query: str,
    row_kind: str,
) -> None:
    """Write ``rows`` as a self-describing table.

    Parameters
    ----------
    rows : sequence of mapping
    out : Path or text stream
        File to write (FITS and VOTable need a path; ECSV may go to a stream).
    fmt : str
        ``"fits"``, ``"votable"`` or ``"ecsv"``.
    query, row_kind : str
        See :func:`provenance`.
    """
    table = astropy_table(rows, ascii_text=fmt == "fits")
    items = provenance(rows, query=query, row_kind=row_kind)
    if fmt == "ecsv":
        for item in items:
            table.meta[item.key] = item.value
        table.write(out, format="ascii.ecsv", overwrite=True)
        return
    if not isinstance(out, Path):
        raise ValueError(f"{fmt} needs an output file")
    if fmt == "fits":
        _write_fits(table, out, items)
    elif fmt == "votable":
        _write_votable(table, out, items)
    else:
        raise ValueError(f"unknown table format {fmt!r}")

"""The lens-candidate alert schema: versioned ``.avsc`` files and their registry ids.

Schemas live in ``consumer/schemas/lenscast.candidate/<major>.<minor>/candidate.avsc``, in the
style of ``lsst/alert_packet``: one directory per version, a namespace carrying the version
(``lenscast.v1_0``) and a ``doc`` on every field. The registry id of a version is
``major * 100 + minor`` (LSST's convention), so version 1.0 is id 100. The Confluent wire format
carries that id in bytes 1-4 (see :mod:`lenscast.consumer.framing`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

#: Directory holding one sub-directory per schema version.
SCHEMA_ROOT = Path(__file__).parent / "schemas" / "lenscast.candidate"
#: File name of the schema inside each version directory.
SCHEMA_FILE = "candidate.avsc"
#: The version new alerts are written with.
LATEST_VERSION = "1.0"


@dataclass(frozen=True)
class AlertSchema:
    """One registered version of the alert schema.

    Attributes
    ----------
    version : str
        ``"major.minor"``, e.g. ``"1.0"``.
    registry_id : int
        ``major * 100 + minor``; the id in the Confluent wire-format header.
    parsed : dict
        The schema as parsed by :func:`fastavro.parse_schema` (for reading and writing).
    canonical : str
        Avro parsing canonical form, used to recognise the writer schema of container files.
    fullname : str
        Namespaced record name, e.g. ``"lenscast.v1_0.candidate"``.
    """

    version: str
    registry_id: int
    parsed: Any
    canonical: str
    fullname: str


def registry_id(version: str) -> int:
    """Return the registry id ``major * 100 + minor`` of a ``"major.minor"`` version string."""
    major, minor = (int(part) for part in version.split("."))
    if not 0 <= minor < 100:
        raise ValueError(f"minor version must be in [0, 100), got {version!r}")
    return major * 100 + minor


@cache
def known_versions() -> tuple[str, ...]:
    """All schema versions shipped in :data:`SCHEMA_ROOT`, oldest first."""
    if not SCHEMA_ROOT.is_dir():
        # An install that left out the package data: fail with the cause, not per alert.
        raise RuntimeError(f"alert schemas not installed: {SCHEMA_ROOT} is missing")
    versions = [p.name for p in SCHEMA_ROOT.iterdir() if (p / SCHEMA_FILE).is_file()]
    return tuple(sorted(versions, key=registry_id))


@cache
def load_schema(version: str = LATEST_VERSION) -> AlertSchema:
    """Load and parse the schema of ``version`` (cached).

    Raises
    ------
    KeyError
        If no such version is shipped.
    """
    if version not in known_versions():
        raise KeyError(f"unknown alert schema version {version!r}; known: {known_versions()}")
    raw = json.loads((SCHEMA_ROOT / version / SCHEMA_FILE).read_text())
    # _write_hint=False keeps the parsed form identical whatever was parsed before it.
    parsed = fastavro.parse_schema(raw, _write_hint=False)
    return AlertSchema(
        version=version,
        registry_id=registry_id(version),
        parsed=parsed,
        canonical=to_parsing_canonical_form(raw),
        fullname=f"{raw['namespace']}.{raw['name']}",
    )


def schema_for_id(schema_id: int) -> AlertSchema | None:
    """Return the schema registered under ``schema_id``, or None if the id is not ours."""
    for version in known_versions():
        if registry_id(version) == schema_id:
            return load_schema(version)
    return None


def schema_for_canonical(canonical: str) -> AlertSchema | None:
    """Return the shipped schema whose parsing canonical form is ``canonical``, or None."""
    for version in known_versions():
        schema = load_schema(version)
        if schema.canonical == canonical:
            return schema
    return None

"""The alert schema files, their registry ids, and committed sample packets per version.

The committed packets in ``tests/data/`` pin the wire format: a packet written by any earlier
commit must still decode to the same alert. They were made by running this module as a script
(``python tests/consumer/test_alert_schema.py``), which rewrites them; do that only for a new schema
version, never to make a failing test pass.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
import pytest

from harness.paths import TEST_DATA
from lenscast.consumer.alert import LensCandidateAlert
from lenscast.consumer.alert_schema import (
    LATEST_VERSION,
    SCHEMA_ROOT,
    known_versions,
    load_schema,
    registry_id,
    schema_for_canonical,
    schema_for_id,
)
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.framing import split_container

DATA = TEST_DATA


def test_versions_and_registry_ids() -> None:
    assert LATEST_VERSION in known_versions()
    assert registry_id("1.0") == 100
    assert registry_id("11.0") == 1100  # LSST's convention, major * 100 + minor
    assert registry_id("2.3") == 203
    for version in known_versions():
        schema = load_schema(version)
        assert schema.registry_id == registry_id(version)
        assert schema_for_id(schema.registry_id) is schema
        assert schema_for_canonical(schema.canonical) is schema
        major, minor = version.split(".")
        assert schema.fullname == f"lenscast.v{major}_{minor}.candidate"
    assert schema_for_id(1100) is None
    with pytest.raises(ValueError, match="minor"):
        registry_id("1.100")


def _fields(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """All record fields, nested records and unions included, as (dotted path, field)."""
    out = []
    if isinstance(schema, list):
        for branch in schema:
            out += _fields(branch, path)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            for field in schema["fields"]:
                name = f"{path}.{field['name']}" if path else field["name"]
                out.append((name, field))
                out += _fields(field["type"], name)
        elif schema.get("type") == "array":
            out += _fields(schema["items"], path + "[]")
    return out


@pytest.mark.parametrize("version", known_versions())
def test_every_field_and_record_is_documented(version: str) -> None:
    raw = json.loads((SCHEMA_ROOT / version / "candidate.avsc").read_text())
    assert raw["doc"]
    fields = _fields(raw)
    names = {name for name, _ in fields}
    required = (
        "alertId", "candidateId", "ra", "dec", "mjd", "cutouts[].band", "cutouts[].stampData",
        "zLens", "zLensErr", "zSource", "zSourceErr", "diaSource.diaSourceId", "diaSource.ra",
        "diaSource.dec", "diaSource.midpointMjdTai", "diaSource.band", "diaSource.psfFlux",
        "provenance.survey", "provenance.broker", "provenance.upstreamAlertId",
    )  # fmt: skip
    assert set(required) <= names, set(required) - names
    for name, field in fields:
        assert len(field.get("doc", "")) > 10, f"{name} has no doc"
    # Optional fields default to null, so older readers and writers stay compatible.
    for name, field in fields:
        if isinstance(field["type"], list) and field["type"][0] == "null":
            assert field.get("default", "missing") is None, name


def _sample_images(seed: int) -> np.ndarray:
    """Smooth, noiseless griz images (a lens and an arc) that compress well."""
    q = np.arange(64) - 31.5
    x, y = np.meshgrid(-q * 0.168, q * 0.168)
    r = np.hypot(x - 0.2 * seed, y)
    lens = np.exp(-r / 0.8)
    arc = np.exp(-((r - 1.6) ** 2) / 0.05) * (1 + np.cos(np.arctan2(y, x) - seed))
    colours = [(0.3, 1.0), (0.6, 0.8), (1.0, 0.6), (1.2, 0.5)]
    cube = np.stack([a * lens + b * arc for a, b in colours])
    return np.round(cube * 64.0).astype(np.float32) / 64.0


def _summary(alert: LensCandidateAlert) -> dict[str, Any]:
    t = alert.transient
    return {
        "alert_id": alert.alert_id,
        "candidate_id": alert.candidate_id,
        "ra": alert.ra,
        "dec": alert.dec,
        "mjd": alert.mjd,
        "z_lens": alert.z_lens,
        "z_lens_err": alert.z_lens_err,
        "z_source": alert.z_source,
        "z_source_err": alert.z_source_err,
        "schema_version": alert.schema_version,
        "pixel_scale_arcsec": round(alert.pixel_scale_arcsec, 9),
        "cutouts_sha256": hashlib.sha256(alert.cutouts.tobytes()).hexdigest(),
        "band_sums": [round(float(s), 3) for s in alert.cutouts.sum(axis=(1, 2))],
        "provenance": [
            alert.provenance.survey,
            alert.provenance.broker,
            alert.provenance.upstream_alert_id,
        ],  # fmt: skip
        "transient": None
        if t is None
        else {
            "dia_source_id": t.dia_source_id,
            "band": t.band,
            "mjd": t.mjd,
            "flux": t.flux,
            "x_arcsec": round(t.x_arcsec, 6),
            "y_arcsec": round(t.y_arcsec, 6),
        },
    }


def _expected(version: str) -> dict[str, Any]:
    return json.loads((DATA / f"lenscast-candidate-{version}-expected.json").read_text())


@pytest.mark.parametrize("version", known_versions())
def test_committed_wire_packet_decodes(version: str) -> None:
    raw = (DATA / f"lenscast-candidate-{version}.bin").read_bytes()
    assert raw[0] == 0
    assert int.from_bytes(raw[1:5], "big") == registry_id(version)
    assert _summary(decode_alert(raw)) == _expected(version)["wire"]


@pytest.mark.parametrize("version", known_versions())
def test_committed_archive_decodes(version: str) -> None:
    data = (DATA / f"lenscast-candidate-{version}-archive.avro").read_bytes()
    summaries = [_summary(decode_alert(m)) for m in split_container(data)]
    assert summaries == _expected(version)["archive"]


def _regenerate() -> None:  # pragma: no cover - run by hand for a new schema version
    from lenscast.tools.alert_encoding import (
        TransientSpec,
        build_record,
        encode_record,
        write_container,
    )

    version = LATEST_VERSION
    wire = build_record(
        alert_id="lenscast-sample-0001", candidate_id="HSC-J0912+0123", ra=138.0123,
        dec=1.3854, mjd=61001.2345, images=_sample_images(0), z_lens=0.45, z_lens_err=0.03,
        z_source=1.8, z_source_err=None, survey="HSC", broker="fink",
        upstream_alert_id="fink-123456",
        transient=TransientSpec(170028131516743681, 1.2, -0.9, 61001.2345, "i", 2345.6, 120.0),
    )  # fmt: skip
    archive = [
        build_record(
            alert_id=f"lenscast-sample-{i:04d}", candidate_id=f"HSC-J1000+02{i:02d}",
            ra=150.0 + i, dec=2.0 - i, mjd=61002.0 + i, images=_sample_images(i), z_lens=None,
            compress=True, survey="HSC",
        )
        for i in (2, 3)
    ]  # fmt: skip
    DATA.mkdir(exist_ok=True)
    (DATA / f"lenscast-candidate-{version}.bin").write_bytes(encode_record(wire))
    buffer = io.BytesIO()
    write_container(archive, buffer, codec="deflate")
    (DATA / f"lenscast-candidate-{version}-archive.avro").write_bytes(buffer.getvalue())
    expected = {
        "wire": _summary(decode_alert(encode_record(wire))),
        "archive": [_summary(decode_alert(m)) for m in split_container(buffer.getvalue())],
    }
    path = DATA / f"lenscast-candidate-{version}-expected.json"
    path.write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":  # pragma: no cover
    _regenerate()

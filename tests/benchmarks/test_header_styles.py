"""The stream benchmark's header styles: the same cutouts, the WCS path each is meant to take.

``benchmarks/header_styles.py`` rewrites the sample cutouts' headers the way other producers
write them; the per-style rates of ``benchmarks/stream_throughput.py`` only mean something if
every style decodes to the same pixels and positions and takes the intended WCS path.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from types import ModuleType

import numpy as np
import pytest
from fastavro import schemaless_reader

from harness.paths import ROOT
from lenscast.consumer.alert_schema import schema_for_id
from lenscast.consumer.cutouts_fits import read_cutout
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.framing import read_alert_file, unframe_wire
from lenscast.tools.alert_encoding import encode_record

SAMPLE = ROOT / "consumer" / "samples" / "hsc-sample.avro"


def _header_styles() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "header_styles", ROOT / "benchmarks" / "header_styles.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("header_styles", module)
    spec.loader.exec_module(module)
    return module


STYLES = _header_styles()


def _sample_with_transient() -> tuple[bytes, int, dict]:
    for raw in read_alert_file(SAMPLE):
        if decode_alert(raw).transient is not None:
            schema_id, payload = unframe_wire(raw)
            schema = schema_for_id(schema_id)
            assert schema is not None
            return raw, schema.version, schemaless_reader(io.BytesIO(payload), schema.parsed)
    raise AssertionError("the sample stream has no alert with a transient")


@pytest.mark.parametrize(
    ("style", "path"),
    [
        ("ours", "TanWcs"),
        ("astropy", "TanWcs"),
        ("survey", "TanWcs"),
        ("sip", "DistortedTanWcs"),
        ("tpv", "DistortedTanWcs"),
        ("zea", "AstropyWcs"),
    ],
)
def test_each_style_decodes_to_the_same_alert_on_its_wcs_path(style: str, path: str) -> None:
    raw, version, record = _sample_with_transient()
    cutouts = [
        {**c, "stampData": STYLES.distinct(STYLES.restyle(c["stampData"], style), style, 3)}
        for c in record["cutouts"]
    ]
    stamp = cutouts[0]["stampData"]
    assert type(read_cutout(stamp, max_bytes=1 << 24, max_pixels=1 << 20).wcs).__name__ == path
    base = decode_alert(raw)
    alert = decode_alert(encode_record({**record, "cutouts": cutouts}, schema_version=version))
    np.testing.assert_array_equal(alert.cutouts, base.cutouts)
    assert alert.transient is not None
    assert base.transient is not None
    # SIP and TPV move pixels by < 1e-3 px (0.17 mas); the others are the same TAN grid.
    assert abs(alert.transient.x_arcsec - base.transient.x_arcsec) < 1e-3
    assert abs(alert.transient.y_arcsec - base.transient.y_arcsec) < 1e-3


def test_sip_cutouts_differ_from_alert_to_alert_and_others_do_not() -> None:
    _, _, record = _sample_with_transient()
    stamp = record["cutouts"][0]["stampData"]
    sip = STYLES.restyle(stamp, "sip")
    assert STYLES.distinct(sip, "sip", 1) != STYLES.distinct(sip, "sip", 2)
    assert len(STYLES.distinct(sip, "sip", 1)) == len(sip)
    tpv = STYLES.restyle(stamp, "tpv")
    assert STYLES.distinct(tpv, "tpv", 1) != STYLES.distinct(tpv, "tpv", 2)
    zea = STYLES.restyle(stamp, "zea")
    assert STYLES.distinct(zea, "zea", 1) != STYLES.distinct(zea, "zea", 2)
    assert len(STYLES.distinct(zea, "zea", 1)) == len(zea)
    survey = STYLES.restyle(stamp, "survey")
    assert STYLES.distinct(survey, "survey", 1) is survey
    with pytest.raises(ValueError, match="unknown header style"):
        STYLES.restyle(stamp, "ztf")

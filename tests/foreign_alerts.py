"""Alert packets of other surveys, for the tests that check they are refused by name."""

from __future__ import annotations

import io

import fastavro


def ztf_style_container(stamp: bytes) -> bytes:
    """A ZTF-style alert: one Avro container per message with its own schema.

    ``stamp`` is the (gzipped, as ZTF ships them) science cutout.
    """
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "alert",
            "namespace": "ztf",
            "fields": [
                {"name": "schemavsn", "type": "string"},
                {"name": "publisher", "type": "string"},
                {"name": "objectId", "type": "string"},
                {"name": "candid", "type": "long"},
                {
                    "name": "cutoutScience",
                    "type": [
                        "null",
                        {
                            "type": "record",
                            "name": "cutout",
                            "fields": [
                                {"name": "fileName", "type": "string"},
                                {"name": "stampData", "type": "bytes"},
                            ],
                        },
                    ],
                },
            ],
        }
    )
    buffer = io.BytesIO()
    fastavro.writer(
        buffer,
        schema,
        [
            {
                "schemavsn": "3.3", "publisher": "ZTF (www.ztf.caltech.edu)",
                "objectId": "ZTF18abcdefg", "candid": 1234567890123456789,
                "cutoutScience": {"fileName": "candid_pid_sci.fits.gz", "stampData": stamp},
            }
        ],
    )  # fmt: skip
    return buffer.getvalue()

"""The seeded hostile-packet stream (``consumer.alert_hostile``) used by the reliability tests.

Every generated packet must be rejected with one of the reasons it lists and carry the expected
alert id, so the reliability tests can check the rejected table reason by reason.
"""

from __future__ import annotations

import io
from collections import Counter

from consumer.alert import AlertRejected
from consumer.alert_hostile import hostile_container, hostile_kinds, iter_hostile_packets
from consumer.decoding import DecodeSettings, decode_alert
from consumer.framing import split_container


def test_every_kind_is_rejected_with_its_reason() -> None:
    kinds = hostile_kinds()
    settings = DecodeSettings(max_packet_bytes=256 * 1024)
    seen: Counter[str] = Counter()
    for packet in iter_hostile_packets(2 * len(kinds), seed=5, max_packet_bytes=256 * 1024):
        seen[packet.kind] += 1
        try:
            decode_alert(packet.raw, settings=settings)
        except AlertRejected as exc:
            outcome: tuple[str, str | None, str] = (exc.reason, exc.alert_id, exc.detail)
        else:
            outcome = ("accepted", None, "")
        reason, alert_id, detail = outcome
        assert reason != "decode.internal_error", detail
        if packet.reasons:
            assert reason in packet.reasons, (packet.kind, reason, detail)
            assert alert_id == packet.alert_id, packet.kind
        assert len(packet.raw) <= 256 * 1024 + 1
    assert set(seen) == set(kinds)
    assert len(kinds) >= 45


def test_stream_is_reproducible_and_ids_are_unique() -> None:
    first = list(iter_hostile_packets(120, seed=9))
    second = list(iter_hostile_packets(120, seed=9))
    assert [p.raw for p in first] == [p.raw for p in second]
    ids = [p.alert_id for p in first if p.alert_id is not None]
    assert len(ids) == len(set(ids)) > 40


def test_hostile_container_records_are_all_rejected() -> None:
    buffer = io.BytesIO()
    assert hostile_container(buffer, 60, seed=2) == 60
    reasons: Counter[str] = Counter()
    for message in split_container(buffer.getvalue()):
        try:
            decode_alert(message)
        except AlertRejected as exc:
            reasons[exc.reason] += 1
    assert sum(reasons.values()) == 60
    assert len(reasons) >= 15

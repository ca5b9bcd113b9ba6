""">= 10,000 hostile packets through the real consumer: each rejected for its own reason.

The packets (:mod:`hostile_packets`: 57 kinds, from random bytes to gzip bombs and LSST/ZTF
alerts on the wrong topic) are produced to a topic with a valid alert after every 20th, and one
``lenscast consume`` process reads them all. The test asserts, offset by offset, that each
hostile packet is a row in ``rejected_alerts`` with exactly the reason its kind must give and
each valid alert a result; that the same process (never restarted) served the whole stream and
stopped cleanly on SIGTERM; and that its resident memory stayed bounded: peak (VmHWM) under the
1 GiB the compose file gives a consumer, and no growth from the first thousand packets to the
end beyond a margin for allocator noise.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from harness.hostile_packets import KINDS, MAX_PACKET_BYTES, hostile_stream, rekeyed, sample_records
from harness.reliability import Ledger, check_exactly_once, row_count
from harness.stream_helpers import StreamRun, wait_for
from lenscast.db.engine import make_engine

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_HOSTILE = int(os.environ.get("LENSCAST_RELIABILITY_HOSTILE_PACKETS", "10000"))
VALID_EVERY = 20
PARTITIONS = 2
#: Memory bounds: the compose limit, and the growth allowed after the first 1,000 packets.
PEAK_LIMIT_MIB = 1024
GROWTH_LIMIT_MIB = 64


def test_hostile_packets_are_rejected_with_their_reasons(
    new_stream: Callable[..., StreamRun], reliability_report: dict[str, Any]
) -> None:
    run = new_stream("hostile", partitions=PARTITIONS)
    topic = run.topic
    expected: list[str | None] = []  # alert id of a valid alert, None for a hostile packet
    reasons: list[tuple[str, str] | None] = []  # (kind, reason) per message
    sizes: Counter[str] = Counter()
    records = sample_records()

    def values() -> Any:
        for i, (kind, reason, raw) in enumerate(hostile_stream(N_HOSTILE, prefix=topic, seed=7)):
            if i % VALID_EVERY == 0:
                alert_id = f"{topic}-valid-{i:07d}"
                expected.append(alert_id)
                reasons.append(None)
                yield rekeyed(records[i % len(records)], alert_id)
            expected.append(None)
            reasons.append((kind, reason))
            sizes[kind] = max(sizes[kind], len(raw))
            yield raw

    run.produce(values())
    n = len(expected)
    engine = make_engine(run.db_url)
    # The size limit comes from the environment, as in production (the stream is built for it).
    limits = {"LENSCAST_MAX_PACKET_BYTES": str(MAX_PACKET_BYTES)}
    process = run.consumer(batch_size=128, env=limits)
    log = process.log_path
    started = time.monotonic()
    try:
        wait_for(lambda: row_count(engine) >= min(1000, n) or not process.alive(), timeout_s=120,
                 what=f"the first 1000 packets (log {log})")  # fmt: skip
        rss_warm = process.rss_samples[-1][1] if process.rss_samples else 0
        wait_for(lambda: row_count(engine) >= n or not process.alive(), timeout_s=400,
                 what=f"all {n} packets stored (log {log})")  # fmt: skip
        seconds = time.monotonic() - started
        run.wait_committed(n)
        assert process.alive(), f"the consumer exited (log {log})"
        rss_end = process.rss_samples[-1][1]
        peak = process.peak_rss_kib()
    finally:
        status = process.terminate()
    assert status == 0, f"the consumer did not stop cleanly (log {log})"

    ledger = Ledger.read(engine, topic)
    engine.dispose()
    counts = check_exactly_once(ledger, expected, PARTITIONS)
    got = {(p, o): reason for p, o, reason, _ in ledger.rejected}
    histogram: Counter[str] = Counter()
    wrong: list[tuple[str, str, str]] = []
    for i, pair in enumerate(reasons):
        if pair is None:
            continue
        kind, reason = pair
        actual = got[(i % PARTITIONS, i // PARTITIONS)]
        histogram[actual] += 1
        if actual != reason:
            wrong.append((kind, reason, actual))
    rss_start = process.rss_samples[0][1]
    reliability_report.update(
        hostile_packets=N_HOSTILE,
        kinds=len({k for k, _ in filter(None, reasons)}),
        valid_alerts_between=sum(a is not None for a in expected),
        reason_histogram=dict(sorted(histogram.items())),
        wrong_reasons=len(wrong),
        largest_packet_bytes=max(sizes.values()),
        seconds=round(seconds, 1),
        rss_mib={"first_sample": round(rss_start / 1024, 1),
                 "after_1000": round(rss_warm / 1024, 1), "end": round(rss_end / 1024, 1),
                 "peak": round(peak / 1024, 1)},
        **counts,
    )  # fmt: skip
    assert not wrong, Counter(wrong).most_common(10)
    assert len({k for k, _ in filter(None, reasons)}) == len(KINDS) or N_HOSTILE < 1000
    assert peak / 1024 < PEAK_LIMIT_MIB
    assert (rss_end - rss_warm) / 1024 < GROWTH_LIMIT_MIB

"""The demo's stream: local broker up, topic, replay an archive, consume it all, broker down.

Uses the production pieces unchanged: :func:`lenscast.tools.replay_cli.publish` to produce,
:class:`lenscast.consumer.kafka_loop.ConsumerService` to consume, store and commit; only the stop
condition is the demo's (every replayed message accounted for, or a timeout).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL

if TYPE_CHECKING:
    from lenscast.consumer.pipeline import BatchOutcome, Predictor, RawMessage

DEMO_TOPIC = "lens-candidates"
DEMO_GROUP = "lenscast-demo"
#: Micro-batch size of the demo consumer (a few batches for the 40-alert sample).
DEMO_BATCH = 64


def consume_all(
    *,
    bootstrap_servers: str,
    db_url: URL,
    expected: int,
    predictor: Predictor,
    timeout_s: float,
    p_lens_threshold: float | None = None,
) -> tuple[int, int]:
    """Run the production consumer loop until ``expected`` messages are stored or rejected.

    Parameters
    ----------
    bootstrap_servers : str
        The broker holding :data:`DEMO_TOPIC`.
    db_url : URL
        Results database (already migrated).
    expected : int
        Messages in the topic.
    predictor : Predictor
        The loaded ONNX model.
    timeout_s : float
        Stop waiting after this long.
    p_lens_threshold : float or None
        Flag results whose ``p_lens`` is below this (None: the model card's default).

    Returns
    -------
    tuple of int
        (stored, rejected) counts of this run.

    Raises
    ------
    TimeoutError
        When the messages are not all accounted for within ``timeout_s``.
    """
    from lenscast.consumer.kafka_loop import ConsumerService
    from lenscast.consumer.settings import ConsumerSettings, PipelineSettings
    from lenscast.consumer.shutdown import StopFlag
    from lenscast.db.engine import make_engine
    from lenscast.progress import progress_bar
    from lenscast.tools.local_broker import TANSU_CONSUMER_OVERRIDES

    settings = ConsumerSettings(
        bootstrap_servers=bootstrap_servers,
        db_url=db_url,
        topics=(DEMO_TOPIC,),
        group_id=DEMO_GROUP,
        session_timeout_ms=int(TANSU_CONSUMER_OVERRIDES["session.timeout.ms"]),
        batch_max_messages=DEMO_BATCH,
        log_format="text",
        log_level="WARNING",
        pipeline=PipelineSettings(p_lens_threshold=p_lens_threshold),
    )
    stop = StopFlag()
    bar = progress_bar(total=expected, unit="alert", desc="stored", disable=None, leave=False)
    done = 0

    def committed(messages: Sequence[RawMessage], _outcome: BatchOutcome) -> None:
        nonlocal done
        done += len(messages)
        bar.update(len(messages))
        if done >= expected:
            stop.set()

    timer = threading.Timer(timeout_s, stop.set)
    timer.daemon = True
    engine = make_engine(db_url)
    service = ConsumerService(
        settings, predictor=predictor, engine=engine, stop=stop, on_batch_committed=committed
    )
    timer.start()
    try:
        service.run()
    finally:
        timer.cancel()
        bar.close()
        engine.dispose()
    if service.stored + service.rejected < expected:
        raise TimeoutError(
            f"only {service.stored + service.rejected} of {expected} alerts stored "
            f"after {timeout_s:.0f} s"
        )
    return service.stored, service.rejected


def stream_archive(
    alerts: Path,
    *,
    db_url: URL,
    predictor: Predictor,
    partitions: int,
    timeout_s: float,
    broker_log: Path,
    step: Callable[[str], None],
    p_lens_threshold: float | None = None,
) -> tuple[int, int]:
    """Replay ``alerts`` through a local Tansu broker into ``db_url``; (stored, rejected).

    Raises
    ------
    RuntimeError
        When the broker does not take every alert.
    TimeoutError
        See :func:`consume_all`.
    """
    from lenscast.consumer.framing import read_alert_file
    from lenscast.tools.local_broker import LocalBroker
    from lenscast.tools.replay_cli import publish

    messages = read_alert_file(alerts)
    step(f"read {len(messages)} alerts from {alerts}")
    with LocalBroker(log_path=broker_log) as broker:
        broker.create_topic(DEMO_TOPIC, partitions=partitions)
        step(f"Tansu broker on {broker.bootstrap_servers}, topic {DEMO_TOPIC!r}")
        delivered, failed = publish(
            messages, topic=DEMO_TOPIC, config={"bootstrap.servers": broker.bootstrap_servers}
        )
        if failed:
            raise RuntimeError(f"{failed} of {len(messages)} alerts could not be published")
        step(f"replayed {delivered} alerts into {DEMO_TOPIC!r}; consuming into the database")
        return consume_all(
            bootstrap_servers=broker.bootstrap_servers,
            db_url=db_url,
            expected=len(messages),
            predictor=predictor,
            timeout_s=timeout_s,
            p_lens_threshold=p_lens_threshold,
        )

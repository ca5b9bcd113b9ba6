"""One log line per distinct message per interval, for sources that repeat themselves.

With the broker down, librdkafka reports every failed connection attempt (several a second per
broker, through its logger and again through the error callback): 1,530 lines in 39 s, which
buries everything else. :class:`ThrottleFilter` lets the first line of each distinct message
through, drops repeats for ``interval_s``, and says on the next line it lets through how many
it dropped. Messages that differ only in their numbers (milliseconds, counts, ports) count as
the same message.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

#: Default quiet time per distinct message, seconds.
DEFAULT_INTERVAL_S = 10.0
#: Distinct messages remembered (a client has a handful; the bound keeps hostile text harmless).
_MAX_KEYS = 1024
_NUMBERS = re.compile(r"\d+")


class ThrottleFilter(logging.Filter):
    """Pass a message at most once per ``interval_s``; count what it drops.

    Parameters
    ----------
    interval_s : float
        Quiet time after a message is let through, seconds.
    clock : callable
        Monotonic time in seconds (``time.monotonic``; tests pass their own).
    """

    def __init__(
        self, interval_s: float = DEFAULT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is emitted (its message then notes the repeats dropped)."""
        text = record.getMessage()
        key = (record.name, record.levelno, _NUMBERS.sub("#", text))
        now = self._clock()
        last, dropped = self._seen.get(key, (None, 0))
        if last is not None and now - last < self.interval_s:
            self._seen[key] = (last, dropped + 1)
            return False
        if len(self._seen) >= _MAX_KEYS:
            self._seen.clear()
        self._seen[key] = (now, 0)
        if dropped and last is not None:
            record.msg = f"{text} ({dropped} more like it in the last {now - last:.0f} s)"
            record.args = ()
        return True


def throttled(name: str, interval_s: float = DEFAULT_INTERVAL_S) -> logging.Logger:
    """The logger ``name`` with a :class:`ThrottleFilter` (added once, however often asked)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, ThrottleFilter) for f in logger.filters):
        logger.addFilter(ThrottleFilter(interval_s))
    return logger

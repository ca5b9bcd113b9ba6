"""Graceful shutdown: SIGTERM/SIGINT set a flag the consumer loop checks between steps.

The loop then finishes the batch in hand, writes it, commits its offsets and closes the client
(which leaves the group cleanly). A second signal restores the default handler behaviour, so an
impatient second Ctrl-C still stops the process at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


class StopFlag:
    """A stop request shared by the loop and whoever wants it to stop.

    Parameters
    ----------
    event : threading.Event, optional
        Use an existing event (e.g. several in-process consumers stopped together).
    """

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event if event is not None else threading.Event()
        self._previous: dict[int, Any] = {}

    def is_set(self) -> bool:
        """Whether a stop was requested."""
        return self.event.is_set()

    def set(self) -> None:
        """Request a stop."""
        self.event.set()

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to ``timeout_s`` seconds, waking early on a stop request."""
        return self.event.wait(timeout_s)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        log.info(
            "signal %s received: finishing the batch, committing, closing",
            signal.Signals(signum).name,
        )
        self.set()
        # A second signal gets the previous (default) behaviour.
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def install(self) -> StopFlag:
        """Handle SIGTERM and SIGINT (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def uninstall(self) -> None:
        """Restore the handlers that were in place before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> StopFlag:
        return self.install()

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

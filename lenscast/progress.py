"""Progress bars that need no dependency: tqdm when it is installed, silence otherwise.

The service image installs neither tqdm nor matplotlib (they come with the ``demo``, ``plot`` and
``train`` extras), yet the command-line tools it shares code with (``process``, ``solve``,
``replay``, ``make-stream``) show a bar on a terminal where tqdm is there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


class SilentBar:
    """The part of tqdm's interface the tools use, doing nothing."""

    def __init__(self, iterable: Iterable[Any] | None = None) -> None:
        self._iterable = iterable if iterable is not None else ()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable)

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` (ignored)."""

    def close(self) -> None:
        """End the bar (nothing to end)."""


def progress_bar(iterable: Iterable[Any] | None = None, **options: Any) -> Any:
    """A tqdm bar over ``iterable`` with tqdm's ``options``; a :class:`SilentBar` without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return SilentBar(iterable)
    return tqdm(iterable, **options)

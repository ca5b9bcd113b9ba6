"""How every benchmark script ends: print its JSON report and, with ``--out``, write it too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(report: dict[str, Any], out: Path | None, *, indent: int = 1) -> None:
    """Print ``report`` as JSON on stdout and write the same text to ``out`` (folders made)."""
    text = json.dumps(report, indent=indent)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")

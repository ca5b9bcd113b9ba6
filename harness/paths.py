"""Where the checkout's files are."""

from __future__ import annotations

from pathlib import Path

#: The repository root (the folder holding ``pyproject.toml``).
ROOT = Path(__file__).resolve().parents[1]
#: Fixed packets and their expected decodings, shared by the tests.
TEST_DATA = ROOT / "tests" / "data"
#: The sample streams shipped with the consumer.
SAMPLES = ROOT / "consumer" / "samples"

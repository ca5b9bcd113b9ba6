"""The environment table of ``consumer/SERVICE.md`` is the one the settings module generates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lenscast.consumer import settings_table
from lenscast.consumer.settings import consumer_settings_from_env
from lenscast.model.defaults import DEFAULT_MC_SAMPLES

ROOT = Path(__file__).resolve().parents[1]


class _Recording(dict[str, str]):
    """An environment that remembers every variable looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def test_the_documented_table_is_the_generated_one() -> None:
    doc = (ROOT / "consumer" / "SERVICE.md").read_text()
    table = settings_table.markdown()
    assert f"<!-- settings-table -->\n{table}\n<!-- /settings-table -->" in doc


def test_the_table_names_exactly_the_variables_the_settings_read() -> None:
    env = _Recording({"LENSCAST_KAFKA_BOOTSTRAP_SERVERS": "k:9092", "LENSCAST_DB_HOST": "db"})
    consumer_settings_from_env(env)
    read = {name for name in env.read if name.startswith("LENSCAST_")}
    assert len(read) > 30  # the recording saw the lookups
    assert read == settings_table.documented_variables()


def test_defaults_come_from_the_settings() -> None:
    row = next(r for r in settings_table.ROWS if r.variables == ("LENSCAST_MC_SAMPLES",))
    assert settings_table.default_text(row) == str(DEFAULT_MC_SAMPLES)


def test_a_file_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="settings-table"):
        settings_table.replace_block("# no table here\n", settings_table.markdown())

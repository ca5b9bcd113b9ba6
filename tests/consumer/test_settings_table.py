"""The environment table of ``consumer/SERVICE.md`` is the one the settings module generates."""

from __future__ import annotations

import pytest

from harness.paths import ROOT
from harness.settings_reads import variables_the_settings_read
from lenscast.consumer import settings_table
from lenscast.model.defaults import DEFAULT_MC_SAMPLES


def test_the_documented_table_is_the_generated_one() -> None:
    doc = (ROOT / "consumer" / "SERVICE.md").read_text()
    table = settings_table.markdown()
    assert f"<!-- settings-table -->\n{table}\n<!-- /settings-table -->" in doc


def test_the_table_names_exactly_the_variables_the_settings_read() -> None:
    read = variables_the_settings_read()
    assert len(read) > 30  # the recording saw the lookups
    assert read == settings_table.documented_variables()


def test_defaults_come_from_the_settings() -> None:
    row = next(r for r in settings_table.ROWS if r.variables == ("LENSCAST_MC_SAMPLES",))
    assert settings_table.default_text(row) == str(DEFAULT_MC_SAMPLES)


def test_a_file_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="settings-table"):
        settings_table.replace_block("# no table here\n", settings_table.markdown())

"""The demo's picture names cannot leave its work directory, whatever the alert id holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.alert_pictures import image, picture
from lenscast.db.engine import parse_url
from lenscast.tools.demo_cli import DEFAULT_ALERTS, DemoSettings, draw, picture_name


@pytest.mark.parametrize(
    "alert_id", ["../outside/TRAVERSAL", "../../../../tmp/x/TRAVERSAL", "/abs/x", "..", "é/../x"]
)
def test_a_hostile_alert_id_is_drawn_inside_the_workdir(tmp_path: Path, alert_id: str) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    settings = DemoSettings(
        workdir=workdir,
        db_url=parse_url(f"sqlite:///{workdir / 'x.sqlite'}"),
        alerts=DEFAULT_ALERTS,
        truths=None,
        model_path=None,
        plots=1,
        gallery=0,
    )
    hostile = picture((image("A", 1.5, 0.0, 0.0), image("B", -1.5, 0.0, 10.0)))
    written = draw(
        settings, [hostile.__class__(**{**vars(hostile), "alert_id": alert_id})], {}, "t"
    )
    assert [p.parent for p in written] == [workdir]
    assert [p.name for p in workdir.iterdir() if p.suffix == ".png"] == [written[0].name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_picture_names_are_distinct_and_plain() -> None:
    assert picture_name("ZTF21-abc_1.0") == "alert-ZTF21-abc_1.0.png"
    assert picture_name("a/b") != picture_name("a_b")
    assert len(picture_name("x" * 256)) < 128

"""The README's demo command, run as written: output, database and pictures.

The command is read from the README's quick start (the part of the line from ``lenscast demo``
on) and run in an empty directory with the installed ``lenscast`` entry point, so the test and
the README cannot drift apart. It starts the real Tansu broker, replays the shipped sample stream,
consumes it with the shipped model into SQLite and draws the pictures, all of it in under two
minutes on this machine.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from harness.paths import ROOT
from lenscast.consumer.framing import read_alert_file
from lenscast.db.engine import make_engine
from lenscast.db.models import rejected_table, results_table
from lenscast.model.predictor import DEFAULT_MODEL_PATH, load_model_card
from lenscast.tools.demo_cli import DB_FILE, DEFAULT_ALERTS, DEFAULT_TRUTHS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Time the whole demo may take on this machine, seconds.
DEMO_BUDGET_S = 120.0

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def readme_demo_command() -> list[str]:
    """The ``lenscast demo ...`` part of the README's quick-start command."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", readme, re.S)
    for block in blocks:
        for line in block.splitlines():
            if "lenscast demo" in line:
                command = line[line.index("lenscast demo") :]
                return shlex.split(command.split("&&")[0])
    raise AssertionError("README.md has no code block running `lenscast demo`")


def lenscast_executable() -> str:
    """The installed entry point (``pip install -e .`` puts it beside the interpreter)."""
    beside = Path(sys.executable).parent / "lenscast"
    found = str(beside) if beside.exists() else shutil.which("lenscast")
    assert found, "the lenscast entry point is not installed (pip install -e '.[demo]')"
    return found


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    command = readme_demo_command()
    assert command[:2] == ["lenscast", "demo"]
    cwd = tmp_path_factory.mktemp("demo")
    started = time.monotonic()
    completed = subprocess.run(
        [lenscast_executable(), *command[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=DEMO_BUDGET_S + 60,
    )
    seconds = time.monotonic() - started
    print(completed.stdout[-4000:])
    workdir = cwd / "lenscast-demo"
    if "--workdir" in command:
        workdir = cwd / command[command.index("--workdir") + 1]
    return {
        "returncode": completed.returncode,
        "stdout": completed.stdout,
        "stderr": completed.stderr,
        "seconds": seconds,
        "workdir": workdir,
        "cwd": cwd,
    }


def test_the_readme_runs_the_demo() -> None:
    assert readme_demo_command()[:2] == ["lenscast", "demo"]


def test_demo_succeeds_within_two_minutes(demo_run: dict[str, Any]) -> None:
    assert demo_run["returncode"] == 0, demo_run["stderr"][-3000:]
    assert demo_run["seconds"] < DEMO_BUDGET_S
    print(f"demo wall time {demo_run['seconds']:.1f} s")


def test_demo_stores_every_sample_alert_once(demo_run: dict[str, Any]) -> None:
    n_alerts = len(read_alert_file(DEFAULT_ALERTS))
    assert f"consumed: {n_alerts} stored, 0 rejected" in demo_run["stdout"]
    engine = make_engine(f"sqlite:///{demo_run['workdir'] / DB_FILE}")
    version = str(load_model_card(DEFAULT_MODEL_PATH)["version"])
    with engine.connect() as connection:
        c = results_table.c
        stored = connection.execute(
            select(func.count(), func.count(func.distinct(c.alert_id))).where(
                c.model_version == version
            )
        ).one()
        rejected = connection.execute(select(func.count()).select_from(rejected_table)).scalar()
    engine.dispose()
    assert tuple(stored) == (n_alerts, n_alerts)
    assert rejected == 0


def test_demo_prints_predicted_versus_true(demo_run: dict[str, Any]) -> None:
    out = demo_run["stdout"]
    every = [json.loads(line) for line in DEFAULT_TRUTHS.read_text().splitlines() if line]
    truths = [t for t in every if t["is_lens"]]
    with_transient = sum(t["transient_image"] is not None for t in truths)
    assert "Predicted vs true on the sample stream" in out
    assert re.search(r"alert\s+θ_E pred\s+θ_E true", out)
    assert re.search(rf"alerts compared\s+{len(truths)} \({with_transient} with a transient\)", out)
    # The non-lenses are listed apart, with the shipped model's p_lens and its flag.
    assert "Non-lenses in the sample" in out
    flagged = 0
    for t in every[len(truths) :]:
        row = re.search(rf"{t['alert_id']}\s+(\d\.\d\d) (NO LENS|lens)\s", out)
        assert row is not None, t["alert_id"]
        flagged += row.group(2) == "NO LENS"
    assert f"non-lenses flagged no_lens: {flagged}/{len(every) - len(truths)}" in out
    for label in ("θ_E error", "centre x error", "image position error", "delay error"):
        assert label in out
    # The table rows hold numbers for real alerts of the sample.
    ids = {t["alert_id"] for t in truths}
    first_words = [line.split(maxsplit=1)[0] for line in out.splitlines() if line.strip()]
    rows = [word for word in first_words if word in ids]
    assert len(rows) >= min(10, len(truths))
    summary = (demo_run["workdir"] / "summary.txt").read_text()
    assert summary.strip() in out
    # Where to point: RA, Dec of the images still to come, next to their alert's cutout.
    assert "Where to point" in out
    centres = {t["alert_id"]: t for t in truths}
    pointing = re.findall(r"^(\S+)\s+[A-E]\s+(\d+\.\d{6})\s+([+-]\d+\.\d{6})\s", out, re.M)
    assert pointing
    for alert_id, ra, dec in pointing:
        centre = centres[alert_id]
        dx = (float(ra) - centre["ra"]) * 3600 * math.cos(math.radians(centre["dec"]))
        assert math.hypot(dx, (float(dec) - centre["dec"]) * 3600) < 10.0  # arcsec


def test_demo_draws_the_pictures(demo_run: dict[str, Any]) -> None:
    workdir = demo_run["workdir"]
    singles = sorted(workdir.glob("alert-*.png"))
    assert len(singles) == 3
    for path in [*singles, workdir / "gallery.png"]:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 30_000  # a real picture, not an empty canvas
    assert "gallery.png" in demo_run["stdout"]
    assert "Next: lenscast query" in demo_run["stdout"]


def _run_hint(
    demo_run: dict[str, Any], command: str, *, out: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``command`` the demo's closing hints show, as they show it (``out``: its --out)."""
    hint = next(line for line in demo_run["stdout"].splitlines() if command in line)
    argv = shlex.split(hint[hint.index(command) :])
    if out is not None:
        argv[argv.index("--out") + 1] = str(out)
    return subprocess.run(
        [lenscast_executable(), *argv[1:]],
        cwd=demo_run["cwd"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plot_command_draws_a_demo_alert(demo_run: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "alert.png"
    completed = _run_hint(demo_run, "lenscast plot", out=out)
    assert completed.returncode == 0, completed.stderr
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_query_command_lists_the_demo_images(demo_run: dict[str, Any]) -> None:
    completed = _run_hint(demo_run, "lenscast query")
    assert completed.returncode == 0, completed.stderr
    truths = [json.loads(line) for line in DEFAULT_TRUTHS.read_text().splitlines() if line]
    # Non-lenses with a transient get images too (flagged when the model has p_lens).
    transient_ids = {t["alert_id"] for t in truths if t["transient_x"] is not None}
    sample_ids = {t["alert_id"] for t in truths}
    listed = {line.split()[0] for line in completed.stdout.splitlines() if line.strip()}
    listed &= sample_ids  # drop the header and the row count
    # Transient alerts have images (an alert whose physics fails would be rejected instead).
    assert listed <= transient_ids
    assert len(listed) >= len(transient_ids) // 2

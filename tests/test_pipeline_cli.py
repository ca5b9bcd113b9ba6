"""``lenscast process`` from an archive into SQLite, then ``lenscast query`` in every format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from lenscast.cli import main
from lenscast.model import parameter_spec as spec
from lenscast.tools.alert_encoding import TransientSpec, build_record, write_container


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory, fixture_model_path: Path) -> str:
    root = tmp_path_factory.mktemp("process")
    rng = np.random.default_rng(5)
    records = []
    for i in range(12):
        transient = None
        if i % 2 == 0:
            transient = TransientSpec(
                dia_source_id=i,
                x_arcsec=1.5,
                y_arcsec=0.4 * i - 2,
                mjd=60600.0 + i,
                band="r",
                psf_flux_njy=900.0,
            )
        images = rng.normal(0, 0.1, (4, 64, 64)).astype(np.float32) + 1.0
        records.append(
            build_record(
                alert_id=f"p-{i:02d}",
                candidate_id=f"c-{i % 3}",
                ra=30.0,
                dec=-5.0,
                mjd=60600.0 + i,
                images=images,
                z_lens=0.4,
                z_source=1.8,
                transient=transient,
            )
        )
    archive = root / "alerts.avro"
    write_container(records, archive)
    (root / "junk.avro").write_bytes(b"not an alert file")
    db = f"sqlite:///{root / 'results.sqlite'}"
    args = [
        "process",
        str(archive),
        str(root / "junk.avro"),
        "--db",
        db,
        "--model",
        str(fixture_model_path),
        "--no-progress",
        "--mc-samples",
        "10",
    ]
    assert main(args) == 0
    assert main(args) == 0  # again: upserts, no duplicates
    return db


def test_query_json_nests_images_and_filters(
    processed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "--db", processed, "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 12
    assert {p.name for p in spec.MASS_PARAMETERS} | set(spec.SIGMA_NAMES) <= set(results[0])
    with_images = [r for r in results if r["has_transient"]]
    assert len(with_images) == 6
    assert all(r["images"] and r["images"][0]["time_delay_days"] == 0.0 for r in with_images)

    assert main(["query", "--db", processed, "--format", "json", "--no-transient"]) == 0
    assert {r["alert_id"] for r in json.loads(capsys.readouterr().out)} == {
        f"p-{i:02d}" for i in range(1, 12, 2)
    }
    assert (
        main(
            [
                "query",
                "--db",
                processed,
                "--format",
                "json",
                "--candidate-id",
                "c-1",
                "--mjd-min",
                "60603",
                "--mjd-max",
                "60607",
            ]
        )
        == 0
    )
    assert [r["alert_id"] for r in json.loads(capsys.readouterr().out)] == ["p-07", "p-04"]
    theta = sorted(r["theta_e"] for r in results)
    assert (
        main(["query", "--db", processed, "--format", "json", "--theta-e-min", str(theta[6])]) == 0
    )
    assert len(json.loads(capsys.readouterr().out)) == 6
    delays = sorted(max((i["time_delay_days"] for i in r["images"]), default=0) for r in results)
    assert (
        main(["query", "--db", processed, "--format", "json", "--min-time-delay", str(delays[-1])])
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)) >= 1
    assert main(["query", "--db", processed, "--format", "json", "--model-version", "x"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_query_csv_table_and_rejected(processed: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "--db", processed, "--format", "csv", "--images"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows
    assert {"alert_id", "theta_e", "image_index", "x", "arrival_mjd"} <= set(rows[0])
    assert main(["query", "--db", processed, "--format", "table"]) == 0
    assert "(12 rows)" in capsys.readouterr().out
    assert main(["query", "--db", processed, "--rejected"]) == 0
    out = capsys.readouterr().out
    assert "framing.unknown_magic" in out
    assert "(1 rows)" in out


@pytest.mark.parametrize("fmt", ["fits", "votable"])
def test_query_fits_and_votable_open_in_astropy(processed: str, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"out.{fmt}"
    assert (
        main(["query", "--db", processed, "--format", fmt, "--output", str(path), "--images"]) == 0
    )
    table = Table.read(path, format="fits" if fmt == "fits" else "votable")
    assert len(table) > 0
    assert str(table["theta_e"].unit) == "arcsec"
    assert str(table["time_delay_days"].unit) == "d"

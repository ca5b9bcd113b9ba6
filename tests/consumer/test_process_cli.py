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
    # The image's sky position beside the cutout centre's: prefixed, with its percentiles.
    assert {"ra", "image_ra", "image_dec", "image_ra_p16", "image_dec_p84"} <= set(rows[0])
    assert all(float(r["image_ra_p16"]) <= float(r["image_ra_p84"]) for r in rows)
    assert main(["query", "--db", processed, "--format", "table"]) == 0
    table = capsys.readouterr().out
    assert "(12 rows)" in table
    assert "z l/s" in table.splitlines()[0]
    assert main(["query", "--db", processed, "--format", "table", "--images"]) == 0
    assert "arrival_mjd_p84" in capsys.readouterr().out.splitlines()[0]
    assert main(["query", "--db", processed, "--rejected"]) == 0
    out = capsys.readouterr().out
    assert "framing.unknown_magic" in out
    assert "(1 rows)" in out


def _read_back(path: Path, fmt: str) -> tuple[Table, dict[str, str]]:
    """The table as astropy reads it, and its provenance as the format keeps it."""
    if fmt == "fits":
        from astropy.io import fits

        header = fits.getheader(path, 1)
        return Table.read(path, hdu=1), {k: str(v) for k, v in header.items()}
    if fmt == "votable":
        from astropy.io.votable import parse

        votable = parse(str(path))
        infos = {info.name: str(info.value) for info in votable.resources[0].infos}
        return votable.get_first_table().to_table(use_names_over_ids=True), infos
    table = Table.read(path, format="ascii.ecsv")
    return table, {k: str(v) for k, v in table.meta.items()}


@pytest.mark.parametrize("fmt", ["fits", "votable", "ecsv"])
def test_query_tables_describe_themselves_in_astropy(
    processed: str, tmp_path: Path, fmt: str
) -> None:
    from astropy.io.votable.ucd import check_ucd

    from lenscast import __version__
    from lenscast.db.column_docs import column_doc

    path = tmp_path / f"out.{fmt}"
    args = ["query", "--db", processed, "--format", fmt, "--output", str(path), "--images"]
    assert main([*args, "--has-transient", "--theta-e-min", "0.1"]) == 0
    table, meta = _read_back(path, fmt)
    assert len(table) > 0
    assert str(table["theta_e"].unit) == "arcsec"
    assert str(table["time_delay_days"].unit) == "d"
    assert str(table["max_delay_days"].unit) == "d"
    assert str(table["image_ra"].unit) == "deg"
    for name in table.colnames:
        doc = column_doc(name)
        assert doc is not None, name
        column = table[name]
        assert (str(column.unit) if column.unit is not None else "") == doc.unit, name
        assert column.description == doc.description, name
        if fmt != "fits":  # FITS keeps the UCDs in TUCDn (checked below)
            assert column.meta.get("ucd", getattr(column, "ucd", None)) == doc.ucd, name
        assert check_ucd(doc.ucd, check_controlled_vocabulary=True), doc.ucd
    ra = table["image_ra"]
    assert "pos.eq.ra" in column_doc("image_ra").ucd  # type: ignore[union-attr]
    assert np.all((ra >= 0) & (ra < 360))
    keys = ("MODEL", "MODELVER", "MODELSHA", "COSMO", "QUERY", "LCVERS")
    if fmt != "fits":
        keys = (
            "model_name",
            "model_version",
            "onnx_sha256",
            "cosmology",
            "query",
            "lenscast_version",
        )
    model, version, sha, cosmology, query, lenscast_version = (meta[k] for k in keys)
    assert model == "test-fixture-tiny-cnn"
    assert version == "0.0.0-test"
    assert len(sha) == 64
    assert cosmology == "FlatLambdaCDM(H0=70, Om0=0.3)"
    for option in ("--has-transient", "--theta-e-min 0.1", "--images"):
        assert option in query
    assert lenscast_version == __version__
    if fmt == "fits":
        for n, name in enumerate(table.colnames, start=1):
            assert meta[f"TUCD{n}"] == column_doc(name).ucd  # type: ignore[union-attr]
            assert meta[f"TCOMM{n}"] == column_doc(name).description  # type: ignore[union-attr]
    if fmt == "ecsv":  # units in plain text
        assert "unit: arcsec" in path.read_text()


def test_query_ecsv_goes_to_stdout_without_output(
    processed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "--db", processed, "--format", "ecsv"]) == 0
    table = Table.read(capsys.readouterr().out, format="ascii.ecsv")
    assert len(table) == 12
    assert table.meta["rows"] == "one row per result"


def test_origin_code_marks_measured_and_prior_redshifts() -> None:
    from lenscast.db.query_cli import origin_code

    assert origin_code({"z_lens_origin": "measured", "z_source_origin": "prior"}) == "m/p"
    assert origin_code({"z_lens_origin": "prior", "z_source_origin": "prior"}) == "p/p"
    assert origin_code({"z_lens_origin": "measured", "z_source_origin": None}) is None

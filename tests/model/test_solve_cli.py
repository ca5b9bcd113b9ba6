"""``lenscast solve``: JSON Lines in and out, per-line errors, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from harness.paths import ROOT
from lenscast.cli import main

EXAMPLE = ROOT / "examples" / "solve_example.jsonl"


def run_lines(lines: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> list[dict]:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["solve"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_example_file_to_out(tmp_path: Path) -> None:
    out = tmp_path / "images.jsonl"
    assert main(["solve", str(EXAMPLE), "--out", str(out)]) == 0
    results = [json.loads(line) for line in out.read_text().splitlines()]
    inputs = [json.loads(line) for line in EXAMPLE.read_text().splitlines()]
    assert [r["id"] for r in results] == [i["id"] for i in inputs]
    by_id = {r["id"]: r for r in results}
    quad = by_id["sie-quad"]
    assert quad["error"] is None
    assert len(quad["images"]) == 4
    delays = [im["time_delay_days"] for im in quad["images"]]
    assert delays[0] == 0.0
    assert delays == sorted(delays)
    assert set(quad["images"][0]) == {"x", "y", "magnification", "time_delay_days",
                                      "time_delay_p16", "time_delay_p84",
                                      "fermat_potential_arcsec2"}  # fmt: skip
    # Exact redshifts: no redshift spread, and both were measured.
    assert all(im["time_delay_p16"] == im["time_delay_days"] for im in quad["images"])
    assert quad["redshifts"]["z_source_origin"] == "measured"
    sn = by_id["lensed-supernova"]
    assert any(abs(im["x"] - 1.25) < 1e-9 and abs(im["y"] - 0.35) < 1e-9 for im in sn["images"])
    assert by_id["einstein-ring"]["ring"] is True
    assert by_id["einstein-ring"]["images"] == []
    assert "theta_e" in by_id["bad-theta-e"]["error"]
    missing = by_id["no-source-redshift"]
    assert missing["error"] is None
    assert missing["redshifts"]["z_source_origin"] == "prior"
    assert missing["redshifts"]["z_lens_origin"] == "measured"
    later = missing["images"][1]
    assert later["time_delay_p16"] < later["time_delay_days"] < later["time_delay_p84"]
    photo = by_id["photometric-lens-redshift"]["images"][1]
    assert photo["time_delay_p16"] < photo["time_delay_p84"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id": 1', "invalid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"id": 2, "lens": {"theta_e": 0, "e1": 0, "e2": 0, "center_x": 0, "center_y": 0}, '
         '"source": {"x": 0.1, "y": 0}, "z_lens": 0.5, "z_source": 2}', "theta_e"),
        ('{"id": 3, "lens": {"theta_e": 1, "e1": 0.9, "e2": 0.9, "center_x": 0, "center_y": 0}, '
         '"source": {"x": 0.1, "y": 0}, "z_lens": 0.5, "z_source": 2}', "ellipticity"),
        ('{"id": 4, "lens": {"theta_e": NaN, "e1": 0, "e2": 0, "center_x": 0, "center_y": 0}, '
         '"source": {"x": 0.1, "y": 0}, "z_lens": 0.5, "z_source": 2}', "finite"),
        ('{"id": 5, "lens": {"theta_e": 1, "e1": 0, "e2": 0, "center_x": 0, "center_y": 0}, '
         '"source": {"x": 0.1, "y": 0}, "z_lens": 0.5, "z_lens_err": -0.1}', ">= 0"),
        ('{"id": 6, "lens": {"theta_e": 1, "e1": 0, "e2": 0, "center_x": 0, "center_y": 0}, '
         '"source": {"x": 0.1, "y": 0}, "image": {"x": 1, "y": 0}, "z_lens": 0.5, "z_source": 2}',
         "exactly one"),
        ('{"id": 7, "lens": {"theta_e": "1", "e1": 0, "e2": 0, "center_x": 0, "center_y": 0}, '
         '"source": {"x": 0.1, "y": 0}, "z_lens": 0.5, "z_source": 2}', "number"),
        ('{"id": 8, "lens": {"theta_e": 1, "e1": 0, "e2": 0, "center_x": 0, "center_y": 0}, '
         '"source": {"x": 0.1, "y": 0}, "z_lens": 2.5, "z_source": 2}', "z_lens < z_source"),
        ('{"id": 9, "lens": {"theta_e": 1, "e1": 0.1, "e2": 0, "center_x": 0.2, "center_y": 0}, '
         '"image": {"x": 0.2, "y": 0}, "z_lens": 0.5, "z_source": 2}', "singular lens centre"),
        ('{"id": 10, "lens": {"theta_e": 1, "e1": 0, "e2": 0, "center_x": 0, "center_y": 0}, '
         '"source": {"x": 1e308, "y": 0}, "z_lens": 0.5, "z_source": 2}', "arcsec from the origin"),
        ('{"id": 11, "lens": {"theta_e": 1, "e1": 0, "e2": 0, "center_x": 0, "center_y": 0}, '
         '"source": {"x": 0.1, "y": 0}, "z_lens": 0.5, "z_source": 2, '
         '"cosmology": {"H0": 1e-300, "Om0": 0.3}}', "H0 = 1e-300"),
        ('{"id": 12, "lens": {"theta_e": 1, "e1": 0, "e2": 0, "center_x": 0, "center_y": 0}, '
         '"source": {"x": 0.1, "y": 0}, "z_lens": 0.5, "z_source": 2, '
         '"cosmology": {"H0": -70, "Om0": 0.3}}', "H0 = -70"),
        ("[" * 100_000 + "]" * 100_000, "nested too deep"),
    ],
)  # fmt: skip
def test_bad_line_gets_error_and_run_goes_on(
    line: str, reason: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    good = EXAMPLE.read_text().splitlines()[0]
    results = run_lines([good, line, "", good], monkeypatch, capsys)
    assert len(results) == 3
    assert results[0]["error"] is None
    assert results[2]["error"] is None
    assert reason in results[1]["error"]
    assert results[1]["images"] == []


def test_solve_matches_library(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import numpy as np

    from lenscast.model.image_prediction import predict_images
    from lenscast.model.mass_model import MassModel

    line = EXAMPLE.read_text().splitlines()[2]
    record = json.loads(line)
    (result,) = run_lines([line], monkeypatch, capsys)
    pred = predict_images(
        MassModel.from_mapping(record["lens"]), source_x=record["source"]["x"],
        source_y=record["source"]["y"], z_lens=record["z_lens"], z_source=record["z_source"],
    )  # fmt: skip
    k = int(pred.n_images[0])
    np.testing.assert_allclose([im["x"] for im in result["images"]], pred.x[0, :k])
    np.testing.assert_allclose(
        [im["time_delay_days"] for im in result["images"]], pred.time_delay_days[0, :k]
    )


def test_rescaled_delays_match_a_solve_at_other_redshifts(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The stored factors reproduce a run with new redshifts: dt' = D_dt' / c * fermat."""
    from lenscast.model.cosmology import delay_days_per_arcsec2, time_delay_distance_mpc

    record = json.loads(EXAMPLE.read_text().splitlines()[0])
    first, second = run_lines(
        [json.dumps(record), json.dumps(record | {"z_lens": 0.35, "z_source": 3.1})],
        monkeypatch, capsys,
    )  # fmt: skip
    factor = float(delay_days_per_arcsec2(time_delay_distance_mpc(0.35, 3.1)))
    for a, b in zip(first["images"], second["images"], strict=True):
        assert factor * a["fermat_potential_arcsec2"] == pytest.approx(b["time_delay_days"])
def test_lenstronomy_theta_E_spelling_is_accepted(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    record = json.loads(EXAMPLE.read_text().splitlines()[2])
    lens = dict(record["lens"])
    lens["theta_E"] = lens.pop("theta_e")
    both = dict(record["lens"], theta_E=record["lens"]["theta_e"])
    lines = [
        json.dumps(record),
        json.dumps(record | {"lens": lens}),
        json.dumps(record | {"lens": both}),
    ]
    ours, theirs, twice = run_lines(lines, monkeypatch, capsys)
    assert ours["error"] is None
    assert theirs == ours
    assert "not both" in twice["error"]


def test_unusable_invocation_exits_non_zero(tmp_path: Path, capsys) -> None:
    assert main(["solve", str(tmp_path / "missing.jsonl")]) != 0
    assert "cannot read" in capsys.readouterr().err
    assert main(["solve", str(EXAMPLE), "--out", str(tmp_path / "no" / "dir.jsonl")]) != 0
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    assert main(["solve", str(binary)]) != 0


def test_a_system_the_solver_fails_on_costs_only_its_line(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A solver failure (here planted) or a non-finite solution is that line's error."""
    import lenscast.model.solve_cli as solve_cli

    real = solve_cli.predict_images

    def fragile(model: object, **points: object) -> object:
        if 0.123 in list(points.get("source_x", [])):
            raise FloatingPointError("planted")
        prediction = real(model, **points)
        if 0.234 in list(points.get("source_x", [])):
            prediction.time_delay_days[:] = float("inf")
        return prediction

    monkeypatch.setattr(solve_cli, "predict_images", fragile)
    good = json.loads(EXAMPLE.read_text().splitlines()[0])
    lines = [
        json.dumps(good),
        json.dumps({**good, "id": "planted", "source": {"x": 0.123, "y": 0.0}}),
        json.dumps({**good, "id": "infinite", "source": {"x": 0.234, "y": 0.0}}),
        json.dumps(good),
    ]
    results = run_lines(lines, monkeypatch, capsys)
    assert [r["id"] for r in results] == [good["id"], "planted", "infinite", good["id"]]
    assert results[0]["error"] is None
    assert results[3]["error"] is None
    assert "planted" in results[1]["error"]
    assert "not finite" in results[2]["error"]

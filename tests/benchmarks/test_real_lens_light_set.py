"""The real-lens-light evaluation set builder (``benchmarks/real_lens_light*``).

Tested on synthetic galaxy cutouts (CI cannot fetch the HOLISMOKES IX release, whose 16
example cutouts are for evaluation only): the light measurements recover a known galaxy in
lenscast's frame (north up, east left), painted truths are exact (every true image ray-shoots
back to the source), and the shards are what ``lenscast evaluate`` and the comparison read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import real_lens_light_compare as compare
from benchmarks import real_lens_light_set as builder
from benchmarks.real_lens_light import light_shape, paint
from harness.holismokes9_release import write_fake_release
from lenscast.cli import main as cli_main
from lenscast.model import parameter_spec as spec
from lenscast.trainer.dataset import load_shards
from lenscast.trainer.simulation.cosmology import distance_table
from lenscast.trainer.simulation.hudf import hudf_catalogue
from lenscast.trainer.simulation.mass import SieShear, sie_shear_deflection
from lenscast.trainer.simulation.profiles import sersic_ellipse
from lenscast.trainer.simulation.psf import moffat_kernel
from lenscast.trainer.simulation.render import bin_pixels, convolve_bands
from lenscast.trainer.simulation.survey import pixel_grid

_COLOURS = np.array([0.15, 0.45, 1.0, 1.4])  # LRG-like griz flux ratios to i


def synthetic_galaxy(*, centre: tuple[float, float], e1: float, e2: float, flux_i: float = 300.0,
                     noise: float = 0.08, seeing: float = 0.7, seed: int = 0) -> np.ndarray:
    """A Sérsic n=4 galaxy (R_e 1") seen through a Moffat PSF with noise, (4, 64, 64)."""
    x, y = pixel_grid(supersample=4)
    fine = sersic_ellipse(x, y, flux=flux_i, r_sersic=1.0, n_sersic=4.0, e1=e1, e2=e2,
                          center_x=centre[0], center_y=centre[1])
    light = bin_pixels(fine * (spec.PIXEL_SCALE_ARCSEC / 4) ** 2, supersample=4)
    kernel = moffat_kernel(fwhm=seeing, beta=3.0, pixel_scale=spec.PIXEL_SCALE_ARCSEC)
    image = convolve_bands(light[None] * _COLOURS[:, None, None], np.stack([kernel] * 4))
    return image + np.random.default_rng(seed).normal(0.0, noise, image.shape)


@pytest.mark.parametrize(("centre", "e1", "e2"), [((0.5, -0.3), 0.15, 0.0),
                                                  ((-0.4, 0.6), 0.0, -0.15),
                                                  ((0.0, 0.0), -0.1, 0.1)])
def test_light_centre_and_shape_are_recovered_in_lenscast_frame(centre, e1, e2) -> None:
    image = synthetic_galaxy(centre=centre, e1=e1, e2=e2)
    lens = paint.measure(image)
    assert lens.centre_x == pytest.approx(centre[0], abs=0.02)
    assert lens.centre_y == pytest.approx(centre[1], abs=0.02)
    assert lens.light_e1 == pytest.approx(e1, abs=0.05)
    assert lens.light_e2 == pytest.approx(e2, abs=0.05)
    np.testing.assert_allclose(lens.background_rms, 0.08, rtol=0.2)


def test_a_cutout_without_a_central_galaxy_is_rejected() -> None:
    with pytest.raises(ValueError, match="no positive flux"):
        light_shape.light_centre(-np.ones((64, 64)))


def test_dihedral_orientations_are_the_eight_distinct_symmetries() -> None:
    image = np.random.default_rng(0).normal(size=(4, 64, 64))
    views = [light_shape.dihedral(image, k) for k in range(8)]
    np.testing.assert_array_equal(views[0], image)
    assert len({v.tobytes() for v in views}) == 8
    with pytest.raises(ValueError, match="0..7"):
        light_shape.dihedral(image, 8)


def test_painted_truths_ray_shoot_back_to_the_source() -> None:
    """Every true image maps to the source centre through the drawn SIE + shear (x and y)."""
    from collections import Counter

    rng = np.random.default_rng(11)
    lens = paint.measure(synthetic_galaxy(centre=(0.3, -0.2), e1=0.1, e2=0.05))
    catalogue, table = hudf_catalogue(), distance_table()
    attempts: Counter = Counter()
    for _ in range(6):
        image, truths = paint.paint_one(rng, lens, catalogue=catalogue, table=table,
                                        attempts=attempts)
        assert truths["center_x"] == lens.centre_x
        assert truths["center_y"] == lens.centre_y
        assert paint.THETA_E_RANGE[0] <= truths["theta_e"] <= paint.THETA_E_RANGE[1]
        assert 22.0 <= truths["source_mag_i"] <= 25.0
        assert truths["arc_snr"].max() >= paint.MIN_ARC_SNR
        n = truths["n_images"]
        assert n >= 2
        x, y = truths["image_x"][:n], truths["image_y"][:n]
        ax, ay = sie_shear_deflection(x, y, lens=SieShear.from_mapping(truths))
        np.testing.assert_allclose(x - ax, truths["source_x"], atol=1e-6)
        np.testing.assert_allclose(y - ay, truths["source_y"], atol=1e-6)
        delays = truths["time_delay_days"][:n]
        assert delays[0] == 0.0
        assert np.all(np.diff(delays) >= 0)
        # The arcs are added to the real cutout, which is otherwise untouched.
        added = image - lens.image
        assert added.sum() > 0
        assert image.dtype == np.float32
    assert attempts["accepted"] == 6


def _synthetic_release(tmp_path: Path) -> Path:
    lenses = np.stack([synthetic_galaxy(centre=(0.2, -0.1), e1=0.1, e2=0.0, seed=1),
                       synthetic_galaxy(centre=(-0.3, 0.4), e1=0.0, e2=-0.12, seed=2)])
    return write_fake_release(tmp_path / "release", lenses=lenses,
                              arcs=np.abs(np.random.default_rng(3).normal(0, 0.05,
                                                                          lenses.shape)))


def test_builder_writes_evaluable_lens_and_nonlens_shards(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release = _synthetic_release(tmp_path)
    args = ["--release", str(release), "--seed", "5", "--per-galaxy", "3",
            "--out", str(tmp_path / "lenses"), "--nonlens-out", str(tmp_path / "nonlenses"),
            "--no-progress"]
    assert builder.main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["lenses"]["n"] == 6
    assert summary["nonlenses"]["n"] == 16
    lenses = load_shards(tmp_path / "lenses")
    assert lenses.manifest["complete"]
    assert "evaluation only" in lenses.manifest["evaluation_only"]
    assert lenses.images.shape == (6, 4, 64, 64)
    assert sorted(set(lenses.truths["lens_galaxy"].tolist())) == [1, 2]
    assert np.all(lenses.truths["is_lens"] == 1)
    for name in (*spec.MASS_PARAMETER_NAMES, "image_x", "time_delay_days", "z_lens",
                 "source_x", "arc_contrast"):
        assert np.all(np.isfinite(lenses.truths[name][..., 0])), name
    nonlenses = load_shards(tmp_path / "nonlenses")
    assert np.all(nonlenses.truths["is_lens"] == 0)
    assert np.all(np.isnan(nonlenses.truths["theta_e"]))
    assert sorted(nonlenses.truths["orientation"].tolist()) == sorted(list(range(8)) * 2)
    # The same seed rebuilds the same set.
    assert builder.main([*args[:-5], "--out", str(tmp_path / "again"), "--nonlens-out",
                         str(tmp_path / "again-nl"), "--no-progress"]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(load_shards(tmp_path / "again").images, lenses.images)


def test_comparison_statistics_on_known_residuals() -> None:
    truths = {name: np.zeros(200) for name in compare.COMPARED}
    truths["theta_e"] = np.linspace(0.5, 2.99, 200)
    mean = {name: truths[name] + 0.1 for name in compare.COMPARED}
    sigma = {name: np.full(200, 0.05) for name in compare.COMPARED}
    rows = compare.binned(mean, sigma, truths, np.ones(200, dtype=bool))
    assert [r["theta_e_low"] for r in rows] == list(compare.THETA_E_BINS[:-1])
    assert sum(r["n"] for r in rows) == 200
    for row in rows:
        assert row["theta_e"]["median"] == pytest.approx(0.1)
        assert row["theta_e"]["half_width_68"] == pytest.approx(0.0, abs=1e-12)
        assert row["center_x"]["coverage_1sigma"] == 0.0  # 0.1 off with sigma 0.05


def test_roc_auc_counts_ordered_pairs() -> None:
    assert compare.roc_auc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert compare.roc_auc(np.array([0.1]), np.array([0.9])) == 0.0
    assert compare.roc_auc(np.array([0.5, 0.9]), np.array([0.5])) == 0.75


def _export_model_with_p_lens(path: Path) -> None:
    """A tiny graph with the mass outputs plus ``p_lens`` (the brightest pixel, squashed)."""
    import torch

    class WithEvidence(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            level = x.amax(dim=(1, 2, 3))
            mean = torch.ones(x.shape[0], spec.N_PARAMETERS) * 0.1 + level[:, None] * 0.0
            mean[:, 0] = 1.0
            return mean, torch.full_like(mean, 0.05), torch.sigmoid(level - 3.0)

    torch.onnx.export(WithEvidence(), (torch.zeros(2, 4, 64, 64),), str(path), dynamo=False,
                      input_names=[spec.ONNX_INPUT_NAME],
                      output_names=[spec.ONNX_MEAN_NAME, spec.ONNX_SIGMA_NAME, "p_lens"],
                      dynamic_axes={n: {0: "batch"} for n in (spec.ONNX_INPUT_NAME,
                                                              spec.ONNX_MEAN_NAME,
                                                              spec.ONNX_SIGMA_NAME, "p_lens")})
    card = {"name": "with-p-lens", "version": "0", "parameter_spec_version":
            spec.PARAMETER_SPEC_VERSION, "input": {"bands": list(spec.BANDS), "size_pix": 64},
            "outputs": [{"name": n} for n in spec.MASS_PARAMETER_NAMES],
            "lens_evidence": {"output": "p_lens", "default_threshold": 0.7}}
    path.with_suffix(".json").write_text(json.dumps(card))


def test_comparison_reports_lens_evidence_where_the_graph_has_it(tmp_path: Path) -> None:
    release = _synthetic_release(tmp_path)
    assert builder.main(["--release", str(release), "--seed", "2", "--per-galaxy", "2",
                         "--out", str(tmp_path / "l"), "--nonlens-out", str(tmp_path / "n"),
                         "--no-progress"]) == 0
    model = tmp_path / "evidence.onnx"
    _export_model_with_p_lens(model)
    lenses, nonlenses = load_shards(tmp_path / "l"), load_shards(tmp_path / "n")
    run = compare.accuracy(model, lenses, nonlenses)
    evidence = run["p_lens"]
    assert evidence["threshold"] == 0.7
    scores = 1.0 / (1.0 + np.exp(-(lenses.images.max(axis=(1, 2, 3)) - 3.0)))
    assert evidence["fraction_lenses_kept"] == pytest.approx(np.mean(scores >= 0.7), abs=1e-6)
    assert 0.0 <= evidence["roc_auc"] <= 1.0


def test_comparison_runs_both_networks_on_the_built_sets(
        tmp_path: Path, fixture_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release = _synthetic_release(tmp_path)
    assert builder.main(["--release", str(release), "--seed", "1", "--per-galaxy", "2",
                         "--out", str(tmp_path / "l"), "--nonlens-out", str(tmp_path / "n"),
                         "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "compare.json"
    assert compare.main(["--data", str(tmp_path / "l"), "--nonlens-data", str(tmp_path / "n"),
                         "--holismokes", str(fixture_model_path),
                         "--model", str(fixture_model_path), "--rounds", "1",
                         "--seconds", "0.05", "--out", str(out),
                         "--markdown", str(tmp_path / "compare.md")]) == 0
    result = json.loads(out.read_text())
    assert result["data"]["n_lenses"] == 4
    run = result["accuracy"][str(fixture_model_path)]
    assert run["all"]["overall"]["n"] == 4
    assert len(run["nonlenses"]["per_galaxy_upright"]) == 2
    assert [g["n"] for g in run["per_galaxy_theta_e"]] == [2, 2]
    graph = result["speed"]["graphs"][str(fixture_model_path)]
    assert graph["images_per_cpu_second_median"] > 0
    tables = (tmp_path / "compare.md").read_text()
    assert "| 0.5–0.8\" |" in tables
    assert "images per CPU second" in tables
    # ... and `lenscast evaluate` reads the same shards.
    report_dir = tmp_path / "report"
    assert cli_main(["evaluate", "--model", str(fixture_model_path), "--data",
                     str(tmp_path / "l"), "--out", str(report_dir), "--threads", "1",
                     "--theta-e-bins", "0.5,1,3"]) == 0
    report = json.loads((report_dir / "evaluation.json").read_text())
    assert report["n_systems"] == 4

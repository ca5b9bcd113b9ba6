"""Our loader of the HOLISMOKES IX public network (``benchmarks/holismokes9``).

The release itself is not needed (CI cannot fetch it): the network is tested with random
weights in the release's checkpoint layout, and the convention mapping with a synthetic lens
seen in both frames. The runs on the real release are the benchmark commands of
``docs/evaluation/real_lens_light.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits

from benchmarks.holismokes9 import conventions, export_onnx
from benchmarks.holismokes9.network import LenscastGraph, load_checkpoint
from benchmarks.holismokes9.release import read_cutout, read_examples
from harness.holismokes9_release import random_checkpoint, write_fake_release
from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import OnnxMassPredictor
from lenscast.trainer.simulation.mass import SieShear, sie_shear_deflection


def _hessian(x: np.ndarray, y: np.ndarray, params: dict[str, float], h: float = 1e-4
             ) -> np.ndarray:
    """Numerical Hessian of the SIE + shear potential, (3, n): psi_xx, psi_yy, psi_xy."""
    lens = SieShear(**params)
    ax_p, ay_p = sie_shear_deflection(x + h, y, lens=lens)
    ax_m, ay_m = sie_shear_deflection(x - h, y, lens=lens)
    bx_p, by_p = sie_shear_deflection(x, y + h, lens=lens)
    bx_m, by_m = sie_shear_deflection(x, y - h, lens=lens)
    return np.stack([(ax_p - ax_m) / (2 * h), (by_p - by_m) / (2 * h),
                     (ay_p - ay_m) / (2 * h)])


def test_their_lens_maps_to_the_same_lens_in_lenscast_frame() -> None:
    """A lens described in their frame (x west, origin shifted) and our mapping of it agree.

    Their frame is the pixel frame (x along columns, i.e. west on a north-up, east-left
    cutout) with its origin ``ORIGIN_SHIFT`` off the centre. The same lens must bend light
    the same way at the same sky points: the Hessian of the potential (convergence and shear,
    blind to deflection offsets) equals ours with the xy term mirrored.
    """
    rng = np.random.default_rng(4)
    s = conventions.ORIGIN_SHIFT
    for _ in range(20):
        theirs = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5),
                           rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3),
                           rng.uniform(0.6, 3.0), rng.uniform(-0.08, 0.08),
                           rng.uniform(-0.08, 0.08)])
        ours, _ = conventions.to_lenscast(theirs[None], np.ones((1, 7)))
        ours_params = dict(zip(spec.MASS_PARAMETER_NAMES, ours[0], strict=True))
        their_params = {"theta_e": theirs[4], "e1": theirs[2], "e2": theirs[3],
                        "center_x": theirs[0], "center_y": theirs[1],
                        "gamma1": theirs[5], "gamma2": theirs[6]}
        x_t = rng.uniform(-4, 4, 50)
        y_t = rng.uniform(-4, 4, 50)
        sky_x, sky_y = -(x_t - s), y_t - s
        h_theirs = _hessian(x_t, y_t, their_params)
        h_ours = _hessian(sky_x, sky_y, ours_params)
        np.testing.assert_allclose(h_ours[:2], h_theirs[:2], atol=1e-5)
        np.testing.assert_allclose(h_ours[2], -h_theirs[2], atol=1e-5)


def test_unit_outputs_map_to_the_release_ranges_and_sigma_factors() -> None:
    zeros, ones = np.zeros((1, 7)), np.ones((1, 7))
    low, _ = conventions.from_unit_interval(zeros, ones)
    high, sigma = conventions.from_unit_interval(ones, ones)
    np.testing.assert_allclose(low[0], [r[0] for r in conventions.THEIR_RANGES])
    np.testing.assert_allclose(high[0], [r[1] for r in conventions.THEIR_RANGES])
    widths = np.array([r[1] - r[0] for r in conventions.THEIR_RANGES])
    np.testing.assert_allclose(sigma[0], widths * np.array(conventions.SIGMA_SCALE))
    _, floor = conventions.from_unit_interval(zeros, zeros)
    np.testing.assert_allclose(floor[0], conventions.RAW_SIGMA_FLOOR * widths
                               * np.array(conventions.SIGMA_SCALE))


def test_checkpoint_loads_and_the_graph_applies_the_documented_mapping(tmp_path: Path) -> None:
    net = random_checkpoint(tmp_path / "final.t7")
    loaded = load_checkpoint(str(tmp_path / "final.t7"))
    images = torch.from_numpy(np.random.default_rng(1).normal(0, 1, (3, 4, 64, 64)).astype(
        np.float32))
    with torch.no_grad():
        unit = net(images).numpy()
        np.testing.assert_allclose(loaded(images).numpy(), unit, atol=1e-6)
        mean, sigma = (t.numpy() for t in LenscastGraph(loaded).eval()(images))
    assert unit.shape == (3, 14)
    want_mean, want_sigma = conventions.to_lenscast(
        *conventions.from_unit_interval(unit[:, :7], unit[:, 7:]))
    np.testing.assert_allclose(mean, want_mean, atol=1e-5)
    np.testing.assert_allclose(sigma, want_sigma, atol=1e-6)


def test_checkpoint_that_does_not_fit_is_rejected(tmp_path: Path) -> None:
    torch.save({"net": {"conv.weight": torch.zeros(3, 3)}}, tmp_path / "bad.t7")
    with pytest.raises(ValueError, match="do not fit"):
        load_checkpoint(str(tmp_path / "bad.t7"))
    torch.save({"weights": {}}, tmp_path / "nodict.t7")
    with pytest.raises(ValueError, match="'net'"):
        load_checkpoint(str(tmp_path / "nodict.t7"))


def test_release_reader_separates_lens_and_arcs(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    lenses = rng.normal(1.0, 0.1, (2, 4, 64, 64))
    arcs = np.abs(rng.normal(0.0, 0.3, (2, 4, 64, 64)))
    release = write_fake_release(tmp_path / "rel", lenses=lenses, arcs=arcs)
    examples = read_examples(release)
    assert examples.ids == ("1", "2")
    np.testing.assert_allclose(examples.lenses, lenses, atol=1e-5)
    np.testing.assert_allclose(examples.arcs, arcs, atol=1e-6)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((64, 64)))]).writeto(
        tmp_path / "short.fits")
    with pytest.raises(ValueError, match="8 image HDUs"):
        read_cutout(tmp_path / "short.fits")


def test_export_reproduces_release_predictions_and_runs_in_the_predictor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    lenses = rng.normal(0.0, 0.1, (3, 4, 64, 64)) + 5.0 * np.exp(
        -0.5 * ((np.arange(64) - 31.5) ** 2)[:, None] / 9.0 - 0.5 * (
            (np.arange(64) - 31.5) ** 2)[None, :] / 9.0)
    release = write_fake_release(tmp_path / "rel", lenses=lenses,
                                 arcs=np.zeros_like(lenses))
    out = tmp_path / "h9.onnx"
    assert export_onnx.main(["--release", str(release), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"]
    assert summary["reproduces_release_predictions"]["mean"] < 1e-4
    predictor = OnnxMassPredictor(out)
    prediction = predictor.predict(lenses.astype(np.float32))
    median, sigma = conventions.to_lenscast(np.load(release / "pred_median.npy"),
                                            np.load(release / "pred_sigma.npy"))
    np.testing.assert_allclose(spec.as_array(prediction.mean), median, atol=1e-4)
    np.testing.assert_allclose(spec.as_array(prediction.sigma), sigma, atol=1e-4)


def test_export_fails_when_predictions_differ(tmp_path: Path) -> None:
    lenses = np.random.default_rng(5).normal(0.0, 0.1, (2, 4, 64, 64))
    release = write_fake_release(tmp_path / "rel", lenses=lenses, arcs=np.zeros_like(lenses))
    np.save(release / "pred_median.npy", np.load(release / "pred_median.npy") + 0.01)
    assert export_onnx.main(["--release", str(release), "--out", str(tmp_path / "x.onnx")]) == 1

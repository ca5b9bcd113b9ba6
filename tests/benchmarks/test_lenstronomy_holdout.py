"""The independently simulated test set (``benchmarks/lenstronomy_holdout.py``).

It is only worth anything if lenstronomy's pixels are in lenscast's frame and units: a flipped
axis or a wrong zeropoint would make the model look bad (or good) for the wrong reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import lenstronomy_holdout as holdout
from lenscast.model import parameter_spec as spec
from lenscast.trainer.dataset import load_shards

pytest.importorskip("lenstronomy")


def _pixel_offsets(row: int, col: int) -> tuple[float, float]:
    c = (spec.CUTOUT_SIZE_PIX - 1) / 2.0
    return -(col - c) * spec.PIXEL_SCALE_ARCSEC, (row - c) * spec.PIXEL_SCALE_ARCSEC


def test_a_compact_source_lights_up_where_its_true_images_are() -> None:
    """North up, east left: the lensed source's brightest pixels sit on the solver's images."""
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 3:
        system = holdout.draw_system(rng, (1.5, 2.5))
        source = system["source"]
        source.update(R_sersic=0.05, knots=[], e1=0.0, e2=0.0)  # nearly a point
        truth = holdout.true_images(system)
        if truth is None:
            continue
        rendered = holdout.render(system, rng)
        lensed = rendered["source"][2]  # i band, noiseless
        n = int(truth["n_images"])
        for k in range(n):
            if abs(truth["image_magnification"][k]) < 0.5:  # too faint to be a local peak
                continue
            c = (spec.CUTOUT_SIZE_PIX - 1) / 2.0
            col = int(round(c - truth["image_x"][k] / spec.PIXEL_SCALE_ARCSEC))
            row = int(round(c + truth["image_y"][k] / spec.PIXEL_SCALE_ARCSEC))
            window = lensed[row - 2 : row + 3, col - 2 : col + 3]
            assert window.max() > 0.2 * lensed.max(), (k, truth["image_x"][k], truth["image_y"][k])
        peak_row, peak_col = np.unravel_index(np.argmax(lensed), lensed.shape)
        px, py = _pixel_offsets(int(peak_row), int(peak_col))
        distance = np.nanmin(np.hypot(truth["image_x"] - px, truth["image_y"] - py))
        assert distance < 2.0 * spec.PIXEL_SCALE_ARCSEC
        checked += 1


def test_pixels_are_coadd_flux_at_zeropoint_27() -> None:
    """The rendered lens light adds up to its magnitude in lenscast's pixel units."""
    rng = np.random.default_rng(4)
    system = holdout.draw_system(rng, (1.0, 1.0))
    rendered = holdout.render(system, rng)
    for b, band in enumerate("griz"):
        total = rendered["foreground"][b].sum()
        mag = spec.PIXEL_ZEROPOINT_AB - 2.5 * np.log10(total)
        # The 10.8" cutout misses the profile's outer wings: a little fainter, never brighter.
        expected = system["lens_light"]["mags"][band]
        assert expected - 0.01 < mag < expected + 0.6


def test_the_set_reads_like_a_simulated_run(tmp_path) -> None:
    stats = holdout.simulate(4, seed=2, theta_e_range=(0.8, 2.0), out=tmp_path)
    data = load_shards(tmp_path)
    assert len(data) == 4
    assert stats["systems"] == 4
    assert data.images.shape == (4, 4, spec.CUTOUT_SIZE_PIX, spec.CUTOUT_SIZE_PIX)
    for name in (*spec.MASS_PARAMETER_NAMES, "z_lens", "z_source", "source_x", "source_y"):
        assert data.truths[name].shape == (4,)
    assert data.truths["image_x"].shape == (4, holdout.MAX_IMAGES)
    assert np.all(data.truths["n_images"] >= 2)
    assert np.all(data.truths["n_images_inside"] >= 2)  # the default selection
    # Delays count from the first arrival.
    assert np.all(data.truths["time_delay_days"][:, 0] == 0.0)
    assert np.all(np.isfinite(data.images))

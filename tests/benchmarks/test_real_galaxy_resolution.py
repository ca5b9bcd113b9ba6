"""The resolution check of the real lens galaxies, on stamps of known core width."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.real_galaxy_resolution import core_fwhm_pix, resolution_report
from lenscast.trainer.simulation.real_galaxies import RealGalaxyStamp


def _gaussian_stamp(fwhm_pix: float, *, size: int = 81) -> RealGalaxyStamp:
    """A round Gaussian galaxy: half-light radius FWHM / 2, exactly."""
    sigma = fwhm_pix / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    rows, cols = np.indices((size, size)) - (size - 1) / 2
    image = np.exp(-0.5 * (rows**2 + cols**2) / sigma**2)
    griz = np.stack([image] * 4) / image.sum()
    centre = ((size - 1) / 2, (size - 1) / 2)
    return RealGalaxyStamp(0, griz.astype(np.float32), fwhm_pix / 2, centre,
                           np.eye(2) * sigma**2, np.ones(4))


@pytest.mark.parametrize("fwhm", [6.0, 9.0, 14.0])
def test_core_width_of_a_gaussian_is_its_fwhm(fwhm: float) -> None:
    assert core_fwhm_pix(_gaussian_stamp(fwhm)) == pytest.approx(fwhm, rel=0.1)


def test_point_sources_report_the_point_source_ratio_and_their_blur() -> None:
    report = resolution_report([_gaussian_stamp(f) for f in (6.0, 8.0, 10.0)],
                               max_blur_arcsec=0.35)
    assert report["galaxies"] == 3
    assert report["half_light_over_core_fwhm"]["p50"] == pytest.approx(0.5, rel=0.1)
    # Drawn at R_e = 0.4", a point source carries ~0.8" of its own seeing.
    blur = report["inherited_blur_arcsec"]["0.4"]
    assert blur["median"] == pytest.approx(0.8, rel=0.1)
    assert blur["fraction_below_0.35"] == 0.0

"""How resolved the real lens galaxies are: the SDSS seeing each stamp carries into a cutout.

``lenscast simulate --lens-light real`` shrinks (or grows) an SDSS galaxy to the half-light
radius it draws and then convolves it with the HSC PSF. The SDSS seeing baked into the image is
scaled with it: a galaxy whose half-light radius is ``R`` stamp pixels and whose core is ``F``
pixels across at half maximum, drawn at half-light radius ``R_e`` on the sky, carries a blur of
about ``F R_e / R`` arcsec before the HSC PSF is applied. Where that exceeds the HSC seeing, the
lens light in the cutout is mostly SDSS seeing, not galaxy.

For each elliptical of the catalogue (or the first ``--limit``), this prints the percentiles of
``R``, ``F`` and ``R / F`` (a point source seen through a Gaussian PSF has ``R / F = 0.5``) and,
for a few drawn half-light radii, the median inherited blur and the fraction of galaxies whose
blur stays below ``--max-blur`` arcsec::

    python -m benchmarks.real_galaxy_resolution --galaxies /work/data/gz1 --limit 600
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.json_report import emit
from lenscast.trainer.simulation.real_galaxies import (
    LENS_CLASSES,
    RealGalaxyCatalogue,
    RealGalaxyStamp,
)

#: Half-light radii drawn on the sky at which the inherited blur is reported, arcsec.
REPORTED_R_EFF = (0.4, 0.8, 1.5, 2.5)


def core_fwhm_pix(stamp: RealGalaxyStamp) -> float:
    """Width at half maximum of the central galaxy's i-band core, stamp pixels.

    The area above half the peak within two half-light radii of the centre, as the diameter of
    a disc of that area (the peak is the brightest pixel of the 3 x 3 about the centre). Counting
    whole pixels, it reads a round Gaussian of 6-14 px up to 6 % narrow, so the ratios below
    err towards sharper galaxies.
    """
    image = stamp.griz[2]
    row, col = stamp.centre
    r0, c0 = int(round(row)), int(round(col))
    peak = float(image[max(r0 - 1, 0):r0 + 2, max(c0 - 1, 0):c0 + 2].max())
    rows, cols = np.indices(image.shape)
    near = (rows - row) ** 2 + (cols - col) ** 2 < (2.0 * stamp.half_light_pix) ** 2
    area = float(np.count_nonzero((image > 0.5 * peak) & near))
    return 2.0 * np.sqrt(area / np.pi)


def resolution_report(stamps: Sequence[RealGalaxyStamp], *, max_blur_arcsec: float) -> dict:
    """Percentiles of half-light radius, core width and their ratio; blur per drawn R_e."""
    half_light = np.array([s.half_light_pix for s in stamps])
    core = np.array([core_fwhm_pix(s) for s in stamps])
    ratio = half_light / core
    percentiles = (10, 25, 50, 75, 90)

    def spread(values: np.ndarray) -> dict[str, float]:
        return {f"p{p}": round(float(v), 3)
                for p, v in zip(percentiles, np.percentile(values, percentiles), strict=True)}

    return {
        "galaxies": len(stamps),
        "half_light_pix": spread(half_light),
        "core_fwhm_pix": spread(core),
        "half_light_over_core_fwhm": spread(ratio),
        "point_source_ratio": 0.5,
        "inherited_blur_arcsec": {
            str(r_eff): {
                "median": round(float(np.median(r_eff / ratio)), 3),
                f"fraction_below_{max_blur_arcsec}": round(
                    float(np.mean(r_eff / ratio < max_blur_arcsec)), 3),
            }
            for r_eff in REPORTED_R_EFF
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the catalogue's ellipticals and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=Path, required=True,
                        help="catalogue directory (trainer/scripts/fetch_real_galaxies.sh)")
    parser.add_argument("--limit", type=int, default=600, help="ellipticals measured (first N)")
    parser.add_argument("--max-blur", type=float, default=0.35, metavar="ARCSEC",
                        help="blur counted as sharp enough: about half the HSC i-band seeing")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    catalogue = RealGalaxyCatalogue(args.galaxies)
    ids = [g for g, kind in enumerate(catalogue.kinds) if kind in LENS_CLASSES][:args.limit]
    stamps = [s for s in (catalogue.stamp(g) for g in ids) if s is not None]
    report = {"command": "python -m benchmarks.real_galaxy_resolution --galaxies DIR "
                         f"--limit {args.limit} --max-blur {args.max_blur}",
              **resolution_report(stamps, max_blur_arcsec=args.max_blur)}
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

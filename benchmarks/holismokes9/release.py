"""Read the HOLISMOKES IX public release (github.com/shsuyu/HOLISMOKES-public, ``HOLISMOKES_IX``).

EVALUATION ONLY: the release's 16 example cutouts are real HSC luminous red galaxies with mock
arcs. lenscast never trains, calibrates, selects or tunes anything on them; they are used only
to evaluate (and to check that our rebuilt network reproduces the release's own predictions).

Layout of the release folder::

    IDs.txt               one lens ID per line ("1" ... "16")
    images/lens_<ID>.fits primary HDU empty, then 8 image HDUs of 64x64 float64:
                          HDU 1, 3, 5, 7 = g, r, i, z mock (real lens + mock arcs; the network's
                          input, as the release's apply_net.py reads it)
                          HDU 2, 4, 6, 8 = g, r, i, z mock arcs alone
    final.t7              PyTorch checkpoint of the network
    pred_median.npy       (16, 7) the release's predictions for the examples (their order)
    pred_sigma.npy        (16, 7) the release's 1σ for the examples

The README does not name HDUs 2, 4, 6, 8; they are the arcs alone: non-negative (to 1e-3 of the
peak), ring-shaped about the lens, bluer than the lens. So the real lens galaxy alone is HDU
``2b+1`` minus HDU ``2b+2``. Pixels are HSC coadd flux (zeropoint 27), the FITS array as stored
(rows north, columns west: the usual north-up, east-left cutout); the headers carry no WCS.

The release has no licence file (checked at commit ac80c50 of the repository): its files are
copyrighted by their authors, who ask that Schuldt et al. (2023, arXiv:2206.11279) be cited.
So lenscast does not redistribute any of it: ``python -m benchmarks.holismokes9.export_onnx``
rebuilds everything from a local copy of the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

#: Number of bands and the HDUs holding them.
N_BANDS = 4
#: Side of each cutout, pixels (the release's 64 x 64 HSC stamps at 0.168"/px).
CUTOUT_SIZE = 64


@dataclass(frozen=True)
class ReleaseExamples:
    """The release's example cutouts (evaluation only).

    Attributes
    ----------
    ids : tuple of str
        Lens IDs, in ``IDs.txt`` order.
    mocks : ndarray, float32, shape (n, 4, 64, 64)
        griz real lens galaxy plus mock arcs (coadd flux, zeropoint 27).
    arcs : ndarray, float32, shape (n, 4, 64, 64)
        The mock arcs alone.
    """

    ids: tuple[str, ...]
    mocks: np.ndarray
    arcs: np.ndarray

    @property
    def lenses(self) -> np.ndarray:
        """The real lens galaxies without the mock arcs, shape (n, 4, 64, 64)."""
        return self.mocks - self.arcs


def read_ids(path: Path) -> tuple[str, ...]:
    """Lens IDs from an ``IDs.txt`` (first column of each non-empty line)."""
    ids = tuple(line.split()[0] for line in Path(path).read_text().splitlines() if line.strip())
    if not ids:
        raise ValueError(f"{path}: no lens IDs")
    return ids


def read_cutout(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One release cutout: (mock, arcs), each float32 (4, 64, 64).

    Raises
    ------
    ValueError
        If the file does not hold 8 image HDUs of 64x64 after the primary one.
    """
    with fits.open(path) as hdus:
        planes = [h.data for h in hdus[1:]]
    shapes = [None if p is None else p.shape for p in planes]
    if len(planes) != 2 * N_BANDS or any(s != (CUTOUT_SIZE, CUTOUT_SIZE) for s in shapes):
        raise ValueError(f"{path}: expected {2 * N_BANDS} image HDUs of {CUTOUT_SIZE}x"
                         f"{CUTOUT_SIZE} after the primary HDU, got {shapes}")
    cube = np.asarray(planes, dtype=np.float32)
    return cube[0::2], cube[1::2]


def read_examples(release: Path) -> ReleaseExamples:
    """All example cutouts of the release folder ``release`` (holding ``IDs.txt``, ``images/``)."""
    release = Path(release)
    ids = read_ids(release / "IDs.txt")
    pairs = [read_cutout(release / "images" / f"lens_{i}.fits") for i in ids]
    return ReleaseExamples(ids, np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))


def read_release_predictions(release: Path) -> tuple[np.ndarray, np.ndarray]:
    """The release's own predictions for its examples: (median, sigma), (n, 7), their order."""
    release = Path(release)
    return (np.load(release / "pred_median.npy", allow_pickle=False),
            np.load(release / "pred_sigma.npy", allow_pickle=False))


def find_release(path: Path) -> Path:
    """The ``HOLISMOKES_IX`` folder at or directly under ``path``.

    Raises
    ------
    FileNotFoundError
        With the fetch command, if neither holds ``final.t7``.
    """
    for candidate in (Path(path), Path(path) / "HOLISMOKES_IX"):
        if (candidate / "final.t7").exists():
            return candidate
    raise FileNotFoundError(
        f"no HOLISMOKES IX release (final.t7) at {path}; get it with "
        "`git clone https://github.com/shsuyu/HOLISMOKES-public` and pass its HOLISMOKES_IX folder")

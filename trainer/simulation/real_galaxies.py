"""Real galaxies as lens light and non-lenses: SDSS colour images of Galaxy Zoo 1 galaxies.

The catalogue is a directory of Galaxy Zoo 1 cutouts (SDSS gri colour JPEGs, 423 x 423 px,
each centred on one galaxy, scaled to its size) and a CSV of their Galaxy Zoo 1 classes
(``OBJID,CLASS``: 0 elliptical, 1 and 2 spirals, 3 edge-on disc, 4 unknown, 5 merger);
``trainer/scripts/fetch_real_galaxies.sh`` regenerates it. Each image is made a flux stamp the
way :mod:`~lenscast.trainer.simulation.hudf` makes HUDF stamps:

* the display stretch is undone: SDSS composites use the asinh stretch of Lupton et al.
  (2004), so ``flux ~ sinh(Q v)`` for a display value ``v`` in [0, 1]; ``Q`` = 8 was chosen
  so that the ellipticals' median concentration R90/R50 inside their footprints reaches the
  SDSS early-type boundary of 2.6 (Strateva et al. 2001), measured on 200 of them when it was
  chosen;
* binned 2 x 2 (the SDSS seeing spans ~10 of these pixels, so nothing is lost), the sky
  median subtracted, every object above 3 sigma kept on its dilated footprint, the noise
  elsewhere blanked; the central object is the galaxy, the others are its real neighbours;
* channels to HSC bands: g <- B (SDSS g), r <- G (r), i <- R (i), z <- R (no z image; the
  catalogue colour calibration sets i - z); every band scaled so the ellipticals' median
  colours are those of a z ~ 0.5 luminous red galaxy, each galaxy keeping its own colours and
  colour gradients;
* normalised to unit i-band flux of the central galaxy, whose centre, half-light radius and
  second moments are measured on the i band.

Galaxies are split once, by a fixed permutation of the CSV rows sorted by ``OBJID``, into
train / val / test sets, so a test system never shows a galaxy the network saw in training.
Stamps are built when first drawn and cached per process.

The images carry SDSS's own PSF (~1.4"), shrunk with the galaxy and then convolved with the
HSC PSF. The ellipticals are barely resolved (half-light radius ~0.76 of the core's FWHM, where
a point source gives 0.5; ``python -m benchmarks.real_galaxy_resolution``), so the lens light is
mostly SDSS seeing: far smoother than a real HSC galaxy of the same size (a known limitation,
see docs/simulation/README.md).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from lenscast.trainer.simulation import realistic_light
from lenscast.trainer.simulation.hudf import SPLIT_FRACTIONS, SPLITS
from lenscast.trainer.simulation.mass import ellipticity_to_phi_q, phi_q_to_ellipticity

#: Galaxy Zoo 1 class codes of the catalogue CSV.
GZ1_CLASSES = {0: "elliptical", 1: "spiral", 2: "spiral", 3: "edge_on", 4: "unknown", 5: "merger"}
#: Classes drawn as lens light, and as the central object of a real-galaxy non-lens.
LENS_CLASSES = ("elliptical",)
FOREGROUND_CLASSES = ("spiral", "edge_on", "merger")
#: Asinh softening of the SDSS colour composites (see module docstring).
ASINH_Q = 8.0
#: Median (g-r, r-i, i-z) of the ellipticals after calibration: a z ~ 0.5 red galaxy (AB).
TARGET_MEDIAN_COLOURS = (1.6, 0.6, 0.35)
_SPLIT_SEED = 20261203
_BIN = 2
#: Outer fraction of the stamp's radius over which it fades to zero.
_TAPER = 0.2
_DETECT_SIGMA = 3.0
#: Linear flux of each 8-bit display value.
_SINH_TABLE = np.sinh(ASINH_Q * np.arange(256) / 255.0).astype(np.float32)
#: Ellipticals whose calibration colours are measured (the first this many of the CSV).
_CALIBRATION_SAMPLE = 300
_CSV_NAME = "smallCSV_class.csv"
_IMAGE_DIR = "img"


@dataclass(frozen=True)
class RealGalaxyStamp:
    """One real galaxy and its neighbours as a flux stamp.

    :func:`component` draws it on the sky at a random rotation, mirrored half the time, so
    the orientation of the original image carries no meaning here.

    Attributes
    ----------
    galaxy_id : int
        Row of the catalogue (CSV sorted by ``OBJID``).
    griz : ndarray, shape (4, h, w), float32
        Flux per stamp pixel in g, r, i, z; the central galaxy's i band sums to 1.
    half_light_pix : float
        Central galaxy's i-band half-light radius, stamp pixels.
    centre : tuple of float
        Central galaxy's i-band light centre (row, column), stamp pixels.
    moments : ndarray, shape (2, 2)
        Central galaxy's i-band second moments about its centre, stamp pixels squared, in
        (column, row) order.
    colours : ndarray, shape (4,)
        Central galaxy's total flux per band relative to i.
    """

    galaxy_id: int
    griz: np.ndarray
    half_light_pix: float
    centre: tuple[float, float]
    moments: np.ndarray
    colours: np.ndarray


class RealGalaxyCatalogue:
    """The Galaxy Zoo 1 galaxies of a directory, their classes and split.

    Parameters
    ----------
    directory : str or Path
        Holds ``smallCSV_class.csv`` and ``img/<OBJID>.jpeg``.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        table = self.directory / _CSV_NAME
        if not table.is_file():
            raise FileNotFoundError(
                f"{table} not found: run trainer/scripts/fetch_real_galaxies.sh DIR first")
        with table.open() as handle:
            rows = sorted(((r["OBJID"], int(r["CLASS"])) for r in csv.DictReader(handle)),
                          key=lambda row: int(row[0]))
        self.objids = tuple(objid for objid, _ in rows)
        self.kinds = tuple(GZ1_CLASSES.get(code, "unknown") for _, code in rows)
        order = np.random.default_rng(_SPLIT_SEED).permutation(len(rows))
        n_train = int(round(SPLIT_FRACTIONS[0] * len(rows)))
        n_val = int(round(SPLIT_FRACTIONS[1] * len(rows)))
        split = np.empty(len(rows), dtype=object)
        split[order[:n_train]] = "train"
        split[order[n_train:n_train + n_val]] = "val"
        split[order[n_train + n_val:]] = "test"
        self.split_of = tuple(str(s) for s in split)
        self._factor: np.ndarray | None = None
        self._ids: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
        # Every lens-class stamp of a split fits (~0.7 MB each): each image is decoded once.
        self._stamp = lru_cache(maxsize=4096)(self._build)

    def ids(self, split: str, kinds: tuple[str, ...]) -> np.ndarray:
        """Galaxy ids of ``split`` whose class is one of ``kinds``, ascending."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        # Asked once per drawn system: built once per (split, kinds), not per draw.
        if (split, kinds) not in self._ids:
            self._ids[split, kinds] = np.array(
                [g for g, (s, k) in enumerate(zip(self.split_of, self.kinds, strict=True))
                 if s == split and k in kinds], dtype=int)
        return self._ids[split, kinds]

    def stamp(self, galaxy_id: int) -> RealGalaxyStamp | None:
        """The stamp of ``galaxy_id``, or None where no galaxy sits at the image centre."""
        return self._stamp(int(galaxy_id))

    def _linear(self, galaxy_id: int) -> np.ndarray:
        from PIL import Image

        path = self.directory / _IMAGE_DIR / f"{self.objids[galaxy_id]}.jpeg"
        with Image.open(path) as image:
            display = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return linear_griz(display)

    def _band_factor(self) -> np.ndarray:
        """Per-band scale setting the ellipticals' median colours (computed once)."""
        if self._factor is None:
            ellipticals = [g for g, k in enumerate(self.kinds) if k == "elliptical"]
            colours = [measure(self._linear(g))
                       for g in ellipticals[:_CALIBRATION_SAMPLE]]
            mags = -2.5 * np.log10(np.array([c[4] for c in colours if c is not None]))
            g_r, r_i, i_z = TARGET_MEDIAN_COLOURS
            target = np.array([g_r + r_i, r_i, 0.0, -i_z])
            self._factor = 10.0 ** (-0.4 * (target - np.median(mags, axis=0)))
        return self._factor

    def _build(self, galaxy_id: int) -> RealGalaxyStamp | None:
        griz = self._linear(galaxy_id) * self._band_factor()[:, None, None]
        measured = measure(griz)
        if measured is None:
            return None
        clean, centre, half_light, moments, colours = measured
        return RealGalaxyStamp(galaxy_id, clean.astype(np.float32), half_light, centre, moments,
                               colours)


def linear_griz(display: np.ndarray) -> np.ndarray:
    """SDSS colour-composite display values to binned, sky-subtracted griz flux.

    Parameters
    ----------
    display : ndarray, shape (h, w, 3), uint8
        RGB display values.

    Returns
    -------
    ndarray, shape (4, h // 2, w // 2)
        Relative flux in g, r, i, z (z a copy of i), arbitrary units per band.
    """
    h, w = (display.shape[0] // _BIN) * _BIN, (display.shape[1] // _BIN) * _BIN
    channels = np.moveaxis(display[:h, :w], -1, 0)
    bands = []
    # Blue, green, red are SDSS g, r, i.
    for channel in channels[::-1]:
        # The sky is the median display value (a histogram of 256 levels is exact and fast).
        cumulative = np.cumsum(np.bincount(channel.ravel(), minlength=256))
        sky = int(np.searchsorted(cumulative, 0.5 * cumulative[-1]))
        flux = _SINH_TABLE[channel] - _SINH_TABLE[sky]
        bands.append(flux.reshape(h // _BIN, _BIN, w // _BIN, _BIN).sum(axis=(1, 3)))
    return np.stack([*bands, bands[-1]])


def measure(griz: np.ndarray):
    """Clean ``griz`` and measure its central galaxy.

    Returns
    -------
    tuple or None
        ``(clean griz normalised to the central i flux, centre (row, col), half-light radius
        (pix), moments (2, 2) in (col, row), colours (4,))``; None if no object covers the
        image centre.
    """
    detect = ndimage.gaussian_filter(griz[:3].mean(axis=0), 1.0)
    mad = np.median(np.abs(detect - np.median(detect)))
    labels, _ = ndimage.label(detect > _DETECT_SIGMA * 1.4826 * max(mad, 1e-12))
    ny, nx = labels.shape
    central = labels[ny // 2 - 2:ny // 2 + 3, nx // 2 - 2:nx // 2 + 3]
    central = central[central > 0]
    if central.size == 0:
        return None
    own = ndimage.binary_dilation(labels == np.bincount(central).argmax(), iterations=2)
    footprint = ndimage.binary_dilation(labels > 0, iterations=2)
    # Faded to zero towards the stamp's inscribed circle, so that a footprint reaching the
    # border (a large halo or neighbour) leaves no square edge in the cutout.
    rows, cols = np.indices(labels.shape)
    edge = 0.5 * min(ny, nx)
    radius = np.hypot(rows - 0.5 * (ny - 1), cols - 0.5 * (nx - 1))
    taper = np.clip((edge - radius) / (_TAPER * edge), 0.0, 1.0)
    clean = np.clip(griz, 0.0, None) * (footprint * taper)
    galaxy = clean * own
    total = galaxy.sum(axis=(1, 2))
    if (total <= 0).any():
        return None
    flux = galaxy[2]
    cy, cx = (rows * flux).sum() / total[2], (cols * flux).sum() / total[2]
    dy, dx = rows - cy, cols - cx
    moments = np.array([[(dx * dx * flux).sum(), (dx * dy * flux).sum()],
                        [(dx * dy * flux).sum(), (dy * dy * flux).sum()]]) / total[2]
    radius = np.hypot(dy, dx).ravel()
    order = np.argsort(radius)
    cumulative = np.cumsum(flux.ravel()[order])
    half_light = float(radius[order][np.searchsorted(cumulative, 0.5 * total[2])])
    return (clean / total[2], (float(cy), float(cx)), max(half_light, 0.5), moments,
            total / total[2])


def sky_ellipticity(moments: np.ndarray, *, rotation: float, mirror: bool) -> tuple[float, float]:
    """Ellipticity (e1, e2) on the sky of a stamp drawn with ``rotation`` and ``mirror``.

    The renderer samples stamp coordinates ``s = D R(-rotation) d / scale`` at sky offsets
    ``d`` (``D`` flips the column axis when mirrored), so the sky moments are
    ``R(rotation) D M D R(rotation)^T`` (the scale does not change the shape).

    Parameters
    ----------
    moments : ndarray, shape (2, 2)
        Stamp second moments in (column, row) order.
    rotation : float
        Rotation, radians.
    mirror : bool
        Whether the stamp's columns are flipped.

    Returns
    -------
    (float, float)
        (1 - q)/(1 + q) (cos 2 phi, sin 2 phi), phi the major axis from +x.
    """
    flip = np.diag([-1.0 if mirror else 1.0, 1.0])
    cos, sin = np.cos(rotation), np.sin(rotation)
    turn = np.array([[cos, -sin], [sin, cos]])
    sky = turn @ flip @ moments @ flip @ turn.T
    eigen = np.linalg.eigvalsh(sky)
    q = float(np.sqrt(max(eigen[0], 1e-12) / max(eigen[1], 1e-12)))
    phi = 0.5 * np.arctan2(2.0 * sky[0, 1], sky[0, 0] - sky[1, 1])
    e1, e2 = phi_q_to_ellipticity(phi=phi, q=min(q, 1.0))
    return float(e1), float(e2)


@lru_cache(maxsize=2)
def real_galaxy_catalogue(directory: str) -> RealGalaxyCatalogue:
    """The catalogue of ``directory`` (cached per process)."""
    return RealGalaxyCatalogue(directory)


def draw_stamp(rng: np.random.Generator, catalogue: RealGalaxyCatalogue, *, split: str,
               kinds: tuple[str, ...]) -> RealGalaxyStamp:
    """A usable stamp of ``split`` whose class is in ``kinds``, drawn uniformly."""
    ids = catalogue.ids(split, kinds)
    if not len(ids):
        raise ValueError(f"no {kinds} galaxies in the {split} split of {catalogue.directory}")
    while True:
        stamp = catalogue.stamp(int(ids[rng.integers(0, len(ids))]))
        if stamp is not None:
            return stamp


def component(stamp: RealGalaxyStamp, *, x: float, y: float, r_eff: float,
              rng: np.random.Generator, mag_i: float) -> dict:
    """A light component (kind ``"real"``) drawing ``stamp`` at a random orientation.

    Parameters
    ----------
    stamp : RealGalaxyStamp
    x, y : float
        Where the galaxy's light centre goes, arcsec.
    r_eff : float
        Its half-light radius on the sky, arcsec (sets the stamp's pixel scale).
    rng : numpy.random.Generator
        Draws the rotation and whether it is mirrored.
    mag_i : float
        Its total i-band magnitude (AB); its other bands keep the galaxy's colours.

    Returns
    -------
    dict
        ``kind``, ``stamp``, ``x``, ``y``, ``scale`` (arcsec per stamp pixel), ``rotation``
        (rad), ``mirror``, ``mags`` (griz AB), ``e1``, ``e2`` (the light's ellipticity on the
        sky).
    """
    rotation = float(rng.uniform(0.0, 2.0 * np.pi))
    mirror = bool(rng.uniform() < 0.5)
    e1, e2 = sky_ellipticity(stamp.moments, rotation=rotation, mirror=mirror)
    return {"kind": "real", "stamp": stamp, "x": float(x), "y": float(y),
            "scale": float(r_eff / stamp.half_light_pix), "rotation": rotation,
            "mirror": mirror, "mags": mag_i - 2.5 * np.log10(stamp.colours),
            "e1": e1, "e2": e2}


def make_real(rng: np.random.Generator, lens: dict, *, catalogue: RealGalaxyCatalogue,
              split: str, mass_angle_scatter_deg: float,
              mass_q_scatter: float) -> tuple[dict, list[dict]]:
    """Replace ``lens``'s light by a real elliptical; return the new lens and its companions.

    The light centre, brightness (i 17-19.5 at every θ_E), half-light radius (0.4-2.5") and
    companions are drawn as for realistic lens light
    (:func:`~lenscast.trainer.simulation.realistic_light.make_realistic`); the galaxy itself
    is a real elliptical of ``split``. The mass follows the real light's measured shape:
    axis ratio and angle with the given scatter.
    """
    lens, companions = realistic_light.make_realistic(rng, lens)
    stamp = draw_stamp(rng, catalogue, split=split, kinds=LENS_CLASSES)
    r_eff = float(np.exp(rng.uniform(*np.log(realistic_light.R_EFF_RANGE))))
    light = component(stamp, x=lens["lens_light_x"], y=lens["lens_light_y"], r_eff=r_eff,
                      rng=rng, mag_i=lens["lens_mag_i"])
    phi, q = ellipticity_to_phi_q(e1=light["e1"], e2=light["e2"])
    q_mass = float(np.clip(q + rng.normal(0.0, mass_q_scatter), 0.35, 1.0))
    phi_mass = phi + np.deg2rad(rng.normal(0.0, mass_angle_scatter_deg))
    e1, e2 = phi_q_to_ellipticity(phi=phi_mass, q=q_mass)
    lens.update(e1=float(e1), e2=float(e2), lens_e1=light["e1"], lens_e2=light["e2"],
                lens_r_eff=r_eff, lens_n_sersic=float("nan"), light_components=[light],
                lens_galaxy_id=stamp.galaxy_id,
                **{f"lens_mag_{b}": float(m) for b, m in zip("griz", light["mags"], strict=True)})
    return lens, companions

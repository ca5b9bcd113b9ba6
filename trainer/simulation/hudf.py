"""Real source galaxies cut from the Hubble eXtreme Deep Field image shipped with scikit-image.

``skimage.data.hubble_deep_field()`` is an 8-bit RGB rendering of the XDF (blue: ACS
F435W/F606W, green: F775W/F814W/F850LP, red: WFC3/IR). We undo the display gamma, subtract the
background, segment the field, keep isolated galaxies (no saturated stars, not on the border),
blank every other object and the noise outside each galaxy's dilated footprint, and map the
channels to HSC bands (g <- B, r <- (B+G)/2, i <- G, z <- (G+R)/2). Each stamp is normalised
to unit i-band flux; the simulator rescales it to a drawn magnitude, keeping the galaxy's own
colours, and draws it with bilinear interpolation as source-plane surface brightness.

Galaxies are split once, by a fixed permutation, into train / val / test sets, so a test
system never shows a galaxy the network saw in training. ``galaxy_id`` is the index in the
catalogue (ordered by position in the field), stable while :data:`CATALOGUE_VERSION` is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage

#: Bumped whenever the segmentation or cleaning changes (it renumbers ``galaxy_id``).
CATALOGUE_VERSION = "hudf-1"
SPLITS = ("train", "val", "test")
#: Fractions of galaxies in the train / val / test sets.
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
_SPLIT_SEED = 20260101
#: Detection threshold above the background, in units of its robust rms.
_DETECT_SIGMA = 3.0
_MIN_AREA, _MAX_AREA = 25, 3000
_MARGIN = 3
_DISPLAY_GAMMA = 2.2
#: Median colours (g-r, r-i, i-z, AB) of star-forming galaxies at z ~ 1-2 (e.g. COSMOS2015
#: photometry). The press image's channel stretch is uncalibrated, so the catalogue's median
#: colours are shifted onto these, keeping every galaxy's own colour and colour gradients.
_TARGET_MEDIAN_COLOURS = (0.35, 0.2, 0.1)


@dataclass(frozen=True)
class GalaxyStamp:
    """One cleaned HUDF galaxy.

    Attributes
    ----------
    galaxy_id : int
        Index in the catalogue.
    griz : ndarray, shape (4, h, w)
        Flux per stamp pixel in g, r, i, z, normalised to ``griz[2].sum() == 1``; zero
        outside the galaxy.
    half_light_pix : float
        i-band half-light radius, stamp pixels.
    centre : tuple of float
        i-band light centre (row, column), stamp pixels.
    """

    galaxy_id: int
    griz: np.ndarray
    half_light_pix: float
    centre: tuple[float, float]

    @property
    def colours(self) -> np.ndarray:
        """Total flux per band relative to i (shape (4,))."""
        return self.griz.sum(axis=(1, 2))


@dataclass(frozen=True)
class Catalogue:
    """All usable HUDF galaxies and their split."""

    stamps: tuple[GalaxyStamp, ...]
    split_of: dict[int, str]
    _ids: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids = {s: np.array(sorted(g for g, v in self.split_of.items() if v == s), dtype=int)
               for s in SPLITS}
        object.__setattr__(self, "_ids", ids)

    def ids(self, split: str) -> np.ndarray:
        """Galaxy ids of ``split`` ("train", "val" or "test"), ascending."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return self._ids[split]

    def fingerprint(self, *, pixels: bool = True) -> str:
        """SHA-256 (16 hex digits) of every galaxy's split and, with ``pixels``, its stamp.

        Equal on two machines only if their catalogues are identical: a training set simulated
        elsewhere (another scikit-image, Pillow or SciPy) is checked with it before it is used
        beside sets made here. Without ``pixels`` it checks the split alone (what keeps test
        galaxies out of training), which last-bit float differences cannot change.
        """
        digest = hashlib.sha256()
        for stamp in self.stamps:
            digest.update(f"{stamp.galaxy_id}:{self.split_of[stamp.galaxy_id]};".encode())
            if pixels:
                digest.update(np.ascontiguousarray(stamp.griz, dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]


def _linear_rgb(image: np.ndarray) -> np.ndarray:
    """Display values (uint8) to background-subtracted linear intensity, channels first."""
    linear = (image.astype(np.float64) / 255.0) ** _DISPLAY_GAMMA
    linear = np.moveaxis(linear, -1, 0)
    return linear - np.median(linear, axis=(1, 2), keepdims=True)


def _centre(flux: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(flux.shape)
    total = flux.sum()
    return float((rows * flux).sum() / total), float((cols * flux).sum() / total)


def _half_light_radius(flux: np.ndarray) -> float:
    cy, cx = _centre(flux)
    rows, cols = np.indices(flux.shape)
    r = np.hypot(rows - cy, cols - cx).ravel()
    order = np.argsort(r)
    cumulative = np.cumsum(flux.ravel()[order])
    return float(r[order][np.searchsorted(cumulative, 0.5 * flux.sum())])


def build_catalogue(image: np.ndarray) -> Catalogue:
    """Segment an RGB deep-field image into cleaned galaxy stamps and split them.

    Parameters
    ----------
    image : ndarray, shape (ny, nx, 3), uint8
        The display image (``skimage.data.hubble_deep_field()``).

    Returns
    -------
    Catalogue
    """
    rgb = _linear_rgb(image)
    detect = ndimage.gaussian_filter(rgb.mean(axis=0), 1.0)
    mad = np.median(np.abs(detect - np.median(detect)))
    labels, _ = ndimage.label(detect > _DETECT_SIGMA * 1.4826 * mad)
    saturated = np.asarray((image >= 250).all(axis=-1))
    ny, nx = labels.shape
    stamps: list[GalaxyStamp] = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        own = labels[box] == index
        area = int(own.sum())
        r0, r1, c0, c1 = box[0].start, box[0].stop, box[1].start, box[1].stop
        on_border = r0 < _MARGIN or c0 < _MARGIN or r1 > ny - _MARGIN or c1 > nx - _MARGIN
        # Saturated cores are bright stars (diffraction spikes) or blown-out centres: unusable.
        if not _MIN_AREA <= area <= _MAX_AREA or on_border or saturated[box][own].any():
            continue
        r0, r1, c0, c1 = r0 - _MARGIN, r1 + _MARGIN, c0 - _MARGIN, c1 + _MARGIN
        window = labels[r0:r1, c0:c1]
        footprint = ndimage.binary_dilation(window == index, iterations=2) & (
            (window == 0) | (window == index)
        )
        b, g, r = rgb[2, r0:r1, c0:c1], rgb[1, r0:r1, c0:c1], rgb[0, r0:r1, c0:c1]
        griz = np.stack([b, 0.5 * (b + g), g, 0.5 * (g + r)])
        griz = np.clip(griz, 0.0, None) * footprint
        if griz[2].sum() <= 0 or (griz.sum(axis=(1, 2)) <= 0).any():
            continue
        griz = griz / griz[2].sum()
        stamps.append(GalaxyStamp(len(stamps), griz.astype(np.float32),
                                  _half_light_radius(griz[2]), _centre(griz[2])))
    stamps = _calibrate_colours(stamps)
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(stamps))
    n_train = int(round(SPLIT_FRACTIONS[0] * len(stamps)))
    n_val = int(round(SPLIT_FRACTIONS[1] * len(stamps)))
    split_of = {}
    for rank, gid in enumerate(order):
        split = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
        split_of[int(gid)] = split
    return Catalogue(tuple(stamps), split_of)


def _calibrate_colours(stamps: list[GalaxyStamp]) -> list[GalaxyStamp]:
    """Scale each band so the catalogue's median colours are :data:`_TARGET_MEDIAN_COLOURS`."""
    mags = -2.5 * np.log10(np.array([s.colours for s in stamps]))
    median = np.median(mags, axis=0)
    g_r, r_i, i_z = _TARGET_MEDIAN_COLOURS
    target = np.array([g_r + r_i, r_i, 0.0, -i_z])  # magnitudes relative to i
    factor = 10.0 ** (-0.4 * (target - median))
    return [
        GalaxyStamp(s.galaxy_id, (s.griz * factor[:, None, None]).astype(np.float32),
                    s.half_light_pix, s.centre)
        for s in stamps
    ]


@lru_cache(maxsize=1)
def hudf_catalogue() -> Catalogue:
    """The catalogue built from scikit-image's HUDF image (cached per process)."""
    from skimage.data import hubble_deep_field

    return build_catalogue(hubble_deep_field())

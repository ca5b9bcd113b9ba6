"""Non-lenses for the lens-evidence head: the classic false positives of lens searches.

A run with ``--non-lens-fraction F`` makes each system, with probability ``F``, a non-lens
(truth ``is_lens = 0``) built from the drawn candidate, of a kind drawn uniformly from
:data:`NON_LENS_KINDS`:

* ``no_source``: the lens galaxy (and its neighbours) with no background source;
* ``faint_arcs``: the lensed source dimmed to a best-band arc SNR uniform on 0.5-5 (too faint
  to be seen; lenses need ``min_arc_snr``, 20 by default);
* ``hudf_foreground``: a real HUDF galaxy of the run's split (spirals, discs, irregulars,
  mergers) enlarged to a half-light radius of 0.5-2" and i 17.5-20.5 as the central object;
* ``ring_galaxy``: a red core inside a blue star-forming ring of radius 0.8-2.5";
* ``edge_on_disc``: a bluish exponential disc seen edge-on (axis ratio 0.1-0.25) with a small
  red bulge;
* ``blue_companions``: the lens galaxy with 2-5 blue, tangentially elongated knots 0.8-2.5"
  from its centre (arc-like, but unlensed);
* ``pair``: the lens galaxy and a second red galaxy 1-3" away, 0-1.5 mag fainter;
* ``star``: a bright star (i 15-19) within 1" of the centre, beside the lens galaxy half the
  time;
* ``artefact``: the lens galaxy with a satellite trail, or with hot pixels and cosmic rays;
* ``real_foreground`` (only with real lens light, :data:`REAL_NON_LENS_KINDS`): a real spiral,
  edge-on disc or merger of the run's split (``real_galaxies``) with a half-light radius of
  0.5-2" and i 17.5-20.5 as the central object.

The mass targets of a non-lens are an independent draw from the run's prior (θ_E, ellipticity,
centre, shear), unrelated to the image, so the mass head learns to answer the prior with a
sigma that covers it. Draws made here come after the candidate's, so runs without non-lenses
keep their random streams.
"""

from __future__ import annotations

import numpy as np

from lenscast.trainer.simulation import real_galaxies
from lenscast.trainer.simulation.hudf import Catalogue
from lenscast.trainer.simulation.mass import phi_q_to_ellipticity

NON_LENS_KINDS = ("no_source", "faint_arcs", "hudf_foreground", "ring_galaxy", "edge_on_disc",
                  "blue_companions", "pair", "star", "artefact")
#: The kinds drawn when the lens light is real: the real-galaxy kind appended, so runs
#: without it keep their random streams.
REAL_NON_LENS_KINDS = (*NON_LENS_KINDS, "real_foreground")
FAINT_ARC_SNR = (0.5, 5.0)
_RED = (1.6, 0.6, 0.35)
_BLUE = (0.35, 0.2, 0.1)


def _mags(mag_i: float, colours: tuple[float, float, float],
          rng: np.random.Generator) -> np.ndarray:
    g_r, r_i, i_z = (c + rng.normal(0.0, 0.1) for c in colours)
    return np.array([mag_i + g_r + r_i, mag_i + r_i, mag_i, mag_i - i_z])


def _sersic(x: float, y: float, *, r_eff: float, n: float, q: float, phi: float,
            mags: np.ndarray) -> dict:
    e1, e2 = phi_q_to_ellipticity(phi=phi, q=q)
    return {"kind": "sersic", "x": float(x), "y": float(y), "r_eff": float(r_eff),
            "n_sersic": float(n), "e1": float(e1), "e2": float(e2), "mags": mags}


def _light_centre(lens: dict) -> tuple[float, float]:
    return (float(lens.get("lens_light_x", lens["center_x"])),
            float(lens.get("lens_light_y", lens["center_y"])))


def scene(rng: np.random.Generator, kind: str, *, lens: dict, neighbours: list[dict],
          catalogue: Catalogue, split: str,
          real_catalogue: real_galaxies.RealGalaxyCatalogue | None = None,
          ) -> tuple[dict, list[dict]]:
    """The lens (light only) and neighbours of a non-lens of ``kind``.

    Parameters
    ----------
    rng : numpy.random.Generator
    kind : str
        One of :data:`NON_LENS_KINDS`.
    lens : dict
        The drawn candidate's lens (its light is kept where the kind has a lens galaxy).
    neighbours : list of dict
        The candidate's neighbours (kept).
    catalogue : Catalogue
    split : str
        HUDF split of the run (``hudf_foreground`` draws its galaxy from it), and the split
        of the real galaxies.
    real_catalogue : RealGalaxyCatalogue, optional
        Real galaxies, for ``real_foreground``.

    Returns
    -------
    lens, neighbours
        ``lens`` with ``light_components = []`` where the kind replaces the lens galaxy.
    """
    if kind not in REAL_NON_LENS_KINDS:
        raise ValueError(f"unknown non-lens kind {kind!r}; expected one of "
                         f"{REAL_NON_LENS_KINDS}")
    x0, y0 = _light_centre(lens)
    extra: list[dict] = []
    no_galaxy = {**lens, "light_components": [], "lens_galaxy_id": -1}
    if kind == "hudf_foreground":
        ids = catalogue.ids(split)
        gid = int(ids[rng.integers(0, len(ids))])
        stamp = catalogue.stamps[gid]
        scale = rng.uniform(0.5, 2.0) / max(stamp.half_light_pix, 0.5)
        mag_i = rng.uniform(17.5, 20.5)
        extra.append({"kind": "hudf", "x": x0, "y": y0, "galaxy_id": gid, "scale": float(scale),
                      "rotation": rng.uniform(0, 2 * np.pi),
                      "mags": mag_i - 2.5 * np.log10(stamp.colours)})
        lens = no_galaxy
    elif kind == "real_foreground":
        if real_catalogue is None:
            raise ValueError("real_foreground needs the real-galaxy catalogue")
        real = real_galaxies.draw_stamp(rng, real_catalogue, split=split,
                                        kinds=real_galaxies.FOREGROUND_CLASSES)
        extra.append(real_galaxies.component(real, x=x0, y=y0, r_eff=rng.uniform(0.5, 2.0),
                                             rng=rng, mag_i=rng.uniform(17.5, 20.5)))
        lens = {**no_galaxy, "lens_galaxy_id": real.galaxy_id}
    elif kind == "ring_galaxy":
        core_mag = rng.uniform(18.0, 20.0)
        phi, q = rng.uniform(0, np.pi), rng.uniform(0.5, 1.0)
        e1, e2 = phi_q_to_ellipticity(phi=phi, q=q)
        extra.append(_sersic(x0, y0, r_eff=rng.uniform(0.2, 0.6), n=rng.uniform(2.0, 4.0),
                             q=q, phi=phi, mags=_mags(core_mag, _RED, rng)))
        extra.append({"kind": "ring", "x": x0, "y": y0, "radius": float(rng.uniform(0.8, 2.5)),
                      "width": float(rng.uniform(0.1, 0.3)), "e1": float(e1), "e2": float(e2),
                      "mags": _mags(core_mag + rng.uniform(-0.5, 2.0), _BLUE, rng)})
        lens = no_galaxy
    elif kind == "edge_on_disc":
        mag_i = rng.uniform(17.5, 20.0)
        phi = rng.uniform(0, np.pi)
        extra.append(_sersic(x0, y0, r_eff=rng.uniform(0.8, 2.5), n=1.0,
                             q=rng.uniform(0.1, 0.25), phi=phi,
                             mags=_mags(mag_i, (0.8, 0.35, 0.2), rng)))
        extra.append(_sersic(x0, y0, r_eff=rng.uniform(0.2, 0.5), n=rng.uniform(2.0, 4.0),
                             q=rng.uniform(0.6, 1.0), phi=phi,
                             mags=_mags(mag_i + rng.uniform(0.5, 2.5), _RED, rng)))
        lens = no_galaxy
    elif kind == "blue_companions":
        for _ in range(int(rng.integers(2, 6))):
            radius, angle = rng.uniform(0.8, 2.5), rng.uniform(0, 2 * np.pi)
            # Elongated tangentially, as an arc would be.
            extra.append(_sersic(x0 + radius * np.cos(angle), y0 + radius * np.sin(angle),
                                 r_eff=rng.uniform(0.1, 0.4), n=rng.uniform(0.5, 1.5),
                                 q=rng.uniform(0.3, 0.7), phi=angle + 0.5 * np.pi,
                                 mags=_mags(rng.uniform(21.0, 24.0), _BLUE, rng)))
    elif kind == "pair":
        radius, angle = rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi)
        extra.append(_sersic(x0 + radius * np.cos(angle), y0 + radius * np.sin(angle),
                             r_eff=rng.uniform(0.3, 1.5), n=rng.uniform(2.5, 5.0),
                             q=rng.uniform(0.5, 1.0), phi=rng.uniform(0, np.pi),
                             mags=_mags(lens["lens_mag_i"] + rng.uniform(0.0, 1.5), _RED, rng)))
    elif kind == "star":
        radius, angle = rng.uniform(0.0, 1.0), rng.uniform(0, 2 * np.pi)
        mag_i = rng.uniform(15.0, 19.0)
        g_i, i_z = rng.uniform(0.0, 3.0), rng.uniform(0.0, 0.6)
        extra.append({"kind": "star", "x": float(x0 + radius * np.cos(angle)),
                      "y": float(y0 + radius * np.sin(angle)),
                      "mags": np.array([mag_i + g_i, mag_i + 0.6 * g_i, mag_i, mag_i - i_z])})
        if rng.uniform() < 0.5:
            lens = no_galaxy
    elif kind == "artefact" and rng.uniform() < 0.5:
        extra.append({"kind": "trail", "x": float(rng.uniform(-3, 3)),
                      "y": float(rng.uniform(-3, 3)), "angle": float(rng.uniform(0, np.pi)),
                      "width": 0.05, "mags": np.full(4, rng.uniform(20.0, 23.0))})
    return lens, neighbours + extra


def add_defects(rng: np.random.Generator, image: np.ndarray,
                background_rms: np.ndarray) -> np.ndarray:
    """Hot pixels and short cosmic-ray streaks, unconvolved, in one or all bands (a copy).

    Parameters
    ----------
    image : ndarray, shape (4, n, n)
        Noisy cutout, coadd flux.
    background_rms : ndarray, shape (4,)
        Per-band background noise, coadd flux (the defects are 20-500 times it).
    """
    out = image.copy()
    size = image.shape[-1]
    for _ in range(int(rng.integers(1, 6))):
        bands = [int(rng.integers(0, 4))] if rng.uniform() < 0.7 else [0, 1, 2, 3]
        row, col = (int(v) for v in rng.integers(0, size, size=2))
        length = int(rng.integers(1, 5))
        d_row, d_col = rng.integers(-1, 2, size=2)
        for step in range(length):
            r, c = row + step * d_row, col + step * d_col
            if 0 <= r < size and 0 <= c < size:
                for b in bands:
                    out[b, r, c] += rng.uniform(20.0, 500.0) * background_rms[b]
    return out


def faint_arc_scale(rng: np.random.Generator, snr: np.ndarray) -> float:
    """Factor that brings a lensed source of best-band SNR ``snr.max()`` to 0.5-5."""
    best = float(np.max(snr))
    target = rng.uniform(*FAINT_ARC_SNR)
    return target / best if best > target else 1.0

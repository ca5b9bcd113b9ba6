"""Draw background sources (parametric or real HUDF galaxies) and unlensed neighbours.

* Source kind: HUDF galaxy with probability ``hudf_fraction`` (default 0.8), else an
  elliptical Sérsic (n 0.5-2.5, R_e 0.08-0.45", q 0.35-1) plus 0-5 Gaussian star-forming
  clumps (sigma 0.02-0.08") inside ~1.5 R_e carrying 10-60 % of the flux, bluer than the disc.
* Unlensed i-band magnitude uniform on 21.5-25.5 (the acceptance cut on arc SNR then shapes
  the accepted distribution); parametric colours: star-forming galaxies at z ~ 1-3
  (g-r 0.35, r-i 0.2, i-z 0.1, scatter 0.15-0.2 mag). HUDF galaxies keep their own colours.
* HUDF stamp pixel scale in the source plane uniform on 0.10-0.18"/px (scikit-image's
  1000 x 872 px rendering spans the 2.3' x 2.0' XDF, ~0.14"/px; the range spans the drawn
  source redshifts), random rotation and mirror.
* Source-centre position within 0.95 theta_e of the centre of the caustics (``(1 - Gamma) c``,
  shear taken about the origin), uniform in radius and angle, so most systems are multiply
  imaged and high magnifications are favoured as in real, magnification-biased samples (or,
  by option, uniform in area, or either at random); the lens-equation solver then decides
  (>= 2 images required).
* Neighbours: Poisson(1.3) unlensed galaxies (60 % HUDF stamps, 40 % Sérsic ellipticals or
  discs) with i 19.5-25, anywhere in the cutout beyond 1.5" from the lens centre, and a star
  (i 17-23) with probability 0.15. A model trained without neighbours failed on real-looking
  data (README, Conventions); they are part of the scene, not of the truths.
"""

from __future__ import annotations

import numpy as np

from lenscast.trainer.simulation.hudf import Catalogue
from lenscast.trainer.simulation.mass import phi_q_to_ellipticity
from lenscast.trainer.simulation.survey import CUTOUT_SIZE_PIX, PIXEL_SCALE_ARCSEC

SOURCE_KINDS = {"parametric": 0, "hudf": 1}
SOURCE_MAG_RANGE = (21.5, 25.5)
HUDF_SCALE_RANGE = (0.10, 0.18)
_SF_COLOURS = ((0.35, 0.15), (0.2, 0.15), (0.1, 0.2))  # (mean, scatter) of g-r, r-i, i-z
_MAX_CLUMPS = 5


def _sf_band_mags(rng: np.random.Generator, mag_i: float) -> np.ndarray:
    g_r, r_i, i_z = (rng.normal(m, s) for m, s in _SF_COLOURS)
    return np.array([mag_i + g_r + r_i, mag_i + r_i, mag_i, mag_i - i_z])


#: How the source centre is placed about the caustics' centre: "radius" (uniform in radius,
#: favouring the high magnifications of real, magnification-biased samples), "area" (uniform
#: in area: more wide, asymmetric doubles) or "mixed" (either, with equal probability).
SOURCE_PLACEMENTS = ("radius", "area", "mixed")


def draw_source(rng: np.random.Generator, *, lens: dict[str, float], catalogue: Catalogue,
                split: str, hudf_fraction: float, placement: str = "radius") -> dict:
    """Draw one source (light and position) behind ``lens``.

    ``placement`` is one of :data:`SOURCE_PLACEMENTS`; "radius" draws exactly what this
    function drew before the option existed.

    Returns
    -------
    dict
        Scalars recorded as truths (``source_kind`` 0/1, ``galaxy_id`` (-1 if parametric),
        ``source_x``, ``source_y`` (arcsec), ``source_mag_{g,r,i,z}``, ``source_r_eff`` (arcsec),
        ``source_n_sersic``, ``source_e1``, ``source_e2``, ``source_pixel_scale``,
        ``source_rotation`` (rad), ``n_clumps``) and, under ``"clumps"``, the clump arrays.
    """
    theta_e = lens["theta_e"]
    # Caustic centre: beta = theta - alpha_SIE(theta - c) - Gamma theta vanishes-ish at (1-Gamma)c.
    cx, cy = lens["center_x"], lens["center_y"]
    caustic_x = cx - (lens["gamma1"] * cx + lens["gamma2"] * cy)
    caustic_y = cy - (lens["gamma2"] * cx - lens["gamma1"] * cy)
    # Uniform in radius (density ~ 1/r towards the caustics): mimics the magnification bias
    # of real lens samples, which favours bright arcs, rings and quads over wide doubles.
    if placement not in SOURCE_PLACEMENTS:
        raise ValueError(f"placement must be one of {SOURCE_PLACEMENTS}, not {placement!r}")
    by_area = placement == "area" or (placement == "mixed" and rng.uniform() < 0.5)
    u = rng.uniform()
    radius = 0.95 * theta_e * (np.sqrt(u) if by_area else u)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    mag_i = rng.uniform(*SOURCE_MAG_RANGE)
    out: dict = {
        "source_x": float(caustic_x + radius * np.cos(angle)),
        "source_y": float(caustic_y + radius * np.sin(angle)),
        "source_rotation": float(rng.uniform(0.0, 2.0 * np.pi)),
        "source_mirror": int(rng.integers(0, 2)),
        "source_r_eff": np.nan,
        "source_n_sersic": np.nan,
        "source_e1": np.nan,
        "source_e2": np.nan,
        "source_pixel_scale": np.nan,
        "n_clumps": 0,
        "clump_fraction": 0.0,
        "galaxy_id": -1,
    }
    if rng.uniform() < hudf_fraction:
        ids = catalogue.ids(split)
        gid = int(ids[rng.integers(0, len(ids))])
        stamp = catalogue.stamps[gid]
        scale = rng.uniform(*HUDF_SCALE_RANGE)
        mags = mag_i - 2.5 * np.log10(stamp.colours)
        out.update(source_kind=SOURCE_KINDS["hudf"], galaxy_id=gid,
                   source_pixel_scale=float(scale),
                   source_r_eff=float(stamp.half_light_pix * scale))
    else:
        mags = _sf_band_mags(rng, mag_i)
        r_eff = rng.uniform(0.08, 0.45)
        q = rng.uniform(0.35, 1.0)
        e1, e2 = phi_q_to_ellipticity(phi=rng.uniform(0.0, np.pi), q=q)
        n_clumps = int(rng.integers(0, _MAX_CLUMPS + 1))
        clump_fraction = rng.uniform(0.1, 0.6) if n_clumps else 0.0
        weights = rng.dirichlet(np.ones(n_clumps)) * clump_fraction if n_clumps else np.zeros(0)
        r = 1.5 * r_eff * np.sqrt(rng.uniform(size=n_clumps))
        a = rng.uniform(0.0, 2.0 * np.pi, size=n_clumps)
        out.update(
            source_kind=SOURCE_KINDS["parametric"], source_r_eff=float(r_eff),
            source_n_sersic=float(rng.uniform(0.5, 2.5)), source_e1=float(e1),
            source_e2=float(e2), n_clumps=n_clumps,
            clumps={
                "fraction": weights,
                "sigma": rng.uniform(0.02, 0.08, size=n_clumps),
                "dx": r * np.cos(a),
                "dy": r * np.sin(a),
                # Clumps are young star-forming regions: bluer than the disc by ~0.3 mag in g.
                "blue_shift": np.array([-0.3, -0.15, 0.0, 0.05]),
            },
            clump_fraction=float(clump_fraction),
        )
    for band, mag in zip("griz", mags, strict=True):
        out[f"source_mag_{band}"] = float(mag)
    return out


def draw_neighbours(rng: np.random.Generator, *, lens: dict[str, float], catalogue: Catalogue,
                    split: str) -> list[dict]:
    """Draw unlensed neighbours (galaxies and possibly a star) for the cutout.

    Returns
    -------
    list of dict
        Each with ``kind`` ("hudf", "sersic" or "star"), ``x``, ``y`` (arcsec), ``mags`` (griz)
        and the shape parameters of its kind.
    """
    half = 0.5 * CUTOUT_SIZE_PIX * PIXEL_SCALE_ARCSEC
    neighbours: list[dict] = []

    def position() -> tuple[float, float]:
        while True:
            x, y = rng.uniform(-half, half, size=2)
            if np.hypot(x - lens["center_x"], y - lens["center_y"]) > 1.5:
                return float(x), float(y)

    for _ in range(rng.poisson(1.3)):
        x, y = position()
        mag_i = rng.uniform(19.5, 25.0)
        if rng.uniform() < 0.6:
            ids = catalogue.ids(split)
            gid = int(ids[rng.integers(0, len(ids))])
            stamp = catalogue.stamps[gid]
            neighbours.append({
                "kind": "hudf", "x": x, "y": y, "galaxy_id": gid,
                "scale": float(rng.uniform(0.08, 0.2)), "rotation": rng.uniform(0, 2 * np.pi),
                "mags": mag_i - 2.5 * np.log10(stamp.colours),
            })
        else:
            red = rng.uniform() < 0.5
            colours = (1.6, 0.6, 0.35) if red else (0.4, 0.25, 0.1)
            g_r, r_i, i_z = (c + rng.normal(0.0, 0.15) for c in colours)
            e1, e2 = phi_q_to_ellipticity(phi=rng.uniform(0, np.pi), q=rng.uniform(0.3, 1.0))
            neighbours.append({
                "kind": "sersic", "x": x, "y": y,
                "r_eff": float(rng.uniform(0.15, 1.0)),
                "n_sersic": float(rng.uniform(2.5, 5.0) if red else rng.uniform(0.7, 1.5)),
                "e1": float(e1), "e2": float(e2),
                "mags": np.array([mag_i + g_r + r_i, mag_i + r_i, mag_i, mag_i - i_z]),
            })
    if rng.uniform() < 0.15:
        x, y = position()
        mag_i = rng.uniform(17.0, 23.0)
        g_i, i_z = rng.uniform(0.0, 3.0), rng.uniform(0.0, 0.6)
        neighbours.append({
            "kind": "star", "x": x, "y": y,
            "mags": np.array([mag_i + g_i, mag_i + 0.6 * g_i, mag_i, mag_i - i_z]),
        })
    return neighbours

"""Lens light as bright and structured as real HSC luminous red galaxies (realistic mode).

The analytic lens light of the default sets is one Sérsic whose brightness and size follow
Faber-Jackson and the size relation, so a network can read θ_E off the lens galaxy. Real HSC
lens galaxies break that in every way the network could exploit; this module draws them so:

* **Brightness independent of θ_E**: total i-band magnitude uniform on 17-19.5 (the LRGs of
  HSC lens searches) at every Einstein radius; size (R_e of the inner component) log-uniform on
  0.4-2.5", also independent of θ_E.
* **Two components**: an inner de Vaucouleurs-like body (n 2.5-6) and an extended stellar
  envelope (n 1-2.5, R_e 2.5-6 times larger, 10-50 % of the light), as massive early types have.
* **Isophote twist and ellipticity gradient**: the envelope's position angle differs from the
  body's by N(0, 15 deg) and its axis ratio by N(0, 0.1).
* **Colour gradient**: the envelope is bluer (g-r by 0-0.3 mag, r-i by 0-0.15 mag).
* **Light centre** anywhere within 1" of the cutout centre (each coordinate within 0.78" so
  the mass centre stays inside the parameter range), the mass centre on it with 0.02" scatter
  per axis.
* **Companions within 1.5"** of the light centre: Poisson(0.7), each red (a satellite) or blue
  (a star-forming companion), 1.5-5 mag fainter than the lens.

Every function takes a NumPy ``Generator``; draws made here come after the default ones, so the
default sets keep their random streams.
"""

from __future__ import annotations

import numpy as np

from lenscast.trainer.simulation.mass import ellipticity_to_phi_q, phi_q_to_ellipticity

LENS_LIGHT_MODES = ("analytic", "realistic", "real")
MAG_I_RANGE = (17.0, 19.5)
R_EFF_RANGE = (0.4, 2.5)
LIGHT_CENTRE_MAX = 1.0
_CENTRE_COMPONENT_MAX = 0.78
MASS_CENTRE_SCATTER = 0.02
COMPANION_RADIUS = (0.5, 1.5)
_RED_COMPANION = (1.6, 0.6, 0.35)
_BLUE_COMPANION = (0.35, 0.2, 0.1)


def _band_mags(mag_i: float, g_r: float, r_i: float, i_z: float) -> np.ndarray:
    return np.array([mag_i + g_r + r_i, mag_i + r_i, mag_i, mag_i - i_z])


def light_components(rng: np.random.Generator, lens: dict) -> list[dict]:
    """Draw the body and envelope of a realistic lens galaxy centred on ``lens``'s light.

    Parameters
    ----------
    rng : numpy.random.Generator
    lens : dict
        Needs ``lens_light_x``, ``lens_light_y`` (arcsec), ``lens_e1``, ``lens_e2`` and the
        analytic ``lens_mag_{g,r,i,z}`` (their colours are kept for the body).

    Returns
    -------
    list of dict
        Sérsic components, each ``x``, ``y`` (arcsec), ``r_eff`` (arcsec), ``n_sersic``,
        ``e1``, ``e2`` and ``mags`` (griz AB).
    """
    mag_total = rng.uniform(*MAG_I_RANGE)
    envelope_fraction = rng.uniform(0.1, 0.5)
    r_body = float(np.exp(rng.uniform(*np.log(R_EFF_RANGE))))
    r_envelope = r_body * rng.uniform(2.5, 6.0)
    g_r = lens["lens_mag_g"] - lens["lens_mag_r"]
    r_i = lens["lens_mag_r"] - lens["lens_mag_i"]
    i_z = lens["lens_mag_i"] - lens["lens_mag_z"]
    phi, q = ellipticity_to_phi_q(e1=lens["lens_e1"], e2=lens["lens_e2"])
    phi_env = phi + np.deg2rad(np.clip(rng.normal(0.0, 15.0), -45.0, 45.0))
    q_env = float(np.clip(q + rng.normal(0.0, 0.1), 0.4, 1.0))
    env_e1, env_e2 = phi_q_to_ellipticity(phi=phi_env, q=q_env)
    mag_body = mag_total - 2.5 * np.log10(1.0 - envelope_fraction)
    mag_env = mag_total - 2.5 * np.log10(envelope_fraction)
    x, y = lens["lens_light_x"], lens["lens_light_y"]
    return [
        {"x": x, "y": y, "r_eff": r_body, "n_sersic": float(rng.uniform(2.5, 6.0)),
         "e1": lens["lens_e1"], "e2": lens["lens_e2"],
         "mags": _band_mags(mag_body, g_r, r_i, i_z)},
        {"x": x, "y": y, "r_eff": float(min(r_envelope, 8.0)),
         "n_sersic": float(rng.uniform(1.0, 2.5)), "e1": float(env_e1), "e2": float(env_e2),
         "mags": _band_mags(mag_env, g_r - rng.uniform(0.0, 0.3), r_i - rng.uniform(0.0, 0.15),
                            i_z)},
    ]


def total_mags(components: list[dict]) -> np.ndarray:
    """Summed griz magnitudes of ``components``."""
    flux = sum(10.0 ** (-0.4 * np.asarray(c["mags"])) for c in components)
    return -2.5 * np.log10(flux)


def light_centre(rng: np.random.Generator) -> tuple[float, float]:
    """A light centre uniform in the 1" disc, each coordinate within 0.78" (arcsec)."""
    while True:
        radius = LIGHT_CENTRE_MAX * np.sqrt(rng.uniform())
        angle = rng.uniform(0.0, 2.0 * np.pi)
        x, y = radius * np.cos(angle), radius * np.sin(angle)
        if max(abs(x), abs(y)) <= _CENTRE_COMPONENT_MAX:
            return float(x), float(y)


def companions(rng: np.random.Generator, *, centre: tuple[float, float], mag_i: float,
               rate: float = 0.7) -> list[dict]:
    """Red and blue companions within 1.5" of ``centre``, as Sérsic neighbours.

    Parameters
    ----------
    rng : numpy.random.Generator
    centre : (float, float)
        Light centre of the host, arcsec.
    mag_i : float
        Host i-band magnitude; companions are 1.5-5 mag fainter.
    rate : float
        Mean number of companions (Poisson).

    Returns
    -------
    list of dict
        Neighbours of kind ``"sersic"`` (see ``source_population.draw_neighbours``).
    """
    out = []
    for _ in range(rng.poisson(rate)):
        radius = rng.uniform(*COMPANION_RADIUS)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        red = rng.uniform() < 0.5
        colours = _RED_COMPANION if red else _BLUE_COMPANION
        g_r, r_i, i_z = (c + rng.normal(0.0, 0.15) for c in colours)
        e1, e2 = phi_q_to_ellipticity(phi=rng.uniform(0, np.pi), q=rng.uniform(0.4, 1.0))
        out.append({
            "kind": "sersic",
            "x": float(centre[0] + radius * np.cos(angle)),
            "y": float(centre[1] + radius * np.sin(angle)),
            "r_eff": float(rng.uniform(0.1, 0.5)),
            "n_sersic": float(rng.uniform(2.0, 4.0) if red else rng.uniform(0.5, 1.5)),
            "e1": float(e1), "e2": float(e2),
            "mags": _band_mags(mag_i + rng.uniform(1.5, 5.0), g_r, r_i, i_z),
        })
    return out


def make_realistic(rng: np.random.Generator, lens: dict) -> tuple[dict, list[dict]]:
    """Replace ``lens``'s light by a realistic one; return the new lens and its companions.

    The mass centre moves onto the new light centre (0.02" scatter per axis); the lens light
    magnitudes become the components' totals; ``lens_r_eff`` and ``lens_n_sersic`` those of
    the body.
    """
    x, y = light_centre(rng)
    lens = {**lens, "lens_light_x": x, "lens_light_y": y}
    components = light_components(rng, lens)
    mags = total_mags(components)
    lens.update(
        center_x=float(np.clip(x + rng.normal(0.0, MASS_CENTRE_SCATTER), -0.8, 0.8)),
        center_y=float(np.clip(y + rng.normal(0.0, MASS_CENTRE_SCATTER), -0.8, 0.8)),
        lens_r_eff=components[0]["r_eff"], lens_n_sersic=components[0]["n_sersic"],
        light_components=components,
        **{f"lens_mag_{b}": float(m) for b, m in zip("griz", mags, strict=True)},
    )
    return lens, companions(rng, centre=(x, y), mag_i=float(mags[2]))

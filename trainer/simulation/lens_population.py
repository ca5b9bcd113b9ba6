"""Draw deflector galaxies: SIE + shear mass, Einstein-radius priors and LRG light.

Every function takes a NumPy ``Generator`` and returns plain floats, so a system's draw is
reproducible from the generator state alone.

* Redshift: ``z_lens`` from a normal ``N(0.5, 0.18)`` truncated to 0.2-0.9 (the SLACS/BELLS/
  SuGOHI lens samples peak near 0.4-0.6); ``z_source`` uniform on ``[max(0.8, z_lens + 0.3), 3]``.
* Einstein radius: uniform on 0.5-5" (default, as the HOLISMOKES training sets) or
  ``"vdf"``: the velocity dispersion function of Choi, Park & Vogeley (2007), weighted by the
  lensing cross-section ``~ sigma^4`` and mapped to ``theta_e`` for the drawn redshifts,
  restricted to 0.5-5" (the real population: most lenses below 1.5").
* Light: de Vaucouleurs-like Sérsic (n 3-6) whose luminosity follows Faber-Jackson
  (``L ~ sigma^4``), size follows ``R_e ~ sigma^1.2`` with 0.12 dex scatter, and colours follow
  a passive red-galaxy track in HSC griz (CMASS/LOWZ-like), with 0.05-0.08 mag scatter.
* Mass aligned with light: mass position angle = light angle + N(0, 10 deg), mass axis ratio
  = light axis ratio + N(0, 0.08), clipped to 0.35-1 (both scatters can be widened).
* Centre uniform in a disc of 0.6" about the cutout centre; light centred on the mass.
* External shear: magnitude half-normal with sigma 0.05 (clipped at 0.15 per component),
  uniform angle.
"""

from __future__ import annotations

import numpy as np

from lenscast.trainer.simulation.cosmology import (
    DistanceTable,
    sis_einstein_radius,
    sis_velocity_dispersion,
)
from lenscast.trainer.simulation.mass import phi_q_to_ellipticity

THETA_E_RANGE = (0.5, 5.0)
Z_LENS_RANGE = (0.2, 0.9)
Z_SOURCE_MAX = 3.0
CENTER_MAX_ARCSEC = 0.6
THETA_E_PRIORS = ("uniform", "vdf")

# Choi et al. (2007) VDF of early types: phi(s) ds ~ (s/s*)^alpha exp(-(s/s*)^beta) ds / s.
_VDF_SIGMA_STAR, _VDF_ALPHA, _VDF_BETA = 161.0, 2.32, 2.67
_VDF_GRID = np.linspace(60.0, 800.0, 2000)

# Passive red galaxy in HSC bands: redshift -> (g-r, r-i, i-z) and i-band K-correction, mag.
_RED_TRACK_Z = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
_RED_TRACK_GR = np.array([1.00, 1.30, 1.60, 1.80, 1.90, 1.95, 2.00, 2.00, 2.00])
_RED_TRACK_RI = np.array([0.40, 0.48, 0.55, 0.70, 0.90, 1.10, 1.22, 1.30, 1.35])
_RED_TRACK_IZ = np.array([0.28, 0.33, 0.36, 0.40, 0.45, 0.52, 0.62, 0.72, 0.85])
_RED_TRACK_KI = np.array([0.10, 0.20, 0.32, 0.45, 0.62, 0.82, 1.00, 1.18, 1.30])
# Faber-Jackson in rest-frame i: M_i = -22.3 - 10 log10(sigma / 230 km/s), 0.35 mag scatter.
_FJ_M_I, _FJ_SIGMA_PIVOT, _FJ_SCATTER = -22.3, 230.0, 0.35
#: Observed scatter of the lens light about Faber-Jackson (mag) and about the size relation (dex).
FJ_SCATTER_MAG = _FJ_SCATTER
# Size: R_e = 5 kpc (sigma / 230)^1.2, 0.12 dex scatter (Bernardi et al. 2011-like).
_RE_KPC, _RE_SLOPE, _RE_SCATTER = 5.0, 1.2, 0.12
SIZE_SCATTER_DEX = _RE_SCATTER
#: Scatter of the mass's position angle (deg) and axis ratio about the light's.
MASS_ANGLE_SCATTER_DEG = 10.0
MASS_Q_SCATTER = 0.08
# Galaxy-scale luminosity relations are not extrapolated into group-scale masses.
_SIGMA_LIGHT_CAP = 420.0


def draw_redshifts(rng: np.random.Generator) -> tuple[float, float]:
    """Draw ``(z_lens, z_source)`` (see module docstring)."""
    while True:
        z_lens = rng.normal(0.5, 0.18)
        if Z_LENS_RANGE[0] <= z_lens <= Z_LENS_RANGE[1]:
            break
    z_source = rng.uniform(max(0.8, z_lens + 0.3), Z_SOURCE_MAX)
    return float(z_lens), float(z_source)


def _vdf_lensing_cdf() -> np.ndarray:
    s = _VDF_GRID / _VDF_SIGMA_STAR
    pdf = s**_VDF_ALPHA * np.exp(-(s**_VDF_BETA)) / _VDF_GRID * _VDF_GRID**4
    cdf = np.cumsum(pdf)
    return cdf / cdf[-1]


_VDF_CDF = _vdf_lensing_cdf()


def draw_theta_e(rng: np.random.Generator, *, prior: str, z_lens: float, z_source: float,
                 table: DistanceTable) -> float:
    """Draw the Einstein radius, arcsec, from ``prior`` ("uniform" or "vdf")."""
    low, high = THETA_E_RANGE
    if prior == "uniform":
        return float(rng.uniform(low, high))
    if prior != "vdf":
        raise ValueError(f"unknown theta_e prior {prior!r}; expected one of {THETA_E_PRIORS}")
    # Only sigma inside the range that maps to 0.5-5" is sampled, so no draw is wasted.
    s_low, s_high = (sis_velocity_dispersion(theta_e=t, z_lens=z_lens, z_source=z_source,
                                             table=table) for t in (low, high))
    u_low, u_high = np.interp([s_low, s_high], _VDF_GRID, _VDF_CDF)
    if u_high - u_low < 1e-9:
        return float(np.clip(sis_einstein_radius(sigma_v=s_low, z_lens=z_lens,
                                                 z_source=z_source, table=table), low, high))
    sigma = np.interp(rng.uniform(u_low, u_high), _VDF_CDF, _VDF_GRID)
    theta_e = sis_einstein_radius(sigma_v=sigma, z_lens=z_lens, z_source=z_source, table=table)
    return float(np.clip(theta_e, low, high))


def draw_lens(rng: np.random.Generator, *, theta_e: float, z_lens: float, z_source: float,
              table: DistanceTable, light_scatter_mag: float = _FJ_SCATTER,
              size_scatter_dex: float = _RE_SCATTER,
              mass_angle_scatter_deg: float = MASS_ANGLE_SCATTER_DEG,
              mass_q_scatter: float = MASS_Q_SCATTER) -> dict[str, float]:
    """Draw the deflector's mass and light for a given Einstein radius and redshifts.

    ``light_scatter_mag`` and ``size_scatter_dex`` are the scatter of the lens light's luminosity
    about Faber-Jackson and of its size about ``R_e ~ sigma^1.2``. The defaults are the observed
    relations' scatter; wider values loosen the tie between the lens light and theta_e, so that
    a network trained on them cannot read theta_e off the lens galaxy where the arcs leave it
    open (the same random draws either way: only their scale changes).
    ``mass_angle_scatter_deg`` and ``mass_q_scatter`` do the same for the mass's position
    angle and axis ratio about the light's, so that e1, e2 cannot be read off the lens galaxy
    more closely than real lenses allow.

    Returns
    -------
    dict
        Mass (spec names: ``theta_e, e1, e2, center_x, center_y, gamma1, gamma2``), the
        velocity dispersion ``sigma_v`` (km/s), and lens light: ``lens_mag_{g,r,i,z}`` (AB),
        ``lens_r_eff`` (arcsec), ``lens_n_sersic``, ``lens_e1``, ``lens_e2``.
    """
    sigma_v = float(sis_velocity_dispersion(theta_e=theta_e, z_lens=z_lens, z_source=z_source,
                                            table=table))
    sigma_light = min(sigma_v, _SIGMA_LIGHT_CAP)
    # Light.
    d_l = float(table.angular_diameter(0.0, z_lens))
    distance_modulus = 5.0 * np.log10(d_l * (1.0 + z_lens) ** 2 * 1e5)
    abs_mag_i = _FJ_M_I - 10.0 * np.log10(sigma_light / _FJ_SIGMA_PIVOT)
    mag_i = (abs_mag_i + rng.normal(0.0, light_scatter_mag) + distance_modulus
             + np.interp(z_lens, _RED_TRACK_Z, _RED_TRACK_KI))
    g_r = np.interp(z_lens, _RED_TRACK_Z, _RED_TRACK_GR) + rng.normal(0.0, 0.08)
    r_i = np.interp(z_lens, _RED_TRACK_Z, _RED_TRACK_RI) + rng.normal(0.0, 0.06)
    i_z = np.interp(z_lens, _RED_TRACK_Z, _RED_TRACK_IZ) + rng.normal(0.0, 0.05)
    r_eff_kpc = _RE_KPC * (sigma_light / _FJ_SIGMA_PIVOT) ** _RE_SLOPE * 10.0 ** rng.normal(
        0.0, size_scatter_dex)
    r_eff = r_eff_kpc / (d_l * 1e3) * 206264.806
    q_light = float(np.clip(rng.normal(0.75, 0.13), 0.4, 1.0))
    phi_light = rng.uniform(0.0, np.pi)
    lens_e1, lens_e2 = phi_q_to_ellipticity(phi=phi_light, q=q_light)
    # Mass aligned with the light, with scatter.
    q_mass = float(np.clip(q_light + rng.normal(0.0, mass_q_scatter), 0.35, 1.0))
    phi_mass = phi_light + np.deg2rad(rng.normal(0.0, mass_angle_scatter_deg))
    e1, e2 = phi_q_to_ellipticity(phi=phi_mass, q=q_mass)
    radius = CENTER_MAX_ARCSEC * np.sqrt(rng.uniform())
    angle = rng.uniform(0.0, 2.0 * np.pi)
    shear = min(abs(rng.normal(0.0, 0.05)), 0.15)
    shear_angle = rng.uniform(0.0, np.pi)
    return {
        "theta_e": float(theta_e),
        "e1": float(e1),
        "e2": float(e2),
        "center_x": float(radius * np.cos(angle)),
        "center_y": float(radius * np.sin(angle)),
        "gamma1": float(shear * np.cos(2.0 * shear_angle)),
        "gamma2": float(shear * np.sin(2.0 * shear_angle)),
        "sigma_v": sigma_v,
        "lens_mag_g": float(mag_i + g_r + r_i),
        "lens_mag_r": float(mag_i + r_i),
        "lens_mag_i": float(mag_i),
        "lens_mag_z": float(mag_i - i_z),
        "lens_r_eff": float(np.clip(r_eff, 0.15, 6.0)),
        "lens_n_sersic": float(rng.uniform(3.0, 6.0)),
        "lens_e1": float(lens_e1),
        "lens_e2": float(lens_e2),
    }

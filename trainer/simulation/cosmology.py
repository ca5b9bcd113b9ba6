"""Distances for the simulator: angular-diameter distances, time-delay distance, SIE velocity
dispersion.

Astropy's ``FlatLambdaCDM(H0=70, Om0=0.3)`` is the project default (README, Conventions). Comoving
distances are tabulated once on a fine redshift grid and interpolated, because the simulator
needs distances for thousands of redshift pairs per second; the interpolation error is below
1e-6 relative (checked in ``tests/trainer/simulation/test_simulation_physics.py``). The exact
distances of the consumer and the delay unit conversion live in :mod:`lenscast.model.cosmology`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from astropy import constants as const
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM
from numpy.typing import ArrayLike, NDArray

from lenscast.model.cosmology import delay_days_per_arcsec2
from lenscast.model.cosmology_limits import cosmology_problem
from lenscast.model.defaults import DEFAULT_H0, DEFAULT_OM0

#: Speed of light, km/s.
C_KM_S = const.c.to_value(u.km / u.s)
#: One arcsec in radians.
ARCSEC = np.pi / 180.0 / 3600.0


@dataclass(frozen=True)
class DistanceTable:
    """Comoving distances of a flat cosmology tabulated against redshift.

    Attributes
    ----------
    h0, om0 : float
        The flat LCDM cosmology: Hubble constant (km/s/Mpc) and matter density today, in the
        ranges of :mod:`lenscast.model.cosmology_limits`.
    z : ndarray
        Redshift grid (0 to 6).
    comoving_mpc : ndarray
        Line-of-sight comoving distance at ``z``, Mpc.
    """

    h0: float
    om0: float
    z: NDArray = field(repr=False)
    comoving_mpc: NDArray = field(repr=False)

    def comoving(self, z: ArrayLike) -> NDArray:
        """Comoving distance at redshift ``z``, Mpc."""
        return np.interp(np.asarray(z, dtype=np.float64), self.z, self.comoving_mpc)

    def angular_diameter(self, z1: ArrayLike, z2: ArrayLike) -> NDArray:
        """Angular-diameter distance from ``z1`` to ``z2 > z1`` (flat universe), Mpc."""
        z2 = np.asarray(z2, dtype=np.float64)
        return (self.comoving(z2) - self.comoving(z1)) / (1.0 + z2)

    def time_delay_distance(self, *, z_lens: ArrayLike, z_source: ArrayLike) -> NDArray:
        """``D_dt = (1 + z_l) D_l D_s / D_ls``, Mpc (e.g. Suyu et al. 2010, eq. 2)."""
        z_lens = np.asarray(z_lens, dtype=np.float64)
        d_l = self.angular_diameter(0.0, z_lens)
        d_s = self.angular_diameter(0.0, z_source)
        d_ls = self.angular_diameter(z_lens, z_source)
        return (1.0 + z_lens) * d_l * d_s / d_ls


@lru_cache(maxsize=4)
def distance_table(*, h0: float = DEFAULT_H0, om0: float = DEFAULT_OM0) -> DistanceTable:
    """Tabulate comoving distances for ``FlatLambdaCDM(H0=h0, Om0=om0)`` (cached).

    Raises
    ------
    ValueError
        For a cosmology outside :mod:`lenscast.model.cosmology_limits` (its message says why).
    """
    problem = cosmology_problem(h0, om0)
    if problem is not None:
        raise ValueError(problem)
    z = np.linspace(0.0, 6.0, 6001)
    cosmo = FlatLambdaCDM(H0=h0, Om0=om0)
    return DistanceTable(h0=h0, om0=om0, z=z, comoving_mpc=cosmo.comoving_distance(z).value)


def fermat_to_days(fermat_arcsec2: ArrayLike, *, d_dt_mpc: ArrayLike) -> NDArray:
    """Convert a Fermat-potential difference to a time delay.

    ``dt = D_dt / c * dphi`` (Refsdal 1964; Schneider et al. 1992, eq. 5.44), with the Fermat
    potential ``phi = |theta - beta|^2 / 2 - psi(theta)`` in arcsec^2.

    Parameters
    ----------
    fermat_arcsec2 : array_like
        Fermat potential (difference), arcsec^2.
    d_dt_mpc : array_like
        Time-delay distance, Mpc.

    Returns
    -------
    ndarray
        Time, days.
    """
    return delay_days_per_arcsec2(d_dt_mpc) * np.asarray(fermat_arcsec2)


def sis_velocity_dispersion(
    *, theta_e: ArrayLike, z_lens: ArrayLike, z_source: ArrayLike, table: DistanceTable
) -> NDArray:
    """Velocity dispersion of the isothermal lens with Einstein radius ``theta_e``.

    Inverts ``theta_e = 4 pi (sigma / c)^2 D_ls / D_s`` (Schneider et al. 1992, eq. 8.36).

    Parameters
    ----------
    theta_e : array_like
        Einstein radius, arcsec.
    z_lens, z_source : array_like
        Redshifts.
    table : DistanceTable

    Returns
    -------
    ndarray
        Velocity dispersion, km/s.
    """
    ratio = table.angular_diameter(z_lens, z_source) / table.angular_diameter(0.0, z_source)
    return C_KM_S * np.sqrt(np.asarray(theta_e) * ARCSEC / (4.0 * np.pi * ratio))


def sis_einstein_radius(
    *, sigma_v: ArrayLike, z_lens: ArrayLike, z_source: ArrayLike, table: DistanceTable
) -> NDArray:
    """Einstein radius (arcsec) of an isothermal lens with dispersion ``sigma_v`` (km/s)."""
    ratio = table.angular_diameter(z_lens, z_source) / table.angular_diameter(0.0, z_source)
    return 4.0 * np.pi * (np.asarray(sigma_v) / C_KM_S) ** 2 * ratio / ARCSEC

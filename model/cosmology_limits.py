"""The flat LCDM parameters lenscast accepts, checked wherever a cosmology comes from outside.

``lenscast consume`` (environment), ``lenscast process`` (flags) and ``lenscast solve`` (each
line) share this one rule, so none of them computes delays in a universe that cannot be: a
negative H0 gave negative delays (-1,518 days), NaN gave empty ones, 1e-300 gave infinite ones.
The H0 range is wide on purpose (measurements are 67-74 km/s/Mpc): it catches a sign, a unit
(km/s/kpc, s^-1) or a missing value, and leaves any real cosmology alone.
"""

from __future__ import annotations

import math

#: Accepted Hubble constant, km/s/Mpc.
H0_RANGE = (1.0, 1000.0)
#: Accepted matter density today (flat: Omega_Lambda = 1 - Om0).
OM0_RANGE = (0.0, 1.0)


def cosmology_problem(h0: object, om0: object) -> str | None:
    """What is wrong with ``(H0, Om0)`` for a flat LCDM cosmology, or None when they are fine.

    Parameters
    ----------
    h0 : float
        Hubble constant, km/s/Mpc.
    om0 : float
        Matter density today.
    """
    for name, value, (low, high) in (("H0", h0, H0_RANGE), ("Om0", om0, OM0_RANGE)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} must be a number, not {value!r}"
        if not (math.isfinite(value) and low <= value <= high):
            return f"{name} = {value!r} is outside [{low:g}, {high:g}]"
    return None

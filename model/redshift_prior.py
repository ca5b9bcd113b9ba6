"""Priors for missing redshifts: the SL2S galaxy-scale lens sample (Sonnenfeld et al. 2013).

A lens-candidate alert usually carries a photometric lens redshift and no source redshift, yet
arrival dates need both. Where a redshift is missing it is drawn from the redshifts of a real
sample of galaxy-scale lenses found, as ours are, in ground-based imaging: the Strong Lensing
Legacy Survey (SL2S, CFHT Legacy Survey), with the redshifts of the deflector ``z_d`` and of
the lensed source ``z_s`` from Sonnenfeld et al. 2013, ApJ 777, 98 ("The SL2S
Galaxy-scale Lens Sample. IV", Table 2). :data:`SL2S_REDSHIFTS` holds that table's 53 rows
(``nan`` where the paper gives none): 52 deflector redshifts, 36 source redshifts, 35 pairs,
transcribed from the machine-readable copy of the table in the public ``AstroMusers/mejiro``
repository (``projects/roman/paper/tables/Sonnenfeld2013b_table2.csv``).

* **Source given lens**: ``ln(1 + z_s)`` is normal with the mean and standard deviation of the
  35 SL2S pairs (:data:`SOURCE_LOG_MEAN`, :data:`SOURCE_LOG_SD`: 1.111 and 0.257, i.e. median
  ``z_s`` 2.04, 16-84 % range 1.36-2.92), truncated to ``z_s > z_l +``
  :data:`MIN_SEPARATION`. In the sample ``z_s`` barely depends on ``z_d`` (correlation 0.16
  over 35 pairs, not significant), so the lens redshift enters only through the truncation.
* **Lens**: ``z_l`` is normal with the mean and standard deviation of the 52 SL2S deflector
  redshifts (:data:`LENS_MEAN`, :data:`LENS_SD`: 0.50 and 0.15), truncated to
  ``z_l >`` :data:`MIN_REDSHIFT`. Every draw stays below :data:`MAX_REDSHIFT`.

These describe lensed *galaxies* found in imaging, not lensed transients: a survey with a
better-matched sample (e.g. lensed supernovae of its own depth) should replace the table. Both
priors are written as quantile functions of a uniform deviate, so a Monte Carlo can stratify
them (:mod:`lenscast.model.uncertainty`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr, ndtri

FloatArray = NDArray[np.float64]

#: Sonnenfeld et al. 2013, ApJ 777, 98, Table 2: (z_d, z_s) of the SL2S lenses, nan = not given.
SL2S_REDSHIFTS: tuple[tuple[float, float], ...] = (
    (0.428, np.nan), (0.460, np.nan), (0.750, 2.74), (0.717, 3.48), (0.609, 1.88),
    (0.646, 1.85), (np.nan, 2.06), (0.389, 2.15), (0.572, np.nan), (0.330, np.nan),
    (0.499, 1.44), (0.473, np.nan), (0.238, 1.20), (0.494, 1.23), (0.766, np.nan),
    (0.456, np.nan), (0.352, 2.34), (0.682, 1.55), (0.722, 1.54), (0.373, np.nan),
    (0.274, 2.09), (0.337, 3.25), (0.774, 2.44), (0.365, 3.39), (0.419, 2.95),
    (0.580, np.nan), (0.670, 1.19), (0.611, 2.36), (0.552, 3.35), (0.510, np.nan),
    (0.783, 2.77), (0.527, np.nan), (0.464, np.nan), (0.412, np.nan), (0.456, 1.59),
    (0.526, 3.01), (0.480, np.nan), (0.716, 1.47), (0.322, 1.42), (0.354, 1.41),
    (0.380, 0.99), (0.483, 3.12), (0.511, 2.58), (0.400, 2.15), (0.476, 2.53),
    (0.704, np.nan), (0.338, 3.45), (0.651, np.nan), (0.564, np.nan), (0.289, 1.02),
    (0.232, 1.07), (0.325, 2.35), (0.436, 1.36),
)  # fmt: skip

#: Smallest redshift a draw may take (a lens at z = 0 has no time-delay distance).
MIN_REDSHIFT = 1e-3
#: Largest redshift a draw may take (the decoder's largest accepted redshift).
MAX_REDSHIFT = 20.0
#: Smallest source-lens redshift gap of a draw (D_dt diverges as z_s -> z_l).
MIN_SEPARATION = 0.1

_TABLE = np.array(SL2S_REDSHIFTS)
_PAIRS = _TABLE[np.isfinite(_TABLE).all(axis=1)]
_LENSES = _TABLE[np.isfinite(_TABLE[:, 0]), 0]
#: Mean and sample standard deviation of ln(1 + z_s) over the SL2S pairs.
SOURCE_LOG_MEAN = float(np.mean(np.log1p(_PAIRS[:, 1])))
SOURCE_LOG_SD = float(np.std(np.log1p(_PAIRS[:, 1]), ddof=1))
#: Mean and sample standard deviation of the SL2S deflector redshifts.
LENS_MEAN = float(np.mean(_LENSES))
LENS_SD = float(np.std(_LENSES, ddof=1))


_EPS = float(np.finfo(np.float64).eps)


def truncated_normal_quantile(
    u: ArrayLike, mean: ArrayLike, sd: ArrayLike, low: ArrayLike, high: ArrayLike = np.inf
) -> FloatArray:
    """Quantile ``u`` of a normal ``N(mean, sd)`` truncated to ``(low, high)``.

    ``sd == 0`` returns ``mean`` (an exact value is not moved by the truncation: the decoder
    has already checked it). ``u`` in [0, 1]; all arguments broadcast.
    """
    mean, sd = np.asarray(mean, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    scale = np.where(sd > 0, sd, 1.0)
    lo = ndtr((low - mean) / scale)
    hi = ndtr((high - mean) / scale)
    # Keep the quantile off 0 and 1 (infinite) when the truncation is far in a tail.
    p = np.minimum(np.maximum(lo + np.asarray(u) * (hi - lo), _EPS), 1.0 - _EPS)
    value = np.minimum(np.maximum(mean + scale * ndtri(p), low), high)
    return np.asarray(np.where(sd > 0, value, mean), dtype=np.float64)


def source_redshift_quantile(u: ArrayLike, z_lens: ArrayLike) -> FloatArray:
    """Quantile ``u`` of the SL2S source-redshift prior behind a lens at ``z_lens``."""
    floor = np.log1p(np.asarray(z_lens, dtype=np.float64) + MIN_SEPARATION)
    log_zs = truncated_normal_quantile(
        u, SOURCE_LOG_MEAN, SOURCE_LOG_SD, floor, np.log1p(MAX_REDSHIFT)
    )
    return np.expm1(log_zs)


def lens_redshift_quantile(u: ArrayLike) -> FloatArray:
    """Quantile ``u`` of the SL2S lens-redshift prior."""
    return truncated_normal_quantile(u, LENS_MEAN, LENS_SD, MIN_REDSHIFT, MAX_REDSHIFT)

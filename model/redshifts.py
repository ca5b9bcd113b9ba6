"""The redshifts behind a delay: measured (with a 1-sigma error) or drawn from a prior.

Image positions and the Fermat potential ``tau`` (arcsec^2) do not depend on redshift; a delay
is ``dt = D_dt(z_l, z_s) / c * (tau_k - tau_1)`` (:mod:`lenscast.model.image_prediction`), so
redshift uncertainty enters only through the time-delay distance ``D_dt``. :class:`Redshifts` holds
each system's stated redshifts and errors; a missing one (NaN) comes from the SL2S priors of
:mod:`lenscast.model.redshift_prior`.

Draws (:meth:`Redshifts.draw`) map two uniform deviates per Monte Carlo sample, in turn:

* ``z_l``: measured, a normal ``N(z_l, err)`` truncated to
  ``(MIN_REDSHIFT, z_s - MIN_SEPARATION)`` when ``z_s`` is exact (else to ``z_l > MIN_REDSHIFT``);
  from the prior, the SL2S lens prior;
* ``z_s`` given the drawn ``z_l``: measured, ``N(z_s, err)`` truncated to
  ``z_s > z_l + MIN_SEPARATION``; from the prior, the SL2S source prior behind that lens.

Sequential truncation is exact when at most one of the two is uncertain, and otherwise differs
from the jointly truncated normal only where the two error bars overlap. An exact value
(error 0 or absent) is never moved. The nominal redshifts (of the reported delays) are the
measured values, or the prior's median: the lens prior's median, then the source prior's median
behind the nominal lens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.cosmology import FLRW
from numpy.typing import ArrayLike, NDArray

from lenscast.model import redshift_prior as prior
from lenscast.model.cosmology import (
    default_cosmology,
    time_delay_distance_interpolated_mpc,
    time_delay_distance_mpc,
)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Per-result label of where a redshift came from.
MEASURED, PRIOR = "measured", "prior"


def _column(values: ArrayLike | None, n: int, fill: float) -> FloatArray:
    if values is None:
        return np.full(n, fill)
    array = np.asarray(values, dtype=np.float64)
    return np.broadcast_to(array, (n,)).copy()


@dataclass(frozen=True)
class Redshifts:
    """Stated redshifts of ``n`` systems; NaN = not measured (from the prior).

    Attributes
    ----------
    z_lens, z_source : ndarray, shape (n,)
        Measured redshifts, NaN where missing.
    z_lens_err, z_source_err : ndarray, shape (n,)
        1-sigma errors, 0 for an exact (or error-less) value.
    """

    z_lens: FloatArray
    z_source: FloatArray
    z_lens_err: FloatArray
    z_source_err: FloatArray

    @classmethod
    def of(
        cls,
        n: int,
        *,
        z_lens: ArrayLike | None,
        z_source: ArrayLike | None,
        z_lens_err: ArrayLike | None = None,
        z_source_err: ArrayLike | None = None,
    ) -> Redshifts:
        """Broadcast the inputs to ``n`` systems (NaN or None value: missing; NaN error: 0).

        Raises
        ------
        ValueError
            For a negative error, a redshift at or below 0, or a measured ``z_source`` at or
            below a measured ``z_lens``.
        """
        zl, zs = _column(z_lens, n, np.nan), _column(z_source, n, np.nan)
        el = np.nan_to_num(_column(z_lens_err, n, 0.0), nan=0.0)
        es = np.nan_to_num(_column(z_source_err, n, 0.0), nan=0.0)
        if np.any(el < 0) or np.any(es < 0):
            raise ValueError("redshift errors must be >= 0")
        if np.any(zl <= 0) or np.any(zs <= 0):
            raise ValueError("redshifts must be > 0")
        if np.any(zs <= zl):
            raise ValueError("z_source must exceed z_lens")
        return cls(zl, zs, el, es)

    @property
    def n(self) -> int:
        """Number of systems."""
        return int(self.z_lens.shape[0])

    @property
    def lens_from_prior(self) -> BoolArray:
        """Systems whose lens redshift comes from the prior."""
        return ~np.isfinite(self.z_lens)

    @property
    def source_from_prior(self) -> BoolArray:
        """Systems whose source redshift comes from the prior."""
        return ~np.isfinite(self.z_source)

    @property
    def uncertain(self) -> BoolArray:
        """Systems whose ``D_dt`` varies between draws (an error or a prior)."""
        return (
            self.lens_from_prior
            | self.source_from_prior
            | (self.z_lens_err > 0)
            | (self.z_source_err > 0)
        )

    def nominal(self) -> tuple[FloatArray, FloatArray]:
        """Redshifts of the nominal delays: measured values, else the priors' medians."""
        zl = np.where(self.lens_from_prior, prior.lens_redshift_quantile(0.5), self.z_lens)
        zs = np.where(
            self.source_from_prior, prior.source_redshift_quantile(0.5, zl), self.z_source
        )
        return zl, zs

    def draw(self, u: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Redshift draws from uniform deviates (see the module docstring).

        Parameters
        ----------
        u : ndarray, shape (n, n_samples, 2)
            Uniform deviates in [0, 1): ``[..., 0]`` for the lens, ``[..., 1]`` for the source.

        Returns
        -------
        z_lens, z_source : ndarray, shape (n, n_samples)
        """
        u = np.asarray(u, dtype=np.float64)
        z_l = np.empty(u.shape[:2])
        z_s = np.empty(u.shape[:2])
        # Each branch only on its own rows (the quantile functions dominate the cost).
        lens_prior, source_prior = self.lens_from_prior, self.source_from_prior
        exact_source = ~source_prior & (self.z_source_err == 0)
        # Below an exact source; never below the smallest redshift (a source at z < 0.101 leaves
        # no room: its lens then sits at MIN_REDSHIFT).
        lens_high = np.where(
            exact_source,
            np.maximum(self.z_source - prior.MIN_SEPARATION, prior.MIN_REDSHIFT),
            prior.MAX_REDSHIFT,
        )
        m = ~lens_prior
        z_l[m] = prior.truncated_normal_quantile(
            u[m, :, 0], self.z_lens[m, None], self.z_lens_err[m, None], prior.MIN_REDSHIFT,
            lens_high[m, None],
        )  # fmt: skip
        z_l[lens_prior] = prior.lens_redshift_quantile(u[lens_prior, :, 0])
        m = ~source_prior
        z_s[m] = prior.truncated_normal_quantile(
            u[m, :, 1], self.z_source[m, None], self.z_source_err[m, None],
            z_l[m] + prior.MIN_SEPARATION, prior.MAX_REDSHIFT,
        )  # fmt: skip
        z_s[source_prior] = prior.source_redshift_quantile(
            u[source_prior, :, 1], z_l[source_prior]
        )
        return z_l, z_s



def delay_scale(
    redshifts: Redshifts,
    u: ArrayLike,
    *,
    z_lens: FloatArray,
    z_source: FloatArray,
    vary: BoolArray | None = None,
    cosmology: FLRW | None = None,
) -> FloatArray:
    """Per-draw factor ``D_dt(drawn) / D_dt(nominal)`` on the delays, shape (n, n_samples).

    ``u`` are the uniform deviates of :meth:`Redshifts.draw`; ``z_lens, z_source`` the nominal
    redshifts the delays were computed with; ``vary`` the systems to draw (default
    :attr:`Redshifts.uncertain`). Exactly 1 for the others (and NaN where the nominal distance
    is undefined). Distances come from
    :func:`lenscast.model.cosmology.time_delay_distance_interpolated_mpc` for a flat cosmology (one
    interpolation per draw instead of an astropy call), else from astropy.
    """
    u = np.asarray(u, dtype=np.float64)
    cosmo = default_cosmology() if cosmology is None else cosmology
    distance = (
        time_delay_distance_interpolated_mpc if cosmo.Ok0 == 0.0 else time_delay_distance_mpc
    )
    scale = np.ones(u.shape[:2])
    rows = np.flatnonzero(redshifts.uncertain if vary is None else vary)
    if rows.size == 0:
        return scale
    subset = Redshifts(*(getattr(redshifts, f)[rows] for f in
                         ("z_lens", "z_source", "z_lens_err", "z_source_err")))  # fmt: skip
    z_l, z_s = subset.draw(u[rows])
    nominal = distance(z_lens[rows], z_source[rows], cosmo)
    scale[rows] = distance(z_l, z_s, cosmo) / nominal[:, None]
    return scale

"""Monte Carlo propagation of mass-model uncertainties to image positions and time delays.

For each system, ``n_samples`` mass models are drawn from a Gaussian (independent ``sigma`` per
parameter, or a full covariance), and all ``n * n_samples`` systems are solved in one
vectorised batch. The draws are a Latin hypercube (McKay, Beckman & Conover 1979): every
parameter's standard-normal deviate takes exactly one value in each of ``n_samples``
equal-probability strata, in an independent random order per parameter. Positions and delays
depend almost linearly on the parameters at the predicted sigma, and for such functions
stratifying each input removes most of the sampling noise: 64 stratified draws give percentiles
as precise as 100 independent ones (``benchmarks/mc_precision.py``), which is why the
pipeline's default (:data:`lenscast.model.defaults.DEFAULT_MC_SAMPLES`) is 64. Each sample's
images are matched to the nominal solution's images (greedy nearest-position assignment,
one-to-one), so percentiles describe the *same* image across samples even when arrival order
swaps. Delays of a sample are measured from its image matched
to the nominal first image (the nominal first image has delay 0 in every sample).
Samples whose image count differs from the nominal one are counted
(``image_count_mismatch_fraction``), not hidden; their matched images still contribute.

In the lensed-transient case (``image_x, image_y``) the observed image is held fixed and each
sample's source is recomputed from it, as :func:`lenscast.model.image_prediction.predict_images`
does.

Redshifts are drawn jointly with the mass model (:mod:`lenscast.model.redshifts`): stated errors,
and with ``redshift_prior`` missing redshifts from the SL2S priors. Positions and the Fermat
potential do not depend on them, so each draw's delays are its mass model's delays at the
nominal redshifts times ``D_dt(drawn) / D_dt(nominal)``. Their two uniform deviates per draw
are a second Latin hypercube taken from each system's generator *after* the mass-model
deviates, so the mass-model draws, and every result for exact redshifts, are the same as
without redshift draws.

Draws are kept physical: ``theta_e`` is floored at 1e-3 arcsec and the ellipticity and
external-shear moduli are capped at 0.95 (a tail this far out means the sigma is meaningless
anyway; it is reported through the mismatch fraction rather than crashing the batch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Unpack

import numpy as np
from astropy.cosmology import FLRW
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

from lenscast.model.defaults import DEFAULT_MC_SAMPLES
from lenscast.model.image_prediction import ImagePrediction, Positions, predict_images
from lenscast.model.lens_equation import MAX_IMAGES
from lenscast.model.mass_model import MassModel
from lenscast.model.parameter_spec import MASS_PARAMETER_NAMES
from lenscast.model.redshifts import Redshifts, delay_scale

FloatArray = NDArray[np.float64]
#: Percentiles reported (median and the central 68 % interval).
PERCENTILES = (16.0, 50.0, 84.0)
#: A sample image farther than this (in units of theta_e) from every nominal image is unmatched.
MATCH_RADIUS_THETA_E = 0.5


@dataclass(frozen=True)
class ImageUncertainty:
    """Percentiles of image quantities over the Monte Carlo samples.

    Attributes
    ----------
    nominal : ImagePrediction
        Images of the mean model (the columns the percentiles refer to).
    x, y, time_delay_days, magnification : ndarray, shape (n, MAX_IMAGES, 3)
        16th, 50th and 84th percentiles, arcsec / days / signed magnification; NaN where the
        nominal image does not exist or was matched in no sample.
    delay_after_observed_days : ndarray, shape (n, MAX_IMAGES, 3)
        Lensed-transient case: percentiles of ``dt_k - dt_observed``, taken per sample, days
        (when image ``k`` shows the transient relative to when it was seen; exactly 0 for the
        observed image). NaN when the images were solved from a source position.
    matched_fraction : ndarray, shape (n, MAX_IMAGES)
        Fraction of samples in which the nominal image had a counterpart.
    image_count_mismatch_fraction : ndarray, shape (n,)
        Fraction of samples whose image count differs from the nominal count.
    z_lens, z_source : ndarray, shape (n,)
        Redshifts of the nominal delays (measured, or the priors' medians; NaN: no delays).
    n_samples : int
    """

    nominal: ImagePrediction
    x: FloatArray
    y: FloatArray
    time_delay_days: FloatArray
    magnification: FloatArray
    delay_after_observed_days: FloatArray
    matched_fraction: FloatArray
    image_count_mismatch_fraction: FloatArray
    z_lens: FloatArray
    z_source: FloatArray
    n_samples: int


#: How the standard-normal deviates are drawn: stratified (the default) or independent.
SAMPLINGS = ("latin", "random")


def latin_hypercube_uniform(
    rngs: Sequence[np.random.Generator], n_samples: int, p: int
) -> FloatArray:
    """Uniform deviates on [0, 1), Latin-hypercube stratified in each of ``p`` coordinates.

    Draw ``i`` of coordinate ``j`` of system ``s`` is ``(k_sij + u_sij) / n_samples`` (see
    :func:`latin_hypercube_normal`); shape ``(len(rngs), n_samples, p)``.
    """
    raw = np.zeros((len(rngs), 2, n_samples, p))
    for i, rng in enumerate(rngs):
        raw[i] = rng.random((2, n_samples, p))
    # The sorting order of i.i.d. uniforms is a uniformly random permutation: one call draws
    # them for all systems and parameters.
    strata = np.argsort(raw[:, 0], axis=1)
    return np.asarray((strata + raw[:, 1]) / n_samples, dtype=np.float64)


def latin_hypercube_normal(
    rngs: Sequence[np.random.Generator], n_samples: int, p: int
) -> FloatArray:
    """Standard-normal deviates, Latin-hypercube stratified in each of ``p`` coordinates.

    For system ``s``, coordinate ``j`` of draw ``i`` is the normal quantile of
    ``(k_sij + u_sij) / n_samples``, with ``k_s.j`` a random permutation of
    ``0 .. n_samples-1`` and ``u`` uniform on [0, 1): each coordinate visits every
    equal-probability stratum exactly once, and the pairing of strata across coordinates is
    random. Each draw is still exactly standard normal in distribution.

    Parameters
    ----------
    rngs : sequence of numpy.random.Generator
        One generator per system (the same one may repeat); each system's deviates come from
        its own generator only.
    n_samples : int
        Draws (and strata per coordinate).
    p : int
        Coordinates (parameters).

    Returns
    -------
    ndarray, shape (len(rngs), n_samples, p)
    """
    u = latin_hypercube_uniform(rngs, n_samples, p)
    # u == 0 has probability 2**-53 per value; keep its quantile finite.
    return ndtri(np.maximum(u, np.finfo(np.float64).tiny))


def _generators(n: int, seed: int, system_seeds: ArrayLike | None) -> list[np.random.Generator]:
    """One generator per system (the same shared one without ``system_seeds``)."""
    if system_seeds is None:
        return [np.random.default_rng(seed)] * n
    # One stream per system: its draws do not depend on which other systems share the call.
    keys = np.broadcast_to(np.asarray(system_seeds, dtype=np.int64), (n,))
    return [np.random.default_rng([seed, int(k)]) for k in keys]


def _draw(
    mean: Mapping[str, ArrayLike],
    sigma: Mapping[str, ArrayLike] | None,
    covariance: ArrayLike | None,
    n_samples: int,
    rngs: Sequence[np.random.Generator],
    sampling: str = "latin",
) -> dict[str, FloatArray]:
    """Samples of the spec parameters, flattened system-major to shape ``(n * n_samples,)``."""
    mu = np.stack([np.asarray(mean[k], dtype=np.float64) for k in MASS_PARAMETER_NAMES], -1)
    n, p = mu.shape
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, not {sampling!r}")
    if sampling == "latin":
        normal = latin_hypercube_normal(rngs, n_samples, p)
    else:
        normal = np.zeros((n, n_samples, p))
        for i, r in enumerate(rngs):
            normal[i] = r.standard_normal((n_samples, p))
    if covariance is not None:
        cov = np.broadcast_to(np.asarray(covariance, dtype=np.float64), (n, p, p))
        # Eigen-decomposition tolerates a positive semi-definite covariance (Cholesky does not).
        w, v = np.linalg.eigh(cov)
        root = v * np.sqrt(np.clip(w, 0.0, None))[:, None, :]
        draws = mu[:, None, :] + np.einsum("nij,nsj->nsi", root, normal)
    elif sigma is not None:
        sd = np.stack([np.asarray(sigma[k], dtype=np.float64) for k in MASS_PARAMETER_NAMES], -1)
        draws = mu[:, None, :] + np.broadcast_to(sd, (n, p))[:, None, :] * normal
    else:
        raise ValueError("give sigma or covariance")
    out = {k: draws[:, :, i].reshape(-1) for i, k in enumerate(MASS_PARAMETER_NAMES)}
    out["theta_e"] = np.maximum(out["theta_e"], 1e-3)
    for a, b in (("e1", "e2"), ("gamma1", "gamma2")):
        modulus = np.hypot(out[a], out[b])
        shrink = np.where(modulus > 0.95, 0.95 / np.maximum(modulus, 1e-300), 1.0)
        out[a], out[b] = out[a] * shrink, out[b] * shrink
    return out


def _nan_percentiles(values: FloatArray, percentiles: tuple[float, ...]) -> FloatArray:
    """Percentiles over the last axis ignoring NaN, linear interpolation (numpy's default).

    Vectorised: ``np.nanpercentile`` loops in Python over rows, ~100x slower here.
    """
    ordered = np.sort(values, axis=-1)  # NaN sorts last
    count = np.sum(np.isfinite(values), axis=-1)
    out = np.full(values.shape[:-1] + (len(percentiles),), np.nan)
    has = count > 0
    for i, p in enumerate(percentiles):
        pos = (np.maximum(count, 1) - 1) * p / 100.0
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
        frac = pos - lo
        v_lo = np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
        v_hi = np.take_along_axis(ordered, hi[..., None], axis=-1)[..., 0]
        out[..., i] = np.where(has, v_lo + frac * (v_hi - v_lo), np.nan)
    return out


def _match(
    nom_x: FloatArray, nom_y: FloatArray, smp_x: FloatArray, smp_y: FloatArray, radius: FloatArray
) -> NDArray[np.intp]:
    """For each nominal image, the column of its sample counterpart (-1: none).

    Shapes: nominal ``(m, K)``, sample ``(m, K)``, radius ``(m,)``; greedy one-to-one
    assignment by increasing distance (optimal for the well-separated images of a lens).
    """
    m, k = nom_x.shape
    if m == 0:
        return np.zeros((0, k), dtype=np.intp)
    dist = np.hypot(nom_x[:, :, None] - smp_x[:, None, :], nom_y[:, :, None] - smp_y[:, None, :])
    dist = np.where(np.isfinite(dist) & (dist < radius[:, None, None]), dist, np.inf)
    match = np.full((m, k), -1, dtype=np.intp)
    rows = np.arange(m)
    for _ in range(k):
        flat = dist.reshape(m, k * k).argmin(axis=1)
        i, j = np.divmod(flat, k)
        ok = np.isfinite(dist[rows, i, j])
        match[rows[ok], i[ok]] = j[ok]
        dist[rows[ok], i[ok], :] = np.inf
        dist[rows[ok], :, j[ok]] = np.inf
    return match


def _rows(prediction: ImagePrediction, rows: slice) -> ImagePrediction:
    """The systems ``rows`` of a prediction."""
    return ImagePrediction(
        **{f.name: getattr(prediction, f.name)[rows] for f in fields(prediction)}
    )


def propagate_uncertainty(
    mean: Mapping[str, ArrayLike],
    sigma: Mapping[str, ArrayLike] | None = None,
    *,
    covariance: ArrayLike | None = None,
    z_lens: ArrayLike,
    z_source: ArrayLike,
    z_lens_err: ArrayLike | None = None,
    z_source_err: ArrayLike | None = None,
    redshift_prior: bool = False,
    cosmology: FLRW | None = None,
    n_samples: int = DEFAULT_MC_SAMPLES,
    seed: int = 0,
    system_seeds: ArrayLike | None = None,
    sampling: str = "latin",
    percentiles: tuple[float, ...] = PERCENTILES,
    **positions: Unpack[Positions],
) -> ImageUncertainty:
    """Percentiles (16/50/84) of image positions, delays and magnifications.

    Parameters
    ----------
    mean : mapping of str to ndarray (n,)
        Mass-model parameters keyed by :data:`lenscast.model.parameter_spec.MASS_PARAMETER_NAMES`
        (SIE + shear; a ``gamma`` slope entry, if present, is held fixed).
    sigma : mapping of str to ndarray (n,), optional
        Independent 1-sigma uncertainties, same keys and units.
    covariance : ndarray (n, 7, 7) or (7, 7), optional
        Full covariance in spec order, instead of ``sigma``.
    cosmology
        As for :func:`lenscast.model.image_prediction.predict_images`.
    z_lens, z_source : ndarray (n,) or scalar
        Measured redshifts; NaN where missing (no delays, unless ``redshift_prior``).
    z_lens_err, z_source_err : ndarray (n,) or scalar, optional
        Their 1-sigma errors (absent, NaN or 0: exact), drawn jointly with the mass model.
    redshift_prior : bool
        Draw missing redshifts from the SL2S priors (:mod:`lenscast.model.redshift_prior`); the
        nominal delays then use the priors' medians.
    n_samples : int
        Monte Carlo draws per system (Latin-hypercube stratified, see the module docstring).
    seed : int
        Seed of the NumPy generator (results are reproducible).
    system_seeds : ndarray (n,) of non-negative int, optional
        A second seed per system: each system then gets its own generator
        ``default_rng([seed, system_seeds[i]])``, so its percentiles are the same whichever
        systems it is computed with (a stream's alerts arrive in batches that differ from run to
        run). Without it, one generator serves the whole call.
    sampling : {"latin", "random"}
        Latin-hypercube stratified draws (default), or independent draws.
    percentiles : tuple of float
        Percentiles reported (default 16, 50, 84), the last axis of the outputs.
    **positions
        ``source_x, source_y`` or ``image_x, image_y``, arcsec, as for
        :func:`lenscast.model.image_prediction.predict_images` (:class:`Positions`).
    """
    nominal_model = MassModel.from_mapping(mean)
    n = nominal_model.n
    given = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for k, v in positions.items()
             if v is not None}  # fmt: skip
    redshifts = Redshifts.of(
        n, z_lens=z_lens, z_source=z_source, z_lens_err=z_lens_err, z_source_err=z_source_err
    )
    zl, zs = redshifts.nominal() if redshift_prior else (redshifts.z_lens, redshifts.z_source)
    # Without the prior a missing redshift means no delays: nothing to draw for that system.
    vary = redshifts.uncertain & np.isfinite(zl) & np.isfinite(zs)
    rngs = _generators(n, seed, system_seeds)
    draws = _draw(mean, sigma, covariance, n_samples, rngs, sampling)
    if "gamma" in mean:
        draws["gamma"] = np.repeat(np.asarray(mean["gamma"], dtype=np.float64), n_samples)
    # The nominal systems and their draws in one solver call (each system is solved on its own,
    # so this only saves the call's fixed cost, ~10 % of the work for a 32-alert chunk).
    both = predict_images(
        MassModel.from_mapping({
            k: np.concatenate([np.broadcast_to(np.asarray(mean[k], dtype=np.float64), (n,)), v])
            for k, v in draws.items()
        }),
        **{k: np.concatenate([v, np.repeat(v, n_samples)]) for k, v in given.items()},
        z_lens=np.concatenate([zl, np.repeat(zl, n_samples)]),
        z_source=np.concatenate([zs, np.repeat(zs, n_samples)]),
        cosmology=cosmology,
    )
    nominal, sample = _rows(both, slice(0, n)), _rows(both, slice(n, None))
    radius = MATCH_RADIUS_THETA_E * np.repeat(nominal_model.theta_e, n_samples)
    match = _match(
        np.repeat(nominal.x, n_samples, axis=0), np.repeat(nominal.y, n_samples, axis=0),
        sample.x, sample.y, radius,
    )  # fmt: skip
    rows = np.arange(n * n_samples)[:, None]
    col = np.where(match >= 0, match, 0)

    def gather(values: FloatArray) -> FloatArray:
        picked = np.where(match >= 0, values[rows, col], np.nan)
        return picked.reshape(n, n_samples, MAX_IMAGES)

    sample_delays = sample.time_delay_days
    if np.any(vary):
        if sampling == "latin":
            u = latin_hypercube_uniform(rngs, n_samples, 2)
        else:
            u = np.stack([r.random((n_samples, 2)) for r in rngs])
        scale = delay_scale(redshifts, u, z_lens=zl, z_source=zs, vary=vary, cosmology=cosmology)
        sample_delays = sample_delays * scale.reshape(-1)[:, None]
    delays = gather(sample_delays)
    delays = delays - delays[:, :, :1]  # from the counterpart of the nominal first image
    # Per-sample delays after the observed image: percentiles of a difference are not the
    # difference of percentiles, and arrival dates of a transient need exactly this.
    observed = nominal.observed_index
    has_observed = (observed >= 0)[:, None, None]
    at_observed = np.take_along_axis(delays, np.clip(observed, 0, None)[:, None, None], axis=2)
    after_observed = np.where(has_observed, delays - at_observed, np.nan)
    quantiles = {}
    for name, values in (
        ("x", gather(sample.x)),
        ("y", gather(sample.y)),
        ("time_delay_days", delays),
        ("magnification", gather(sample.magnification)),
        ("delay_after_observed_days", after_observed),
    ):
        q = _nan_percentiles(np.moveaxis(values, 1, -1), tuple(percentiles))
        quantiles[name] = q
    matched = (match >= 0).reshape(n, n_samples, MAX_IMAGES).mean(axis=1)
    mismatch = (sample.n_images.reshape(n, n_samples) != nominal.n_images[:, None]).mean(axis=1)
    return ImageUncertainty(
        nominal=nominal,
        x=quantiles["x"],
        y=quantiles["y"],
        time_delay_days=quantiles["time_delay_days"],
        magnification=quantiles["magnification"],
        delay_after_observed_days=quantiles["delay_after_observed_days"],
        matched_fraction=np.where(np.isfinite(nominal.x), matched, 0.0),
        image_count_mismatch_fraction=mismatch,
        z_lens=zl,
        z_source=zs,
        n_samples=n_samples,
    )

"""Predicted images and time delays of a batch of lenses, from a source or one observed image.

The lensed-transient case: a supernova seen at one image position ``theta_obs`` fixes the
source ``beta = theta_obs - alpha(theta_obs)`` (the lens equation), and solving the lens
equation for that source gives every image, the observed one included (``observed_index``).

Delays (e.g. Treu & Marshall 2016, eq. 1): ``dt_i = D_dt / c (tau_i - tau_1)`` in days with
``tau`` the Fermat potential (:func:`lenscast.model.lens_quantities.fermat_potential`) and ``D_dt``
the time-delay distance (:mod:`lenscast.model.cosmology`); images are in arrival order, the first at
0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypedDict, Unpack

import numpy as np
from astropy.cosmology import FLRW
from numpy.typing import ArrayLike, NDArray

from lenscast.model import lens_quantities as lq
from lenscast.model.cosmology import delay_days_per_arcsec2, time_delay_distance_mpc
from lenscast.model.lens_equation import ImageSet, solve_images
from lenscast.model.mass_model import MassModel

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ImagePrediction(ImageSet):
    """Images of ``n`` systems in arrival order, with their sources and delays.

    The :class:`~lenscast.model.lens_equation.ImageSet` the lens equation gives (positions,
    magnifications, image counts, rings; NaN padded to ``MAX_IMAGES`` columns), its Fermat
    potential taken relative to the first image.

    Attributes
    ----------
    fermat_potential : ndarray, shape (n, MAX_IMAGES)
        Fermat potential relative to the first image, ``tau_k - tau_1`` in arcsec^2 (first
        image 0): the cosmology-free part of the delay, ``dt_k = D_dt / c * (tau_k - tau_1)``.
    source_x, source_y : ndarray, shape (n,)
        Source position, arcsec (given, or from the observed image).
    time_delay_days : ndarray, shape (n, MAX_IMAGES)
        Arrival time after the first image, days (first image 0).
    observed_index : ndarray of int, shape (n,)
        Column of the observed image when predicting from one (-1 if it was not recovered,
        e.g. a position inside the lens centre's singularity); -1 when a source was given.
    time_delay_distance_mpc : ndarray, shape (n,)
        ``D_dt`` of each system's redshifts, Mpc (NaN without redshifts).
    """

    # Redeclared for its meaning here (relative to the first image); it keeps its place.
    fermat_potential: FloatArray
    source_x: FloatArray
    source_y: FloatArray
    time_delay_days: FloatArray
    observed_index: NDArray[np.int_]
    time_delay_distance_mpc: FloatArray


class Positions(TypedDict, total=False):
    """Where the systems' images come from: a source or one observed image, arcsec.

    Give either ``source_x, source_y`` or ``image_x, image_y`` (one observed image per system),
    each shaped ``(n,)`` or scalar.
    """

    source_x: ArrayLike | None
    source_y: ArrayLike | None
    image_x: ArrayLike | None
    image_y: ArrayLike | None


def _column(values: ArrayLike | None, n: int, name: str) -> FloatArray:
    if values is None:
        raise ValueError(f"{name} is required")
    return np.broadcast_to(np.atleast_1d(np.asarray(values, dtype=np.float64)), (n,)).copy()


def predict_images(
    model: MassModel,
    *,
    z_lens: ArrayLike,
    z_source: ArrayLike,
    cosmology: FLRW | None = None,
    **positions: Unpack[Positions],
) -> ImagePrediction:
    """All images, magnifications and delays for sources or observed images (arcsec, days).

    Give either ``source_x, source_y`` or ``image_x, image_y`` (:class:`Positions`).
    ``z_lens``, ``z_source`` broadcast to ``(n,)``; ``cosmology`` defaults to
    :func:`lenscast.model.cosmology.default_cosmology`.
    """
    unexpected = positions.keys() - Positions.__optional_keys__
    if unexpected:  # what a signature naming each position would refuse
        raise TypeError(f"predict_images() got unexpected keyword arguments {sorted(unexpected)}")
    n = model.n
    source_x, source_y = positions.get("source_x"), positions.get("source_y")
    image_x, image_y = positions.get("image_x"), positions.get("image_y")
    from_image = image_x is not None or image_y is not None
    if from_image == (source_x is not None or source_y is not None):
        raise ValueError("give either source_x/source_y or image_x/image_y")
    if from_image:
        obs_x, obs_y = _column(image_x, n, "image_x"), _column(image_y, n, "image_y")
        # An "image" exactly on the singular lens centre has no defined source: NaN, no images.
        with np.errstate(divide="ignore", invalid="ignore"):
            bx, by = lq.ray_shoot(obs_x, obs_y, model=model)
    else:
        bx, by = _column(source_x, n, "source_x"), _column(source_y, n, "source_y")
    images = solve_images(bx, by, model=model)
    d_dt = time_delay_distance_mpc(
        np.broadcast_to(np.asarray(z_lens, dtype=np.float64), (n,)),
        np.broadcast_to(np.asarray(z_source, dtype=np.float64), (n,)),
        cosmology,
    )
    # Images are already in arrival order: the first column arrives first.
    tau = images.fermat_potential - images.fermat_potential[:, :1]
    images = replace(images, fermat_potential=tau)
    delays = delay_days_per_arcsec2(d_dt)[:, None] * tau
    observed = np.full(n, -1, dtype=np.int_)
    if from_image:
        dist = np.hypot(images.x - obs_x[:, None], images.y - obs_y[:, None])
        near = np.argmin(np.where(np.isfinite(dist), dist, np.inf), axis=1)
        close = dist[np.arange(n), near] < 1e-6 * np.maximum(1.0, model.theta_e)
        observed = np.where(close, near, -1)
    return ImagePrediction(
        **vars(images),
        source_x=bx,
        source_y=by,
        time_delay_days=delays,
        observed_index=observed,
        time_delay_distance_mpc=d_dt,
    )

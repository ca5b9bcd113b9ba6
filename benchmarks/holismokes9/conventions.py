"""HOLISMOKES IX outputs in lenscast's parameter conventions.

The public HOLISMOKES IX network (Schuldt et al. 2023, arXiv:2206.11279; release
github.com/shsuyu/HOLISMOKES-public, folder ``HOLISMOKES_IX``) predicts seven SIE + shear
parameters, each squashed by a sigmoid onto ``[0, 1]`` and mapped back linearly to its training
range (the release's README and ``apply_net.py``):

=====  ==========  ===========  =========================================================
index  theirs      range        meaning
=====  ==========  ===========  =========================================================
0      x           -0.6, 0.6    lens centre, arcsec from the cutout centre, image x axis
1      y           -0.6, 0.6    lens centre, arcsec, image y axis
2      e_x         -1, 1        complex ellipticity, x component
3      e_y         -1, 1        complex ellipticity, y component
4      theta_E     0.5, 5       Einstein radius, arcsec
5      gamma_1     -0.1, 0.1    external shear, x component
6      gamma_2     -0.1, 0.1    external shear, y component
=====  ==========  ===========  =========================================================

Their sigmas come out of the same sigmoid, scaled by the range width and then by the
per-parameter factors the release applies so that they read as 1σ (:data:`SIGMA_SCALE`).

Their image axes are the pixel axes of the FITS array as stored (column = x, row = y), i.e.
x grows towards the west on a north-up, east-left HSC coadd cutout, while lenscast's x is
``ΔRA cos Dec`` (east positive; ``x = -(col - c) * 0.168"``). The two frames are mirror images
along x, so (``phi`` measured from +x towards +y in each frame) ``phi_ours = pi - phi_theirs``:

* ``center_x = -(x - ORIGIN_SHIFT)``, ``center_y = y - ORIGIN_SHIFT``: their centre
  coordinates are measured from a point 0.15" (0.9 px) off the cutout centre towards the
  first pixel of both axes (:data:`ORIGIN_SHIFT`; a pixel-origin convention of their
  simulation code that the release does not state);
* ``e1 = e_x``, ``e2 = -e_y`` and ``gamma1 = gamma_1``, ``gamma2 = -gamma_2`` (spin-2:
  ``cos 2(pi - phi) = cos 2 phi``, ``sin 2(pi - phi) = -sin 2 phi``);
* ``theta_e = theta_E``; the ellipticity's modulus is ``(1 - q) / (1 + q)`` in both.

The signs, the modulus and the origin shift were measured on lenscast's own simulated test
split (never on the release's 16 example cutouts, which are for evaluation only) with
``python -m benchmarks.holismokes9.convention_check``: with the signs above every parameter
regresses with a positive slope (e1, e2: 0.95, 0.93; centre 0.87, 0.85), and without the
shift their centres lie 0.149" and 0.158" off lenscast's truths at every θ_E (1σ 0.06"), for
lenses within 0.1" of the centre. ``docs/evaluation/real_lens_light.md`` has the numbers.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lenscast.model import parameter_spec as spec

#: Their parameter names, in their output order.
THEIR_NAMES: tuple[str, ...] = ("x", "y", "e_x", "e_y", "theta_E", "gamma_1", "gamma_2")
#: Training range of each of their outputs (the sigmoid's 0 and 1), their order.
THEIR_RANGES: tuple[tuple[float, float], ...] = (
    (-0.6, 0.6), (-0.6, 0.6), (-1.0, 1.0), (-1.0, 1.0), (0.5, 5.0), (-0.1, 0.1), (-0.1, 0.1))
#: Factors the release multiplies its sigmas by so that they are 1σ intervals, their order.
SIGMA_SCALE: tuple[float, ...] = (1.25, 1.32, 1.19, 1.20, 1.08, 1.21, 1.21)
#: Smallest raw sigma the release allows (a clamp before the range scaling).
RAW_SIGMA_FLOOR = 1e-4

#: Offset of their centre coordinates' origin from the cutout centre, arcsec, along their
#: +x and +y (measured, see the module docstring): ``x_theirs = x_pixel_frame + ORIGIN_SHIFT``.
ORIGIN_SHIFT = 0.15
#: Their columns that are centre coordinates (shifted by :data:`ORIGIN_SHIFT`).
CENTRE_COLUMNS = (0, 1)

#: For each lenscast parameter (spec order): (index of theirs, sign) so that ours = sign * theirs.
TO_LENSCAST: dict[str, tuple[int, float]] = {
    "theta_e": (4, 1.0),
    "e1": (2, 1.0),
    "e2": (3, -1.0),
    "center_x": (0, -1.0),
    "center_y": (1, 1.0),
    "gamma1": (5, 1.0),
    "gamma2": (6, -1.0),
}


def permutation_and_signs() -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Index of their column and its sign for each lenscast parameter, in spec order.

    Returns
    -------
    index : ndarray of int, shape (7,)
    sign : ndarray, shape (7,)
        ``ours[:, k] = sign[k] * theirs[:, index[k]]`` (for sigmas, without the sign).
    """
    pairs = [TO_LENSCAST[name] for name in spec.MASS_PARAMETER_NAMES]
    return (np.array([p[0] for p in pairs], dtype=np.int64),
            np.array([p[1] for p in pairs], dtype=np.float64))


def from_unit_interval(unit_mean: ArrayLike, unit_sigma: ArrayLike
                       ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Their sigmoid outputs mapped back to physical values (their order and frame).

    Parameters
    ----------
    unit_mean, unit_sigma : array_like, shape (n, 7)
        The network's two halves of sigmoid outputs, in :data:`THEIR_NAMES` order.

    Returns
    -------
    mean, sigma : ndarray, shape (n, 7)
        Arcsec for the centre and θ_E, dimensionless otherwise; sigma is the 1σ width.
    """
    low = np.array([r[0] for r in THEIR_RANGES])
    width = np.array([r[1] - r[0] for r in THEIR_RANGES])
    mean = low + width * np.asarray(unit_mean, dtype=np.float64)
    raw = np.maximum(np.asarray(unit_sigma, dtype=np.float64), RAW_SIGMA_FLOOR)
    return mean, raw * width * np.asarray(SIGMA_SCALE)


def to_lenscast(mean: ArrayLike, sigma: ArrayLike
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Their physical outputs (their order and frame) in lenscast's spec order and frame.

    Parameters
    ----------
    mean, sigma : array_like, shape (n, 7)
        In :data:`THEIR_NAMES` order (x west, y north as their image axes).

    Returns
    -------
    mean, sigma : ndarray, shape (n, 7)
        In :data:`lenscast.model.parameter_spec.MASS_PARAMETER_NAMES` order, lenstronomy conventions
        with x east.
    """
    index, sign = permutation_and_signs()
    mean = np.array(mean, dtype=np.float64)
    mean[..., list(CENTRE_COLUMNS)] -= ORIGIN_SHIFT
    sigma = np.asarray(sigma, dtype=np.float64)
    return mean[..., index] * sign, sigma[..., index]

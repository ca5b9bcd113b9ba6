"""Colour composites of griz cutouts for display (Lupton et al. 2004, PASP 116, 133)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def colour_composite(
    cutouts: NDArray[np.floating],
    *,
    q: float = 30.0,
    percentile: float = 99.9,
    noise_knee: float = 3.0,
) -> NDArray[np.float64]:
    """Lupton et al. (2004) asinh colour composite of griz cutouts.

    Red, green and blue are the i, r and g bands. With ``I`` the mean of the three
    sky-subtracted channels, every channel is scaled by ``asinh(I/k) / asinh(T/k) / I``: colours
    are kept, ``T`` (the ``percentile`` of ``I``) reaches full scale, and the stretch is linear
    below the knee ``k = max(T/q, noise_knee * noise)``, so faint arcs show on bright lenses
    while the noise of a faint system stays dark.

    Parameters
    ----------
    cutouts : ndarray, shape (4, n, n)
        g, r, i, z fluxes (any linear unit; zeropoint 27 for the HSC model).
    q : float
        Dynamic range compressed by the asinh (larger shows fainter features).
    percentile : float
        Intensity percentile mapped to full scale.
    noise_knee : float
        Lowest knee, in units of the robust noise of ``I``.

    Returns
    -------
    ndarray, shape (n, n, 3)
        RGB in [0, 1], rows ordered as the input (draw with ``origin="lower"``).
    """
    g, r, i = (np.asarray(cutouts[k], dtype=np.float64) for k in (0, 1, 2))
    channels = np.stack([i, r, g], axis=-1)
    channels -= np.median(channels, axis=(0, 1))  # sky to zero
    mean = channels.mean(axis=-1)
    noise = 1.4826 * float(np.median(np.abs(mean - np.median(mean))))
    top = float(np.percentile(mean, percentile))
    if not np.isfinite(top) or top <= 0.0:
        return np.zeros(channels.shape)
    knee = max(top / q, noise_knee * noise)
    intensity = np.clip(mean, 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.arcsinh(intensity / knee) / np.arcsinh(top / knee) / intensity
    factor = np.where(intensity > 0.0, factor, 0.0)
    rgb = np.clip(channels, 0.0, None) * factor[..., None]
    # Saturated pixels keep their hue: divide by the largest channel above 1.
    peak = np.maximum(rgb.max(axis=-1, keepdims=True), 1.0)
    return np.asarray(np.clip(rgb / peak, 0.0, 1.0))

"""Per-parameter sigma calibration on validation data.

The β-NLL fit gives widths that are only approximately calibrated (β != 0 is not a proper
likelihood, and validation data differ from training data). One scale factor per parameter,
``k = quantile(|mean - truth| / sigma, 0.6827)``, makes exactly 68.27 % of the validation
residuals fall within ±k·sigma. The factor is stored in the network (``sigma_scale``), so the
exported ONNX ``sigma`` output is the calibrated one.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: Fraction of a Gaussian within ±1 and ±2 sigma.
ONE_SIGMA = 0.682689492
TWO_SIGMA = 0.954499736


def sigma_scale_factors(mean: NDArray[np.floating], sigma: NDArray[np.floating],
                        truth: NDArray[np.floating]) -> NDArray[np.float64]:
    """Scale factors ``k`` (one per parameter) so that ±k·sigma covers 68.27 %.

    Parameters
    ----------
    mean, sigma, truth : ndarray, shape (n, k)
        Predictions, their (uncalibrated) 1-sigma widths and the truths, same units.

    Returns
    -------
    ndarray, shape (k,)
        Multiply ``sigma`` by these.
    """
    z = np.abs(np.asarray(mean) - np.asarray(truth)) / np.asarray(sigma)
    return np.quantile(z, ONE_SIGMA, axis=0).astype(np.float64)


def coverage(mean: NDArray[np.floating], sigma: NDArray[np.floating],
             truth: NDArray[np.floating], *, n_sigma: float = 1.0) -> NDArray[np.float64]:
    """Fraction of truths within ±n_sigma·sigma of the mean, per parameter (shape (k,))."""
    z = np.abs(np.asarray(mean) - np.asarray(truth)) / np.asarray(sigma)
    return np.mean(z <= n_sigma, axis=0).astype(np.float64)

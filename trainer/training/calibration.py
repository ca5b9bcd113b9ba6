"""Per-parameter calibration of the predicted mean and sigma on validation data.

The β-NLL fit gives widths that are only approximately calibrated (β != 0 is not a proper
likelihood, and validation data differ from training data). One scale factor per parameter,
``k = quantile(|mean - truth| / sigma, 0.6827)``, makes exactly 68.27 % of the validation
residuals fall within ±k·sigma. The factor is stored in the network (``sigma_scale``), so the
exported ONNX ``sigma`` output is the calibrated one.

Optionally (at export) the median residual per parameter is removed from the mean as well
(``mean_offset``). For the centre, e1, e2 and the shear the D4-symmetric training set has no
preferred direction, so a global offset is left-over optimiser noise in the output bias, not
physics; for θ_E it makes the estimate median-unbiased over the validation population (the
θ_E-dependent bias remains and is reported per θ_E bin).
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


def median_offsets(mean: NDArray[np.floating], truth: NDArray[np.floating]
                   ) -> NDArray[np.float64]:
    """Median of ``mean - truth`` per parameter (shape (k,)); subtract it from the mean."""
    return np.median(np.asarray(mean) - np.asarray(truth), axis=0).astype(np.float64)

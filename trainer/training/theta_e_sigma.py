"""A θ_E-dependent correction of the calibrated sigma, appended to an exported ONNX graph.

The export's calibration (:mod:`lenscast.trainer.training.calibration`) fits one factor per
parameter over the whole validation set. The network's sigma does not follow every parameter's error
equally well across lens sizes: on the held-out sets the centre's ±1σ interval covers ~55 % of
small lenses (θ_E < 1.2") and ~75 % of large ones (θ_E > 2") with the same overall 68 %. A
survey finds mostly small lenses, so there the interval is too narrow.

The correction multiplies each parameter's sigma by a power of the *predicted* Einstein radius
(the truth is unknown at inference)::

    sigma_k  <-  sigma_k * c_k * clip(theta_e_hat, 0.3", 6")^b_k

fitted on validation data: the validation systems are split into bins of equal count in
predicted θ_E; in each bin the 68.27th percentile ``q`` of ``|mean - truth| / sigma`` is the
factor that bin would need; ``b_k`` is the slope of ``log q`` against the bin's median
``log theta_e_hat`` (least squares, weighted by count), and ``c_k`` then makes ±1σ cover
exactly 68.27 % of all validation systems. A parameter whose coverage does not depend on θ_E
gets ``b_k ~ 0`` and ``c_k ~ 1``.

The correction is appended to the graph as a few nodes after its ``sigma`` output (the means
are untouched, bit for bit), so the ONNX ``sigma`` stays the calibrated one, as the model card
says.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray

from lenscast.model import parameter_spec as spec
from lenscast.trainer.training.calibration import ONE_SIGMA
from lenscast.trainer.training.graph_surgery import (
    add_constant,
    append_nodes,
    copy_with_renamed_output,
)

#: Range of the predicted θ_E (arcsec) the power law is evaluated on: it is fitted on
#: 0.5-5" lenses and must not blow up on a wild prediction.
THETA_E_CLIP = (0.3, 6.0)
#: Bins of equal count in predicted θ_E used for the fit.
N_BINS = 8

_THETA_E_INDEX = spec.MASS_PARAMETER_NAMES.index("theta_e")
#: Smallest spread of the bins' log predicted θ_E over which a slope is fitted.
_MIN_LOG_SPAN = 0.1


def fit_theta_e_dependence(
    mean: NDArray[np.floating],
    sigma: NDArray[np.floating],
    truth: NDArray[np.floating],
    *,
    n_bins: int = N_BINS,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Fit ``c_k`` and ``b_k`` of the module docstring.

    Parameters
    ----------
    mean, sigma, truth : ndarray, shape (n, 7)
        Predictions, their calibrated sigmas and the truths (spec order and units).
    n_bins : int
        Bins of equal count in predicted θ_E.

    Returns
    -------
    factors, slopes : ndarray, shape (7,)
        ``c_k`` (dimensionless) and ``b_k`` (the exponent of θ_E in arcsec).
    """
    mean, sigma, truth = (np.asarray(a, dtype=np.float64) for a in (mean, sigma, truth))
    log_theta = np.log(np.clip(mean[:, _THETA_E_INDEX], *THETA_E_CLIP))
    z = np.abs(mean - truth) / sigma
    order = np.argsort(log_theta)
    bins = [b for b in np.array_split(order, n_bins) if b.size]
    x = np.array([np.median(log_theta[b]) for b in bins])
    weight = np.array([b.size for b in bins], dtype=np.float64)
    log_q = np.log(np.array([np.quantile(z[b], ONE_SIGMA, axis=0) for b in bins]))
    # Weighted least squares of log q on x, for every parameter at once.
    x_bar = np.average(x, weights=weight)
    spread = np.sum(weight * (x - x_bar) ** 2)
    # Bin medians of the predicted θ_E spanning under 10 % (a network that has not learnt
    # θ_E) leave no dependence to fit: the slope would be noise divided by almost nothing.
    if spread > 0.0 and np.ptp(x) > _MIN_LOG_SPAN:
        slopes = (weight * (x - x_bar)) @ (log_q - np.average(log_q, axis=0, weights=weight))
        slopes = slopes / spread
    else:  # every prediction at about one θ_E (or clipped to a bound)
        slopes = np.zeros(mean.shape[1])
    factors = np.quantile(z / np.exp(np.outer(log_theta, slopes)), ONE_SIGMA, axis=0)
    return factors.astype(np.float64), slopes.astype(np.float64)


def apply_theta_e_dependence(
    mean: NDArray[np.floating],
    sigma: NDArray[np.floating],
    factors: NDArray[np.floating],
    slopes: NDArray[np.floating],
) -> NDArray[np.float64]:
    """The corrected sigma, computed in NumPy exactly as the appended graph does."""
    theta = np.clip(np.asarray(mean, dtype=np.float64)[:, _THETA_E_INDEX], *THETA_E_CLIP)
    scale = np.asarray(factors) * theta[:, None] ** np.asarray(slopes)
    return np.asarray(sigma, dtype=np.float64) * scale


def append_to_graph(
    model: onnx.ModelProto, factors: NDArray[np.floating], slopes: NDArray[np.floating]
) -> onnx.ModelProto:
    """A copy of ``model`` whose ``sigma`` output carries the θ_E-dependent factor.

    The original sigma output is renamed and multiplied by
    ``factors * clip(mean[:, theta_e], 0.3, 6) ** slopes`` (float32, broadcast over the batch).

    Raises
    ------
    ValueError
        If the graph has no ``mean``/``sigma`` outputs, or already carries the correction.
    """
    raw = "sigma_before_theta_e_scaling"
    out = copy_with_renamed_output(model, spec.ONNX_SIGMA_NAME, raw, needs=(spec.ONNX_MEAN_NAME,))
    graph = out.graph

    add_constant(graph, "theta_e_sigma_index", [_THETA_E_INDEX], np.int64)
    add_constant(graph, "theta_e_sigma_low", THETA_E_CLIP[0])
    add_constant(graph, "theta_e_sigma_high", THETA_E_CLIP[1])
    add_constant(graph, "theta_e_sigma_factors", np.reshape(factors, (1, spec.N_PARAMETERS)))
    add_constant(graph, "theta_e_sigma_slopes", np.reshape(slopes, (1, spec.N_PARAMETERS)))
    # mean[:, [0]]: shape (batch, 1), broadcast against the (1, 7) constants.
    return append_nodes(out, [
        ("Gather", [spec.ONNX_MEAN_NAME, "theta_e_sigma_index"], "theta_e_sigma_theta",
         {"axis": 1}),
        ("Clip", ["theta_e_sigma_theta", "theta_e_sigma_low", "theta_e_sigma_high"],
         "theta_e_sigma_clipped"),
        ("Pow", ["theta_e_sigma_clipped", "theta_e_sigma_slopes"], "theta_e_sigma_power"),
        ("Mul", ["theta_e_sigma_power", "theta_e_sigma_factors"], "theta_e_sigma_scale"),
        ("Mul", [raw, "theta_e_sigma_scale"], spec.ONNX_SIGMA_NAME),
    ])  # fmt: skip


def coverage_by_bin(
    mean: NDArray[np.floating],
    sigma: NDArray[np.floating],
    truth: NDArray[np.floating],
    edges: tuple[float, ...] = (0.5, 0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 4.0, 5.0),
) -> list[dict[str, Any]]:
    """±1σ coverage per parameter in bins of *true* θ_E (as the evaluation reports it)."""
    truth = np.asarray(truth)
    z = np.abs(np.asarray(mean) - truth) / np.asarray(sigma)
    theta = truth[:, _THETA_E_INDEX]
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (theta >= low) & (theta < high)
        if not np.any(inside):
            continue
        cover = (z[inside] <= 1.0).mean(axis=0)
        rows.append({"low": low, "high": high, "n": int(inside.sum()),
                     "coverage_1sigma": dict(zip(spec.MASS_PARAMETER_NAMES,
                                                 np.round(cover, 4).tolist(), strict=True))})
    return rows

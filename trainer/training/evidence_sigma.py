"""Sigma that stays honest where the network sees no lens: widened below the p_lens threshold.

A non-lens has no Einstein radius to read; the network was trained to answer the prior there,
but its sigma is narrower than the prior (on the realistic validation set, θ_E sigma 0.96"
against a prior spread of 1.31", ±1σ covering 40 % of the prior draws). The lens-evidence
output says where that happens, so the sigma takes it in::

    sigma_k  <-  sqrt(sigma_k^2 + w_k * r^2 * s_k^2),   r = clip((t - p_lens) / t, 0, 1)

``t`` is the model's default ``p_lens`` threshold (its card), ``s_k`` the spread (standard
deviation) of the prior the non-lenses' truths are drawn from, measured on the validation set's
non-lenses, and ``w_k`` is fitted there by bisection so that ±1σ covers 68.27 % of the
non-lenses' prior draws (``w_k = 0`` when that holds without it).

Only cutouts below the threshold are widened, and those far below most: a lens above it keeps
its sigma, so the ±1σ coverage of lenses stays the one the earlier calibrations set. A weight
growing linearly with ``1 - p_lens`` (the mixture of "lens" and "prior") was tried and
rejected: the prior's spread is several times a lens's sigma, so even ``1 - p_lens = 0.03``
widens a confident lens's θ_E sigma by a third.

The means are untouched. Appended to the ONNX graph after its ``sigma`` output, like
:mod:`lenscast.trainer.training.theta_e_sigma`, so the shipped ``sigma`` is the final one.
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

#: Largest weight of the prior term tried, and the bisection's steps.
_MAX_WEIGHT = 64.0
_BISECTION_STEPS = 40
#: Name of the graph's sigma before this correction.
_RAW_SIGMA = "sigma_before_evidence_spread"


def absence(p_lens: NDArray[np.floating], threshold: float) -> NDArray[np.float64]:
    """``r = clip((t - p_lens) / t, 0, 1)``: 0 at and above the threshold, 1 at ``p_lens = 0``."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], not {threshold}")
    return np.clip((threshold - np.asarray(p_lens, dtype=np.float64)) / threshold, 0.0, 1.0)


def widened_sigma(
    sigma: NDArray[np.floating],
    p_lens: NDArray[np.floating],
    *,
    threshold: float,
    spread: NDArray[np.floating],
    weights: NDArray[np.floating],
) -> NDArray[np.float64]:
    """``sqrt(sigma_k^2 + w_k r^2 s_k^2)``, as the appended graph computes it.

    Parameters
    ----------
    sigma : ndarray, shape (n, 7)
        Calibrated sigmas (spec order and units).
    p_lens : ndarray, shape (n,)
        Lens probabilities, 0..1.
    threshold : float
        The model's default ``p_lens`` threshold ``t``.
    spread, weights : ndarray, shape (7,)
        ``s_k`` (units of each parameter) and ``w_k`` (dimensionless).
    """
    r = absence(p_lens, threshold)[:, None]
    prior = np.asarray(weights) * np.asarray(spread) ** 2
    return np.sqrt(np.asarray(sigma, dtype=np.float64) ** 2 + r**2 * prior)


def fit_evidence_spread(
    mean: NDArray[np.floating],
    sigma: NDArray[np.floating],
    p_lens: NDArray[np.floating],
    truth: NDArray[np.floating],
    is_lens: NDArray[Any],
    *,
    threshold: float,
) -> dict[str, NDArray[np.float64]]:
    """Fit ``s_k`` and ``w_k`` of the module docstring on validation data.

    Parameters
    ----------
    mean, sigma, truth : ndarray, shape (n, 7)
        Predictions, their sigmas and the truths (a non-lens's truths are prior draws).
    p_lens : ndarray, shape (n,)
        The graph's lens probabilities.
    is_lens : ndarray, shape (n,)
        1 for lenses, 0 for non-lenses; both must be present.
    threshold : float
        The model's default ``p_lens`` threshold.

    Returns
    -------
    dict
        ``spread`` and ``weights``, each of shape (7,).
    """
    mean, sigma, truth = (np.asarray(a, dtype=np.float64) for a in (mean, sigma, truth))
    lens = np.asarray(is_lens) > 0.5
    if lens.all() or not lens.any():
        raise ValueError("the fit needs lenses and non-lenses")
    spread = truth[~lens].std(axis=0)
    error = np.abs(mean - truth)[~lens]
    r2 = absence(np.asarray(p_lens)[~lens], threshold) ** 2
    weights = np.zeros(mean.shape[1])

    def coverage(k: int, weight: float) -> float:
        return float(np.mean(error[:, k] <= np.sqrt(sigma[~lens, k] ** 2
                                                    + weight * r2 * spread[k] ** 2)))

    for k in range(mean.shape[1]):
        if coverage(k, 0.0) >= ONE_SIGMA:
            continue
        low, high = 0.0, _MAX_WEIGHT
        for _ in range(_BISECTION_STEPS):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if coverage(k, middle) < ONE_SIGMA else (low, middle)
        weights[k] = high
    return {"spread": spread, "weights": weights}


def append_to_graph(
    model: onnx.ModelProto,
    *,
    threshold: float,
    spread: NDArray[np.floating],
    weights: NDArray[np.floating],
) -> onnx.ModelProto:
    """A copy of ``model`` whose ``sigma`` output is :func:`widened_sigma` of the old one.

    Raises
    ------
    ValueError
        If the graph lacks the ``sigma`` or ``p_lens`` output, or already carries the correction.
    """
    absence(np.zeros(1), threshold)  # checks the threshold
    out = copy_with_renamed_output(model, spec.ONNX_SIGMA_NAME, _RAW_SIGMA,
                                   needs=(spec.ONNX_P_LENS_NAME,))
    graph = out.graph

    add_constant(graph, "evidence_spread_threshold", threshold)
    add_constant(graph, "evidence_spread_zero", 0.0)
    add_constant(graph, "evidence_spread_one", 1.0)
    add_constant(graph, "evidence_spread_column", [-1, 1], np.int64)
    prior_variance = np.asarray(weights) * np.asarray(spread) ** 2
    add_constant(graph, "evidence_spread_prior", np.reshape(prior_variance, (1, spec.N_PARAMETERS)))
    # r = clip((t - p) / t, 0, 1) as a column (batch, 1), broadcast against (1, 7).
    return append_nodes(out, [
        ("Reshape", [spec.ONNX_P_LENS_NAME, "evidence_spread_column"], "evidence_spread_p"),
        ("Sub", ["evidence_spread_threshold", "evidence_spread_p"], "evidence_spread_gap"),
        ("Div", ["evidence_spread_gap", "evidence_spread_threshold"], "evidence_spread_ratio"),
        ("Clip", ["evidence_spread_ratio", "evidence_spread_zero", "evidence_spread_one"],
         "evidence_spread_r"),
        ("Mul", ["evidence_spread_r", "evidence_spread_r"], "evidence_spread_r2"),
        ("Mul", ["evidence_spread_r2", "evidence_spread_prior"], "evidence_spread_prior_var"),
        ("Mul", [_RAW_SIGMA, _RAW_SIGMA], "evidence_spread_var"),
        ("Add", ["evidence_spread_var", "evidence_spread_prior_var"], "evidence_spread_total"),
        ("Sqrt", ["evidence_spread_total"], spec.ONNX_SIGMA_NAME),
    ])  # fmt: skip


def coverage_report(
    mean: NDArray[np.floating],
    sigma: NDArray[np.floating],
    truth: NDArray[np.floating],
    is_lens: NDArray[Any],
) -> dict[str, dict[str, float]]:
    """±1σ coverage per parameter on lenses and on non-lenses (their prior draws)."""
    inside = np.abs(np.asarray(mean) - np.asarray(truth)) <= np.asarray(sigma)
    lens = np.asarray(is_lens) > 0.5
    return {
        group: dict(zip(spec.MASS_PARAMETER_NAMES,
                        (round(float(c), 4) for c in inside[members].mean(axis=0)), strict=True))
        for group, members in (("lenses", lens), ("non_lenses", ~lens)) if members.any()
    }  # fmt: skip

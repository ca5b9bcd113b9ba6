"""β-NLL: the heteroscedastic Gaussian loss of Seitzer et al. (2022, ICLR, eq. 4).

With a plain Gaussian negative log-likelihood the gradient on the mean is ``(mu - y) / sigma^2``:
a parameter the network finds hard early on (here the lens centre) gets a large sigma, which
shrinks its mean gradient, so it stays at the prior. β-NLL multiplies each term by
``stop_gradient(sigma^(2β))``; with β = 0.5 the mean gradient becomes ``(mu - y) / sigma``,
between the NLL (β = 0) and the MSE (β = 1), while sigma is still fit by likelihood.
"""

from __future__ import annotations

import torch


def beta_nll(mean: torch.Tensor, sigma: torch.Tensor, target: torch.Tensor, *,
             beta: float = 0.5, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean β-weighted Gaussian negative log-likelihood per parameter.

    Parameters
    ----------
    mean, sigma, target : Tensor, shape (n, k)
        Predicted mean, predicted 1-sigma width (> 0) and truth, all in the same (standardised)
        units.
    beta : float
        Exponent of the detached ``sigma^(2 beta)`` weight: 0 is the plain NLL, 1 gives
        MSE-like mean gradients.
    weights : Tensor, shape (n,), optional
        Per-sample weights (the batch average becomes the weighted average).

    Returns
    -------
    Tensor, shape (k,)
        Loss per parameter, averaged over the batch (constant ``log sqrt(2 pi)`` omitted).
    """
    variance = sigma * sigma
    nll = 0.5 * torch.log(variance) + 0.5 * (mean - target) ** 2 / variance
    if beta:
        nll = nll * variance.detach() ** beta
    if weights is None:
        return nll.mean(dim=0)
    return (nll * weights[:, None]).sum(dim=0) / weights.sum().clamp(min=1e-12)

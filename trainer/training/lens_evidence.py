"""Lens evidence: Platt calibration of the head's logit and its held-out statistics.

The head's raw logit is trained with binary cross-entropy on a mix of lenses and non-lenses,
so ``sigmoid(logit)`` is only roughly a probability. Platt scaling (Platt 1999) fits
``p = sigmoid(a * logit + b)`` by maximum likelihood on validation data; the two constants go
into the network (``evidence_scale``, ``evidence_shift``) so the exported ``p_lens`` is the
calibrated probability. Calibrated for the lens fraction of the data it is fitted on (recorded
in the card): for a stream with another lens fraction ``pi``, the posterior odds are the stated
odds times ``pi (1 - pi_fit) / ((1 - pi) pi_fit)``.

Statistics (:func:`evidence_report`): ROC AUC (the Mann-Whitney U statistic), the fractions of
non-lenses below and of lenses above a threshold, the precision at that threshold for a stream
of a given lens fraction, ``TPR pi / (TPR pi + FPR (1 - pi))``, and reliability-diagram bins
(stated mean probability against observed lens fraction).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

#: Probability bins of the reliability diagram.
N_RELIABILITY_BINS = 10
#: Bins with fewer systems are reported but not held to the calibration target.
MIN_BIN_COUNT = 50
#: Lens labels: 1 (lens) / 0 as floats, or booleans.
Labels = NDArray[np.floating] | NDArray[np.bool_]


def _check(scores: NDArray[np.floating], labels: Labels
           ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(labels, dtype=np.float64).ravel() > 0.5
    if scores.shape != truth.shape:
        raise ValueError(f"{scores.size} scores for {truth.size} labels")
    if truth.all() or not truth.any():
        raise ValueError("lens-evidence statistics need both lenses and non-lenses")
    if not np.isfinite(scores).all():
        raise ValueError("non-finite lens-evidence scores")
    return scores, truth


def fit_platt(logits: NDArray[np.floating], labels: Labels) -> tuple[float, float]:
    """Maximum-likelihood ``(a, b)`` of ``p = sigmoid(a * logit + b)``.

    Raises
    ------
    ValueError
        Without both classes, or with non-finite logits.
    """
    x, y = _check(logits, labels)

    def nll(params: NDArray[np.float64]) -> float:
        z = params[0] * x + params[1]
        # log(1 + e^z) - y z, stable for large |z|.
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    result = optimize.minimize(nll, np.array([1.0, 0.0]), method="Nelder-Mead",
                               options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
    return float(result.x[0]), float(result.x[1])


def roc_auc(scores: NDArray[np.floating], labels: Labels) -> float:
    """Area under the ROC curve: P(score of a lens > score of a non-lens), ties half."""
    x, y = _check(scores, labels)
    ranks = stats.rankdata(x)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def reliability_bins(p: NDArray[np.floating], labels: Labels, *,
                     n_bins: int = N_RELIABILITY_BINS) -> list[dict[str, Any]]:
    """Equal-width probability bins: count, mean stated p, observed lens fraction, |gap|."""
    x, y = _check(p, labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(x, edges[1:-1]), 0, n_bins - 1)
    out = []
    for k in range(n_bins):
        members = index == k
        count = int(members.sum())
        row: dict[str, Any] = {"low": float(edges[k]), "high": float(edges[k + 1]), "n": count}
        if count:
            stated, observed = float(x[members].mean()), float(y[members].mean())
            row.update(stated=stated, observed=observed, abs_gap=abs(stated - observed))
        out.append(row)
    return out


def evidence_report(p: NDArray[np.floating], labels: Labels, *,
                    threshold: float, stream_lens_fraction: float = 0.01) -> dict[str, Any]:
    """Held-out statistics of calibrated probabilities ``p`` at ``threshold``.

    Returns
    -------
    dict
        ``n_lenses``, ``n_non_lenses``, ``roc_auc``, ``threshold``,
        ``non_lenses_below_threshold``, ``lenses_above_threshold``,
        ``precision_at_threshold`` (for ``stream_lens_fraction``), ``stream_lens_fraction``,
        ``reliability`` (bins) and ``max_abs_gap_bins_ge_50`` (largest |stated - observed|
        among bins with at least :data:`MIN_BIN_COUNT` systems).
    """
    if not 0.0 < stream_lens_fraction < 1.0:
        raise ValueError("the stream's lens fraction must lie in (0, 1)")
    x, y = _check(p, labels)
    tpr = float(np.mean(x[y] >= threshold))
    fpr = float(np.mean(x[~y] >= threshold))
    positives = tpr * stream_lens_fraction + fpr * (1.0 - stream_lens_fraction)
    bins = reliability_bins(x, y)
    gaps = [b["abs_gap"] for b in bins if b["n"] >= MIN_BIN_COUNT]
    return {
        "n_lenses": int(y.sum()),
        "n_non_lenses": int((~y).sum()),
        "roc_auc": roc_auc(x, y),
        "threshold": float(threshold),
        "non_lenses_below_threshold": 1.0 - fpr,
        "lenses_above_threshold": tpr,
        "stream_lens_fraction": stream_lens_fraction,
        "precision_at_threshold": (tpr * stream_lens_fraction / positives if positives > 0
                                   else float("nan")),
        "reliability": bins,
        "max_abs_gap_bins_ge_50": max(gaps) if gaps else float("nan"),
    }


def evidence_summary(logits: NDArray[np.floating], labels: Labels
                     ) -> dict[str, float]:
    """Per-epoch validation record of the raw logits: ROC AUC and binary cross-entropy."""
    x, y = _check(logits, labels)
    bce = float(np.mean(np.logaddexp(0.0, x) - y * x))
    return {"roc_auc": roc_auc(x, y), "bce": bce, "n": int(x.size)}


def balanced_threshold(p: NDArray[np.floating], labels: Labels) -> float:
    """The probability threshold (to 0.01) at which the smaller of the lenses-above and
    non-lenses-below fractions is largest: neither class is sacrificed to the other."""
    x, y = _check(p, labels)
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    worst = [min(np.mean(x[y] >= t), np.mean(x[~y] < t)) for t in grid]
    return float(grid[int(np.argmax(worst))])


def calibrate_evidence(model: Any, store: Any, *, stream_lens_fraction: float,
                       data: str) -> dict[str, Any]:
    """Fit the Platt constants of ``model`` on ``store`` (in place); return the card section.

    Parameters
    ----------
    model : lenscast.trainer.network.LensCNN
        With the evidence head; its ``test_views`` set to what ships.
    store : lenscast.trainer.training.shards.ShardStore
        Validation shards holding lenses and non-lenses (never the test set).
    stream_lens_fraction : float
        Lens fraction for the quoted precision.
    data : str
        The store's directory, recorded.

    Returns
    -------
    dict
        ``output``, ``default_threshold``, ``calibration`` (method, constants, data) and
        ``validation`` (:func:`evidence_report` on the calibration data, after calibration).
    """
    from lenscast.trainer.training.loop import predict_with_logits

    model.evidence_scale.fill_(1.0)
    model.evidence_shift.fill_(0.0)
    _, _, logits = predict_with_logits(model, store.images)
    if logits is None:
        raise ValueError("the model has no lens-evidence head to calibrate")
    a, b = fit_platt(logits, store.is_lens)
    model.evidence_scale.fill_(a)
    model.evidence_shift.fill_(b)
    p = 1.0 / (1.0 + np.exp(-(a * logits + b)))
    threshold = balanced_threshold(p, store.is_lens)
    return {
        "output": "p_lens",
        "default_threshold": threshold,
        "meaning": "calibrated probability that the cutout shows a galaxy-scale strong lens "
                   "the mass model applies to, for the lens fraction of the calibration data",
        "calibration": {
            "method": "Platt scaling, p = sigmoid(a * logit + b), maximum likelihood on the "
                      "validation set (trainer/training/lens_evidence.py); the default "
                      "threshold maximises min(lenses above, non-lenses below) there",
            "a": a, "b": b, "data": data, "n": int(len(logits)),
            "lens_fraction": float(np.mean(store.is_lens > 0.5)),
        },
        "validation": evidence_report(p, store.is_lens, threshold=threshold,
                                      stream_lens_fraction=stream_lens_fraction),
    }


def below_by_kind(p: NDArray[np.floating], labels: Labels,
                  kinds: NDArray[np.integer], *, threshold: float) -> dict[str, float]:
    """Fraction of each non-lens kind (``non_lenses.NON_LENS_KINDS``) below ``threshold``."""
    from lenscast.trainer.simulation.non_lenses import NON_LENS_KINDS

    p, kinds = np.asarray(p), np.asarray(kinds)
    non = np.asarray(labels, dtype=np.float64) < 0.5
    out = {}
    for index, name in enumerate(NON_LENS_KINDS):
        members = non & (kinds == index)
        if members.any():
            out[name] = float(np.mean(p[members] < threshold))
    return out


#: Edges of the best-band arc SNR bins the lenses' rate above the threshold is reported in
#: (the simulator's lenses have SNR >= 20; the first bin keeps any other set's fainter ones).
ARC_SNR_EDGES = (0.0, 20.0, 30.0, 50.0, 100.0, np.inf)


def above_by_arc_snr(p: NDArray[np.floating], labels: Labels, arc_snr: NDArray[np.floating],
                     *, threshold: float) -> list[dict[str, float | None]]:
    """Fraction of lenses at or above ``threshold`` per bin of their best-band arc SNR.

    Parameters
    ----------
    p : ndarray, shape (n,)
        ``p_lens`` of every system.
    labels : ndarray, shape (n,)
        1 for a lens, 0 for a non-lens.
    arc_snr : ndarray, shape (n,) or (n, bands)
        The ``arc_snr`` truth: per band, the best band is used.
    threshold : float
        The model's default ``p_lens`` threshold.

    Returns
    -------
    list of dict
        ``low``, ``high`` (SNR; the last bin is open, ``high`` None), ``n`` and
        ``lenses_above_threshold`` for every bin that holds a lens, in :data:`ARC_SNR_EDGES`.
    """
    snr = np.asarray(arc_snr, dtype=np.float64)
    best = snr.max(axis=1) if snr.ndim == 2 else snr
    lens = np.asarray(labels, dtype=np.float64) >= 0.5
    p = np.asarray(p)
    out = []
    for low, high in zip(ARC_SNR_EDGES[:-1], ARC_SNR_EDGES[1:], strict=True):
        members = lens & (best >= low) & (best < high)
        if members.any():
            out.append({"low": low, "high": None if np.isinf(high) else high,
                        "n": int(members.sum()),
                        "lenses_above_threshold": float(np.mean(p[members] >= threshold))})
    return out


def has_p_lens(path: Any) -> bool:
    """Whether the ONNX graph at ``path`` has the ``p_lens`` output."""
    import onnx

    return any(o.name == "p_lens" for o in onnx.load(str(path)).graph.output)


def onnx_p_lens(path: Any, images: NDArray[np.floating], *, threads: int = 2,
                batch_size: int = 256) -> NDArray[np.float64]:
    """The graph's ``p_lens`` for ``images`` (n, 4, 64, 64), shape (n,)."""
    import onnxruntime as ort

    from lenscast.model import parameter_spec as spec

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = [session.run(["p_lens"], {spec.ONNX_INPUT_NAME: np.asarray(
        images[start : start + batch_size], np.float32)})[0]
        for start in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.float64)


def non_lens_sigma(mean: NDArray[np.floating], sigma: NDArray[np.floating],
                   truths: dict[str, NDArray[Any]]) -> dict[str, float]:
    """Whether the mass model's θ_E sigma stays honest on non-lenses.

    A non-lens's θ_E truth is a draw from the prior, unrelated to the image, so an honest
    sigma covers the prior's spread: reported are the ±1σ coverage of those truths, the median
    predicted sigma and the prior draws' standard deviation, arcsec.
    """
    from lenscast.model import parameter_spec as spec

    k = spec.MASS_PARAMETER_NAMES.index("theta_e")
    truth = np.asarray(truths["theta_e"], dtype=np.float64)
    inside = np.abs(np.asarray(mean)[:, k] - truth) <= np.asarray(sigma)[:, k]
    return {"n": int(truth.size), "theta_e_coverage_1sigma": float(np.mean(inside)),
            "theta_e_sigma_median": float(np.median(np.asarray(sigma)[:, k])),
            "theta_e_prior_std": float(np.std(truth))}


def one_class_report(p: NDArray[np.floating], labels: Labels, *,
                     threshold: float) -> dict[str, Any]:
    """For a set of lenses only or of non-lenses only: the fraction on the right side of
    ``threshold`` (``lenses_above_threshold`` or ``non_lenses_below_threshold``)."""
    x = np.asarray(p, dtype=np.float64)
    lens = np.asarray(labels, dtype=np.float64) > 0.5
    if lens.all():
        return {"n_lenses": int(x.size), "threshold": float(threshold),
                "lenses_above_threshold": float(np.mean(x >= threshold))}
    if lens.any():
        raise ValueError("a one-class report needs lenses only or non-lenses only")
    return {"n_non_lenses": int(x.size), "threshold": float(threshold),
            "non_lenses_below_threshold": float(np.mean(x < threshold))}

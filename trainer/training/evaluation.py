"""Evaluation of a mass-model predictor on simulated systems with known truths.

The statistics of HOLISMOKES IV (Schuldt et al. 2021, Sect. 5-6): for every parameter the
median and the 16th/84th percentiles of predicted − true, on the whole test set and on
θ_E > 0.8" (by the true θ_E); image positions and fractional time delays predicted from the
network's SIE + shear with the physics core, either from the true source position (as the
paper) or from one true image (the first to arrive, as a lensed transient gives); the
coverage of the calibrated ±1σ and ±2σ intervals. All functions are pure: arrays in, numbers
out; ``lenscast.trainer.evaluate_cli`` does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from lenscast.model import parameter_spec as spec
from lenscast.model.image_prediction import ImagePrediction, predict_images
from lenscast.model.mass_model import MassModel
from lenscast.trainer.training.calibration import coverage

#: θ_E cut of the paper's image-position and time-delay statistics, arcsec.
THETA_E_CUT = 0.8
#: θ_E bin edges for the binned statistics and plots, arcsec.
THETA_E_BINS = (0.5, 0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 4.0, 5.0)

#: The accuracy targets of README "Current results": (quantity, statistic, limit); statistics
#: are defined in :func:`summary`.
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("center_x", "half_width_68", 0.05), ("center_y", "half_width_68", 0.05),
    ("center_x", "abs_median", 0.01), ("center_y", "abs_median", 0.01),
    ("theta_e", "abs_median", 0.02), ("theta_e", "half_width_68", 0.10),
    ("e1", "half_width_68", 0.05), ("e2", "half_width_68", 0.05),
    ("image_dx", "half_width_68", 0.15), ("image_dy", "half_width_68", 0.15),
    ("fractional_delay", "abs_median", 0.02), ("fractional_delay", "half_width_68", 0.10),
)


def summary(values: NDArray[np.floating]) -> dict[str, float]:
    """Median, 16th/84th percentiles, their half difference (the "1σ") and count."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"n": 0, "median": float("nan"), "p16": float("nan"), "p84": float("nan"),
                "half_width_68": float("nan"), "abs_median": float("nan")}
    p16, p50, p84 = np.percentile(values, [16, 50, 84])
    return {"n": int(values.size), "median": float(p50), "p16": float(p16), "p84": float(p84),
            "half_width_68": float(0.5 * (p84 - p16)), "abs_median": float(abs(p50))}


def parameter_table(mean: NDArray[np.floating], sigma: NDArray[np.floating],
                    truth: NDArray[np.floating], mask: NDArray[np.bool_]) -> dict[str, Any]:
    """Residual statistics and ±1σ/±2σ coverage per parameter on the systems in ``mask``."""
    residual = np.asarray(mean)[mask] - np.asarray(truth)[mask]
    cov1 = coverage(mean[mask], sigma[mask], truth[mask], n_sigma=1.0)
    cov2 = coverage(mean[mask], sigma[mask], truth[mask], n_sigma=2.0)
    return {
        name: {**summary(residual[:, i]), "coverage_1sigma": float(cov1[i]),
               "coverage_2sigma": float(cov2[i])}
        for i, name in enumerate(spec.MASS_PARAMETER_NAMES)
    }


@dataclass(frozen=True)
class ImageComparison:
    """Predicted vs true images, one row per true image that was matched.

    Attributes
    ----------
    system : ndarray of int
        Index of the system.
    dx, dy : ndarray
        Predicted − true image position, arcsec.
    true_delay, predicted_delay : ndarray
        Delay relative to the reference image (first to arrive, or the observed one), days;
        NaN for the reference image itself.
    n_true, n_predicted : ndarray of int, shape (n_systems,)
        Image counts (the observed image is counted in both).
    """

    system: NDArray[np.int_]
    dx: NDArray[np.float64]
    dy: NDArray[np.float64]
    true_delay: NDArray[np.float64]
    predicted_delay: NDArray[np.float64]
    n_true: NDArray[np.int_]
    n_predicted: NDArray[np.int_]

    @property
    def fractional_delay(self) -> NDArray[np.float64]:
        """(predicted − true) / true delay, for the non-reference images."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.predicted_delay - self.true_delay) / self.true_delay


def match_images(prediction: ImagePrediction, *, true_x: NDArray[np.floating],
                 true_y: NDArray[np.floating], true_delay: NDArray[np.floating],
                 reference: NDArray[np.int_] | None = None) -> ImageComparison:
    """Pair true and predicted images one-to-one by minimum total distance.

    Parameters
    ----------
    prediction : ImagePrediction
        From :func:`lenscast.model.image_prediction.predict_images` for ``n`` systems.
    true_x, true_y, true_delay : ndarray, shape (n, m)
        True images (arrival order, NaN padded), arcsec, and their delays after the first, days.
    reference : ndarray of int, shape (n,), optional
        Predicted column of the observed image (``prediction.observed_index``); delays are
        then measured from it and from true image 0. Default: from each set's first arrival.

    Returns
    -------
    ImageComparison
        The reference image itself is left out of the rows when ``reference`` is given (its
        position is the input, not a prediction).
    """
    rows: dict[str, list[float]] = {k: [] for k in ("system", "dx", "dy", "td", "pd")}
    n = len(true_x)
    n_true = np.isfinite(true_x).sum(axis=1)
    n_pred = np.isfinite(prediction.x).sum(axis=1)
    for i in range(n):
        tx, ty = true_x[i, : n_true[i]], true_y[i, : n_true[i]]
        px, py = prediction.x[i, : n_pred[i]], prediction.y[i, : n_pred[i]]
        if tx.size == 0 or px.size == 0:
            continue
        cost = np.hypot(tx[:, None] - px[None, :], ty[:, None] - py[None, :])
        t_idx, p_idx = linear_sum_assignment(cost)
        delays_p = prediction.time_delay_days[i]
        if reference is None:
            first = p_idx[t_idx == 0]
            ref_p = int(first[0]) if first.size else -1
        else:
            ref_p = int(reference[i])
        for t, p in zip(t_idx, p_idx, strict=True):
            if reference is not None and t == 0:
                continue  # the observed image: an input, not a prediction
            rows["system"].append(i)
            rows["dx"].append(px[p] - tx[t])
            rows["dy"].append(py[p] - ty[t])
            is_reference = t == 0 or ref_p < 0
            rows["td"].append(np.nan if is_reference else true_delay[i, t] - true_delay[i, 0])
            rows["pd"].append(np.nan if is_reference else delays_p[p] - delays_p[ref_p])
    return ImageComparison(
        system=np.asarray(rows["system"], dtype=np.int_), dx=np.asarray(rows["dx"]),
        dy=np.asarray(rows["dy"]), true_delay=np.asarray(rows["td"]),
        predicted_delay=np.asarray(rows["pd"]), n_true=n_true, n_predicted=n_pred,
    )


def image_statistics(comparison: ImageComparison) -> dict[str, Any]:
    """Position and fractional-delay statistics of an :class:`ImageComparison`."""
    same_count = comparison.n_true == comparison.n_predicted
    return {
        "image_dx": summary(comparison.dx),
        "image_dy": summary(comparison.dy),
        "fractional_delay": summary(comparison.fractional_delay),
        "n_systems": int(len(comparison.n_true)),
        "fraction_same_image_count": float(np.mean(same_count)) if same_count.size else 0.0,
    }


def predicted_mass_model(mean: NDArray[np.floating]) -> MassModel:
    """SIE + shear (γ = 2) from network means of shape (n, 7) in spec order."""
    return MassModel.from_mapping(spec.as_mapping(np.asarray(mean, dtype=np.float64)))


def image_evaluation(mean: NDArray[np.floating], truths: dict[str, NDArray[Any]],
                     mask: NDArray[np.bool_],
                     bins: tuple[float, ...] = THETA_E_BINS) -> dict[str, Any]:
    """Images and delays from the predicted mass model, from the source and from one image.

    Parameters
    ----------
    mean : ndarray, shape (n, 7)
        Predicted parameters.
    truths : dict
        Needs ``source_x``, ``source_y``, ``image_x``, ``image_y``, ``time_delay_days``,
        ``z_lens``, ``z_source``.
    mask : ndarray of bool, shape (n,)
        Systems to use (e.g. θ_E > 0.8").
    bins : tuple of float
        True-θ_E bin edges of the binned statistics, arcsec.
    """
    index = np.flatnonzero(mask)
    model = predicted_mass_model(np.asarray(mean)[index])
    true_x, true_y = truths["image_x"][index], truths["image_y"][index]
    true_delay = truths["time_delay_days"][index]
    redshifts = {"z_lens": truths["z_lens"][index], "z_source": truths["z_source"][index]}
    from_source = predict_images(model, source_x=truths["source_x"][index],
                                 source_y=truths["source_y"][index], **redshifts)
    from_image = predict_images(model, image_x=true_x[:, 0], image_y=true_y[:, 0], **redshifts)
    source_match = match_images(from_source, true_x=true_x, true_y=true_y,
                                true_delay=true_delay)
    image_match = match_images(from_image, true_x=true_x, true_y=true_y, true_delay=true_delay,
                               reference=from_image.observed_index)
    theta = truths["theta_e"][index]
    return {
        "from_true_source": image_statistics(source_match),
        "from_first_image": image_statistics(image_match),
        "binned_by_theta_e": {
            "from_true_source": _binned_images(source_match, theta, bins),
            "from_first_image": _binned_images(image_match, theta, bins),
        },
    }


#: Parameter groups of the image-position error budget.
ERROR_BUDGET_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("theta_e", ("theta_e",)), ("e1, e2", ("e1", "e2")), ("gamma1, gamma2", ("gamma1", "gamma2")),
    ("center", ("center_x", "center_y")),
)


def image_error_budget(mean: NDArray[np.floating], truths: dict[str, NDArray[Any]],
                       mask: NDArray[np.bool_]) -> list[dict[str, Any]]:
    """Which parameters the image-position scatter comes from.

    The images are solved from the true source as in :func:`image_evaluation`, once with every
    parameter predicted and once for each group of :data:`ERROR_BUDGET_GROUPS` set to its true
    value (the others predicted): the drop in the 68 % half-width of the position offsets is
    what a perfect prediction of that group would gain.

    Returns
    -------
    list of dict
        ``{"exact": group or "none", "half_width_68": arcsec (x and y offsets pooled)}``.
    """
    index = np.flatnonzero(mask)
    predicted = np.array(mean, dtype=np.float64)[index]
    truth = spec.as_array(truths)[index]
    true_x, true_y = truths["image_x"][index], truths["image_y"][index]
    redshifts = {"z_lens": truths["z_lens"][index], "z_source": truths["z_source"][index]}
    rows = []
    for label, names in (("none", ()), *ERROR_BUDGET_GROUPS):
        values = predicted.copy()
        for name in names:
            column = spec.MASS_PARAMETER_NAMES.index(name)
            values[:, column] = truth[:, column]
        images = predict_images(predicted_mass_model(values),
                                source_x=truths["source_x"][index],
                                source_y=truths["source_y"][index], **redshifts)
        matched = match_images(images, true_x=true_x, true_y=true_y,
                               true_delay=truths["time_delay_days"][index])
        pooled = np.concatenate([matched.dx, matched.dy])
        rows.append({"exact": label, "half_width_68": summary(pooled)["half_width_68"]})
    return rows


def _binned_images(comparison: ImageComparison, theta_e: NDArray[np.floating],
                   edges: tuple[float, ...]) -> list[dict[str, Any]]:
    """:func:`image_statistics` per true-θ_E bin (θ_E of each image's system)."""
    row_theta = theta_e[comparison.system]
    bins = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        rows = (row_theta >= low) & (row_theta < high)
        systems = (theta_e >= low) & (theta_e < high)
        if systems.sum() < 10:
            continue
        bins.append({
            "low": low, "high": high, "n_systems": int(systems.sum()),
            "image_dx": summary(comparison.dx[rows]), "image_dy": summary(comparison.dy[rows]),
            "fractional_delay": summary(comparison.fractional_delay[rows]),
        })
    return bins


def binned_by_theta_e(mean: NDArray[np.floating], sigma: NDArray[np.floating],
                      truth: NDArray[np.floating],
                      edges: tuple[float, ...] = THETA_E_BINS) -> list[dict[str, Any]]:
    """Residual statistics and coverage per true-θ_E bin (edges in arcsec)."""
    theta = truth[:, spec.MASS_PARAMETER_NAMES.index("theta_e")]
    bins = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        mask = (theta >= low) & (theta < high)
        if mask.sum() < 10:
            continue
        bins.append({"low": low, "high": high, "n": int(mask.sum()),
                     "parameters": parameter_table(mean, sigma, truth, mask)})
    return bins


def target_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Compare the report with :data:`TARGETS` (parameters overall; images at θ_E > 0.8")."""
    checks = []
    for quantity, statistic, limit in TARGETS:
        if quantity in spec.MASS_PARAMETER_NAMES:
            value = report["parameters"]["all"][quantity][statistic]
        else:
            value = report["images"]["from_true_source"][quantity][statistic]
        checks.append({"quantity": quantity, "statistic": statistic, "limit": limit,
                       "value": value, "met": bool(value <= limit)})
    for name in spec.MASS_PARAMETER_NAMES:
        value = report["parameters"]["all"][name]["coverage_1sigma"]
        checks.append({"quantity": name, "statistic": "coverage_1sigma", "limit": 0.68,
                       "value": value, "met": bool(abs(value - 0.68) <= 0.05)})
    return checks


#: Spin-2 parameters and the PSF ellipticity component each can pick up.
_PSF_LEAKAGE_PAIRS = (("e1", "psf_e1"), ("e2", "psf_e2"), ("gamma1", "psf_e1"),
                      ("gamma2", "psf_e2"))


def psf_leakage(mean: NDArray[np.floating], truths: dict[str, NDArray[Any]]
                ) -> dict[str, dict[str, Any]]:
    """How much PSF ellipticity leaks into the predicted ellipticity and shear.

    For each spin-2 parameter the least-squares line ``predicted − true = slope × psf_e + c``
    over the systems, with the standard error of the slope. A network that sees through the
    PSF has slope 0; one that reads the PSF's elongation as the lens's has slope > 0 (a round
    lens seen through a PSF of ellipticity e looks about ``slope × e`` elongated).

    Returns
    -------
    dict
        Parameter name to ``{"psf_component", "slope", "slope_error", "offset", "n"}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, component in _PSF_LEAKAGE_PAIRS:
        x = np.asarray(truths[component], dtype=float)
        y = mean[:, spec.MASS_PARAMETER_NAMES.index(name)] - np.asarray(truths[name], dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        dx = x - x.mean()
        slope = float(np.sum(dx * (y - y.mean())) / np.sum(dx**2))
        offset = float(y.mean() - slope * x.mean())
        residual = y - offset - slope * x
        error = float(np.sqrt(np.sum(residual**2) / (len(x) - 2) / np.sum(dx**2)))
        out[name] = {"psf_component": component, "slope": slope, "slope_error": error,
                     "offset": offset, "n": int(len(x))}
    return out


def evaluate(mean: NDArray[np.floating], sigma: NDArray[np.floating],
             truths: dict[str, NDArray[Any]],
             theta_e_bins: tuple[float, ...] = THETA_E_BINS) -> dict[str, Any]:
    """The full evaluation report (JSON-serialisable) of predictions against truths.

    ``theta_e_bins`` are the true-θ_E bin edges (arcsec) of the binned statistics.
    """
    truth = spec.as_array(truths)
    theta = truths["theta_e"]
    everything = np.ones(len(theta), dtype=bool)
    large = theta > THETA_E_CUT
    report: dict[str, Any] = {
        "n_systems": int(len(theta)),
        "n_theta_e_above_cut": int(large.sum()),
        "theta_e_cut_arcsec": THETA_E_CUT,
        "parameters": {
            "all": parameter_table(mean, sigma, truth, everything),
            "theta_e_above_cut": parameter_table(mean, sigma, truth, large),
        },
        "images": image_evaluation(mean, truths, large, theta_e_bins),
        "binned_by_theta_e": binned_by_theta_e(mean, sigma, truth, theta_e_bins),
    }
    report["image_error_budget"] = image_error_budget(mean, truths, large)
    if "source_kind" in truths:
        report["parameters_by_source_kind"] = {
            ("hudf" if kind == 1 else "parametric"): parameter_table(
                mean, sigma, truth, truths["source_kind"] == kind)
            for kind in np.unique(truths["source_kind"])
        }
    if any(np.any(np.asarray(truths.get(k, 0.0)) != 0.0) for k in ("psf_e1", "psf_e2")):
        report["psf_leakage"] = psf_leakage(mean, truths)
    report["targets"] = target_checks(report)
    return report


def deepen_noise(images: NDArray[np.floating], truths: dict[str, NDArray[Any]], *,
                 factor: float, seed: int = 0) -> NDArray[np.float32]:
    """Add Gaussian noise so the background rms of each cutout and band becomes ``factor`` x.

    A distribution-shift check (shallower fields than simulated): the sigma calibration
    should degrade gracefully, not collapse. Uses the per-band truth columns
    ``background_rms_<band>`` (flux units) of the simulator.

    Parameters
    ----------
    images : ndarray, shape (n, 4, size, size)
    truths : dict
    factor : float
        >= 1.
    seed : int

    Returns
    -------
    ndarray, float32
    """
    if factor < 1.0:
        raise ValueError("noise can only be added: factor must be >= 1")
    rng = np.random.default_rng(seed)
    rms = np.stack([truths[f"background_rms_{band}"] for band in spec.BANDS], axis=1)
    extra = rms * np.sqrt(factor**2 - 1.0)
    noisy = images + rng.normal(size=images.shape) * extra[:, :, None, None]
    return noisy.astype(np.float32)

"""Markdown tables and θ_E-binned plots of an evaluation report (:mod:`.evaluation`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402

from lenscast.model import parameter_spec as spec  # noqa: E402

#: HOLISMOKES IV (Schuldt et al. 2021) values quoted for comparison (θ_E > 0.5" network).
PAPER = {
    "center_x": "0.00 +0.30/-0.30", "center_y": "0.00 +0.30/-0.29",
    "theta_e": "0.07 +0.29/-0.12", "e1": "-0.01 +0.08/-0.09", "e2": "0.00 +0.08/-0.09",
    "image_dx": "0.00 +0.29/-0.29", "image_dy": "0.00 +0.32/-0.31",
    "fractional_delay": "0.04 +0.27/-0.05",
}


def _fmt(stats: dict[str, float], digits: int = 3) -> str:
    up, down = stats["p84"] - stats["median"], stats["median"] - stats["p16"]
    return f"{stats['median']:+.{digits}f} +{up:.{digits}f}/-{down:.{digits}f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The paper's table: median and 16/84th percentile offsets of predicted − true."""
    params = report["parameters"]
    lines = [
        f"Test systems: {report['n_systems']} (θ_E > {report['theta_e_cut_arcsec']}\": "
        f"{report['n_theta_e_above_cut']}). Offsets are predicted − true, median "
        "+(84th − median)/−(median − 16th); units arcsec except e1, e2, γ1, γ2.",
        "",
        "| quantity | all | θ_E > 0.8\" | ±1σ coverage | ±2σ coverage | HOLISMOKES IV |",
        "|---|---|---|---|---|---|",
    ]
    for name in spec.MASS_PARAMETER_NAMES:
        a, b = params["all"][name], params["theta_e_above_cut"][name]
        lines.append(f"| Δ{name} | {_fmt(a)} | {_fmt(b)} | {a['coverage_1sigma']:.1%} | "
                     f"{a['coverage_2sigma']:.1%} | {PAPER.get(name, '—')} |")
    for mode, title in (("from_true_source", "from true source"),
                        ("from_first_image", "from first image")):
        images = report["images"][mode]
        for key in ("image_dx", "image_dy", "fractional_delay"):
            lines.append(f"| {key} ({title}) | — | {_fmt(images[key])} | — | — | "
                         f"{PAPER.get(key, '—') if mode == 'from_true_source' else '—'} |")
    source = report["images"]["from_true_source"]
    lines += [
        "",
        f"Image counts agree (predicted vs true, from the true source) for "
        f"{source['fraction_same_image_count']:.1%} of {source['n_systems']} systems with "
        "θ_E > 0.8\"; images are paired one-to-one by minimum total distance, the fractional "
        "delay is (predicted − true)/true for every image after the reference one.",
        "",
        "| target | value | limit | met |",
        "|---|---|---|---|",
    ]
    for check in report["targets"]:
        lines.append(f"| {check['quantity']} {check['statistic']} | {check['value']:.4f} | "
                     f"{check['limit']} | {'yes' if check['met'] else 'no'} |")
    if "parameters_by_source_kind" in report:
        lines += ["", "68 % half-width by source kind:", "",
                  "| source | " + " | ".join(spec.MASS_PARAMETER_NAMES) + " |",
                  "|---|" + "---|" * spec.N_PARAMETERS]
        for kind, table in report["parameters_by_source_kind"].items():
            lines.append(f"| {kind} (n={table['theta_e']['n']}) | " + " | ".join(
                f"{table[n]['half_width_68']:.3f}" for n in spec.MASS_PARAMETER_NAMES) + " |")
    if "image_error_budget" in report:
        lines += ["", "Image-position error budget (θ_E > 0.8\", from the true source): the 68 % "
                  "half-width of the position offsets (x and y pooled) with one parameter group "
                  "set to its true value:", "",
                  "| exact | none | " + " | ".join(r["exact"] for r in
                                                    report["image_error_budget"][1:]) + " |",
                  "|---|" + "---|" * len(report["image_error_budget"])]
        lines.append("| half-width | " + " | ".join(
            f"{r['half_width_68']:.3f}\"" for r in report["image_error_budget"]) + " |")
    if "psf_leakage" in report:
        lines += ["", "PSF ellipticity leakage: slope of predicted − true on the PSF's ellipticity "
                  "component (0: none; 1: the PSF's elongation read as the lens's):", "",
                  "| parameter | PSF component | slope | offset | systems |",
                  "|---|---|---|---|---|"]
        for name, fit in report["psf_leakage"].items():
            lines.append(f"| {name} | {fit['psf_component']} | {fit['slope']:+.3f} ± "
                         f"{fit['slope_error']:.3f} | {fit['offset']:+.4f} | {fit['n']} |")
    return "\n".join(lines) + "\n"


def binned_markdown(report: dict[str, Any]) -> str:
    """68 % half-width (and ±1σ coverage) per parameter in bins of true θ_E."""
    lines = ["| θ_E bin | n | " + " | ".join(spec.MASS_PARAMETER_NAMES) + " |",
             "|---|---|" + "---|" * spec.N_PARAMETERS]
    for b in report["binned_by_theta_e"]:
        cells = [f"{b['parameters'][n]['median']:+.3f} ± {b['parameters'][n]['half_width_68']:.3f}"
                 f" ({b['parameters'][n]['coverage_1sigma']:.0%})"
                 for n in spec.MASS_PARAMETER_NAMES]
        lines.append(f"| {b['low']}–{b['high']} | {b['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_binned(report: dict[str, Any], path: Path) -> None:
    """Median and 16–84 % band of each parameter's residual, and its coverage, vs θ_E."""
    bins = report["binned_by_theta_e"]
    centres = [0.5 * (b["low"] + b["high"]) for b in bins]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), constrained_layout=True)
    for ax, name in zip(axes.flat, spec.MASS_PARAMETER_NAMES, strict=False):
        stats = [b["parameters"][name] for b in bins]
        ax.fill_between(centres, [s["p16"] for s in stats], [s["p84"] for s in stats],
                        alpha=0.3, label="16–84 %")
        ax.plot(centres, [s["median"] for s in stats], "o-", label="median")
        ax.axhline(0.0, color="k", lw=0.5)
        unit = spec.parameter(name).unit
        ax.set(xlabel="true θ_E (arcsec)", ylabel=f"Δ{name}" + (f" ({unit})" if unit else ""))
    ax = axes.flat[-1]
    for name in spec.MASS_PARAMETER_NAMES:
        ax.plot(centres, [b["parameters"][name]["coverage_1sigma"] for b in bins], ".-",
                label=name)
    ax.axhspan(0.63, 0.73, color="grey", alpha=0.2)
    ax.set(xlabel="true θ_E (arcsec)", ylabel="±1σ coverage", ylim=(0.3, 1.0))
    ax.legend(fontsize=7, ncol=2)
    axes.flat[0].legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_images_binned(report: dict[str, Any], path: Path) -> None:
    """Image-position and fractional-delay offsets (median, 16–84 %) vs true θ_E."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for mode, colour in (("from_true_source", "C0"), ("from_first_image", "C1")):
        bins = report["images"]["binned_by_theta_e"][mode]
        centres = [0.5 * (b["low"] + b["high"]) for b in bins]
        for ax, key in zip(axes, ("image_dx", "image_dy", "fractional_delay"), strict=True):
            stats = [b[key] for b in bins]
            ax.fill_between(centres, [s["p16"] for s in stats], [s["p84"] for s in stats],
                            color=colour, alpha=0.2)
            ax.plot(centres, [s["median"] for s in stats], "o-", color=colour,
                    label=mode.replace("_", " "))
            ax.axhline(0.0, color="k", lw=0.5)
            ax.set(xlabel="true θ_E (arcsec)", ylabel=key + ("" if "delay" in key else " (\")"))
    axes[0].legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def images_binned_markdown(report: dict[str, Any]) -> str:
    """Image offsets and fractional delays per true-θ_E bin (from the true source)."""
    lines = ["| θ_E bin | systems | image Δx | image Δy | fractional delay |",
             "|---|---|---|---|---|"]
    for b in report["images"]["binned_by_theta_e"]["from_true_source"]:
        lines.append(f"| {b['low']}–{b['high']} | {b['n_systems']} | {_fmt(b['image_dx'])} | "
                     f"{_fmt(b['image_dy'])} | {_fmt(b['fractional_delay'])} |")
    return "\n".join(lines) + "\n"


def full_markdown(report: dict[str, Any], *, command: str, model: str, data: str) -> str:
    """The evaluation document: provenance, the paper's table, binned table, plot link."""
    return "\n".join([
        "# lenscast mass-model evaluation", "",
        f"- model: `{model}`", f"- data: `{data}`", f"- command: `{command}`", "",
        "## Parameters, image positions and time delays", "", markdown_table(report),
        "## By true θ_E (median ± 68 % half-width, ±1σ coverage)", "",
        binned_markdown(report), "![residuals vs θ_E](residuals_vs_theta_e.png)", "",
        "## Image positions and delays by true θ_E (from the true source)", "",
        images_binned_markdown(report), "![images vs θ_E](images_vs_theta_e.png)", "",
    ])

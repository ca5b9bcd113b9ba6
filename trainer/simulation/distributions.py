"""Histograms of the drawn (accepted) parameters of a simulated set, one panel per quantity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lenscast.trainer.simulation.gallery import save_small_png

#: (truth column or derived name, axis label) drawn by :func:`draw_distributions`.
PANELS = (
    ("theta_e", "θ_E [arcsec]"),
    ("e1", "e1"),
    ("e2", "e2"),
    ("center_x", "centre x [arcsec]"),
    ("center_y", "centre y [arcsec]"),
    ("gamma1", "γ1 (shear)"),
    ("gamma2", "γ2 (shear)"),
    ("z_lens", "z_lens"),
    ("z_source", "z_source"),
    ("sigma_v", "σ_v [km/s]"),
    ("lens_mag_i", "lens i [AB mag]"),
    ("lens_r_eff", "lens R_e [arcsec]"),
    ("source_mag_i", "source i, unlensed [AB]"),
    ("source_r_eff", "source R_e [arcsec]"),
    ("magnification", "source magnification"),
    ("arc_snr_max", "arc SNR, best band"),
    ("seeing_i", "i seeing FWHM [arcsec]"),
    ("n_images", "number of images"),
    ("max_delay", "longest delay [days]"),
    ("n_neighbours", "neighbours"),
)


def _column(truths: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name == "arc_snr_max":
        return truths["arc_snr"].max(axis=1)
    if name == "max_delay":
        return np.nanmax(truths["time_delay_days"], axis=1)
    return truths[name]


def draw_distributions(truths: dict[str, np.ndarray], path: str | Path, *,
                       title: str = "", dpi: int = 60) -> Path:
    """Write a PNG grid of histograms of the accepted systems' parameters.

    Parameters
    ----------
    truths : dict of ndarray
        Shard truth columns (``lenscast.trainer.dataset.load_shards(...).truths``).
    path : str or Path
        Output PNG.
    title : str
        Figure title (e.g. the run and its size).
    dpi : int

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = 5
    n_rows = -(-len(PANELS) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 2.0 * n_rows))
    hudf = truths["source_kind"] == 1
    for ax, (name, label) in zip(np.ravel(axes), PANELS, strict=False):
        values = _column(truths, name).astype(np.float64)
        finite = np.isfinite(values)
        if name in ("magnification", "arc_snr_max", "max_delay"):
            values = np.log10(np.clip(values, 1e-2, None))
            label = f"log10 {label}"
        bins = np.arange(-0.5, values[finite].max() + 1.5) if name.startswith("n_") else 30
        ax.hist([values[finite & hudf], values[finite & ~hudf]], bins=bins, stacked=True,
                label=["HUDF source", "parametric"], color=["tab:blue", "tab:orange"])
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
    np.ravel(axes)[0].legend(fontsize=6)
    for ax in np.ravel(axes)[len(PANELS):]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_small_png(fig, path, dpi=dpi)
    plt.close(fig)
    return path

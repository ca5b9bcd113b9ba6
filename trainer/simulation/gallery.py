"""Colour-composite gallery of simulated cutouts with their truths overlaid.

Colour: i, r, g mapped to red, green, blue with an asinh stretch (Lupton et al. 2004), the
usual rendering of HSC cutouts. Overlays: the mass centre (+), the true image positions of the
source centre (o, numbered in arrival order), the critical-curve scale ``theta_e`` (dashed
circle), and a caption with ``theta_e``, the source kind and the best-band arc SNR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lenscast.trainer.simulation.survey import CUTOUT_SIZE_PIX, PIXEL_SCALE_ARCSEC

_HALF = 0.5 * CUTOUT_SIZE_PIX * PIXEL_SCALE_ARCSEC


def colour_composite(image: np.ndarray, *, stretch: float = 0.5, q: float = 10.0) -> np.ndarray:
    """RGB (n, n, 3) in [0, 1] from a griz cutout (4, n, n): R = i, G = r, B = g, asinh."""
    rgb = np.stack([image[2], image[1], image[0]], axis=-1).astype(np.float64)
    intensity = rgb.mean(axis=-1, keepdims=True)
    scale = np.arcsinh(q * np.clip(intensity, 1e-12, None) / stretch) / q
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(intensity > 0, rgb * scale / intensity, 0.0)
    return np.clip(out, 0.0, 1.0)


def draw_gallery(images: np.ndarray, truths: dict[str, np.ndarray], path: str | Path, *,
                 n_columns: int = 6, n_rows: int = 4, dpi: int = 70) -> Path:
    """Write a PNG grid of the first ``n_columns * n_rows`` systems with truths overlaid.

    Parameters
    ----------
    images : ndarray, shape (n, 4, 64, 64)
    truths : dict of ndarray
        Shard truth columns (``theta_e``, ``center_x``, ``image_x``... see
        ``lenscast.trainer.dataset``).
    path : str or Path
        Output PNG.
    n_columns, n_rows : int
    dpi : int

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = min(len(images), n_columns * n_rows)
    fig, axes = plt.subplots(n_rows, n_columns, figsize=(2.0 * n_columns, 2.1 * n_rows))
    # x is east (left on the sky), so the extent runs from +half (left) to -half (right).
    extent = (_HALF, -_HALF, -_HALF, _HALF)
    for k, ax in enumerate(np.ravel(axes)):
        ax.set_axis_off()
        if k >= count:
            continue
        ax.imshow(colour_composite(images[k]), origin="lower", extent=extent)
        cx, cy = truths["center_x"][k], truths["center_y"][k]
        ax.plot(cx, cy, "+", color="white", ms=6, mew=1)
        circle = plt.Circle((cx, cy), truths["theta_e"][k], fill=False, ls="--", lw=0.6,
                            color="yellow")
        ax.add_patch(circle)
        xs, ys = truths["image_x"][k], truths["image_y"][k]
        for j, (x, y) in enumerate(zip(xs, ys, strict=True)):
            if np.isfinite(x):
                ax.plot(x, y, "o", mfc="none", mec="cyan", ms=7, mew=0.8)
                ax.text(x + 0.35, y + 0.35, str(j + 1), color="cyan", fontsize=6)
        kind = "HUDF" if truths["source_kind"][k] == 1 else "param"
        ax.set_title(f"θE={truths['theta_e'][k]:.2f}\" {kind} SNR={truths['arc_snr'][k].max():.0f}",
                     fontsize=7)
        ax.set_xlim(_HALF, -_HALF)
    fig.tight_layout(pad=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_small_png(fig, path, dpi=dpi)
    plt.close(fig)
    return path


def save_small_png(fig, path: Path, *, dpi: int, colours: int = 96) -> None:
    """Save a figure as a palette PNG: pixel noise makes true-colour PNGs of cutouts ~4x larger
    for no visible gain (the gallery is committed to the repository)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=colours).save(path, optimize=True)

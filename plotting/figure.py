"""Pictures of predicted lens models: one alert in detail, or a gallery of many.

Each panel shows the colour composite of the griz cutout (i, r, g as red, green, blue; Lupton et
al. 2004 asinh stretch), the predicted critical curve (image plane) and caustic (source plane),
the lens centre, the predicted images with their 16-84 % position ranges as ellipses, labelled
A, B, ... in arrival order with their time delays, the source position and, for a transient, the
observed image and the predicted arrival dates of the others. Axes are arcsec from the cutout
centre with north up and east left (``x = dRA cos(Dec)`` grows to the left).

Drawing only: the data come from :mod:`lenscast.plotting.plot_data`, the curves from
:mod:`lenscast.model.critical_curves`, the composite from :mod:`lenscast.plotting.colour_composite`
and the text from :mod:`lenscast.plotting.plot_text`. matplotlib runs on the Agg backend (files, no
display).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from lenscast.model import parameter_spec as spec
from lenscast.plotting.colour_composite import colour_composite
from lenscast.plotting.plot_data import IMAGE_LABELS, AlertPicture, PredictedImage
from lenscast.plotting.plot_text import summary_lines

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Colours that read on a dark sky background.
CRITICAL_COLOUR = "#66d9ff"
CAUSTIC_COLOUR = "#ffb000"
IMAGE_COLOUR = "#ffffff"
OBSERVED_COLOUR = "#ff4fd8"
SOURCE_COLOUR = "#ffe14d"
TRUTH_COLOUR = "#7dff7d"
#: Titles of alerts the model sees no lens in (p_lens below the threshold).
NO_LENS_COLOUR = "#d62728"
#: Written on the panel when the cutout pixels are not at hand (not stored in the database).
NO_CUTOUT_TEXT = "cutout not available (give the alert archive with --alerts)"


@dataclass(frozen=True)
class LensCurves:
    """Critical curves and caustics as closed polylines, arcsec.

    Attributes
    ----------
    critical : list of ndarray, shape (k, 2)
        Image-plane curves where the magnification diverges.
    caustic : list of ndarray, shape (k, 2)
        Their images in the source plane.
    """

    critical: list[NDArray[np.float64]]
    caustic: list[NDArray[np.float64]]


@dataclass(frozen=True)
class TruthOverlay:
    """Simulated truth drawn for comparison (the demo's sample stream has one per alert).

    Attributes
    ----------
    images : ndarray, shape (k, 2)
        True image positions, arcsec.
    source : tuple of float or None
        True source position, arcsec.
    theta_e : float or None
        True Einstein radius, arcsec (shown beside the predicted one).
    """

    images: NDArray[np.float64]
    source: tuple[float, float] | None = None
    theta_e: float | None = None


class PlottingUnavailable(RuntimeError):
    """matplotlib is not installed (the service image leaves it out)."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise PlottingUnavailable(
            "drawing needs matplotlib: pip install 'lenscast[plot]'"
        ) from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def lens_curves(picture: AlertPicture) -> LensCurves:
    """Critical curves and caustics of the predicted mass model of ``picture``.

    The tangential and (for slopes shallower than isothermal) radial critical curves and their
    caustics from :func:`lenscast.model.critical_curves.critical_curves`; for the SIE the cut
    (pseudo-caustic), across which image pairs appear, is drawn with the caustics.
    """
    from lenscast.model.critical_curves import critical_curves
    from lenscast.model.mass_model import MassModel

    c = critical_curves(MassModel.from_mapping(picture.mean))

    def lines(*pairs: tuple[NDArray[np.float64], NDArray[np.float64]]) -> list[NDArray[np.float64]]:
        return [np.column_stack([x, y]) for x, y in pairs if x.size]

    return LensCurves(
        critical=lines((c.tangential_x, c.tangential_y), (c.radial_x, c.radial_y)),
        caustic=lines(
            (c.tangential_caustic_x, c.tangential_caustic_y),
            (c.radial_caustic_x, c.radial_caustic_y),
            (c.cut_x, c.cut_y),
        ),
    )


#: Legend entries of the predicted images' markers and ellipses.
IMAGE_LABEL = "predicted image"
ELLIPSE_LABEL = "predicted image, 16-84 % position range"


def _ellipse(ax: Axes, image: PredictedImage, colour: str, label: str | None = None) -> None:
    """Draw the 16-84 % range of an image's position as an axis-aligned ellipse.

    Only the marginal percentiles of x and y are stored, not their covariance. ``label`` names
    the ellipse in the legend (given for the first one only).
    """
    from matplotlib.patches import Ellipse

    width = image.x.p84 - image.x.p16
    height = image.y.p84 - image.y.p16
    if np.isfinite(width) and np.isfinite(height):
        # Centred on the 16-84 % box: the median, which may differ from the point estimate.
        centre = ((image.x.p84 + image.x.p16) / 2, (image.y.p84 + image.y.p16) / 2)
        ax.add_patch(
            Ellipse(centre, width, height, fill=False, ec=colour, lw=1.0, alpha=0.9, label=label)
        )


def _delay_text(image: PredictedImage) -> str:
    """Panel label: the image letter and its delay after image A (A itself is the reference)."""
    if image.delay_days is None or image.label == IMAGE_LABELS[0]:
        return image.label
    return f"{image.label}  +{image.delay_days.value:.1f} d"


def _label_offset(
    x: float, y: float, origin: tuple[float, float], distance: float
) -> tuple[tuple[float, float], str, str]:
    """Offset (points) and alignment that put the label of the point (x, y) away from ``origin``.

    Screen x grows to the west (east is left), so the offset's x is ``-dx``.
    """
    dx, dy = x - origin[0], y - origin[1]
    r = float(np.hypot(dx, dy)) or 1.0
    ox, oy = -dx / r * distance, dy / r * distance
    return (ox, oy), ("left" if ox >= 0 else "right"), ("bottom" if oy >= 0 else "top")


def view_half_width(
    picture: AlertPicture, curves: LensCurves | None, truth: TruthOverlay | None, limit: float
) -> float:
    """Half-width of the view, arcsec: everything drawn plus a margin, at most ``limit``."""
    points = [np.array([[picture.mean["center_x"], picture.mean["center_y"]]])]
    points += [np.array([[im.x.value, im.y.value]]) for im in picture.images]
    if curves is not None:
        points += curves.critical
    if truth is not None and len(truth.images):
        points.append(truth.images)
    extent = max(float(np.nanmax(np.abs(p))) for p in points)
    return float(min(limit, max(2.5, 1.4 * extent + 0.5)))


def _draw_images(ax: Axes, picture: AlertPicture, *, compact: bool) -> None:
    """Predicted images: marker, 16-84 % ellipse, and label (letter, delay) placed clear."""
    from matplotlib import patheffects

    centre = (picture.mean["center_x"], picture.mean["center_y"])
    labelled: list[tuple[float, float]] = []
    for k, image in enumerate(picture.images):
        colour = OBSERVED_COLOUR if image.is_observed else IMAGE_COLOUR
        _ellipse(ax, image, colour, ELLIPSE_LABEL if k == 0 else None)
        ax.plot(
            image.x.value,
            image.y.value,
            "o",
            ms=4 if compact else 5,
            mfc="none",
            mec=colour,
            label=IMAGE_LABEL if k == 0 else None,
        )
        near = [(x, y) for x, y in labelled if np.hypot(image.x.value - x, image.y.value - y) < 0.6]
        # Outwards from the lens centre, or, next to an image already labelled (a fold pair),
        # away from that image.
        away_from = near[0] if near else centre
        offset, ha, va = _label_offset(image.x.value, image.y.value, away_from, 6 if compact else 9)
        labelled.append((image.x.value, image.y.value))
        ax.annotate(
            image.label if compact else _delay_text(image),
            (image.x.value, image.y.value),
            xytext=offset,
            textcoords="offset points",
            ha=ha,
            va=va,
            color=colour,
            fontsize=6 if compact else 8,
            fontweight="bold",
            path_effects=[patheffects.withStroke(linewidth=2, foreground="black")],
        )


def draw_alert(
    ax: Axes,
    picture: AlertPicture,
    curves: LensCurves | None,
    *,
    truth: TruthOverlay | None = None,
    compact: bool = False,
) -> None:
    """Draw one alert's cutout, curves, images and source on ``ax``.

    Parameters
    ----------
    ax : matplotlib Axes
    picture : AlertPicture
    curves : LensCurves or None
        From :func:`lens_curves`; None skips them.
    truth : TruthOverlay, optional
        True image and source positions, drawn as green crosses.
    compact : bool
        Gallery panel: smaller labels, image letters only.
    """
    size = (
        picture.cutouts.shape[-1] if picture.cutouts is not None else spec.CUTOUT_SIZE_PIX
    ) * picture.pixel_scale_arcsec
    half = size / 2
    # extent (left, right) = (+half, -half): x = dRA cos(Dec) grows to the left (east left).
    extent = (half, -half, -half, half)
    if picture.cutouts is not None:
        ax.imshow(colour_composite(picture.cutouts), origin="lower", extent=extent)
    else:
        # Dark like a cutout, so the light markers stay visible; the text says why it is empty.
        ax.set_facecolor("black")
        ax.text(
            0.5,
            0.97,
            NO_CUTOUT_TEXT,
            transform=ax.transAxes,
            ha="center",
            va="top",
            color="#bbbbbb",
            fontsize=6 if compact else 8,
        )
    fontsize = 6 if compact else 8
    if curves is not None:
        for k, line in enumerate(curves.critical):
            label = "critical curve" if k == 0 else None
            ax.plot(line[:, 0], line[:, 1], color=CRITICAL_COLOUR, lw=1.0, label=label)
        for k, line in enumerate(curves.caustic):
            label = "caustic" if k == 0 else None
            ax.plot(line[:, 0], line[:, 1], color=CAUSTIC_COLOUR, lw=0.9, ls="--", label=label)
    mean, sigma = picture.mean, picture.sigma
    ax.errorbar(
        mean["center_x"],
        mean["center_y"],
        xerr=sigma["center_x"],
        yerr=sigma["center_y"],
        color=CRITICAL_COLOUR,
        marker="+",
        ms=7,
        lw=0.8,
        label="lens centre",
    )
    _draw_images(ax, picture, compact=compact)
    if picture.transient is not None:
        ax.plot(
            *picture.transient,
            "*",
            ms=9 if not compact else 7,
            mfc="none",
            mec=OBSERVED_COLOUR,
            label="transient (observed image)",
        )
    if picture.source is not None:
        ax.plot(*picture.source, "x", color=SOURCE_COLOUR, ms=6, label="source (predicted)")
    if truth is not None:
        ax.plot(
            truth.images[:, 0],
            truth.images[:, 1],
            "+",
            color=TRUTH_COLOUR,
            ms=8,
            mew=1.2,
            label="true images",
        )
        if truth.source is not None:
            ax.plot(*truth.source, "+", color=TRUTH_COLOUR, ms=6, mew=1.0)
    # A transient may lie outside the cutout (within 3 theta_E): the view then grows to show it.
    outside = [max(abs(im.x.value), abs(im.y.value)) + 1.0 for im in picture.images]
    view = view_half_width(picture, curves, truth, max([half, *outside]))
    ax.set_xlim(view, -view)
    ax.set_ylim(-view, view)
    ax.set_aspect("equal")
    title = f'{picture.alert_id}\nθ_E = {mean["theta_e"]:.2f} ± {sigma["theta_e"]:.2f}"'
    if truth is not None and truth.theta_e is not None:
        title += f' (true {truth.theta_e:.2f}")'
    if picture.p_lens is not None:
        title += f"\np_lens = {picture.p_lens:.2f}" + ("  NO LENS" if picture.no_lens else "")
    if picture.no_lens:
        ax.set_title(title, fontsize=fontsize + 1, color=NO_LENS_COLOUR)
    else:
        ax.set_title(title, fontsize=fontsize + 1)
    if compact:
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.set_xlabel('x = ΔRA cos Dec  ["]  (east left)')
        ax.set_ylabel('y = ΔDec  ["]  (north up)')


def plot_alert(
    picture: AlertPicture,
    path: Path,
    *,
    curves: LensCurves | None = None,
    truth: TruthOverlay | None = None,
) -> Path:
    """Write the single-alert PNG: the panel of :func:`draw_alert` plus the summary text.

    Parameters
    ----------
    picture : AlertPicture
    path : Path
        Output PNG.
    curves : LensCurves, optional
        Defaults to :func:`lens_curves` of the prediction.
    truth : TruthOverlay, optional

    Returns
    -------
    Path
        ``path``.
    """
    plt = _pyplot()
    figure: Figure = plt.figure(figsize=(10.0, 5.4), dpi=110)
    try:
        ax = figure.add_axes((0.08, 0.1, 0.5, 0.8))
        draw_alert(ax, picture, curves if curves is not None else lens_curves(picture), truth=truth)
        handles, labels = ax.get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.6, 0.08), fontsize=7)
        text = figure.add_axes((0.61, 0.1, 0.38, 0.8))
        text.axis("off")
        text.text(
            0,
            1,
            "\n".join(summary_lines(picture)),
            va="top",
            ha="left",
            family="monospace",
            fontsize=7.5,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    finally:
        plt.close(figure)
    return path


def plot_gallery(
    pictures: Sequence[AlertPicture],
    path: Path,
    *,
    curves: Sequence[LensCurves] | None = None,
    truths: Sequence[TruthOverlay | None] | None = None,
    columns: int = 4,
    title: str | None = None,
) -> Path:
    """Write a grid of compact panels, one per alert.

    Parameters
    ----------
    pictures : sequence of AlertPicture
    path : Path
        Output PNG.
    curves : sequence of LensCurves, optional
        One per picture; computed with :func:`lens_curves` by default.
    truths : sequence of TruthOverlay or None, optional
    columns : int
    title : str, optional

    Returns
    -------
    Path
        ``path``.
    """
    if not pictures:
        raise ValueError("a gallery needs at least one alert")
    plt = _pyplot()
    rows = -(-len(pictures) // columns)
    figure: Figure = plt.figure(figsize=(2.6 * columns, 2.8 * rows + 0.5), dpi=100)
    try:
        for k, picture in enumerate(pictures):
            ax = figure.add_subplot(rows, columns, k + 1)
            draw_alert(
                ax,
                picture,
                curves[k] if curves is not None else lens_curves(picture),
                truth=truths[k] if truths is not None else None,
                compact=True,
            )
        if title:
            figure.suptitle(title, fontsize=10)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    finally:
        plt.close(figure)
    return path

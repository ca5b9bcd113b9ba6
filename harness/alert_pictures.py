"""Small alert pictures (what the demo summary and the plot read) with chosen predicted images."""

from __future__ import annotations

from lenscast.plotting.plot_data import AlertPicture, Interval, PredictedImage

MEAN = {"theta_e": 1.5, "e1": 0.0, "e2": 0.0, "center_x": 0.1, "center_y": -0.1}
MEAN |= {"gamma1": 0.0, "gamma2": 0.0}
SIGMA = dict.fromkeys(MEAN, 0.05)


def image(label: str, x: float, y: float, delay: float) -> PredictedImage:
    """A predicted image at (x, y) arcsec with a time delay in days; image A is the observed one."""
    return PredictedImage(
        label=label,
        x=Interval(x, x - 0.02, x + 0.02),
        y=Interval(y, y - 0.02, y + 0.02),
        magnification=2.0,
        delay_days=Interval(delay, delay - 1, delay + 1),
        is_observed=label == "A",
        arrival_mjd=None,
    )


def picture(images: tuple[PredictedImage, ...], theta_e: float = 1.5) -> AlertPicture:
    """One alert with the given predicted images and Einstein radius (arcsec)."""
    return AlertPicture(
        alert_id="a1", candidate_id="c1", model_name="m", model_version="1",
        mjd=61096.0, mean=MEAN | {"theta_e": theta_e}, sigma=SIGMA,
        source=(0.0, 0.0) if images else None, transient=(1.5, 0.0) if images else None,
        transient_mjd=61096.0 if images else None, images=images, z_lens=0.5, z_source=2.0,
    )  # fmt: skip

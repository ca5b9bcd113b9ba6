"""The text beside a single-alert plot: parameters, images, delays and arrival dates."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from lenscast.model import parameter_spec as spec
from lenscast.plotting.plot_data import AlertPicture, Interval


def _range(interval: Interval, digits: int = 1) -> str:
    """``[p16, p84]`` of an interval, or nothing when the percentiles were not stored."""
    if not (np.isfinite(interval.p16) and np.isfinite(interval.p84)):
        return ""
    return f" [{interval.p16:.{digits}f}, {interval.p84:.{digits}f}]"


#: MJD 0 (the time scale's ~37 s offset from UTC does not change a calendar date shown).
_MJD_EPOCH = datetime(1858, 11, 17)


def _mjd_date(mjd: float) -> str:
    """Calendar date of ``mjd``, ``YYYY-MM-DD``."""
    return (_MJD_EPOCH + timedelta(days=mjd)).strftime("%Y-%m-%d")


def summary_lines(picture: AlertPicture) -> list[str]:
    """The text beside a single-alert plot: parameters, images, delays and arrival dates."""
    mean, sigma = picture.mean, picture.sigma
    lines = [
        f"candidate {picture.candidate_id}",
        f"model {picture.model_name} {picture.model_version}",
        f"alert MJD {picture.mjd:.2f} ({_mjd_date(picture.mjd)})",
        "",
    ]
    for p in spec.MASS_PARAMETERS:
        unit = '"' if p.unit == "arcsec" else ""
        lines.append(f"{p.name:>9} = {mean[p.name]:+.3f} ± {sigma[p.name]:.3f}{unit}")
    if picture.z_lens is not None and picture.z_source is not None:
        lines.append(f"z_lens = {picture.z_lens:.3f}, z_source = {picture.z_source:.3f}")
    lines.append("")
    if not picture.images:
        lines.append("no images predicted: without a transient")
        lines.append("the source position is not observable")
    for image in picture.images:
        line = f'{image.label}: ({image.x.value:+.2f}, {image.y.value:+.2f})"'
        line += f"  μ = {image.magnification:+.1f}"
        if image.delay_days is not None:
            line += f"  Δt = {image.delay_days.value:.1f} d{_range(image.delay_days)}"
        lines.append(line)
        if image.is_observed and picture.transient_mjd is not None:
            lines.append(f"   observed MJD {picture.transient_mjd:.2f}")
        elif image.arrival_mjd is not None:
            a = image.arrival_mjd
            verb = "arrived" if a.value < picture.mjd else "arrives"
            lines.append(f"   {verb} MJD {a.value:.1f}{_range(a)} = {_mjd_date(a.value)}")
    lines += ["", "[16th, 84th percentile]; Δt after image A"]
    return lines

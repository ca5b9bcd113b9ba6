"""The text beside a single-alert plot: parameters, images, delays and arrival dates."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from lenscast.model import parameter_spec as spec
from lenscast.plotting.plot_data import AlertPicture, Interval, PredictedImage


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


def lens_evidence_line(picture: AlertPicture) -> str:
    """``p_lens`` against the threshold, in words (or that the model does not say)."""
    if picture.p_lens is None:
        return "p_lens: n/a (the model has no lens-evidence output)"
    threshold = picture.p_lens_threshold
    if picture.no_lens:
        return f"p_lens = {picture.p_lens:.2f} < {threshold:.2f}: THE MODEL SEES NO LENS"
    return f"p_lens = {picture.p_lens:.2f} ≥ {threshold:.2f}: a lens"


def _redshift(name: str, value: float, err: float | None, origin: str | None) -> str:
    if origin == "prior":
        return f"{name} ≈ {value:.2f} (prior median, SL2S)"
    error = f" ± {err:.3f}" if err else ""
    return f"{name} = {value:.3f}{error} (measured)"


def redshift_lines(picture: AlertPicture) -> list[str]:
    """The redshifts behind the delays, each marked measured or from the prior."""
    p = picture
    if p.z_lens_used is not None and p.z_source_used is not None:
        return [
            _redshift("z_lens", p.z_lens_used, p.z_lens_err, p.z_lens_origin),
            _redshift("z_source", p.z_source_used, p.z_source_err, p.z_source_origin),
        ]
    if p.z_lens is not None and p.z_source is not None:
        return [f"z_lens = {p.z_lens:.3f}, z_source = {p.z_source:.3f}"]
    return []
def sky_text(image: PredictedImage) -> str:
    """``RA 150.000123, Dec +2.000456 ±0.04"/±0.05"``: where to point (degrees, ICRS).

    The ± are half the 16-84 % ranges of x and y, arcsec; left out when not stored. Empty when
    the image has no stored sky position.
    """
    if image.ra is None or image.dec is None:
        return ""
    text = f"RA {image.ra.value:.6f}, Dec {image.dec.value:+.6f}"
    half_x = (image.x.p84 - image.x.p16) / 2
    half_y = (image.y.p84 - image.y.p16) / 2
    if np.isfinite(half_x) and np.isfinite(half_y):
        text += f' ±{half_x:.2f}"/±{half_y:.2f}"'
    return text


def summary_lines(picture: AlertPicture) -> list[str]:
    """The text beside a single-alert plot: parameters, images, delays and arrival dates."""
    mean, sigma = picture.mean, picture.sigma
    lines = [
        f"candidate {picture.candidate_id}",
        f"model {picture.model_name} {picture.model_version}",
        f"alert MJD {picture.mjd:.2f} ({_mjd_date(picture.mjd)})",
        lens_evidence_line(picture),
        "",
    ]
    for p in spec.MASS_PARAMETERS:
        unit = '"' if p.unit == "arcsec" else ""
        lines.append(f"{p.name:>9} = {mean[p.name]:+.3f} ± {sigma[p.name]:.3f}{unit}")
    lines += redshift_lines(picture)
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
        if sky_text(image):
            lines.append(f"   {sky_text(image)}")
        if image.is_observed and picture.transient_mjd is not None:
            lines.append(f"   observed MJD {picture.transient_mjd:.2f}")
        elif image.arrival_mjd is not None:
            a = image.arrival_mjd
            verb = "arrived" if a.value < picture.mjd else "arrives"
            if picture.no_lens:  # a date for an image of a lens the model does not see
                verb = "(no lens)"
            lines.append(f"   {verb} MJD {a.value:.1f}{_range(a)} = {_mjd_date(a.value)}")
    lines += [
        "",
        "[16th, 84th percentile]; Δt after image A;",
        "RA, Dec in degrees (ICRS), ± half the 16-84 % range",
    ]
    return lines

"""In-memory form of a decoded lens-candidate alert, and the rejection every failure becomes.

Decoding (``lenscast.consumer.decoding``) turns raw Kafka/archive bytes into a
:class:`LensCandidateAlert` or raises :class:`AlertRejected` with a specific reason code; the
pipeline stores rejected alerts with their raw bytes, so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


class AlertRejected(Exception):
    """An alert that cannot be processed.

    Parameters
    ----------
    reason : str
        Short machine-readable code, e.g. ``"framing.unknown_magic"``, ``"cutout.non_finite"``.
    detail : str
        Human-readable explanation (no secrets, bounded length).
    alert_id : str or None
        The alert id when it could be read before the failure.
    """

    def __init__(self, reason: str, detail: str = "", alert_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail[:1000]
        self.alert_id = alert_id


class SkyFrame(Protocol):
    """Offsets from a cutout's centre (arcsec, x east, y north) to the sky, through its WCS."""

    def to_sky(self, x: NDArray | float, y: NDArray | float) -> tuple[NDArray, NDArray]:
        """RA, Dec (degrees, ICRS) of the offsets, arrays shaped like ``x``."""
        ...


@dataclass(frozen=True)
class Transient:
    """The triggering transient (diaSource-like fields); its position is one lensed image.

    Attributes
    ----------
    dia_source_id : int
        The survey's ``diaSourceId`` of the detection.
    ra, dec : float
        Position, degrees (ICRS).
    mjd : float
        Time of the detection, days (MJD, TAI).
    band : str
        Filter of the detection, as the survey names it (e.g. ``"i"``).
    flux : float
        PSF flux, nJy, as the survey reports it.
    flux_err : float or None
        1-sigma uncertainty of ``flux``, nJy, when reported.
    x_arcsec, y_arcsec : float
        Position relative to the cutout centre in the project convention (x = dRA cos Dec, east
        positive; y = dDec, north positive), arcsec, from the cutout WCS.
    """

    dia_source_id: int
    ra: float
    dec: float
    mjd: float
    band: str
    flux: float
    x_arcsec: float
    y_arcsec: float
    flux_err: float | None = None


@dataclass(frozen=True)
class Provenance:
    """Where the alert came from."""

    survey: str
    broker: str | None
    upstream_alert_id: str | None


@dataclass(frozen=True)
class LensCandidateAlert:
    """A decoded, validated lens-candidate alert ready for inference.

    Attributes
    ----------
    alert_id : str
        Idempotency key.
    candidate_id : str
        Lens candidate (object) identifier; several alerts may share it.
    ra, dec : float
        Cutout centre, degrees (ICRS).
    mjd : float
        Alert time, days (MJD).
    cutouts : ndarray, shape (4, 64, 64), float32
        g, r, i, z pixels in calibrated coadd flux (AB zeropoint 27), north up east left as
        the model expects (re-oriented from the WCS when needed).
    pixel_scale_arcsec : float
        Pixel scale of ``cutouts`` after any resampling, arcsec/pixel.
    z_lens, z_lens_err, z_source, z_source_err : float or None
        Redshifts and their 1-sigma errors when known.
    transient : Transient or None
    provenance : Provenance
    schema_version : str
        Alert schema version the packet was written with, e.g. ``"1.0"``.
    sky_frame : SkyFrame
        Places offsets from the cutout centre (predicted images) on the sky through the
        cutout's WCS (:meth:`lenscast.consumer.cutouts.StandardCutouts.to_sky`).
    """

    alert_id: str
    candidate_id: str
    ra: float
    dec: float
    mjd: float
    cutouts: NDArray[np.float32]
    pixel_scale_arcsec: float
    z_lens: float | None
    z_lens_err: float | None
    z_source: float | None
    z_source_err: float | None
    transient: Transient | None
    provenance: Provenance
    schema_version: str
    sky_frame: SkyFrame = field(compare=False, repr=False)

"""Write lens-candidate alerts: FITS cutouts with a celestial WCS, Avro records, framings.

Used by the sample-stream generator (``lenscast make-stream``), the demo and the tests. Cutouts
are written the way :mod:`lenscast.consumer.cutouts` reads them:

* primary-HDU float32 image, ``pixels[row, col]``, north up and east left: a TAN projection
  with ``CRVAL`` at the image centre (``CRPIX = (n + 1) / 2``) and
  ``CD = [[-s, 0], [0, s]] / 3600`` for pixel scale ``s`` arcsec (RA grows to the left);
* ``BUNIT = 'count'`` with ``MAGZERO`` the AB magnitude of a pixel value of 1 — lenscast's
  choice of keyword for the zeropoint (27.0 for HSC coadd flux); ``FILTER`` names the band.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from numpy.typing import NDArray

from lenscast.consumer.alert_schema import LATEST_VERSION, load_schema
from lenscast.consumer.framing import frame_wire
from lenscast.model import parameter_spec as spec


def cutout_header(
    *,
    shape: tuple[int, int],
    ra: float,
    dec: float,
    pixel_scale_arcsec: float,
    band: str,
    zeropoint_ab: float = spec.PIXEL_ZEROPOINT_AB,
    bunit: str = "count",
) -> fits.Header:
    """FITS header of a north-up east-left TAN cutout centred on ``(ra, dec)`` (degrees).

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` pixels.
    ra, dec : float
        Sky position of the image centre, degrees, ICRS.
    pixel_scale_arcsec : float
        Pixel scale, arcsec per pixel.
    band : str
        Filter name, written to ``FILTER``.
    zeropoint_ab : float
        AB magnitude of a pixel value of 1 (``MAGZERO``).
    bunit : str
        Pixel unit (``BUNIT``).
    """
    ny, nx = shape
    scale_deg = pixel_scale_arcsec / 3600.0
    header = fits.Header()
    header["WCSAXES"] = 2
    header["CTYPE1"] = ("RA---TAN", "gnomonic projection")
    header["CTYPE2"] = ("DEC--TAN", "gnomonic projection")
    header["CUNIT1"] = "deg"
    header["CUNIT2"] = "deg"
    header["CRVAL1"] = (float(ra), "[deg] RA of the image centre")
    header["CRVAL2"] = (float(dec), "[deg] Dec of the image centre")
    header["CRPIX1"] = ((nx + 1) / 2.0, "image centre (1-based)")
    header["CRPIX2"] = ((ny + 1) / 2.0, "image centre (1-based)")
    header["CD1_1"] = (-scale_deg, "[deg/px] east left")
    header["CD1_2"] = 0.0
    header["CD2_1"] = 0.0
    header["CD2_2"] = (scale_deg, "[deg/px] north up")
    header["RADESYS"] = "ICRS"
    header["BUNIT"] = (bunit, "coadd flux; AB mag = MAGZERO - 2.5 log10(value)")
    header["MAGZERO"] = (float(zeropoint_ab), "[mag] AB magnitude of a pixel value of 1")
    header["FILTER"] = (band, "band")
    return header


def cutout_fits(
    image: NDArray[np.floating],
    *,
    ra: float,
    dec: float,
    band: str,
    pixel_scale_arcsec: float = spec.PIXEL_SCALE_ARCSEC,
    zeropoint_ab: float = spec.PIXEL_ZEROPOINT_AB,
    bunit: str = "count",
    compress: bool = False,
) -> bytes:
    """Encode one band's image as FITS bytes (optionally gzip-compressed).

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Pixels ``[row, col]``, north up east left, in ``bunit`` at ``zeropoint_ab``.
    ra, dec, band, pixel_scale_arcsec, zeropoint_ab, bunit
        See :func:`cutout_header`.
    compress : bool
        gzip the FITS file (as ZTF does; lenscast and LSST send it uncompressed).
    """
    data = np.asarray(image, dtype=">f4")
    header = cutout_header(
        shape=(data.shape[0], data.shape[1]),
        ra=ra,
        dec=dec,
        pixel_scale_arcsec=pixel_scale_arcsec,
        band=band,
        zeropoint_ab=zeropoint_ab,
        bunit=bunit,
    )
    buffer = io.BytesIO()
    fits.PrimaryHDU(data=data, header=header).writeto(buffer)
    raw = buffer.getvalue()
    # mtime=0 keeps the bytes reproducible for committed sample packets.
    return gzip.compress(raw, mtime=0) if compress else raw


@dataclass(frozen=True)
class TransientSpec:
    """A triggering transient to put in an alert, placed by its offset from the cutout centre.

    Attributes
    ----------
    dia_source_id : int
        Written as the alert's ``diaSource.diaSourceId``.
    x_arcsec, y_arcsec : float
        Offset from the cutout centre, arcsec (x = dRA cos Dec east, y = dDec north); converted
        to RA/Dec through the cutout WCS.
    mjd : float
        Detection time, MJD (TAI), days.
    band : str
        Filter of the detection (e.g. ``"i"``).
    psf_flux_njy : float
        PSF flux in the difference image, nJy.
    psf_flux_err_njy : float or None
        1-sigma uncertainty of ``psf_flux_njy``, nJy; None: written as null (not reported).
    """

    dia_source_id: int
    x_arcsec: float
    y_arcsec: float
    mjd: float
    band: str
    psf_flux_njy: float
    psf_flux_err_njy: float | None = None


def offset_to_sky_wcs(
    x_arcsec: float, y_arcsec: float, *, ra: float, dec: float, size: int, scale: float
) -> tuple[float, float]:
    """RA, Dec (degrees) of an offset from the centre of the cutout :func:`cutout_header` writes.

    Goes through the cutout's own WCS: pixel ``(c - x/s, c + y/s)`` with ``c = (size-1)/2``.
    """
    header = cutout_header(shape=(size, size), ra=ra, dec=dec, pixel_scale_arcsec=scale, band="")
    wcs = WCS(header)
    c = (size - 1) / 2.0
    world = wcs.all_pix2world([[c - x_arcsec / scale, c + y_arcsec / scale]], 0)
    return float(world[0, 0]), float(world[0, 1])


def build_record(
    *,
    alert_id: str,
    candidate_id: str,
    ra: float,
    dec: float,
    mjd: float,
    images: NDArray[np.floating],
    bands: Sequence[str] = spec.BANDS,
    pixel_scale_arcsec: float = spec.PIXEL_SCALE_ARCSEC,
    zeropoint_ab: float = spec.PIXEL_ZEROPOINT_AB,
    z_lens: float | None = None,
    z_lens_err: float | None = None,
    z_source: float | None = None,
    z_source_err: float | None = None,
    transient: TransientSpec | None = None,
    survey: str = "simulation",
    broker: str | None = None,
    upstream_alert_id: str | None = None,
    compress: bool = False,
) -> dict[str, Any]:
    """Build an Avro record (a dict matching ``candidate.avsc``) from arrays.

    Parameters
    ----------
    alert_id, candidate_id : str
    ra, dec : float
        Cutout centre, degrees.
    mjd : float
        Alert time, MJD (TAI), days.
    images : ndarray, shape (n_bands, ny, nx)
        Pixels per band, ``[row, col]``, north up east left, at ``zeropoint_ab``.
    bands : sequence of str
        Band of each image.
    pixel_scale_arcsec, zeropoint_ab : float
    z_lens, z_lens_err, z_source, z_source_err : float or None
    transient : TransientSpec or None
    survey, broker, upstream_alert_id : str or None
        Provenance.
    compress : bool
        gzip the FITS cutouts.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[0] != len(bands):
        raise ValueError(f"images shape {images.shape} does not match bands {tuple(bands)}")
    cutouts = [
        {
            "band": band,
            "stampData": cutout_fits(
                images[i],
                ra=ra,
                dec=dec,
                band=band,
                pixel_scale_arcsec=pixel_scale_arcsec,
                zeropoint_ab=zeropoint_ab,
                compress=compress,
            ),
        }
        for i, band in enumerate(bands)
    ]
    dia = None
    if transient is not None:
        t_ra, t_dec = offset_to_sky_wcs(
            transient.x_arcsec,
            transient.y_arcsec,
            ra=ra,
            dec=dec,
            size=images.shape[-1],
            scale=pixel_scale_arcsec,
        )
        dia = {
            "diaSourceId": int(transient.dia_source_id),
            "ra": t_ra,
            "dec": t_dec,
            "midpointMjdTai": float(transient.mjd),
            "band": transient.band,
            "psfFlux": float(transient.psf_flux_njy),
            "psfFluxErr": transient.psf_flux_err_njy,
        }
    return {
        "alertId": alert_id,
        "candidateId": candidate_id,
        "ra": float(ra),
        "dec": float(dec),
        "mjd": float(mjd),
        "cutouts": cutouts,
        "zLens": z_lens,
        "zLensErr": z_lens_err,
        "zSource": z_source,
        "zSourceErr": z_source_err,
        "diaSource": dia,
        "provenance": {"survey": survey, "broker": broker, "upstreamAlertId": upstream_alert_id},
    }


def encode_record(record: Mapping[str, Any], *, schema_version: str = LATEST_VERSION) -> bytes:
    """Serialise a record as one Confluent wire-format message (schema id + schemaless Avro)."""
    schema = load_schema(schema_version)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema.parsed, dict(record))
    return frame_wire(schema.registry_id, buffer.getvalue())


def encode_alert(*, schema_version: str = LATEST_VERSION, **fields: Any) -> bytes:
    """Build (see :func:`build_record` for the keyword arguments) and encode one alert."""
    return encode_record(build_record(**fields), schema_version=schema_version)


def write_container(
    records: Iterable[Mapping[str, Any]],
    path: str | Path | io.BytesIO,
    *,
    schema_version: str = LATEST_VERSION,
    codec: str = "deflate",
) -> int:
    """Write records to an Avro object container file (an archive); return how many.

    Parameters
    ----------
    records : iterable of mapping
        Avro records (e.g. from :func:`build_record`).
    path : str, Path or BytesIO
        Destination file, or an in-memory buffer.
    schema_version : str
    codec : {"deflate", "null"}
        Block compression; both are read by :func:`lenscast.consumer.framing.split_container`.
    """
    schema = load_schema(schema_version)
    count = 0

    def counted() -> Iterable[dict[str, Any]]:
        nonlocal count
        for record in records:
            count += 1
            yield dict(record)

    if isinstance(path, io.BytesIO):
        fastavro.writer(path, schema.parsed, counted(), codec=codec)
    else:
        with open(path, "wb") as out:
            fastavro.writer(out, schema.parsed, counted(), codec=codec)
    return count

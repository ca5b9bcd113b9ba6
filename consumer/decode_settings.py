"""The decoder's limits and the model's input contract, as one frozen settings object.

Its own module, so that the decoder (:mod:`lenscast.consumer.decoding`), the cutout reader
(:mod:`lenscast.consumer.cutouts`) and the settings read from the environment
(:mod:`lenscast.consumer.settings`) can all name it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lenscast.consumer.avro_bounds import DEFAULT_MAX_ENTRIES
from lenscast.model import parameter_spec as spec

#: How far from the lens a transient may be, in Einstein radii, to be taken as a lensed image.
#: Images of an SIE + shear lie within about 2 theta_E of its centre; the decoder applies this
#: to the largest theta_E of the parameter spec (a transient 15" from the cutout centre at most,
#: beyond the 5.4" half-width of a 64 x 64 cutout at 0.168"), the physics step to the
#: predicted theta_E (``transient.far_from_lens``).
TRANSIENT_REACH_THETA_E = 3.0


@dataclass(frozen=True)
class DecodeSettings:
    """Limits and the model's input contract applied to every alert.

    Attributes
    ----------
    max_packet_bytes : int
        Largest accepted message, bytes (a griz 64x64 float32 alert is about 90 kB).
    max_cutout_bytes : int
        Largest accepted FITS cutout after any gzip decompression, bytes.
    max_cutout_pixels : int
        Largest accepted ``NAXIS1 * NAXIS2`` of a cutout.
    allow_resample : bool
        Resample cutouts of another size, pixel scale or orientation (or offset bands) onto the
        nominal grid; when false such cutouts are rejected with the matching reason.
    bands : tuple of str
        Required bands, in the model's channel order.
    size_pix : int
        Cutout side the model takes, pixels.
    pixel_scale_arcsec : float
        Pixel scale the model takes, arcsec per pixel.
    zeropoint_ab : float
        AB zeropoint of the model's pixel values.
    pixel_scale_rtol : float
        Relative pixel-scale difference accepted without resampling.
    max_rotation_deg : float
        Rotation from north-up east-left (after an exact flip/quarter turn) accepted without
        resampling, degrees.
    max_band_offset_pix : float
        Offset of a band's centre from the first band's accepted without resampling, pixels.
    max_centre_offset_pix : float
        Offset of the alert's ra/dec from the cutout centre accepted, pixels.
    max_transient_offset_arcsec : float
        Farthest a transient may be from the cutout centre, arcsec: :data:`TRANSIENT_REACH_THETA_E`
        times the largest Einstein radius of the parameter spec (the mass model comes from the
        cutout; the transient's position is known on the sky even outside it).
    max_redshift : float
        Largest accepted redshift.
    max_entries : int
        Largest accepted number of array entries in a record (cutouts: 4 are used), checked
        before the record is decoded (:mod:`lenscast.consumer.avro_bounds`).
    """

    max_packet_bytes: int = 4 * 2**20
    max_cutout_bytes: int = 1 * 2**20
    max_cutout_pixels: int = 512 * 512
    allow_resample: bool = False
    bands: tuple[str, ...] = field(default=spec.BANDS)
    size_pix: int = spec.CUTOUT_SIZE_PIX
    pixel_scale_arcsec: float = spec.PIXEL_SCALE_ARCSEC
    zeropoint_ab: float = spec.PIXEL_ZEROPOINT_AB
    pixel_scale_rtol: float = 0.01
    max_rotation_deg: float = 0.25
    max_band_offset_pix: float = 0.25
    max_centre_offset_pix: float = 1.0
    max_transient_offset_arcsec: float = TRANSIENT_REACH_THETA_E * spec.parameter("theta_e").high
    max_redshift: float = 20.0
    max_entries: int = DEFAULT_MAX_ENTRIES

"""Cutout validation and standardisation: FITS stamps in, the model's griz pixel cube out.

The network expects ``(4, 64, 64)`` griz pixels at 0.168"/px, north up and east left (FITS
``CD = diag(-s, +s)``: column index grows to the west, row index to the north), in calibrated
coadd flux with AB zeropoint 27 (:mod:`lenscast.model.parameter_spec`). Each band's geometry is read
from its own WCS, never assumed:

* pixel scale and orientation come from the local Jacobian of the WCS at the cutout centre,
  measured in the tangent plane (``x = dRA cos Dec`` east, ``y = dDec`` north);
* a cutout whose orientation is a pure flip / 90-degree rotation of the expected one (within
  ``max_rotation_deg``) is re-oriented exactly by re-indexing;
* another size, pixel scale, orientation or a band offset from the reference band is resampled
  onto the nominal grid (bilinear, flux per pixel scaled by the pixel-area ratio) when
  ``allow_resample`` is set, otherwise rejected with the matching reason;
* values are converted to zeropoint 27: ``flux * 10**(0.4 * (27 - ZP))``.

Sky offsets of a position from the cutout centre (the transient's image position) come from
the same WCS and the same re-orientation, so they are in the frame the model predicts in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import map_coordinates

from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_fits import FitsCutout, read_cutout
from lenscast.consumer.cutouts_wcs import offsets_to_sky, sky_to_offsets
from lenscast.consumer.decode_settings import DecodeSettings

#: Expected orientation: d(x, y)/d(col, row) = s * NOMINAL (east left, north up).
NOMINAL = np.array([[-1.0, 0.0], [0.0, 1.0]])
#: The 8 flips / quarter-turn rotations of a pixel grid (signed permutation matrices).
_DIHEDRAL = tuple(
    np.array(m, dtype=float)
    for m in (
        [[1, 0], [0, 1]], [[-1, 0], [0, 1]], [[1, 0], [0, -1]], [[-1, 0], [0, -1]],
        [[0, 1], [1, 0]], [[0, -1], [1, 0]], [[0, 1], [-1, 0]], [[0, -1], [-1, 0]],
    )
)  # fmt: skip


@dataclass(frozen=True)
class BandGeometry:
    """Where one cutout lies on the sky, from its WCS.

    Attributes
    ----------
    centre_ra, centre_dec : float
        Sky position of the image centre (pixel ``((nx-1)/2, (ny-1)/2)``, 0-based), degrees.
    jacobian : ndarray, shape (2, 2)
        ``d(x, y)/d(col, row)`` at the centre, arcsec per pixel (x east, y north).
    scale : float
        Pixel scale ``sqrt(|det J|)``, arcsec per pixel.
    """

    centre_ra: float
    centre_dec: float
    jacobian: NDArray[np.float64]
    scale: float


def band_geometry(cut: FitsCutout) -> BandGeometry:
    """Measure the centre, Jacobian and pixel scale of a cutout from its WCS.

    Raises
    ------
    AlertRejected
        ``cutout.no_wcs`` when the WCS gives no finite, non-degenerate mapping at the centre.
    """
    ny, nx = cut.pixels.shape
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    cols = np.array([cx, cx + 0.5, cx - 0.5, cx, cx])
    rows = np.array([cy, cy, cy, cy + 0.5, cy - 0.5])
    try:
        ra, dec = cut.wcs.pix_to_world(cols, rows)
    except Exception as exc:  # wcslib may refuse a hostile but parseable WCS here
        raise AlertRejected("cutout.no_wcs", f"WCS fails at the centre: {exc!r}"[:300]) from exc
    # Five points: plain Python floats from here on (cheaper than NumPy calls on tiny arrays).
    ra0, dec0 = float(ra[0]), float(dec[0])
    if not (np.isfinite(ra).all() and np.isfinite(dec).all() and abs(dec0) <= 90.0):
        raise AlertRejected("cutout.no_wcs", "WCS gives no finite sky position at the centre")
    x, y = sky_to_offsets(ra[1:], dec[1:], ra0=ra0, dec0=dec0)
    (x0, x1, x2, x3), (y0, y1, y2, y3) = x.tolist(), y.tolist()
    j11, j12, j21, j22 = x0 - x1, x2 - x3, y0 - y1, y2 - y3
    det = j11 * j22 - j12 * j21
    scale = math.sqrt(abs(det)) if math.isfinite(det) else 0.0
    if not scale > 0.0 or not math.isfinite(scale):
        raise AlertRejected("cutout.no_wcs", "degenerate WCS (zero or undefined pixel scale)")
    return BandGeometry(ra0 % 360.0, dec0, np.array([[j11, j12], [j21, j22]]), scale)


def reorientation(geom: BandGeometry, max_rotation_deg: float) -> NDArray | None:
    """Signed permutation ``T`` with ``J T ~ s NOMINAL``, or None if no flip/rotation fits.

    ``T`` maps output pixel offsets to input pixel offsets, ``p - c_in = T (q - c_out)``.
    """
    unit = geom.jacobian / geom.scale
    tol = math.sin(math.radians(max_rotation_deg)) + 1e-9
    for d in _DIHEDRAL:
        if np.max(np.abs(unit - d)) <= tol:
            return np.asarray(d.T @ NOMINAL)
    return None


def reorient(pixels: NDArray, t: NDArray) -> NDArray:
    """Re-index ``pixels`` so that output offsets ``q`` read input ``p = T q`` (exact)."""
    if t[0, 0] == 1.0 and t[1, 1] == 1.0:  # a signed permutation: the identity
        return pixels
    ny, nx = pixels.shape
    ny_o, nx_o = (nx, ny) if t[0, 0] == 0 else (ny, nx)
    qy, qx = np.indices((ny_o, nx_o), dtype=float)
    dq = np.stack([qx - (nx_o - 1) / 2.0, qy - (ny_o - 1) / 2.0])
    dp = np.tensordot(t, dq, axes=1)
    cols = np.rint(dp[0] + (nx - 1) / 2.0).astype(np.intp)
    rows = np.rint(dp[1] + (ny - 1) / 2.0).astype(np.intp)
    return pixels[rows, cols]


def resample(
    cut: FitsCutout, geom: BandGeometry, *, ra0: float, dec0: float, size: int, scale: float
) -> NDArray:
    """Bilinearly resample a cutout onto the nominal ``size x size`` grid centred on ``ra0, dec0``.

    Values are flux per pixel, so each is multiplied by the pixel-area ratio
    ``(scale / geom.scale)**2``. Bilinear interpolation smooths the image slightly and does not
    band-limit when shrinking; the resample path is for convenience, not photometry.

    Raises
    ------
    AlertRejected
        ``cutout.footprint`` if the input does not cover the output grid.
    """
    q = np.arange(size) - (size - 1) / 2.0
    qx, qy = np.meshgrid(q, q)
    ra, dec = offsets_to_sky(-scale * qx, scale * qy, ra0=ra0, dec0=dec0)
    try:
        cols, rows = cut.wcs.world_to_pix(ra, dec)
    except Exception as exc:  # wcslib may fail to invert a hostile distortion
        raise AlertRejected("cutout.no_wcs", f"cannot invert the WCS: {exc!r}"[:300]) from exc
    ny, nx = cut.pixels.shape
    inside = (cols >= -0.5) & (cols <= nx - 0.5) & (rows >= -0.5) & (rows <= ny - 0.5)
    if not np.all(inside):
        raise AlertRejected("cutout.footprint", f"{int(np.sum(~inside))} output pixels uncovered")
    coords = [np.clip(rows, 0, ny - 1), np.clip(cols, 0, nx - 1)]
    values = map_coordinates(cut.pixels, coords, order=1, mode="nearest")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is caught as non-finite later
        return values.reshape(size, size) * (scale / geom.scale) ** 2


@dataclass(frozen=True)
class StandardCutouts:
    """Cutouts on the model's grid, with the frame needed to place sky positions on it.

    Attributes
    ----------
    pixels : ndarray, shape (n_bands, size, size), float32
        Bands in the settings' order, flux at AB zeropoint 27, north up east left.
    pixel_scale_arcsec : float
        Pixel scale of ``pixels``, arcsec per pixel.
    centre_ra, centre_dec : float
        Sky position of the grid centre, degrees.
    resampled : bool
        Whether the pixels were resampled (else only re-indexed).
    """

    pixels: NDArray[np.float32]
    pixel_scale_arcsec: float
    centre_ra: float
    centre_dec: float
    resampled: bool
    _reference: FitsCutout
    _transform: NDArray

    def offsets_arcsec(self, ra: float, dec: float) -> tuple[float, float]:
        """Offsets ``(x, y)`` of a sky position from the grid centre, arcsec (x east, y north).

        Measured through the reference band's WCS and the same re-orientation as the pixels,
        so the result is in the model's pixel frame: ``x = -s (col - c)``, ``y = s (row - c)``.
        """
        if self.resampled:
            x, y = sky_to_offsets(ra, dec, ra0=self.centre_ra, dec0=self.centre_dec)
            return float(x), float(y)
        cols, rows = self._reference.wcs.world_to_pix(np.array([ra]), np.array([dec]))
        ny, nx = self._reference.pixels.shape
        dp = np.array([cols[0] - (nx - 1) / 2.0, rows[0] - (ny - 1) / 2.0])
        dq = self._transform.T @ dp  # T is orthogonal: q = T^T p
        s = self.pixel_scale_arcsec
        return float(-s * dq[0]), float(s * dq[1])

    def to_sky(self, x: NDArray | float, y: NDArray | float) -> tuple[NDArray, NDArray]:
        """RA, Dec (degrees, ICRS) of offsets ``(x, y)`` (arcsec, x east, y north): the inverse
        of :meth:`offsets_arcsec`, through the reference band's WCS.

        Parameters
        ----------
        x, y : float or ndarray
            Offsets from the grid centre in the model's pixel frame, arcsec.

        Returns
        -------
        ra, dec : ndarray
            Same shape as ``x``; RA in [0, 360), degrees.
        """
        x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if self.resampled:
            ra, dec = offsets_to_sky(x_arr, y_arr, ra0=self.centre_ra, dec0=self.centre_dec)
            return np.asarray(ra), np.asarray(dec)
        s = self.pixel_scale_arcsec
        dq = np.stack([-x_arr.ravel() / s, y_arr.ravel() / s])
        dp = self._transform @ dq  # q = T^T p, so p = T q
        ny, nx = self._reference.pixels.shape
        ra, dec = self._reference.wcs.pix_to_world(dp[0] + (nx - 1) / 2.0, dp[1] + (ny - 1) / 2.0)
        return (np.asarray(ra) % 360.0).reshape(x_arr.shape), np.asarray(dec).reshape(x_arr.shape)


def _grid_key(cut: FitsCutout) -> tuple[Any, ...]:
    """Identity of a cutout's pixel grid: its WCS mapping and its shape."""
    return (cut.wcs.grid_id, cut.pixels.shape)


def _read_band(band: str, data: Any, settings: DecodeSettings) -> FitsCutout:
    if not isinstance(data, bytes | bytearray):
        raise AlertRejected("cutout.not_fits", f"band {band}: stampData is not bytes")
    try:
        return read_cutout(
            bytes(data), max_bytes=settings.max_cutout_bytes, max_pixels=settings.max_cutout_pixels
        )
    except AlertRejected as exc:
        raise AlertRejected(exc.reason, f"band {band}: {exc.detail}") from exc


def _needs_resample(
    band: str,
    cut: FitsCutout,
    geom: BandGeometry,
    transform: NDArray | None,
    ref: BandGeometry,
    settings: DecodeSettings,
) -> AlertRejected | None:
    """Why this band cannot be used by re-indexing alone (None when it can)."""
    if abs(geom.scale / settings.pixel_scale_arcsec - 1.0) > settings.pixel_scale_rtol:
        return AlertRejected(
            "cutout.pixel_scale",
            f'band {band}: {geom.scale:.5f}"/px, want {settings.pixel_scale_arcsec}"/px',
        )
    if transform is None:
        return AlertRejected(
            "cutout.orientation",
            f"band {band}: WCS not a flip/rotation of north-up east-left, J={geom.jacobian}",
        )
    n = settings.size_pix
    if cut.pixels.shape != (n, n):
        return AlertRejected("cutout.bad_shape", f"band {band}: {cut.pixels.shape}, want {n}x{n}")
    if geom is ref:
        return None
    dx, dy = sky_to_offsets(geom.centre_ra, geom.centre_dec, ra0=ref.centre_ra, dec0=ref.centre_dec)
    offset_pix = math.hypot(float(dx), float(dy)) / geom.scale
    if not offset_pix <= settings.max_band_offset_pix:
        return AlertRejected(
            "cutout.misaligned", f"band {band}: centre {offset_pix:.2f} px from the reference band"
        )
    return None


def standardise_cutouts(
    cutouts: Sequence[Mapping[str, Any]], settings: DecodeSettings
) -> StandardCutouts:
    """Validate the alert's cutouts and put them on the model's grid.

    Parameters
    ----------
    cutouts : sequence of mapping
        Avro ``cutout`` records: ``{"band": str, "stampData": bytes}``. Bands not in
        ``settings.bands`` are ignored.
    settings : DecodeSettings
        Expected bands, size and pixel scale, tolerances and limits.

    Returns
    -------
    StandardCutouts

    Raises
    ------
    AlertRejected
        ``cutout.missing_band``, ``cutout.duplicate_band``, any reason of
        :func:`lenscast.consumer.cutouts_fits.read_cutout` (``cutout.sky_frame`` and
        ``cutout.no_wcs`` among them), ``cutout.bad_shape``,
        ``cutout.pixel_scale``, ``cutout.orientation``, ``cutout.misaligned`` (without
        ``allow_resample``), ``cutout.footprint`` (with it), ``cutout.non_finite``.
    """
    stamps: dict[str, Any] = {}
    for record in cutouts:
        band = record["band"]
        if band not in settings.bands:
            continue
        if band in stamps:
            raise AlertRejected("cutout.duplicate_band", f"band {band} appears twice")
        stamps[band] = record["stampData"]
    missing = [b for b in settings.bands if b not in stamps]
    if missing:
        raise AlertRejected("cutout.missing_band", f"missing bands {','.join(missing)}")

    reads = {band: _read_band(band, stamps[band], settings) for band in settings.bands}
    geoms: dict[str, BandGeometry] = {}
    shared: dict[tuple[Any, ...], BandGeometry] = {}
    for band, cut in reads.items():
        key = _grid_key(cut)
        if key in shared:  # bands on the same grid (the usual case): measure it once
            geoms[band] = shared[key]
            continue
        try:
            geoms[band] = band_geometry(cut)
        except AlertRejected as exc:
            raise AlertRejected(exc.reason, f"band {band}: {exc.detail}") from exc
        shared[key] = geoms[band]
    ref_band = settings.bands[0]
    ref = geoms[ref_band]
    by_grid: dict[int, NDArray | None] = {}  # one search per distinct grid (shared objects)
    for g in geoms.values():
        if id(g) not in by_grid:
            by_grid[id(g)] = reorientation(g, settings.max_rotation_deg)
    transforms = {b: by_grid[id(g)] for b, g in geoms.items()}
    problem = None
    for band in settings.bands:
        problem = _needs_resample(band, reads[band], geoms[band], transforms[band], ref, settings)
        if problem is not None:
            break
    if problem is not None and not settings.allow_resample:
        raise problem

    n = settings.size_pix
    cube = np.empty((len(settings.bands), n, n), dtype=np.float64)
    transform = np.eye(2)
    if problem is None:
        scale = ref.scale
        for i, band in enumerate(settings.bands):
            t = transforms[band]
            assert t is not None  # checked by _needs_resample
            cube[i] = reorient(reads[band].pixels, t)
        transform = np.asarray(transforms[ref_band])
    else:
        scale = settings.pixel_scale_arcsec
        for i, band in enumerate(settings.bands):
            cube[i] = resample(
                reads[band],
                geoms[band],
                ra0=ref.centre_ra,
                dec0=ref.centre_dec,
                size=n,
                scale=scale,
            )
    # Hostile values may overflow here; the finite check below turns that into a rejection.
    with np.errstate(over="ignore", invalid="ignore"):
        for i, band in enumerate(settings.bands):
            cube[i] *= 10.0 ** (0.4 * (settings.zeropoint_ab - reads[band].zeropoint_ab))
        pixels = cube.astype(np.float32)
    finite = np.isfinite(pixels)
    if not finite.all():
        band = settings.bands[int(np.argmin(finite.reshape(len(settings.bands), -1).all(axis=1)))]
        detail = f"band {band}: pixels overflow float32 after unit conversion"
        raise AlertRejected("cutout.non_finite", detail)
    return StandardCutouts(
        pixels=pixels,
        pixel_scale_arcsec=scale,
        centre_ra=ref.centre_ra,
        centre_dec=ref.centre_dec,
        resampled=problem is not None,
        _reference=reads[ref_band],
        _transform=np.asarray(transform),
    )

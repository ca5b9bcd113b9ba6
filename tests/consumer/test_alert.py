"""Encode -> decode round trips, and the geometry and units of cutouts.

Checks that what :mod:`lenscast.tools.alert_encoding` writes,
:func:`lenscast.consumer.decoding.decode_alert` reads back exactly (pixels bit for bit, fields, the
transient's offset from the cutout centre), whatever the framing, compression, orientation of the
WCS or declared zeropoint; that offsets agree with astropy's separations and position angles; and
that resampling keeps flux and position.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts import NOMINAL, reorient
from lenscast.consumer.decoding import DecodeSettings, decode_alert
from lenscast.consumer.framing import read_alert_file, split_container
from lenscast.tools.alert_encoding import (
    TransientSpec,
    build_record,
    cutout_header,
    encode_alert,
    encode_record,
    write_container,
)

SCALE = 0.168


def _images(seed: int = 0, n: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).normal(1.0, 0.3, (4, n, n)).astype(np.float32)


def _fits_bytes(image: np.ndarray, header: fits.Header) -> bytes:
    buffer = io.BytesIO()
    fits.PrimaryHDU(data=np.asarray(image, ">f4"), header=header).writeto(buffer)
    return buffer.getvalue()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    ra=st.floats(0.0, 359.9999),
    dec=st.floats(-89.5, 89.5),
    x=st.floats(-5.0, 5.0),
    y=st.floats(-5.0, 5.0),
    z_lens=st.one_of(st.none(), st.floats(0.05, 1.5)),
    seed=st.integers(0, 2**16),
    compress=st.booleans(),
)
def test_round_trip(
    ra: float, dec: float, x: float, y: float, z_lens: float | None, seed: int, compress: bool
) -> None:
    images = _images(seed)
    raw = encode_alert(
        alert_id=f"rt-{seed}",
        candidate_id="c",
        ra=ra,
        dec=dec,
        mjd=61000.5,
        images=images,
        z_lens=z_lens,
        z_lens_err=None if z_lens is None else 0.05,
        z_source=None if z_lens is None else z_lens + 1.0,
        transient=TransientSpec(5, x, y, 61000.4, "z", -12.5, 3.0),
        survey="HSC",
        broker="ALeRCE",
        upstream_alert_id="ZTF-xyz",
        compress=compress,
    )
    alert = decode_alert(raw)
    assert alert.cutouts.dtype == np.float32
    np.testing.assert_array_equal(alert.cutouts, images)
    assert (alert.alert_id, alert.candidate_id, alert.schema_version) == (f"rt-{seed}", "c", "1.0")
    assert (alert.ra, alert.dec, alert.mjd) == (ra, dec, 61000.5)
    assert alert.pixel_scale_arcsec == pytest.approx(SCALE, rel=1e-9)
    assert alert.z_lens == z_lens
    assert alert.z_source == (None if z_lens is None else z_lens + 1.0)
    assert (alert.provenance.survey, alert.provenance.broker) == ("HSC", "ALeRCE")
    assert alert.provenance.upstream_alert_id == "ZTF-xyz"
    t = alert.transient
    assert t is not None
    assert (t.dia_source_id, t.band, t.mjd, t.flux, t.flux_err) == (5, "z", 61000.4, -12.5, 3.0)
    assert t.x_arcsec == pytest.approx(x, abs=1e-7)
    assert t.y_arcsec == pytest.approx(y, abs=1e-7)


@pytest.mark.parametrize(("x", "y"), [(1.0, 0.0), (0.0, 1.0), (-3.2, 4.1), (5.0, -5.0)])
@pytest.mark.parametrize("dec", [0.0, 45.0, -70.0, 88.0])
def test_transient_offset_matches_astropy_separation(x: float, y: float, dec: float) -> None:
    """x east and y north of the centre: distance = separation, atan2(x, y) = position angle."""
    record = build_record(
        alert_id="sep",
        candidate_id="c",
        ra=359.999,
        dec=dec,
        mjd=61000.0,
        images=_images(),
        transient=TransientSpec(1, x, y, 61000.0, "i", 1.0),
    )
    alert = decode_alert(encode_record(record))
    assert alert.transient is not None
    centre = SkyCoord(record["ra"] * u.deg, record["dec"] * u.deg)
    point = SkyCoord(record["diaSource"]["ra"] * u.deg, record["diaSource"]["dec"] * u.deg)
    tx, ty = alert.transient.x_arcsec, alert.transient.y_arcsec
    assert math.hypot(tx, ty) == pytest.approx(centre.separation(point).arcsec, abs=1e-6)
    pa = math.degrees(math.atan2(tx, ty)) % 360.0
    assert pa == pytest.approx(centre.position_angle(point).deg % 360.0, abs=1e-5)
    if abs(dec) > 45.0:
        return
    # To first order the convention is x = dRA cos(Dec), y = dDec.
    dra = ((record["diaSource"]["ra"] - record["ra"] + 180.0) % 360.0 - 180.0) * 3600.0
    assert tx == pytest.approx(dra * math.cos(math.radians(dec)), abs=1e-3)
    assert ty == pytest.approx((record["diaSource"]["dec"] - dec) * 3600.0, abs=1e-3)


def test_container_round_trip_keeps_record_bytes(tmp_path: Any) -> None:
    records = [
        build_record(
            alert_id=f"a{i}", candidate_id="c", ra=10.0 * i, dec=-5.0, mjd=61000.0,
            images=_images(i), compress=bool(i % 2),
        )
        for i in range(5)
    ]  # fmt: skip
    for codec in ("null", "deflate"):
        path = tmp_path / f"archive-{codec}.avro"
        assert write_container(records, path, codec=codec) == 5
        messages = read_alert_file(path)
        assert messages == [encode_record(r) for r in records]
        assert [decode_alert(m).alert_id for m in messages] == [f"a{i}" for i in range(5)]
        assert split_container(path.read_bytes()) == messages


def test_single_record_container_decodes_directly() -> None:
    buffer = io.BytesIO()
    record = build_record(alert_id="one", candidate_id="c", ra=1.0, dec=1.0, mjd=61000.0,
                          images=_images())  # fmt: skip
    write_container([record], buffer)
    assert decode_alert(buffer.getvalue()).alert_id == "one"


_DIHEDRAL = [
    np.array(m, float)
    for m in ([[1, 0], [0, 1]], [[-1, 0], [0, 1]], [[1, 0], [0, -1]], [[-1, 0], [0, -1]],
              [[0, 1], [1, 0]], [[0, -1], [1, 0]], [[0, 1], [-1, 0]], [[0, -1], [-1, 0]])
]  # fmt: skip


@pytest.mark.parametrize("index", range(8))
def test_flipped_and_rotated_cutouts_are_reoriented_exactly(index: int) -> None:
    """A cutout stored with any flip / quarter turn (and a WCS saying so) decodes identically."""
    d = _DIHEDRAL[index]
    images = _images(index)
    ra, dec = 200.0, 30.0
    reference = encode_alert(
        alert_id="o", candidate_id="c", ra=ra, dec=dec, mjd=61000.0, images=images,
        transient=TransientSpec(1, 2.0, -1.0, 61000.0, "g", 1.0),
    )  # fmt: skip
    record = build_record(
        alert_id="o", candidate_id="c", ra=ra, dec=dec, mjd=61000.0, images=images,
        transient=TransientSpec(1, 2.0, -1.0, 61000.0, "g", 1.0),
    )  # fmt: skip
    # The decoder reads output q from stored p = c + D (q - c), so store reorient(images, D^T)
    # with Jacobian s * NOMINAL @ D^T (then J D = s * NOMINAL).
    t = d.T
    for i, cutout in enumerate(record["cutouts"]):
        stored = reorient(images[i], t)
        header = cutout_header(shape=stored.shape, ra=ra, dec=dec, pixel_scale_arcsec=SCALE,
                               band=cutout["band"])  # fmt: skip
        cd = SCALE / 3600.0 * (NOMINAL @ t)
        for (a, b), value in np.ndenumerate(cd):
            header[f"CD{a + 1}_{b + 1}"] = value
        cutout["stampData"] = _fits_bytes(stored, header)
    alert = decode_alert(encode_record(record))
    expected = decode_alert(reference)
    np.testing.assert_array_equal(alert.cutouts, images)
    assert alert.transient is not None
    assert expected.transient is not None
    assert alert.transient.x_arcsec == pytest.approx(2.0, abs=1e-7)
    assert alert.transient.y_arcsec == pytest.approx(-1.0, abs=1e-7)


def test_small_rotation_within_tolerance_is_accepted_as_is() -> None:
    images = _images(1)
    record = build_record(alert_id="r", candidate_id="c", ra=5.0, dec=5.0, mjd=61000.0,
                          images=images)  # fmt: skip
    angle = math.radians(0.1)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    cd = SCALE / 3600.0 * (rot @ NOMINAL)
    for cutout in record["cutouts"]:
        header = cutout_header(shape=(64, 64), ra=5.0, dec=5.0, pixel_scale_arcsec=SCALE,
                               band=cutout["band"])  # fmt: skip
        for (a, b), value in np.ndenumerate(cd):
            header[f"CD{a + 1}_{b + 1}"] = value
        cutout["stampData"] = _fits_bytes(images[0], header)
    alert = decode_alert(encode_record(record))
    np.testing.assert_array_equal(alert.cutouts[0], images[0])
    with pytest.raises(AlertRejected) as info:
        decode_alert(encode_record(record), settings=DecodeSettings(max_rotation_deg=0.05))
    assert info.value.reason == "cutout.orientation"


@pytest.mark.parametrize(
    ("cards", "factor"),
    [
        ({"MAGZERO": 30.0}, 10 ** (0.4 * 3.0)),  # values at ZP 30 are 10^1.2 larger
        ({"MAGZERO": None, "FLUXMAG0": 10 ** (0.4 * 27.0)}, 1.0),  # HSC/LSST pipeline keyword
        ({"MAGZERO": None, "BUNIT": "nJy"}, 10 ** (0.4 * (31.4 - 27.0))),
        ({"MAGZERO": 23.9, "BUNIT": "uJy"}, 10 ** (0.4 * (23.9 - 27.0))),
        ({"MAGZERO": 25.0, "BUNIT": "adu"}, 10 ** (0.4 * (25.0 - 27.0))),
    ],
)
def test_zeropoint_conversion(cards: dict[str, Any], factor: float) -> None:
    images = _images(2)
    record = build_record(alert_id="zp", candidate_id="c", ra=5.0, dec=5.0, mjd=61000.0,
                          images=images)  # fmt: skip
    for i, cutout in enumerate(record["cutouts"]):
        header = cutout_header(shape=(64, 64), ra=5.0, dec=5.0, pixel_scale_arcsec=SCALE,
                               band=cutout["band"])  # fmt: skip
        for key, value in cards.items():
            if value is None:
                del header[key]
            else:
                header[key] = value
        cutout["stampData"] = _fits_bytes(images[i] * factor, header)
    alert = decode_alert(encode_record(record))
    np.testing.assert_allclose(alert.cutouts, images, rtol=1e-5, atol=1e-6)


def _gaussian(
    n: int, scale: float, *, x0: float, y0: float, sigma: float, flux: float
) -> np.ndarray:
    """A 2-D Gaussian in flux per pixel, north up east left, centred at offset (x0, y0) arcsec."""
    q = np.arange(n) - (n - 1) / 2.0
    x = -q[None, :] * scale
    y = q[:, None] * scale
    return (
        flux
        * scale**2
        / (2 * np.pi * sigma**2)
        * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    )


@pytest.mark.parametrize(("n", "scale"), [(128, 0.084), (96, 0.2), (65, 0.168), (80, 0.168)])
def test_resampling_keeps_flux_and_position(n: int, scale: float) -> None:
    """Another pixel scale or size: rejected by default, else resampled to 64 x 64 at 0.168"."""
    image = _gaussian(n, scale, x0=0.7, y0=-0.4, sigma=0.6, flux=100.0).astype(np.float32)
    raw = encode_alert(
        alert_id="rs", candidate_id="c", ra=150.0, dec=2.0, mjd=61000.0,
        images=np.stack([image] * 4), pixel_scale_arcsec=scale,
        transient=TransientSpec(1, 0.7, -0.4, 61000.0, "i", 1.0),
    )  # fmt: skip
    with pytest.raises(AlertRejected) as info:
        decode_alert(raw)
    assert info.value.reason == ("cutout.bad_shape" if scale == SCALE else "cutout.pixel_scale")
    alert = decode_alert(raw, settings=DecodeSettings(allow_resample=True))
    assert alert.cutouts.shape == (4, 64, 64)
    assert alert.pixel_scale_arcsec == SCALE
    expected = _gaussian(64, SCALE, x0=0.7, y0=-0.4, sigma=0.6, flux=100.0)
    got = alert.cutouts[0]
    assert got.sum() == pytest.approx(expected.sum(), rel=0.02)
    q = np.arange(64) - 31.5
    cx = float(np.sum(got * -q[None, :] * SCALE) / got.sum())
    cy = float(np.sum(got * q[:, None] * SCALE) / got.sum())
    assert (cx, cy) == pytest.approx((0.7, -0.4), abs=0.01)
    assert alert.transient is not None
    assert (alert.transient.x_arcsec, alert.transient.y_arcsec) == pytest.approx((0.7, -0.4))


def test_resampling_a_rotated_cutout() -> None:
    """A 30-degree rotated, larger cutout is resampled onto north-up east-left."""
    scale, n, angle = 0.168, 100, math.radians(30.0)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    # Pixel grid rotated: offsets (x, y) = scale * rot @ NOMINAL @ (q - c).
    q = np.arange(n) - (n - 1) / 2.0
    qx, qy = np.meshgrid(q, q)
    xy = scale * np.einsum("ij,jkl->ikl", rot @ NOMINAL, np.stack([qx, qy]))
    sigma, flux, x0, y0 = 0.5, 50.0, -1.0, 0.8
    image = (
        flux
        * scale**2
        / (2 * np.pi * sigma**2)
        * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * sigma**2))
    )
    record = build_record(alert_id="rot", candidate_id="c", ra=150.0, dec=2.0, mjd=61000.0,
                          images=np.stack([image] * 4))  # fmt: skip
    cd = scale / 3600.0 * (rot @ NOMINAL)
    for cutout in record["cutouts"]:
        header = cutout_header(shape=(n, n), ra=150.0, dec=2.0, pixel_scale_arcsec=scale,
                               band=cutout["band"])  # fmt: skip
        for (a, b), value in np.ndenumerate(cd):
            header[f"CD{a + 1}_{b + 1}"] = value
        cutout["stampData"] = _fits_bytes(image, header)
    with pytest.raises(AlertRejected) as info:
        decode_alert(encode_record(record))
    assert info.value.reason == "cutout.orientation"  # checked before the size
    alert = decode_alert(encode_record(record), settings=DecodeSettings(allow_resample=True))
    expected = _gaussian(64, SCALE, x0=x0, y0=y0, sigma=sigma, flux=flux)
    # Bilinear interpolation of a 3-pixel-wide Gaussian: a few per cent at the peak.
    np.testing.assert_allclose(alert.cutouts[2], expected, atol=0.04 * expected.max())


def test_resampling_refuses_a_footprint_it_cannot_fill() -> None:
    raw = encode_alert(alert_id="fp", candidate_id="c", ra=1.0, dec=1.0, mjd=61000.0,
                       images=_images(0, n=40))  # fmt: skip
    with pytest.raises(AlertRejected) as info:
        decode_alert(raw, settings=DecodeSettings(allow_resample=True))
    assert info.value.reason == "cutout.footprint"


def test_misaligned_band_is_rejected_or_resampled() -> None:
    images = _images(4)
    record = build_record(alert_id="m", candidate_id="c", ra=60.0, dec=-30.0, mjd=61000.0,
                          images=images)  # fmt: skip
    header = cutout_header(shape=(64, 64), ra=60.0, dec=-30.0, pixel_scale_arcsec=SCALE, band="z")
    header["CRPIX1"] = 33.5  # the z band is one pixel off
    record["cutouts"][3]["stampData"] = _fits_bytes(images[3], header)
    with pytest.raises(AlertRejected) as info:
        decode_alert(encode_record(record))
    assert info.value.reason == "cutout.misaligned"
    # Resampling cannot invent the missing edge column.
    with pytest.raises(AlertRejected) as info:
        decode_alert(encode_record(record), settings=DecodeSettings(allow_resample=True))
    assert info.value.reason == "cutout.footprint"
    # A larger z cutout, offset by whole pixels, is resampled exactly onto the common grid.
    stored = np.zeros((66, 66), np.float32)
    stored[1:65, 2:66] = images[3]
    header = cutout_header(shape=(66, 66), ra=60.0, dec=-30.0, pixel_scale_arcsec=SCALE, band="z")
    header["CRPIX1"] = 34.5
    record["cutouts"][3]["stampData"] = _fits_bytes(stored, header)
    alert = decode_alert(encode_record(record), settings=DecodeSettings(allow_resample=True))
    np.testing.assert_allclose(alert.cutouts, images, rtol=1e-5, atol=1e-6)


def test_image_in_first_extension_after_empty_primary() -> None:
    """LSST-style cutouts: empty primary HDU, image and WCS in an IMAGE extension."""
    images = _images(6)
    record = build_record(alert_id="mef", candidate_id="c", ra=20.0, dec=-40.0, mjd=61000.0,
                          images=images)  # fmt: skip
    for i, cutout in enumerate(record["cutouts"]):
        header = cutout_header(shape=(64, 64), ra=20.0, dec=-40.0, pixel_scale_arcsec=SCALE,
                               band=cutout["band"])  # fmt: skip
        primary = fits.PrimaryHDU()
        primary.header["ORIGIN"] = "test"
        buffer = io.BytesIO()
        hdus = [primary, fits.ImageHDU(np.asarray(images[i], ">f4"), header, name="IMAGE")]
        fits.HDUList(hdus).writeto(buffer)
        cutout["stampData"] = buffer.getvalue()
    alert = decode_alert(encode_record(record))
    np.testing.assert_array_equal(alert.cutouts, images)


@pytest.mark.parametrize(
    ("n", "angle_deg", "flip_x", "flip_y"),
    [
        (64, 0.0, False, False),  # north up, east left: the nominal grid
        (64, 0.0, True, False),  # east right: re-indexed, not resampled
        (64, 0.0, False, True),  # north down
        (64, 90.0, False, False),  # a quarter turn
        (64, 0.1, False, False),  # within the rotation tolerance: not resampled
        (100, 30.0, False, False),  # resampled onto the nominal grid
    ],
)
def test_offsets_go_back_to_the_sky_through_the_cutout_wcs(
    n: int, angle_deg: float, flip_x: bool, flip_y: bool
) -> None:
    ra0, dec0 = 150.0, 2.0
    angle = math.radians(angle_deg)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    flips = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0])
    cd = SCALE / 3600.0 * (rot @ NOMINAL @ flips)
    images = _images(0, n=n)
    record = build_record(alert_id="sky", candidate_id="c", ra=ra0, dec=dec0, mjd=61000.0,
                          images=images)  # fmt: skip
    for i, cutout in enumerate(record["cutouts"]):
        header = cutout_header(shape=(n, n), ra=ra0, dec=dec0, pixel_scale_arcsec=SCALE,
                               band=cutout["band"])  # fmt: skip
        for (a, b), value in np.ndenumerate(cd):
            header[f"CD{a + 1}_{b + 1}"] = value
        cutout["stampData"] = _fits_bytes(images[i], header)
    alert = decode_alert(encode_record(record), settings=DecodeSettings(allow_resample=True))
    frame = alert.sky_frame
    rng = np.random.default_rng(3)
    points = SkyCoord(ra0, dec0, unit="deg").directional_offset_by(
        rng.uniform(0, 360, 20) * u.deg, rng.uniform(0, 5, 20) * u.arcsec
    )
    xy = np.array([frame.offsets_arcsec(p.ra.deg, p.dec.deg) for p in points])  # type: ignore[attr-defined]
    ra, dec = frame.to_sky(xy[:, 0], xy[:, 1])
    back = SkyCoord(ra, dec, unit="deg")
    assert back.separation(points).max().arcsec < 1e-6
    # Offsets are east and north: the point 1" east of the centre has x = 1, y = 0.
    east = SkyCoord(ra0, dec0, unit="deg").directional_offset_by(90 * u.deg, 1 * u.arcsec)
    assert frame.offsets_arcsec(east.ra.deg, east.dec.deg) == pytest.approx(  # type: ignore[attr-defined]
        (1.0, 0.0), abs=2e-3
    )

"""Cutout world coordinates: the fast TAN path against astropy/wcslib, and the tangent plane.

:class:`lenscast.consumer.cutouts_wcs.TanWcs` replaces astropy for plain TAN headers on the hot
path, so it must agree with wcslib wherever it is used, and any header it cannot represent exactly
must go to the astropy fallback.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st

from lenscast.consumer.cutouts_fits import _value, parse_cards
from lenscast.consumer.cutouts_wcs import (
    AstropyWcs,
    TanWcs,
    cutout_wcs,
    offsets_to_sky,
    sky_to_offsets,
)


def _header(cards: dict[str, object]) -> tuple[dict[str, object], str]:
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = 64
    header["NAXIS2"] = 64
    for key, value in cards.items():
        header[key] = value
    raw = header.tostring().encode()
    parsed, text, _ = parse_cards(raw)
    return parsed, text


def _tan_cards(ra: float, dec: float, cd: np.ndarray, crpix: tuple[float, float]) -> dict:
    cards: dict[str, object] = {
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": ra, "CRVAL2": dec,
        "CRPIX1": crpix[0], "CRPIX2": crpix[1],
    }  # fmt: skip
    for (i, j), value in np.ndenumerate(cd):
        cards[f"CD{i + 1}_{j + 1}"] = float(value)
    return cards


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    ra=st.floats(0.0, 360.0, exclude_max=True),
    dec=st.floats(-89.9, 89.9),
    angle=st.floats(0.0, 2 * math.pi),
    scale=st.floats(0.01, 2.0),
    flip=st.booleans(),
    crpix=st.tuples(st.floats(-50.0, 100.0), st.floats(-50.0, 100.0)),
)
def test_fast_tan_matches_wcslib(
    ra: float, dec: float, angle: float, scale: float, flip: bool, crpix: tuple[float, float]
) -> None:
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    cd = scale / 3600.0 * rot @ np.diag([-1.0 if flip else 1.0, 1.0])
    cards, text = _header(_tan_cards(ra, dec, cd, crpix))
    fast = cutout_wcs(cards, text)
    assert isinstance(fast, TanWcs)
    reference = WCS(fits.Header.fromstring(text))
    cols = np.array([0.0, 10.5, 63.0, -3.0, crpix[0] - 1.0])
    rows = np.array([0.0, 40.0, 63.0, 70.0, crpix[1] - 1.0])
    ra_f, dec_f = fast.pix_to_world(cols, rows)
    ra_w, dec_w = reference.all_pix2world(cols, rows, 0)
    sep = SkyCoord(ra_f * u.deg, dec_f * u.deg).separation(SkyCoord(ra_w * u.deg, dec_w * u.deg))
    assert np.max(sep.arcsec) < 1e-6 * max(1.0, scale * 100)
    back_c, back_r = fast.world_to_pix(ra_w, dec_w)
    np.testing.assert_allclose(back_c, cols, atol=1e-6)
    np.testing.assert_allclose(back_r, rows, atol=1e-6)


def test_pc_cdelt_form_matches_cd_form() -> None:
    cd = np.array([[-0.168, 0.01], [0.02, 0.168]]) / 3600.0
    cards_cd, text_cd = _header(_tan_cards(10.0, 20.0, cd, (32.5, 32.5)))
    pc_cards = {k: v for k, v in _tan_cards(10.0, 20.0, cd, (32.5, 32.5)).items() if "CD" not in k}
    pc_cards |= {"CDELT1": -0.168 / 3600.0, "CDELT2": 0.168 / 3600.0, "PC1_1": 1.0}
    pc_cards |= {"PC1_2": -0.01 / 0.168, "PC2_1": 0.02 / 0.168, "PC2_2": 1.0}
    cards_pc, text_pc = _header(pc_cards)
    a, b = cutout_wcs(cards_cd, text_cd), cutout_wcs(cards_pc, text_pc)
    assert isinstance(b, TanWcs)
    cols, rows = np.array([0.0, 63.0]), np.array([5.0, 60.0])
    np.testing.assert_allclose(a.pix_to_world(cols, rows), b.pix_to_world(cols, rows), atol=1e-12)


@pytest.mark.parametrize(
    "extra",
    [
        {"A_ORDER": 2, "B_ORDER": 2, "A_2_0": 1e-5, "B_0_2": 1e-5},  # SIP distortion
        {"PV2_1": 0.0},
        {"LONPOLE": 180.0},
        {"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN"},
        {"CTYPE1": "DEC--TAN", "CTYPE2": "RA---TAN"},  # swapped axes
        {"CUNIT1": "arcsec"},
    ],
)
def test_other_wcs_go_through_astropy(extra: dict[str, object]) -> None:
    cd = np.diag([-0.168, 0.168]) / 3600.0
    cards = _tan_cards(10.0, 20.0, cd, (32.5, 32.5))
    if "A_ORDER" in extra:
        cards |= {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP"}
    cards |= extra
    parsed, text = _header(cards)
    wcs = cutout_wcs(parsed, text)
    assert isinstance(wcs, AstropyWcs)
    ra, dec = wcs.pix_to_world(np.array([31.5]), np.array([31.5]))
    assert np.all(np.isfinite(ra))
    assert np.all(np.isfinite(dec))


@pytest.mark.parametrize("dec0", [-89.0, -30.0, 0.0, 45.0, 89.9])
def test_tangent_plane_offsets_match_astropy(dec0: float) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-20.0, 20.0, 50), rng.uniform(-20.0, 20.0, 50)
    ra0 = 359.995
    ra, dec = offsets_to_sky(x, y, ra0=ra0, dec0=dec0)
    centre = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    points = SkyCoord(ra * u.deg, dec * u.deg)
    rho = np.hypot(x, y)
    # Gnomonic: the tangent-plane radius is tan of the angular distance.
    expected = np.degrees(np.arctan(np.radians(rho / 3600.0))) * 3600.0
    np.testing.assert_allclose(centre.separation(points).arcsec, expected, atol=1e-8)
    pa = np.degrees(np.arctan2(x, y)) % 360.0
    np.testing.assert_allclose(centre.position_angle(points).deg % 360.0, pa, atol=1e-6)
    x2, y2 = sky_to_offsets(ra, dec, ra0=ra0, dec0=dec0)
    np.testing.assert_allclose(x2, x, atol=1e-8)
    np.testing.assert_allclose(y2, y, atol=1e-8)


def test_antipodal_point_has_no_offset() -> None:
    x, y = sky_to_offsets(190.0, -10.0, ra0=10.0, dec0=10.0)
    assert np.isnan(x)
    assert np.isnan(y)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("                   T / comment", True),
        ("                   F", False),
        ("                  -32 / type", -32),
        ("  -4.6666666666666E-05", -4.6666666666666e-05),
        ("              1.0D+02", 100.0),
        ("'RA---TAN'           / gnomonic", "RA---TAN"),
        ("'it''s'", "it's"),
        ("'unterminated", None),
        ("", None),
        ("abc / junk", "abc"),
    ],
)
def test_card_values(text: str, value: object) -> None:
    assert _value(text) == value


def test_shared_wcs_is_built_once_and_never_confused_across_types() -> None:
    """Bands with one WCS share one :class:`TanWcs`; ``1`` and ``True`` are different headers.

    The TAN WCS is cached by its cards (the bands of an alert repeat them). ``True == 1`` in
    Python, so a cache keyed on values alone would hand a header whose CD element is the logical
    ``T`` the WCS of one whose element is ``1``; the first must still be rejected.
    """
    from lenscast.consumer.alert import AlertRejected

    cd = np.diag([-0.168, 0.168]) / 3600.0
    cards, text = _header(_tan_cards(150.0, 2.0, cd, (32.5, 32.5)))
    first, second = cutout_wcs(cards, text), cutout_wcs(dict(cards), text)
    assert first is second
    one = {**cards, "CD1_2": 1}
    assert isinstance(cutout_wcs(one, text), TanWcs)
    with pytest.raises(AlertRejected) as info:
        cutout_wcs({**cards, "CD1_2": True}, text)
    assert info.value.reason == "cutout.no_wcs"

"""The NumPy TAN-SIP WCS maps pixels to the sky and back as astropy (wcslib + SIP) does.

:class:`lenscast.consumer.cutouts_wcs_sip.TanSipWcs` replaces astropy for SIP-distorted TAN
headers on the hot path, so on every header it accepts it must agree with ``WCS(header)``: the
forward direction to floating-point precision, the inverse to astropy's own iteration tolerance.
Headers it does not represent must still go to astropy, and malformed SIP cards be rejected.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings

from harness.fits_headers import header_cards, reference_wcs, sip_header_cards
from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_wcs import AstropyWcs
from lenscast.consumer.cutouts_wcs_header import cutout_wcs
from lenscast.consumer.cutouts_wcs_sip import TanSipWcs

#: Pixels checked: corners, off the cutout, the reference pixel's neighbourhood (0-based).
_PIXELS = np.array([[0.0, 0.0], [10.5, 40.0], [63.0, 63.0], [-3.0, 70.0], [31.5, 31.5]])


def _sip_header(*, angle: float = 0.0, quadratic: float = 1e-5) -> dict[str, object]:
    """A 0.168"/px SIP header at (150, 2) deg turned by ``angle`` deg, with ``A_2_0 = B_0_2 =
    quadratic`` (pixels at one pixel from the reference pixel)."""
    a = math.radians(angle)
    cd = 0.168 / 3600.0 * np.array([[-math.cos(a), -math.sin(a)], [-math.sin(a), math.cos(a)]])
    cards: dict[str, object] = {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP",
                                "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 32.5, "CRPIX2": 30.0,
                                "RADESYS": "ICRS", "A_ORDER": 2, "B_ORDER": 2,
                                "A_2_0": quadratic, "B_0_2": quadratic}  # fmt: skip
    return cards | {f"CD{i + 1}_{j + 1}": float(v) for (i, j), v in np.ndenumerate(cd)}


@settings(max_examples=100, deadline=None, derandomize=True)
@given(cards=sip_header_cards())
def test_sip_headers_take_the_numpy_path_and_match_astropy(cards: dict[str, object]) -> None:
    parsed, text = header_cards(cards)
    wcs = cutout_wcs(parsed, text)
    assert isinstance(wcs, TanSipWcs)
    reference = reference_wcs(text)
    ra_n, dec_n = wcs.pix_to_world(_PIXELS[:, 0], _PIXELS[:, 1])
    world = reference.all_pix2world(_PIXELS, 0)
    np.testing.assert_allclose(dec_n, world[:, 1], rtol=0, atol=1e-10)
    dra = (ra_n - world[:, 0] + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(dra * np.cos(np.radians(world[:, 1])), 0.0, atol=1e-10)
    cols, rows = wcs.world_to_pix(world[:, 0], world[:, 1])
    np.testing.assert_allclose(np.column_stack([cols, rows]), _PIXELS, rtol=0, atol=1e-7)
    expected = reference.all_world2pix(world, 0, tolerance=1e-10)
    np.testing.assert_allclose(np.column_stack([cols, rows]), expected, rtol=0, atol=1e-7)


def test_bands_sharing_a_sip_header_share_one_wcs() -> None:
    cards = _sip_header()
    first = cutout_wcs(*header_cards(cards))
    second = cutout_wcs(*header_cards(cards | {"FILTER": "r"}))
    assert isinstance(first, TanSipWcs)
    assert first is second
    assert cutout_wcs(*header_cards(cards | {"A_2_0": 2e-5})) is not first


@pytest.mark.parametrize(
    ("extra", "outcome"),
    [
        ({"PV2_1": 0.0}, AstropyWcs),  # projection parameters beside SIP
        ({"CTYPE1": "RA---SIN-SIP", "CTYPE2": "DEC--SIN-SIP"}, AstropyWcs),
        ({"A_ORDER": "two"}, AlertRejected),
        ({"A_2_0": "x"}, AlertRejected),
        ({"A_ORDER": 99}, AlertRejected),
        ({"A_ORDER": 1}, AlertRejected),  # B without A: astropy refuses it
    ],
    ids=lambda value: str(value)[:30],
)
def test_other_sip_headers_go_to_astropy_or_are_rejected(
    extra: dict[str, object], outcome: type
) -> None:
    cards = _sip_header(angle=10.0)
    parsed, text = header_cards(cards | extra)
    if outcome is AlertRejected:
        with pytest.raises(AlertRejected) as info:
            cutout_wcs(parsed, text)
        assert info.value.reason == "cutout.no_wcs"
    else:
        assert isinstance(cutout_wcs(parsed, text), outcome)


def test_a_position_where_the_distortion_folds_over_is_an_error_not_a_wrong_pixel() -> None:
    cards = _sip_header(quadratic=0.05)
    wcs = cutout_wcs(*header_cards(cards))
    assert isinstance(wcs, TanSipWcs)
    ra, dec = wcs.tan.pix_to_world(np.array([31.5 - 400.0]), np.array([29.0]))
    with pytest.raises(ValueError, match="SIP"):
        wcs.world_to_pix(ra, dec)


def test_unknown_positions_map_to_nan_without_an_error() -> None:
    cards = _sip_header()
    wcs = cutout_wcs(*header_cards(cards))
    assert isinstance(wcs, TanSipWcs)
    ra, dec = wcs.pix_to_world(np.array([10.0]), np.array([20.0]))
    cols, rows = wcs.world_to_pix(np.array([ra[0], np.nan]), np.array([dec[0], np.nan]))
    np.testing.assert_allclose([cols[0], rows[0]], [10.0, 20.0], atol=1e-8)
    assert np.isnan(cols[1])
    assert np.isnan(rows[1])

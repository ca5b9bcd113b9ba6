"""SIP headers: which take the NumPy path, which go to astropy, which are rejected.

:class:`lenscast.consumer.cutouts_wcs_polynomial.DistortedTanWcs` replaces astropy for
SIP-distorted TAN headers on the hot path; that it maps them as ``WCS(header)`` does is tested on
property-based headers in ``test_cutouts_wcs_polynomial.py``.
Headers it does not represent must still go to astropy, and malformed SIP cards be rejected.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.fits_headers import header_cards
from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_wcs import AstropyWcs
from lenscast.consumer.cutouts_wcs_header import cutout_wcs
from lenscast.consumer.cutouts_wcs_polynomial import DistortedTanWcs


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


def test_bands_sharing_a_sip_header_share_one_wcs() -> None:
    cards = _sip_header()
    first = cutout_wcs(*header_cards(cards))
    second = cutout_wcs(*header_cards(cards | {"FILTER": "r"}))
    assert isinstance(first, DistortedTanWcs)
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
    assert isinstance(wcs, DistortedTanWcs)
    ra, dec = wcs.tan.pix_to_world(np.array([31.5 - 400.0]), np.array([29.0]))
    with pytest.raises(ValueError, match="distortion"):
        wcs.world_to_pix(ra, dec)


def test_unknown_positions_map_to_nan_without_an_error() -> None:
    cards = _sip_header()
    wcs = cutout_wcs(*header_cards(cards))
    assert isinstance(wcs, DistortedTanWcs)
    ra, dec = wcs.pix_to_world(np.array([10.0]), np.array([20.0]))
    cols, rows = wcs.world_to_pix(np.array([ra[0], np.nan]), np.array([dec[0], np.nan]))
    np.testing.assert_allclose([cols[0], rows[0]], [10.0, 20.0], atol=1e-8)
    assert np.isnan(cols[1])
    assert np.isnan(rows[1])

"""The WCS assembled from wcslib's parser and the SIP cards is the one ``WCS(header)`` builds.

:func:`lenscast.consumer.cutouts_wcs_wcslib.fast_astropy_wcs` skips astropy's Python header handling
for the cutouts that still need wcslib (SIP distortions, other projections), so it must map every
such header exactly as ``astropy.wcs.WCS(header)`` does, both ways, and leave to it the headers
it does not cover.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.fits_headers import header_cards, reference_wcs, sip_header_cards, tpv_header_cards
from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_wcs_wcslib import fast_astropy_wcs


def _assert_same(wcs: WCS, reference: WCS) -> None:
    pix = np.array([[0.0, 0.0], [10.5, 40.0], [63.0, 63.0], [-3.0, 70.0], [31.5, 31.5]])
    world = wcs.all_pix2world(pix, 0)
    np.testing.assert_allclose(world, reference.all_pix2world(pix, 0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        wcs.all_world2pix(world, 0, tolerance=1e-10),
        reference.all_world2pix(world, 0, tolerance=1e-10),
        rtol=0,
        atol=1e-7,
    )


@pytest.mark.parametrize(
    ("cards_strategy", "has_sip"),
    [(sip_header_cards(), True), (tpv_header_cards(), False)],
    ids=["SIP", "TPV"],
)
@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data())
def test_distorted_headers_map_as_astropy_builds_them(
    cards_strategy: st.SearchStrategy[dict[str, object]], has_sip: bool, data: st.DataObject
) -> None:
    parsed, text = header_cards(data.draw(cards_strategy, label="cards"))
    wcs = fast_astropy_wcs(parsed, text)
    assert wcs is not None
    assert (wcs.sip is not None) == has_sip
    _assert_same(wcs, reference_wcs(text))


@pytest.mark.parametrize(
    "extra",
    [
        {"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN"},
        {"CTYPE1": "RA---ZEA", "CTYPE2": "DEC--ZEA", "LONPOLE": 170.0},
        {"CTYPE1": "RA---NCP", "CTYPE2": "DEC--NCP"},  # wcsfix turns it into SIN with PV
        {"CTYPE1": "DEC--TAN", "CTYPE2": "RA---TAN", "CRVAL1": 2.0, "CRVAL2": 150.0},
        {"CUNIT1": "arcsec", "CUNIT2": "arcsec", "CD1_1": -0.168, "CD2_2": 0.168},
        {"WCSAXES": 3, "CTYPE3": "WAVE", "CRVAL3": 5e-7, "CDELT3": 1e-9, "CUNIT3": "m"},
    ],
    ids=lambda extra: ",".join(f"{k}={v}" for k, v in extra.items())[:40],
)
def test_other_projections_map_as_astropy_builds_them(extra: dict[str, object]) -> None:
    cards: dict[str, object] = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0,
                                "CRVAL2": 2.0, "CRPIX1": 32.5, "CRPIX2": 32.5,
                                "CD1_1": -0.168 / 3600, "CD2_2": 0.168 / 3600}  # fmt: skip
    parsed, text = header_cards(cards | extra)
    wcs = fast_astropy_wcs(parsed, text)
    assert wcs is not None
    assert wcs.sip is None
    _assert_same(wcs, reference_wcs(text))


@pytest.mark.parametrize(
    "extra",
    [
        {"PV2_1": 0.001},  # TAN with PV: astropy may rewrite it as TPV
        {"CTYPE1": "RA---TPV", "CTYPE2": "DEC--TAN", "PV1_1": 1.0},  # TPV on one axis only
        {"CTYPE1": "RA---TPV", "CTYPE2": "DEC--TPV", "PV1_1": 1.0, "A_ORDER": 2, "A_2_0": 1e-6},
        {"A_ORDER": 2, "B_ORDER": 2, "A_2_0": 1e-6},  # SIP cards without -SIP
        {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP"},  # -SIP without cards
        {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "A_ORDER": 2, "A_2_0": 1e-6},
        {"CPDIS1": "LOOKUP", "DP1": "EXTVER: 1"},
    ],
    ids=lambda extra: ",".join(extra)[:40],
)
def test_headers_it_does_not_cover_are_left_to_astropy(extra: dict[str, object]) -> None:
    cards: dict[str, object] = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0,
                                "CRVAL2": 2.0, "CRPIX1": 32.5, "CRPIX2": 32.5,
                                "CD1_1": -0.168 / 3600, "CD2_2": 0.168 / 3600}  # fmt: skip
    assert fast_astropy_wcs(*header_cards(cards | extra)) is None


@pytest.mark.parametrize("bad", [{"A_ORDER": "two"}, {"A_ORDER": 99}, {"A_2_0": "x"}])
def test_malformed_sip_cards_are_rejected(bad: dict[str, object]) -> None:
    cards: dict[str, object] = {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP",
                                "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 32.5, "CRPIX2": 32.5,
                                "CD1_1": -0.168 / 3600, "CD2_2": 0.168 / 3600, "A_ORDER": 2,
                                "B_ORDER": 2, "A_2_0": 1e-6, "B_0_2": 1e-6}  # fmt: skip
    with pytest.raises(AlertRejected) as info:
        fast_astropy_wcs(*header_cards(cards | bad))
    assert info.value.reason == "cutout.no_wcs"

"""TPV headers: the monomials' numbering, the header forms that take the NumPy path and map as
wcslib does, those that go to wcslib, and malformed coefficients.

:class:`lenscast.consumer.cutouts_wcs_polynomial.DistortedTanWcs` replaces wcslib for
``RA---TPV``/``DEC--TPV`` headers on the hot path; property-based headers are tested in
``test_cutouts_wcs_polynomial.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.fits_headers import (
    FEW_PIXELS,
    MANY_PIXELS,
    assert_maps_as,
    header_cards,
    reference_wcs,
)
from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_wcs import AstropyWcs
from lenscast.consumer.cutouts_wcs_header import cutout_wcs
from lenscast.consumer.cutouts_wcs_polynomial import DistortedTanWcs
from lenscast.consumer.cutouts_wcs_tpv import TPV_MONOMIALS


def _tpv_header(**extra: object) -> dict[str, object]:
    """A 0.168"/px TPV header at (150, 2) deg with small quadratic and radial terms."""
    scale = 0.168 / 3600.0
    cards: dict[str, object] = {"CTYPE1": "RA---TPV", "CTYPE2": "DEC--TPV", "CRVAL1": 150.0,
                                "CRVAL2": 2.0, "CRPIX1": 32.5, "CRPIX2": 30.0, "RADESYS": "ICRS",
                                "CD1_1": -scale, "CD2_2": scale, "PV1_0": 0.0, "PV1_1": 1.0,
                                "PV1_2": 0.0, "PV1_3": 2e-4, "PV1_4": 0.05, "PV2_0": 0.0,
                                "PV2_1": 1.0, "PV2_2": 1e-4, "PV2_5": -0.04,
                                "PV2_11": 30.0}  # fmt: skip
    return cards | extra


def test_the_monomials_follow_the_tpv_numbering() -> None:
    assert len(TPV_MONOMIALS) == 40
    assert TPV_MONOMIALS[:7] == ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0),
                                 (1, 1, 0), (0, 2, 0))  # fmt: skip
    assert TPV_MONOMIALS[10:13] == ((0, 3, 0), (0, 0, 3), (4, 0, 0))
    assert TPV_MONOMIALS[23] == (0, 0, 5)
    assert TPV_MONOMIALS[31] == (7, 0, 0)
    assert TPV_MONOMIALS[39] == (0, 0, 7)


def test_the_pole_and_frame_cards_of_a_tan_projection_map_as_wcslib() -> None:
    extra = {"LONPOLE": 180.0, "LATPOLE": 2.0, "EQUINOX": 2000.0, "WCSAXES": 2}
    parsed, text = header_cards(_tpv_header() | extra)
    wcs = cutout_wcs(parsed, text)
    assert isinstance(wcs, DistortedTanWcs)
    assert_maps_as(wcs, reference_wcs(text), FEW_PIXELS)
    assert_maps_as(wcs, reference_wcs(text), MANY_PIXELS)


def test_the_reference_pixel_maps_to_crval_and_back_despite_the_radial_term() -> None:
    # The radial monomial r has no derivative at r = 0: Newton's step must still be finite.
    wcs = cutout_wcs(*header_cards(_tpv_header(PV1_0=0.0, PV2_0=0.0)))
    assert isinstance(wcs, DistortedTanWcs)
    ra, dec = wcs.pix_to_world(np.array([31.5]), np.array([29.0]))
    np.testing.assert_allclose([ra[0], dec[0]], [150.0, 2.0], rtol=0, atol=1e-12)
    cols, rows = wcs.world_to_pix(np.array([150.0]), np.array([2.0]))
    np.testing.assert_allclose([cols[0], rows[0]], [31.5, 29.0], rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "change",
    [
        {"PV1_1": None},  # no linear term: degenerate, wcslib's own error is kept
        {"PV2_40": 1e-9},  # beyond the 40 TPV terms
        {"PV3_1": 1.0},  # a third axis's parameter
        {"CTYPE2": "DEC--TAN"},  # TPV on one axis only
        {"CUNIT1": "arcsec", "CUNIT2": "arcsec"},
        # SCAMP writes CD; wcslib applies the polynomial at another stage with these
        {"CD1_1": None, "CD2_2": None, "CDELT1": -0.168 / 3600, "CDELT2": 0.168 / 3600},
        {"CDELT1": 1.0, "CDELT2": 1.0},
        {"PC1_1": 1.0},
        {"CROTA2": 0.0},
    ],
    ids=lambda change: ",".join(change)[:30],
)
def test_other_tpv_headers_go_to_wcslib(change: dict[str, object]) -> None:
    cards = {k: v for k, v in (_tpv_header() | change).items() if v is not None}
    try:
        wcs = cutout_wcs(*header_cards(cards))
    except AlertRejected:  # wcslib may refuse the header outright
        return
    assert isinstance(wcs, AstropyWcs)


@pytest.mark.parametrize("bad", [{"PV1_4": "x"}, {"PV2_1": True}])
def test_malformed_tpv_coefficients_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(AlertRejected) as info:
        cutout_wcs(*header_cards(_tpv_header() | bad))
    assert info.value.reason == "cutout.no_wcs"

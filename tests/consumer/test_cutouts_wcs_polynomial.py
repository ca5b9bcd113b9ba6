"""A TAN WCS with a polynomial distortion maps as astropy (wcslib) does, for SIP and TPV alike.

On every property-based header of either convention, :class:`DistortedTanWcs` must agree with
``WCS(header)``: forward to floating-point precision, the inverse to wcslib's own iteration
tolerance, both for a few positions (mapped one by one in plain floats) and for many (at once in
NumPy). Newton's method needs :class:`Polynomial2D`'s derivatives right, radial terms included.
Which headers take this path is tested per convention in ``test_cutouts_wcs_sip.py`` and
``test_cutouts_wcs_tpv.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.fits_headers import (
    FEW_PIXELS,
    MANY_PIXELS,
    assert_maps_as,
    header_cards,
    reference_wcs,
    sip_header_cards,
    tpv_header_cards,
)
from lenscast.consumer.cutouts_wcs import FEW_POINTS
from lenscast.consumer.cutouts_wcs_header import cutout_wcs
from lenscast.consumer.cutouts_wcs_polynomial import DistortedTanWcs, Polynomial2D

#: x^i y^j r^k terms of every kind: constant, linear, cross, radial r, r^3 and mixed.
_POLYNOMIAL = Polynomial2D(
    exponents=((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 1, 0), (0, 0, 3), (1, 0, 2)),
    a=(0.01, 1.02, -0.03, 0.02, 0.05, -0.01, 0.04),
    b=(-0.02, 0.01, 0.98, -0.03, -0.02, 0.02, 0.03),
)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(cards=st.one_of(sip_header_cards(), tpv_header_cards()))
def test_distorted_headers_take_the_numpy_path_and_map_as_wcslib(cards: dict[str, object]) -> None:
    parsed, text = header_cards(cards)
    wcs = cutout_wcs(parsed, text)
    assert isinstance(wcs, DistortedTanWcs)
    assert wcs.convention == str(cards["CTYPE1"])[-3:]
    assert len(FEW_PIXELS) <= FEW_POINTS < len(MANY_PIXELS)
    assert_maps_as(wcs, reference_wcs(text), FEW_PIXELS)
    assert_maps_as(wcs, reference_wcs(text), MANY_PIXELS)


@pytest.mark.parametrize(("x", "y"), [(0.3, -0.7), (-1.1, 0.2), (0.05, 0.0), (0.0, -0.4)])
def test_the_derivatives_are_those_of_the_values(x: float, y: float) -> None:
    _, _, f_x, f_y, g_x, g_y = _POLYNOMIAL.evaluate(x, y)
    h = 1e-6
    (f1, g1), (f0, g0) = _POLYNOMIAL.map(x + h, y), _POLYNOMIAL.map(x - h, y)
    (f3, g3), (f2, g2) = _POLYNOMIAL.map(x, y + h), _POLYNOMIAL.map(x, y - h)
    numeric = [(f1 - f0) / (2 * h), (f3 - f2) / (2 * h), (g1 - g0) / (2 * h), (g3 - g2) / (2 * h)]
    np.testing.assert_allclose([f_x, f_y, g_x, g_y], numeric, rtol=0, atol=1e-7)


def test_floats_and_arrays_give_the_same_values() -> None:
    x, y = np.array([0.3, -1.1, 0.0]), np.array([-0.7, 0.2, 0.0])
    together = _POLYNOMIAL.evaluate(x, y)
    for k in range(3):
        alone = _POLYNOMIAL.evaluate(float(x[k]), float(y[k]))
        np.testing.assert_allclose([v[k] for v in together], alone, rtol=0, atol=1e-15)
    # At r = 0 the radial term's derivative is taken as 0, not NaN.
    assert all(math.isfinite(v) for v in _POLYNOMIAL.evaluate(0.0, 0.0))


@settings(max_examples=50, deadline=None, derandomize=True)
@given(x=st.floats(-1.5, 1.5), y=st.floats(-1.5, 1.5))
def test_the_inverse_undoes_the_map(x: float, y: float) -> None:
    target = _POLYNOMIAL.map(x, y)
    back = _POLYNOMIAL.invert_point(*target, tolerance=1e-13)
    np.testing.assert_allclose(back, [x, y], rtol=0, atol=1e-11)
    arrays = _POLYNOMIAL.invert(np.array([target[0]]), np.array([target[1]]), tolerance=1e-13)
    np.testing.assert_allclose([arrays[0][0], arrays[1][0]], [x, y], rtol=0, atol=1e-11)


def test_unknown_positions_stay_unknown() -> None:
    assert all(math.isnan(v) for v in _POLYNOMIAL.invert_point(math.nan, 0.2, tolerance=1e-12))


@pytest.mark.parametrize("strategy", [sip_header_cards(), tpv_header_cards()], ids=["SIP", "TPV"])
@settings(max_examples=20, deadline=None, derandomize=True)
@given(data=st.data())
def test_few_positions_map_one_by_one_as_many_map_at_once(
    strategy: st.SearchStrategy[dict[str, object]], data: st.DataObject
) -> None:
    wcs = cutout_wcs(*header_cards(data.draw(strategy, label="cards")))
    assert isinstance(wcs, DistortedTanWcs)
    rng = np.random.default_rng(3)
    n = 3 * FEW_POINTS
    cols, rows = rng.uniform(-10.0, 74.0, n), rng.uniform(-10.0, 74.0, n)
    ra, dec = wcs.pix_to_world(cols, rows)
    back_cols, back_rows = wcs.world_to_pix(ra, dec)
    for start in range(0, n, FEW_POINTS):
        few = slice(start, start + FEW_POINTS)
        few_ra, few_dec = wcs.pix_to_world(cols[few], rows[few])
        np.testing.assert_allclose(few_dec, dec[few], rtol=0, atol=1e-12)
        np.testing.assert_allclose((few_ra - ra[few] + 180) % 360 - 180, 0.0, atol=1e-12)
        few_cols, few_rows = wcs.world_to_pix(ra[few], dec[few])
        np.testing.assert_allclose(few_cols, back_cols[few], rtol=0, atol=1e-8)
        np.testing.assert_allclose(few_rows, back_rows[few], rtol=0, atol=1e-8)
    np.testing.assert_allclose(back_cols, cols, rtol=0, atol=1e-7)


def test_an_unknown_convention_is_refused() -> None:
    wcs = cutout_wcs(*header_cards({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 1.0,
                                    "CRVAL2": 2.0, "CRPIX1": 1.0, "CRPIX2": 1.0,
                                    "CD1_1": -1e-4, "CD2_2": 1e-4}))  # fmt: skip
    with pytest.raises(ValueError, match="convention"):
        DistortedTanWcs(wcs, _POLYNOMIAL, "ZPN", grid_id=())

"""Cutout world coordinates: the tangent plane against astropy, and header card values.

The fast TAN path against wcslib is tested on headers in ``test_cutouts_wcs_header.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from lenscast.consumer.cutouts_fits import _value
from lenscast.consumer.cutouts_wcs import (
    FEW_POINTS,
    TanWcs,
    offsets_to_sky,
    sky_to_offsets,
)


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


@pytest.mark.parametrize("dec0", [-89.5, -30.0, 0.0, 45.0, 89.9])
def test_few_positions_map_one_by_one_as_many_map_at_once(dec0: float) -> None:
    # Up to FEW_POINTS positions go through plain floats, more through NumPy: the two paths
    # must be the same map (both directions, NaN kept), whatever the array's shape.
    angle = np.radians(25.0)
    cos, sin = np.cos(angle), np.sin(angle)
    cd = 0.168 / 3600.0 * np.array([[-cos, sin], [sin, cos]])
    wcs = TanWcs(ra0=359.99, dec0=dec0, crpix=np.array([31.5, 30.0]), cd=cd)
    rng = np.random.default_rng(5)
    n = 3 * FEW_POINTS
    cols, rows = rng.uniform(-40.0, 100.0, n), rng.uniform(-40.0, 100.0, n)
    ra, dec = wcs.pix_to_world(cols, rows)
    for k in range(n):
        one_ra, one_dec = wcs.pix_to_world(cols[k : k + 1], rows[k : k + 1])
        assert one_ra.shape == (1,)
        np.testing.assert_allclose([one_ra[0], one_dec[0]], [ra[k], dec[k]], rtol=0, atol=1e-12)
    ra[3], dec[3] = np.nan, np.nan
    back_cols, back_rows = wcs.world_to_pix(ra, dec)
    grid = (4, FEW_POINTS // 4)
    few_ra, few_dec = ra[:FEW_POINTS].reshape(grid), dec[:FEW_POINTS].reshape(grid)
    few_cols, few_rows = wcs.world_to_pix(few_ra, few_dec)
    assert few_cols.shape == grid
    np.testing.assert_allclose(few_cols.ravel(), back_cols[:FEW_POINTS], rtol=0, atol=1e-9)
    np.testing.assert_allclose(few_rows.ravel(), back_rows[:FEW_POINTS], rtol=0, atol=1e-9)
    known = np.arange(n) != 3
    np.testing.assert_allclose(back_cols[known], cols[known], rtol=0, atol=1e-8)
    assert np.isnan(few_cols.ravel()[3])
    assert np.isnan(back_rows[3])

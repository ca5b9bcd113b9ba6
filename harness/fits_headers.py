"""FITS headers for the WCS tests: a 64x64 header with given cards, parsed as the decoder parses
cutouts; astropy's own WCS of it and the check that a cutout WCS maps as it does; random SIP and
TPV polynomial cards (test helpers)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from hypothesis import strategies as st

from lenscast.consumer.cutouts_fits import parse_cards


def header_cards(cards: dict[str, object]) -> tuple[dict[str, Any], str]:
    """``(parsed cards, header text)`` of an image header holding ``cards``."""
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = 64
    header["NAXIS2"] = 64
    for key, value in cards.items():
        header[key] = value
    parsed, text, _ = parse_cards(header.tostring().encode())
    return parsed, text


def reference_wcs(text: str) -> WCS:
    """``astropy.wcs.WCS`` of a header's text, as astropy alone builds it (first two axes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(fits.Header.fromstring(text), naxis=2)


#: A few pixels (mapped one by one): corners, off the cutout, near the reference pixel (0-based).
FEW_PIXELS = np.array([[0.0, 0.0], [10.5, 40.0], [63.0, 63.0], [-3.0, 70.0], [31.5, 31.5]])
#: 49 pixels (more than a WCS maps one by one): a 7 x 7 grid over and beyond a 64 x 64 cutout.
_GRID = np.linspace(-5.0, 68.0, 7)
MANY_PIXELS = np.stack(np.meshgrid(_GRID, _GRID), -1).reshape(-1, 2)


def assert_maps_as(wcs: Any, reference: WCS, pixels: np.ndarray) -> None:
    """Assert that ``wcs`` (a cutout WCS) maps 0-based ``pixels``, shape (n, 2), to the sky as
    ``reference`` does (1e-10 deg) and back (1e-7 px, to the pixels and to ``reference``)."""
    ra, dec = wcs.pix_to_world(pixels[:, 0], pixels[:, 1])
    world = reference.all_pix2world(pixels, 0)
    np.testing.assert_allclose(dec, world[:, 1], rtol=0, atol=1e-10)
    dra = (ra - world[:, 0] + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(dra * np.cos(np.radians(world[:, 1])), 0.0, atol=1e-10)
    cols, rows = wcs.world_to_pix(world[:, 0], world[:, 1])
    np.testing.assert_allclose(np.column_stack([cols, rows]), pixels, rtol=0, atol=1e-7)
    expected = reference.all_world2pix(world, 0, tolerance=1e-10)
    np.testing.assert_allclose(np.column_stack([cols, rows]), expected, rtol=0, atol=1e-7)


def sip_polynomial(
    draw: Callable[..., Any], prefix: str, order: int, size: float
) -> dict[str, object]:
    """``{prefix}_ORDER`` and random ``{prefix}_p_q`` (``p + q >= 2``), drawn with ``draw``.

    Each term is at most ``size * 32`` pixels at 32 pixels from the reference pixel.
    """
    cards: dict[str, object] = {f"{prefix}_ORDER": order}
    for p in range(order + 1):
        for q in range(order + 1 - p):
            if p + q >= 2 and draw(st.booleans()):
                cards[f"{prefix}_{p}_{q}"] = draw(st.floats(-size, size)) / 32.0 ** (p + q - 1)
    return cards


def _linear_cards(draw: Callable[..., Any], projection: str) -> dict[str, object]:
    """Sky position, rotation, scale (0.05-1"/px) and flip of a random ``projection`` header."""
    angle = math.radians(draw(st.floats(-180.0, 180.0), label="angle"))
    scale = draw(st.floats(0.05, 1.0), label="scale")
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    cd = scale / 3600.0 * rot @ np.diag([1.0 if draw(st.booleans(), label="flip") else -1.0, 1.0])
    cards: dict[str, object] = {
        "CTYPE1": f"RA---{projection}", "CTYPE2": f"DEC--{projection}",
        "CRVAL1": draw(st.floats(0.0, 360.0, exclude_max=True), label="ra"),
        "CRVAL2": draw(st.floats(-89.0, 89.0), label="dec"),
        "CRPIX1": 32.5, "CRPIX2": 30.0, "RADESYS": "ICRS",
    }  # fmt: skip
    return cards | {f"CD{i + 1}_{j + 1}": float(v) for (i, j), v in np.ndenumerate(cd)}


@st.composite
def tpv_header_cards(draw: Callable[..., Any], *, max_size: float = 0.02) -> dict[str, object]:
    """Cards of a random ``RA---TPV`` header (SCAMP's polynomial, wcslib's ``TPV``).

    ``PVi_1`` is near 1 and ``PVi_0``, ``PVi_2`` near 0 (a near-identity linear part); the
    terms of orders 2-3 (``PVi_4`` ... ``PVi_10``) and the radial ``r^3`` (``PVi_11``), drawn
    or left out, are each at most ``max_size`` pixels' worth at 32 pixels from the reference
    pixel, at 1"/px; so is the radial ``r`` (``PVi_3``), drawn or left out.
    """
    cards = _linear_cards(draw, "TPV")
    unit = 1.0 / 3600.0 * 32.0  # degrees: 32 pixels of 1"
    for axis in (1, 2):
        cards[f"PV{axis}_0"] = draw(st.floats(-1e-6, 1e-6), label="zero")
        cards[f"PV{axis}_1"] = 1.0 + draw(st.floats(-1e-3, 1e-3), label="one")
        cards[f"PV{axis}_2"] = draw(st.floats(-1e-3, 1e-3), label="cross")
        order_of = {3: 1, 4: 2, 5: 2, 6: 2, 7: 3, 8: 3, 9: 3, 10: 3, 11: 3}
        for k, order in order_of.items():
            if draw(st.booleans()):
                size = draw(st.floats(-max_size, max_size)) / 3600.0
                cards[f"PV{axis}_{k}"] = size / unit**order
    return cards


@st.composite
def sip_header_cards(draw: Callable[..., Any], *, max_size: float = 0.02) -> dict[str, object]:
    """Cards of a random ``RA---TAN-SIP`` header: sky position, rotation, scale, flip, ``A``/``B``
    polynomials of orders 2-4 (each term up to ``max_size * 32`` pixels at 32 pixels; the
    default, ~0.6 pixel at the cutout's edge, keeps astropy's own inverse converging) and, half
    the time, second-order ``AP``/``BP``.
    """
    cards = _linear_cards(draw, "TAN-SIP")
    size = draw(st.floats(0.0, max_size), label="size")
    for prefix in ("A", "B"):
        cards |= sip_polynomial(draw, prefix, draw(st.integers(2, 4), label="order"), size)
    if draw(st.booleans(), label="inverse"):
        cards |= sip_polynomial(draw, "AP", 2, size) | sip_polynomial(draw, "BP", 2, size)
    return cards

"""A 64x64 FITS header with given WCS cards, parsed as the decoder parses cutouts (test helper)."""

from __future__ import annotations

from typing import Any

from astropy.io import fits

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

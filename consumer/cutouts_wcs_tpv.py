"""TPV distortion cards (``RA---TPV``/``DEC--TPV``, as SCAMP writes them) of a cutout header.

A TPV header is a TAN projection whose intermediate world coordinates ``(x, y) = CD (p - CRPIX)``
(degrees) pass through a polynomial of degree up to 7 before the deprojection:
``xi = sum_n PV1_n m_n(x, y)`` and ``eta = sum_n PV2_n m_n(y, x)`` (the second with ``x`` and
``y`` exchanged), ``n = 0..39``, where ``m_n`` runs through the monomials of each degree
``d = 0..7`` in the order ``x^d, x^(d-1) y, ..., y^d``, followed by ``r^d`` for odd ``d``
(``r = sqrt(x^2 + y^2)``): ``m_0 = 1``, ``m_1 = x``, ``m_2 = y``, ``m_3 = r``, ``m_4 = x^2``, ...
``m_39 = r^7`` (the TPV registration with the FITS WCS conventions, as wcslib implements it;
a coefficient that is not given is 0). The map is done in NumPy by
:class:`lenscast.consumer.cutouts_wcs_polynomial.DistortedTanWcs`, with no wcslib object per alert.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_wcs import TanWcs
from lenscast.consumer.cutouts_wcs_polynomial import DistortedTanWcs, Exponents, Polynomial2D

#: TPV coefficient cards of the two celestial axes.
TPV_KEY = re.compile(r"^PV([12])_(\d+)$")
#: Linear-part cards other than ``CD``: with them wcslib applies the polynomial elsewhere.
_NOT_CD_PREFIXES = ("CDELT", "PC1_", "PC2_", "CROTA")
#: Exponents ``(i, j, k)`` of ``x^i y^j r^k`` for ``PV1_n``, n = 0..39.
TPV_MONOMIALS: tuple[Exponents, ...] = tuple(
    monomial
    for degree in range(8)
    for monomial in (
        *((degree - m, m, 0) for m in range(degree + 1)),
        *(((0, 0, degree),) if degree % 2 else ()),
    )
)


def tan_tpv_wcs(
    tan: TanWcs, cards: Mapping[str, Any], grid_id: tuple[Any, ...]
) -> DistortedTanWcs | None:
    """The TPV WCS of a ``RA---TPV``/``DEC--TPV`` header whose linear TAN part is ``tan``.

    None when wcslib must decide: an index beyond 39; no ``PV1_1`` or ``PV2_1`` (a map without
    its linear term is degenerate; wcslib's error is kept for it); a linear part written other
    than as SCAMP writes it, a ``CD`` matrix alone (wcslib applies the polynomial at another
    stage when ``CDELT``, ``PC`` or ``CROTA`` are given).

    Raises
    ------
    AlertRejected
        ``cutout.no_wcs`` for a coefficient that is not a finite number.
    """
    if any(key.startswith(_NOT_CD_PREFIXES) for key in cards):
        return None
    coefficients: dict[Exponents, list[float]] = {}
    for key, value in cards.items():
        match = TPV_KEY.match(key)
        if match is None:
            continue
        axis, index = int(match.group(1)) - 1, int(match.group(2))
        if index >= len(TPV_MONOMIALS):
            return None
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise AlertRejected("cutout.no_wcs", f"{key} = {value!r} is not a finite number"[:200])
        i, j, k = TPV_MONOMIALS[index]
        exponents = (i, j, k) if axis == 0 else (j, i, k)  # PV2 has x and y exchanged
        coefficients.setdefault(exponents, [0.0, 0.0])[axis] += float(value)
    if "PV1_1" not in cards or "PV2_1" not in cards:
        return None
    polynomial = Polynomial2D.from_terms(coefficients)
    return DistortedTanWcs(tan, polynomial, "TPV", grid_id=grid_id)

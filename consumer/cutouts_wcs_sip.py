"""SIP distortion cards (Shupe et al. 2005, ASP Conf. Ser. 347, 491) of a TAN cutout header.

The ``A_p_q``, ``B_p_q`` cards give ``f(u, v) = sum A_p_q u^p v^q`` and ``g`` likewise over
``p + q <= A_ORDER`` (``B_ORDER``), added to the pixel offsets from the reference pixel before
the linear part of the WCS; ``AP``/``BP`` approximate the inverse. This module reads them as
astropy reads them and turns them into the polynomial of a
:class:`lenscast.consumer.cutouts_wcs_polynomial.DistortedTanWcs`, which maps them in NumPy (no
wcslib object per alert).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_wcs import TanWcs
from lenscast.consumer.cutouts_wcs_polynomial import DistortedTanWcs, Polynomial2D

#: SIP cards: orders and coefficients of the forward (``A``, ``B``) and inverse (``AP``, ``BP``)
#: polynomials.
SIP_KEY = re.compile(r"^(A|B|AP|BP)_(ORDER|\d+_\d+)$")
#: Highest SIP order read (astropy reads any; 9 is far beyond survey practice).
MAX_SIP_ORDER = 9


def sip_terms(cards: Mapping[str, Any], prefix: str) -> dict[tuple[int, int], float] | None:
    """``{(p, q): {prefix}_p_q}`` of the non-zero coefficients; None without an order card.

    As astropy reads them: an order of 1 or less means no polynomial (None), a missing
    coefficient is 0, ``p + q`` runs up to the order.

    Raises
    ------
    AlertRejected
        ``cutout.no_wcs`` for an order or coefficient that is not a number, or too high an order.
    """
    order = cards.get(f"{prefix}_ORDER")
    if order is None:
        return None
    if isinstance(order, bool) or not isinstance(order, int) or order > MAX_SIP_ORDER:
        raise AlertRejected("cutout.no_wcs", f"{prefix}_ORDER = {order!r}"[:200])
    if order <= 1:
        return None
    terms = {}
    for key, p, q in _coefficient_keys(prefix, order):
        value = cards.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AlertRejected("cutout.no_wcs", f"{key} = {value!r}"[:200])
        if not math.isfinite(value):
            raise AlertRejected("cutout.no_wcs", f"non-finite {prefix}_p_q SIP coefficient")
        if value:
            terms[p, q] = float(value)
    return terms


def sip_matrix(cards: Mapping[str, Any], prefix: str) -> NDArray[np.float64] | None:
    """``M[p, q]`` = ``{prefix}_p_q``, shape ``(order + 1, order + 1)``, zero beyond
    ``p + q <= order``; None without an order card (:func:`sip_terms`, which see)."""
    terms = sip_terms(cards, prefix)
    if terms is None:
        return None
    order = cards[f"{prefix}_ORDER"]
    matrix = np.zeros((order + 1, order + 1))
    for (p, q), value in terms.items():
        matrix[p, q] = value
    return matrix


@lru_cache(maxsize=64)
def _coefficient_keys(prefix: str, order: int) -> tuple[tuple[str, int, int], ...]:
    """``("{prefix}_p_q", p, q)`` for ``p + q <= order`` (the same few sets in every header)."""
    return tuple((f"{prefix}_{p}_{q}", p, q)
                 for p in range(order + 1) for q in range(order + 1 - p))


def tan_sip_wcs(
    tan: TanWcs, cards: Mapping[str, Any], grid_id: tuple[Any, ...]
) -> DistortedTanWcs | None:
    """The SIP WCS of a ``RA---TAN-SIP``/``DEC--TAN-SIP`` header whose TAN part is ``tan``.

    None when astropy must decide (no forward polynomial in one of the axes, or inverse
    polynomials given for one axis only: astropy warns and makes its own choices there).

    Raises
    ------
    AlertRejected
        ``cutout.no_wcs`` for malformed SIP cards (:func:`sip_matrix`).
    """
    a, b = sip_terms(cards, "A"), sip_terms(cards, "B")
    if a is None or b is None:
        return None
    # The inverse polynomials are only checked: astropy refuses one without the other.
    if (sip_terms(cards, "AP") is None) != (sip_terms(cards, "BP") is None):
        return None
    # u + f(u, v), v + g(u, v): the identity joins the A and B terms as two more monomials.
    coefficients: dict[tuple[int, int, int], list[float]] = {(1, 0, 0): [1.0, 0.0],
                                                             (0, 1, 0): [0.0, 1.0]}  # fmt: skip
    for axis, terms in enumerate((a, b)):
        for (p, q), value in terms.items():
            coefficients.setdefault((p, q, 0), [0.0, 0.0])[axis] += value
    polynomial = Polynomial2D.from_terms(coefficients)
    return DistortedTanWcs(tan, polynomial, "SIP", grid_id=grid_id)

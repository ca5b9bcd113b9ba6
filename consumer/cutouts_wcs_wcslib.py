"""Build an astropy WCS straight from wcslib's header parser, with SIP read from parsed cards.

``astropy.wcs.WCS(header)`` spends most of its ~4 ms per header in Python: it copies and
re-serialises the :class:`astropy.io.fits.Header`, verifies every card and looks for distortion
tables. For a cutout header without lookup-table distortions the same object is assembled here
from its parts in ~0.3 ms, as ``WCS.__init__`` does: wcslib's own parser on the header text
(:class:`astropy.wcs.Wcsprm`, with astropy's defaults: ``relax=True``, the first two axes,
``wcsfix`` applied), and the SIP polynomials (Shupe et al. 2005, ASP Conf. Ser. 347, 491) as
:class:`astropy.wcs.Sip` from the ``A_p_q``, ``B_p_q``, ``AP_p_q``, ``BP_p_q`` cards, read as
astropy reads them. ``TPV`` polynomials (``RA---TPV``/``DEC--TPV`` with ``PV`` cards, as SCAMP
writes them) are wcslib's own and pass through as they are. Headers this module does not cover
(distortion lookup tables ``CPDIS``, ``D2IM``, ...; ``PV`` cards on any other projection, which
astropy may rewrite; SIP cards without a ``-SIP`` projection or the other way round) are left to
``WCS(header)`` (None). Tests compare both on property-based headers.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

from astropy.wcs import WCS, Sip, Wcsprm

from lenscast.consumer.cutouts_wcs_sip import SIP_KEY, sip_matrix

#: Distortions stored in lookup tables (FITS distortion paper, astropy's ``D2IM``): left to
#: ``WCS(header)``, which needs the tables' extensions.
_TABLE_KEY = re.compile(r"^(CPDIS|CQDIS|CPERR|CQERR|D2IM|DP\d|DQ\d)")
#: Projection parameters: astropy rewrites TAN with ``PV`` cards to TPV (pre-2012 SCAMP headers)
#: and drops SIP beside them; those headers are left to it. On a ``-TPV`` projection it changes
#: nothing (its rewrite looks only at ``-TAN`` axes), so there wcslib reads them directly.
_PV_KEY = re.compile(r"^PV\d+_\d+$")
_TPV_SUFFIX = "-TPV"
_SIP_PREFIXES = ("A_", "B_", "AP_", "BP_")
_CARD = 80


def _sip(cards: Mapping[str, Any], ctypes: tuple[Any, Any]) -> Sip | None | bool:
    """The SIP distortion; None when there is none; False when ``WCS(header)`` must decide."""
    tagged = [isinstance(c, str) and c.endswith("-SIP") for c in ctypes]
    a, b = sip_matrix(cards, "A"), sip_matrix(cards, "B")
    ap, bp = sip_matrix(cards, "AP"), sip_matrix(cards, "BP")
    if a is None and b is None and ap is None and bp is None:
        has_cards = any(SIP_KEY.match(k) for k in cards)
        return None if not any(tagged) and not has_cards else False
    if not all(tagged) or (a is None) != (b is None) or (ap is None) != (bp is None):
        return False  # inconsistent: astropy's own warnings and choices apply
    if a is None:
        return False
    crpix = (float(cards.get("CRPIX1", 0.0)), float(cards.get("CRPIX2", 0.0)))
    return Sip(a, b, ap, bp, crpix)


def fast_astropy_wcs(cards: Mapping[str, Any], header_text: str) -> WCS | None:
    """``WCS(header, naxis=2)`` of a cutout header, assembled from wcslib and SIP cards.

    Parameters
    ----------
    cards : mapping
        Parsed header keywords.
    header_text : str
        The raw header (80-character cards).

    Returns
    -------
    astropy.wcs.WCS or None
        Set up (``wcs.wcs.set()`` done); None for a header left to ``WCS(header)``.

    Raises
    ------
    AlertRejected
        ``cutout.no_wcs`` for malformed SIP cards.
    Exception
        Whatever wcslib raises on a malformed header (the caller turns it into a rejection).
    """
    ctypes = (cards.get("CTYPE1"), cards.get("CTYPE2"))
    tpv = all(isinstance(c, str) and c.endswith(_TPV_SUFFIX) for c in ctypes)
    if any(_TABLE_KEY.match(k) or (_PV_KEY.match(k) and not tpv) for k in cards):
        return None
    sip = _sip(cards, ctypes)
    if sip is False:
        return None
    # wcslib must not see the SIP cards (astropy removes them too): it could apply them itself.
    cards_text = [header_text[i : i + _CARD] for i in range(0, len(header_text), _CARD)]
    text = "".join(
        c for c in cards_text if not (c.startswith(_SIP_PREFIXES) and SIP_KEY.match(c[:8].rstrip()))
    )
    with warnings.catch_warnings():
        # wcslib's notes on non-standard cards (as WCS(header) under the same filter).
        warnings.simplefilter("ignore")
        wcsprm = Wcsprm(header=text.encode("ascii"), key=" ", relax=True, warnings=False)
        if wcsprm.naxis != 2:
            wcsprm = wcsprm.sub(2)
        wcsprm.fix()
        wcsprm.set()
        wcs = WCS(naxis=2)
    wcs.wcs = wcsprm
    if sip is not None:
        wcs.sip = sip
    return wcs

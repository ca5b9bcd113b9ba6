"""Which headers take the fast TAN path, and that it agrees with wcslib on every one of them.

:class:`lenscast.consumer.cutouts_wcs.TanWcs` replaces astropy for plain TAN headers on the hot
path, so it must agree with wcslib on every header it accepts, whichever way the header writes the
TAN projection (the styles real producers write: astropy's ``WCS.to_header()``, survey CD matrices
with IRAF and alternate-WCS cards, ``CDELT`` with ``CROTA2``, ...); a header it cannot represent
exactly must go to astropy; and a header in another sky frame must be rejected.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.fits_headers import header_cards
from lenscast.consumer.alert import AlertRejected
from lenscast.consumer.cutouts_wcs import AstropyWcs, CutoutWcs, TanWcs
from lenscast.consumer.cutouts_wcs_header import ASTROPY_CACHE, cutout_wcs


def _cd(angle_deg: float, scale_arcsec: float, flip: bool) -> np.ndarray:
    """CD matrix (deg/px): rotation by ``angle_deg``, east left unless ``flip``."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return scale_arcsec / 3600.0 * rot @ np.diag([1.0 if flip else -1.0, 1.0])


def _tan_cards(ra: float, dec: float, cd: np.ndarray, crpix: tuple[float, float]) -> dict:
    cards: dict[str, object] = {
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": ra, "CRVAL2": dec,
        "CRPIX1": crpix[0], "CRPIX2": crpix[1],
    }  # fmt: skip
    for (i, j), value in np.ndenumerate(cd):
        cards[f"CD{i + 1}_{j + 1}"] = float(value)
    return cards


def _assert_matches_wcslib(wcs: CutoutWcs, text: str, scale: float, crpix: tuple) -> None:
    """``wcs`` maps pixels to the sky and back as wcslib does (the tolerance of the fast path)."""
    with warnings.catch_warnings():  # FITSFixedWarning: wcslib's notes on date cards
        warnings.simplefilter("ignore", FITSFixedWarning)
        reference = WCS(fits.Header.fromstring(text), naxis=2)
    cols = np.array([0.0, 10.5, 63.0, -3.0, crpix[0] - 1.0])
    rows = np.array([0.0, 40.0, 63.0, 70.0, crpix[1] - 1.0])
    ra_f, dec_f = wcs.pix_to_world(cols, rows)
    world = reference.all_pix2world(np.column_stack([cols, rows]), 0)
    ra_w, dec_w = world[:, reference.wcs.lng], world[:, reference.wcs.lat]  # axes may be swapped
    sep = SkyCoord(ra_f * u.deg, dec_f * u.deg).separation(SkyCoord(ra_w * u.deg, dec_w * u.deg))
    assert np.max(sep.arcsec) < 1e-6 * max(1.0, scale * 100)
    back_c, back_r = wcs.world_to_pix(ra_w, dec_w)
    np.testing.assert_allclose(back_c, cols, atol=1e-6)
    np.testing.assert_allclose(back_r, rows, atol=1e-6)


def _linear_cards(form: str, cd: np.ndarray, cdelt_ratio: tuple[float, float]) -> dict:
    """The linear part ``cd`` written as CD, PC + CDELT, CDELT alone or CDELT + CROTA2."""
    if form in ("cd", "cd+cdelt"):
        cards = {f"CD{i + 1}_{j + 1}": float(v) for (i, j), v in np.ndenumerate(cd) if v != 0.0}
        # CDELT beside CD is ignored (wcslib).
        return cards | ({"CDELT1": 1.0, "CDELT2": 1.0} if form == "cd+cdelt" else {})
    if form == "pc":  # astropy's to_header style: any CDELT, PC = CD / CDELT row by row
        cdelt = np.array(cdelt_ratio) * abs(cd).max()
        pc = cd / cdelt[:, None]
        cards = {f"PC{i + 1}_{j + 1}": float(v) for (i, j), v in np.ndenumerate(pc) if v != 0.0}
        return cards | {"CDELT1": float(cdelt[0]), "CDELT2": float(cdelt[1])}
    # CDELT alone (a diagonal CD) or with CROTA2: the flip sits in CDELT1's sign.
    det = float(np.linalg.det(cd))
    scale = math.sqrt(abs(det))
    cdelt1 = math.copysign(scale, det)
    cards = {"CDELT1": cdelt1, "CDELT2": scale}
    if form == "crota":
        cards["CROTA2"] = math.degrees(math.atan2(cd[1, 0], cd[0, 0] / math.copysign(1.0, det)))
    return cards


_EXTRAS: dict[str, st.SearchStrategy[dict[str, object]]] = {
    "LATPOLE": st.floats(-90.0, 90.0).map(lambda v: {"LATPOLE": v}),
    "dates": st.just({"MJDREF": 0.0, "DATEREF": "1858-11-17", "MJD-OBS": 61010.25,
                      "DATE-OBS": "2026-12-02T06:00:00"}),
    "frame": st.sampled_from([{"RADESYS": "ICRS"}, {"RADESYS": "FK5", "EQUINOX": 2000.0},
                              {"EQUINOX": 2000.0}, {"RADECSYS": "FK5", "EPOCH": 2000}]),
    "WCSNAME": st.just({"WCSNAME": "ICRS tangent plane"}),
    "IRAF": st.tuples(st.floats(-5000.0, 0.0), st.floats(-5000.0, 0.0)).map(
        lambda v: {"LTV1": v[0], "LTV2": v[1], "LTM1_1": 1.0, "LTM2_2": 1.0}),
    "alternate": st.just({"WCSNAMEA": "PIXEL", "CTYPE1A": "LINEAR", "CTYPE2A": "LINEAR",
                          "CRPIX1A": 1.0, "CRPIX2A": 1.0, "CRVAL1A": 1200.0, "CRVAL2A": 3400.0,
                          "CUNIT1A": "PIXEL", "CUNIT2A": "PIXEL"}),
    "units": st.just({"WCSAXES": 2, "CUNIT1": "deg", "CUNIT2": "deg"}),
}  # fmt: skip


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    ra=st.floats(0.0, 360.0, exclude_max=True),
    dec=st.one_of(st.floats(-90.0, 90.0), st.sampled_from([-90.0, 90.0])),
    angle=st.floats(-180.0, 180.0),
    scale=st.floats(0.01, 2.0),
    flip=st.booleans(),
    crpix=st.tuples(st.floats(-50.0, 100.0), st.floats(-50.0, 100.0)),
    form=st.sampled_from(["cd", "cd+cdelt", "pc", "cdelt", "crota"]),
    cdelt_ratio=st.tuples(st.floats(0.5, 2.0), st.floats(0.5, 2.0)),
    data=st.data(),
)
def test_every_plain_tan_header_takes_the_fast_path_and_matches_wcslib(
    ra: float,
    dec: float,
    angle: float,
    scale: float,
    flip: bool,
    crpix: tuple,
    form: str,
    cdelt_ratio: tuple[float, float],
    data: Any,
) -> None:
    if form == "cdelt":  # CDELT alone writes no rotation
        angle = data.draw(st.sampled_from([0.0, 180.0]), label="angle")
    cards: dict[str, object] = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": ra,
                                "CRVAL2": dec, "CRPIX1": crpix[0], "CRPIX2": crpix[1]}  # fmt: skip
    cards |= _linear_cards(form, _cd(angle, scale, flip), cdelt_ratio)
    for name in sorted(data.draw(st.sets(st.sampled_from(sorted(_EXTRAS))), label="extras")):
        cards |= data.draw(_EXTRAS[name], label=name)
    if data.draw(st.booleans(), label="LONPOLE"):
        cards["LONPOLE"] = data.draw(st.sampled_from([180.0, -180.0]))
    parsed, text = header_cards(cards)
    wcs = cutout_wcs(parsed, text)
    # At the north pole wcslib's default LONPOLE is 0, another orientation: astropy decides.
    fast = "LONPOLE" in cards or dec != 90.0
    assert isinstance(wcs, TanWcs if fast else AstropyWcs), cards
    _assert_matches_wcslib(wcs, text, scale, crpix)


def test_astropy_to_header_takes_the_fast_path() -> None:
    reference = WCS(naxis=2)
    reference.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    reference.wcs.crval = [150.1, 2.2]
    reference.wcs.crpix = [32.5, 32.5]
    reference.wcs.cdelt = [-0.168 / 3600, 0.168 / 3600]
    reference.wcs.pc = [[0.99, 0.1], [-0.1, 0.99]]
    reference.wcs.dateobs = "2026-12-02T06:00:00"
    header = reference.to_header()
    assert {"LONPOLE", "LATPOLE", "MJDREF", "RADESYS", "WCSAXES"} <= set(header)
    parsed, text = header_cards(dict(header))
    wcs = cutout_wcs(parsed, text)
    assert isinstance(wcs, TanWcs)
    _assert_matches_wcslib(wcs, text, 0.168, (32.5, 32.5))


_SIP = {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "A_ORDER": 2, "B_ORDER": 2,
        "A_2_0": 1e-5, "B_0_2": 1e-5}  # fmt: skip
#: A projection only wcslib maps: the astropy path.
_SIN = {"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN"}


@pytest.mark.parametrize(
    "extra",
    [
        _SIP | {"PV2_1": 0.0},  # SIP beside projection parameters
        {"PV2_1": 0.0},
        {"LONPOLE": 170.0},
        {"LONPOLE": 0.0},
        {"CRVAL2": 90.0},  # the north pole, where wcslib's default LONPOLE is 0
        {"LATPOLE": 95.0},
        {"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN"},
        {"CTYPE1": "DEC--TAN", "CTYPE2": "RA---TAN"},  # swapped axes
        {"CUNIT1": "arcsec"},
        {"PC1_1": 1.0},  # CD and PC mixed: wcslib's precedence decides
        {"CROTA2": 10.0},  # CD and CROTA2 mixed
        {"CROTA1": 10.0},
        {"WCSAXES": 3, "CTYPE3": "WAVE"},
    ],
    ids=lambda extra: ",".join(extra)[:30],
)
def test_other_wcs_go_through_astropy_and_match_it(extra: dict[str, object]) -> None:
    cards = _tan_cards(10.0, 20.0, _cd(0.0, 0.168, False), (32.5, 32.5)) | extra
    parsed, text = header_cards(cards)
    wcs = cutout_wcs(parsed, text)
    assert isinstance(wcs, AstropyWcs)
    _assert_matches_wcslib(wcs, text, 0.168, (32.5, 32.5))


def test_cdelt_alone_and_crota2_match_the_cd_form() -> None:
    """``CDELT`` + ``CROTA2`` (AIPS) is the CD matrix ``[[c1 cos, -c2 sin], [c1 sin, c2 cos]]``."""
    cd = _cd(25.0, 0.168, False)
    crota = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.0, "CRVAL2": 20.0,
             "CRPIX1": 32.5, "CRPIX2": 32.5, "CDELT1": -0.168 / 3600, "CDELT2": 0.168 / 3600,
             "CROTA2": 25.0}  # fmt: skip
    a, b = (
        cutout_wcs(*header_cards(_tan_cards(10.0, 20.0, cd, (32.5, 32.5)))),
        cutout_wcs(*header_cards(crota)),
    )
    assert isinstance(a, TanWcs)
    assert isinstance(b, TanWcs)
    np.testing.assert_allclose(b.cd, a.cd, rtol=0, atol=1e-18)


@pytest.mark.parametrize(
    ("extra", "frame"),
    [
        ({"CTYPE1": "GLON-TAN", "CTYPE2": "GLAT-TAN"}, "galactic"),
        ({"CTYPE1": "GLON-SIN", "CTYPE2": "GLAT-SIN"}, "galactic"),
        ({"CTYPE1": "GLAT-TAN", "CTYPE2": "GLON-TAN"}, "galactic"),
        ({"CTYPE1": "ELON-TAN", "CTYPE2": "ELAT-TAN"}, "another frame"),
        ({"RADESYS": "FK4"}, "FK4"),
        ({"RADESYS": "GAPPT"}, "GAPPT"),
        ({"EQUINOX": 1950.0}, "FK4"),
        ({"RADESYS": "FK5", "EQUINOX": 1950.0}, "J2000"),
        ({"EQUINOX": "J2000"}, "not a number"),
    ],
)
def test_other_sky_frames_are_rejected_not_read_as_ra_dec(extra: dict, frame: str) -> None:
    cards = _tan_cards(10.0, 20.0, _cd(0.0, 0.168, False), (32.5, 32.5)) | extra
    with pytest.raises(AlertRejected) as info:
        cutout_wcs(*header_cards(cards))
    assert info.value.reason == "cutout.sky_frame"
    assert frame in info.value.detail


def test_astropy_wcs_is_built_once_per_distinct_header_and_the_cache_is_bounded() -> None:
    base = _tan_cards(33.0, -4.0, _cd(0.0, 0.168, False), (32.5, 32.5)) | _SIN
    builds = ASTROPY_CACHE.builds
    first = cutout_wcs(*header_cards(base))
    # Another band of the alert: other non-WCS cards, the same WCS.
    second = cutout_wcs(*header_cards(base | {"FILTER": "r", "MJD-OBS": 61010.0}))
    assert first is second
    assert ASTROPY_CACHE.builds == builds + 1
    other = cutout_wcs(*header_cards(base | {"CRPIX1": 30.0}))
    assert other is not first
    assert ASTROPY_CACHE.builds == builds + 2
    for i in range(ASTROPY_CACHE.size + 5):
        cutout_wcs(*header_cards(base | {"CRVAL1": 40.0 + i}))
    assert len(ASTROPY_CACHE) == ASTROPY_CACHE.size


def test_shared_wcs_is_built_once_and_never_confused_across_types() -> None:
    """Bands with one WCS share one :class:`TanWcs`; ``1`` and ``True`` are different headers.

    The TAN WCS is cached by its cards (the bands of an alert repeat them). ``True == 1`` in
    Python, so a cache keyed on values alone would hand a header whose CD element is the logical
    ``T`` the WCS of one whose element is ``1``; the first must still be rejected.
    """
    cards, text = header_cards(_tan_cards(150.0, 2.0, _cd(0.0, 0.168, False), (32.5, 32.5)))
    first, second = cutout_wcs(cards, text), cutout_wcs(dict(cards), text)
    assert first is second
    one = {**cards, "CD1_2": 1}
    assert isinstance(cutout_wcs(one, text), TanWcs)
    with pytest.raises(AlertRejected) as info:
        cutout_wcs({**cards, "CD1_2": True}, text)
    assert info.value.reason == "cutout.no_wcs"

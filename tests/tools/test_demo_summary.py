"""Predicted-versus-true bookkeeping of the demo's summary table."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.alert_pictures import MEAN, image, picture
from lenscast.plotting.plot_data import AlertPicture, Interval
from lenscast.tools.demo_summary import (
    aggregate_lines,
    compare,
    non_lens_lines,
    pointing_lines,
    table_lines,
)


def truth(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "alert_id": "a1", **MEAN, "image_x": [1.5, -1.5], "image_y": [0.0, 0.0],
        "time_delay_days": [0.0, 10.0], "transient_image": 0,
    }  # fmt: skip
    return row | changes


def test_a_perfect_prediction_has_no_errors() -> None:
    c = compare(picture((image("A", 1.5, 0.0, 0.0), image("B", -1.5, 0.0, 10.0))), truth())
    assert c.theta_e - c.theta_e_true == 0.0
    assert c.center_offset == (0.0, 0.0)
    assert c.image_offsets == [0.0]  # the observed image A is the input: left out
    assert c.delays == [(10.0, 10.0)]
    assert (c.n_images, c.n_images_true, c.has_transient) == (2, 2, True)


def test_offsets_and_delays_of_an_imperfect_prediction() -> None:
    c = compare(picture((image("A", 1.5, 0.0, 0.0), image("B", -1.3, 0.0, 12.0)), 1.6), truth())
    assert c.theta_e - c.theta_e_true == pytest.approx(0.1)
    assert c.image_offsets == [pytest.approx(0.2)]
    assert c.delays == [(12.0, 10.0)]
    far = compare(picture((image("A", 1.5, 0.0, 0.0), image("B", 0.0, 1.5, 12.0))), truth())
    assert far.image_offsets == [pytest.approx(1.5 * 2**0.5)]  # B is far off, still B's partner
    assert far.delays == [(12.0, 10.0)]


def test_images_are_paired_by_least_total_distance() -> None:
    # Predicted C is nearest to both true images; the pairing still gives each its own partner.
    predicted = (image("A", 1.5, 0.0, 0.0), image("B", -1.0, 0.0, 8.0), image("C", 1.4, 0.1, 9.0))
    c = compare(picture(predicted), truth(transient_image=None))
    assert c.image_offsets == [0.0, pytest.approx(0.5)]
    assert c.delays == [(8.0, 10.0)]


def test_delays_need_the_same_first_image() -> None:
    swapped = picture((image("A", -1.5, 0.0, 0.0), image("B", 1.5, 0.0, 10.0)))
    c = compare(swapped, truth())
    assert c.delays == []
    assert c.image_offsets == [0.0]


def test_alerts_without_transient_have_only_lens_parameters() -> None:
    c = compare(picture(()), truth(transient_image=None))
    assert (c.n_images, c.image_offsets, c.delays, c.has_transient) == (0, [], [], False)
    lines = table_lines([c])
    assert lines[2].split()[:4] == ["a1", "1.500", "1.500", "0.000"]
    assert "-/2" in lines[2]


def test_aggregate_lines_report_the_sample() -> None:
    comparisons = [
        compare(picture((image("A", 1.5, 0.0, 0.0), image("B", -1.5, 0.0, 11.0)), 1.54), truth()),
        compare(picture((), 1.46), truth(transient_image=None)),
    ]
    text = "\n".join(aggregate_lines(comparisons))
    assert "2 (1 with a transient)" in text
    assert "+0.000 ± 0.027" in text  # theta_e errors ±0.04: 16-84 % of two values
    assert "θ_E truth within ±1σ_pred   100%" in text
    assert "+0.100 ± 0.000 (1)" in text  # one delay, 10 % long
    assert "1/1 transient alerts" in text


def _rated(p_lens: float, threshold: float = 0.5, **changes: Any) -> AlertPicture:
    base = picture((image("A", 1.5, 0.0, 0.0), image("B", -1.5, 0.0, 11.0)))
    fields = {"p_lens": p_lens, "p_lens_threshold": threshold, "no_lens": p_lens < threshold}
    return replace(base, **fields, **changes)


def test_lens_evidence_in_the_table_and_the_counts() -> None:
    kept, dropped = compare(_rated(0.9), truth()), compare(_rated(0.2), truth())
    lines = table_lines([kept, dropped])
    assert " 0.90 " in lines[2]
    assert "NO LENS" not in lines[2]
    assert " 0.20 " in lines[3]
    assert lines[3].endswith("NO LENS")
    assert "lenses kept (not no_lens)   1/2" in "\n".join(aggregate_lines([kept, dropped]))
    assert "n/a (the model has no p_lens output)" in "\n".join(aggregate_lines([compare(
        picture(()), truth(transient_image=None))]))  # fmt: skip


def test_non_lenses_are_listed_with_their_flag() -> None:
    flagged = _rated(0.05, alert_id="n1")
    missed = _rated(0.7, alert_id="n2", transient=None, images=())
    lines = non_lens_lines([flagged, missed])
    assert lines[0].startswith("Non-lenses in the sample")
    row1 = next(line for line in lines if line.startswith("n1"))
    row2 = next(line for line in lines if line.startswith("n2"))
    assert row1.split()[1:3] == ["0.05", "NO"]
    assert "the model sees no lens, its arrival dates are flagged" in row1
    assert row2.split()[1:3] == ["0.70", "lens"]
    assert row2.endswith("none")
    assert lines[-1] == "non-lenses flagged no_lens: 1/2"
    unrated = non_lens_lines([picture(())])
    assert unrated[-1] == "the model has no p_lens output: nothing is flagged"
    assert non_lens_lines([]) == []


def test_redshift_origins_are_shown_per_alert_and_counted() -> None:
    from dataclasses import replace

    observed = (image("A", 1.5, 0.0, 0.0), image("B", -1.5, 0.0, 11.0))
    prior_source = replace(picture(observed), z_lens_origin="measured", z_source_origin="prior")
    c = compare(prior_source, truth())
    assert c.redshift_origins == ("measured", "prior")
    assert " m/p " in table_lines([c])[2]
    text = "\n".join(aggregate_lines([c]))
    assert "lens 1 measured, 0 prior; source 0 measured, 1 prior" in text
def test_pointing_lines_give_the_unseen_images_on_the_sky() -> None:
    from dataclasses import replace

    a = replace(image("A", 1.5, 0.0, 0.0), ra=Interval(150.0004, 150.0003, 150.0005),
                dec=Interval(2.0, 1.99999, 2.00001))  # fmt: skip
    b = replace(image("B", -1.5, 0.0, 10.0), ra=Interval(149.9996, 149.99955, 149.99965),
                dec=Interval(2.0, 1.99999, 2.00001),
                arrival_mjd=Interval(61106.0, 61105.0, 61107.2))  # fmt: skip
    lines = pointing_lines([picture((a, b)), picture(())], rows=5)
    rows = [line for line in lines if line.startswith("a1")]
    assert len(rows) == 1  # A was seen (the transient): only B is to come
    assert rows[0].split() == ["a1", "B", "149.999600", "+2.000000", "0.02/0.02", "61106.0",
                               "[61105.0,", "61107.2]"]  # fmt: skip
    past = replace(b, arrival_mjd=Interval(61000.0, 60990.0, 61010.0))
    (row,) = [line for line in pointing_lines([picture((a, past))], 5) if line.startswith("a1")]
    assert row.endswith("(past)")
    assert pointing_lines([picture(())], rows=5) == [
        "No transient alert with predicted images to point at."
    ]

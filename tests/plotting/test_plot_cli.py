"""``lenscast plot`` and the plotting module: data read back from the database, pictures drawn."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest

from harness.result_rows import TRANSIENT_COLUMNS
from harness.result_rows import result_row as stored_result
from lenscast.consumer.cutouts_wcs import offsets_to_sky
from lenscast.db.engine import make_engine
from lenscast.db.migrate import upgrade
from lenscast.db.writer import write_batch
from lenscast.model import parameter_spec as spec
from lenscast.plotting.colour_composite import colour_composite
from lenscast.plotting.figure import (
    LensCurves,
    TruthOverlay,
    draw_alert,
    plot_alert,
    plot_gallery,
)
from lenscast.plotting.plot_data import AlertPicture, load_picture, load_pictures
from lenscast.plotting.plot_text import summary_lines

matplotlib.use("Agg")  # before any pyplot import (the modules under test import it lazily)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MEAN = {"theta_e": 1.4, "e1": 0.1, "e2": -0.05, "center_x": 0.02, "center_y": -0.03}
MEAN |= {"gamma1": 0.01, "gamma2": -0.02}


def result_row(alert_id: str, *, transient: bool, model_version: str = "1.0.0") -> dict[str, Any]:
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    row = stored_result(alert_id, version=model_version) | MEAN
    row |= {"candidate_id": f"cand-{alert_id}", "mjd": 61096.0, "model_name": "lenscast-hsc"}
    row |= {"source_offset": 0, "message_timestamp": now, "processed_at": now}
    if not transient:
        return row | dict.fromkeys(TRANSIENT_COLUMNS) | {"has_transient": False}
    # The first image of :func:`image_rows` is the observed transient.
    row |= {"source_y": 0.05, "n_images": 4, "transient_mjd": 61096.0}
    return row | {"transient_flux": 1000.0, "transient_x": 1.5, "transient_y": 0.2}


def image_rows(alert_id: str, model_version: str = "1.0.0") -> list[dict[str, Any]]:
    positions = [(1.5, 0.2), (-1.3, -0.1), (0.1, 1.4), (0.0, -1.35)]
    rows = []
    for k, (x, y) in enumerate(positions):
        delay = [0.0, 12.0, 14.0, 20.0][k]
        rows.append(
            {
                "alert_id": alert_id,
                "model_version": model_version,
                "image_index": k,
                "x": x,
                "y": y,
                "x_p16": x - 0.04,
                "x_p50": x,
                "x_p84": x + 0.05,
                "y_p16": y - 0.03,
                "y_p50": y,
                "y_p84": y + 0.04,
                "magnification": 3.0 - k,
                "time_delay_days": delay,
                "time_delay_p16": delay * 0.9,
                "time_delay_p50": delay,
                "time_delay_p84": delay * 1.1,
                "is_observed": k == 0,
                "arrival_mjd": None if k == 0 else 61096.0 + delay,
                "arrival_mjd_p16": None if k == 0 else 61096.0 + delay * 0.9,
                "arrival_mjd_p84": None if k == 0 else 61096.0 + delay * 1.1,
            }
        )
        row = rows[-1]
        ra, dec = offsets_to_sky(
            np.array([x, x - 0.04, x + 0.05, x, x]),
            np.array([y, y, y, y - 0.03, y + 0.04]),
            ra0=150.0,
            dec0=2.0,
        )
        row |= {"ra": ra[0], "dec": dec[0], "ra_p16": ra[1], "ra_p84": ra[2]}
        row |= {"dec_p16": dec[3], "dec_p84": dec[4]}
    return rows


@pytest.fixture
def results_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    write_batch(
        engine,
        results=[
            result_row("with-transient", transient=True),
            result_row("without-transient", transient=False),
        ],
        images=image_rows("with-transient"),
        rejected=[],
    )
    engine.dispose()
    return url


def circle_curves() -> LensCurves:
    t = np.linspace(0, 2 * np.pi, 100)
    return LensCurves(
        critical=[np.column_stack([1.4 * np.cos(t), 1.4 * np.sin(t)])],
        caustic=[np.column_stack([0.2 * np.cos(t) ** 3, 0.2 * np.sin(t) ** 3])],
    )


def sky(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = spec.CUTOUT_SIZE_PIX
    rows, cols = np.mgrid[0:n, 0:n]
    blob = 20 * np.exp(-((rows - 31.5) ** 2 + (cols - 31.5) ** 2) / 18)
    colours = np.array([0.3, 0.6, 1.0, 1.2])[:, None, None]
    return (colours * blob + rng.normal(0, 0.05, (4, n, n))).astype(np.float32)


def test_pictures_are_read_back_from_the_database(results_db: str) -> None:
    engine = make_engine(results_db)
    picture = load_picture(engine, "with-transient")
    assert picture.mean == pytest.approx(MEAN)
    assert picture.source == (0.1, 0.05)
    assert picture.transient == (1.5, 0.2)
    assert [im.label for im in picture.images] == ["A", "B", "C", "D"]
    b = picture.images[1]
    assert (b.x.value, b.x.p16, b.x.p84) == pytest.approx((-1.3, -1.34, -1.25))
    assert b.delay_days is not None
    assert b.delay_days.value == 12.0
    assert b.arrival_mjd is not None
    assert b.arrival_mjd.value == 61108.0
    assert picture.images[0].is_observed
    assert picture.images[0].arrival_mjd is None
    plain = load_picture(engine, "without-transient")
    assert plain.images == ()
    assert plain.source is None
    assert plain.transient is None
    assert set(load_pictures(engine, ["with-transient", "nothing"])) == {"with-transient"}
    with pytest.raises(LookupError, match="nothing"):
        load_picture(engine, "nothing")
    with pytest.raises(LookupError, match="2.0.0"):
        load_picture(engine, "with-transient", model_version="2.0.0")
    engine.dispose()


def test_the_latest_model_version_is_shown_by_default(results_db: str) -> None:
    engine = make_engine(results_db)
    newer = result_row("with-transient", transient=True, model_version="1.1.0")
    newer["processed_at"] = datetime(2026, 11, 28, tzinfo=UTC)
    newer["theta_e"] = 1.6
    write_batch(engine, results=[newer], images=image_rows("with-transient", "1.1.0"), rejected=[])
    assert load_picture(engine, "with-transient").model_version == "1.1.0"
    older = load_picture(engine, "with-transient", model_version="1.0.0")
    assert older.mean["theta_e"] == pytest.approx(1.4)
    engine.dispose()


def test_colour_composite_keeps_hues_and_range() -> None:
    cutouts = sky()
    rgb = colour_composite(cutouts)
    assert rgb.shape == (64, 64, 3)
    assert rgb.min() >= 0.0
    assert rgb.max() <= 1.0
    centre = rgb[32, 32]
    assert centre[0] > centre[1] > centre[2]  # red source: i > r > g
    assert np.all(colour_composite(np.zeros((4, 64, 64))) == 0.0)


def test_axes_put_east_left_and_north_up(results_db: str) -> None:
    import matplotlib.pyplot as plt

    engine = make_engine(results_db)
    picture = load_picture(engine, "with-transient")
    engine.dispose()
    cutouts = np.zeros((4, 64, 64), dtype=np.float32)
    cutouts[:, 40, 5] = 100.0  # row 40 (north of centre), column 5 (east of centre)
    figure, ax = plt.subplots()
    draw_alert(ax, AlertPicture(**{**picture.__dict__, "cutouts": cutouts}), circle_curves())
    left, right = ax.get_xlim()
    bottom, top = ax.get_ylim()
    assert left > 0 > right
    assert bottom < 0 < top
    image = ax.get_images()[0]
    extent = image.get_extent()
    # Pixel (row, col) sits at x = -(col - 31.5) * scale, y = (row - 31.5) * scale.
    scale = spec.PIXEL_SCALE_ARCSEC
    x = extent[0] + (5 + 0.5) * (extent[1] - extent[0]) / 64
    y = extent[2] + (40 + 0.5) * (extent[3] - extent[2]) / 64
    assert (x, y) == pytest.approx((-(5 - 31.5) * scale, (40 - 31.5) * scale))
    plt.close(figure)


def test_summary_lists_delays_and_arrival_dates(results_db: str) -> None:
    engine = make_engine(results_db)
    text = "\n".join(summary_lines(load_picture(engine, "with-transient")))
    plain = "\n".join(summary_lines(load_picture(engine, "without-transient")))
    engine.dispose()
    assert "theta_e = +1.400 ± 0.050" in text
    assert "B: (-1.30, -0.10)" in text
    # B is 1.30" west (RA smaller) and 0.10" south of the cutout centre (150, +2).
    b_ra = 150.0 - 1.3 / 3600 / np.cos(np.radians(2.0))
    assert f'RA {b_ra:.6f}, Dec {2.0 - 0.1 / 3600:+.6f} ±0.05"/±0.04"' in text
    assert "Δt = 12.0 d [10.8, 13.2]" in text
    assert "arrives MJD 61108.0 [61106.8, 61109.2] = 2026-03-09" in text
    assert "observed MJD 61096.00" in text
    assert "2026-" in text  # calendar dates beside the MJDs
    assert "no images predicted" in plain


def test_single_plot_and_gallery_are_pngs(results_db: str, tmp_path: Path) -> None:
    engine = make_engine(results_db)
    pictures = load_pictures(engine, ["with-transient", "without-transient"])
    engine.dispose()
    with_cutouts = [
        AlertPicture(**{**p.__dict__, "cutouts": sky(k)}) for k, p in enumerate(pictures.values())
    ]
    truth = TruthOverlay(
        images=np.array([[1.52, 0.18], [-1.28, -0.12]]), source=(0.1, 0.04), theta_e=1.45
    )
    single = plot_alert(with_cutouts[0], tmp_path / "one.png", curves=circle_curves(), truth=truth)
    gallery = plot_gallery(
        with_cutouts * 3, tmp_path / "gallery.png", curves=[circle_curves()] * 6, columns=3
    )
    for path in (single, gallery):
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 20_000
    with pytest.raises(ValueError, match="at least one"):
        plot_gallery([], tmp_path / "empty.png")


def test_plot_command_draws_a_stored_alert(
    results_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lenscast.cli import main
    from lenscast.tools.alert_encoding import build_record, write_container

    archive = tmp_path / "alerts.avro"
    record = build_record(
        alert_id="with-transient", candidate_id="cand", ra=150.0, dec=2.0, mjd=61096.0,
        images=sky(),
    )  # fmt: skip
    write_container([record], archive)
    with_cutout = tmp_path / "with-cutout.png"
    assert main(["plot", "with-transient", "--db", results_db, "--alerts", str(archive),
                 "--out", str(with_cutout)]) == 0  # fmt: skip
    blank = tmp_path / "blank.png"
    assert main(["plot", "without-transient", "--db", results_db, "--out", str(blank)]) == 0
    assert "drawn without its cutout" in capsys.readouterr().err
    for path in (with_cutout, blank):
        assert path.read_bytes().startswith(PNG_MAGIC)
    # The colour composite makes the file with the cutout the larger one.
    assert with_cutout.stat().st_size > blank.stat().st_size
    assert main(["plot", "unknown-alert", "--db", results_db, "--out", str(blank)]) == 1


def test_panel_title_shows_the_true_einstein_radius(results_db: str) -> None:
    import matplotlib.pyplot as plt

    engine = make_engine(results_db)
    picture = load_picture(engine, "with-transient")
    engine.dispose()
    figure, ax = plt.subplots()
    truth = TruthOverlay(images=np.zeros((0, 2)), theta_e=1.45)
    draw_alert(ax, picture, circle_curves(), truth=truth, compact=True)
    assert ax.get_title() == 'with-transient\nθ_E = 1.40 ± 0.05" (true 1.45")'
    plt.close(figure)


def test_view_fits_the_drawing_and_labels_point_away(results_db: str) -> None:
    from lenscast.plotting.figure import _label_offset, view_half_width

    engine = make_engine(results_db)
    picture = load_picture(engine, "with-transient")
    engine.dispose()
    half = 32 * spec.PIXEL_SCALE_ARCSEC
    view = view_half_width(picture, circle_curves(), None, half)
    assert 1.5 < view <= half  # images reach 1.5": all of them inside the view
    far = TruthOverlay(images=np.array([[9.0, 0.0]]))
    assert view_half_width(picture, circle_curves(), far, half) == half  # never past the cutout
    # East of the centre (x > 0) is left on screen: the label goes left (negative points).
    (ox, oy), ha, va = _label_offset(1.0, 0.0, (0.0, 0.0), 9)
    assert (ox, oy, ha) == (-9.0, 0.0, "right")
    (ox, oy), ha, va = _label_offset(0.0, -1.0, (0.0, 0.0), 9)
    assert (oy, va) == (-9.0, "top")


def test_summary_marks_measured_and_prior_redshifts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prior.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    row = result_row("prior-source", transient=True) | {
        "z_lens_err": 0.045, "z_source": None, "z_lens_origin": "measured",
        "z_source_origin": "prior", "z_lens_used": 0.5, "z_source_used": 2.04,
        "time_delay_distance_mpc": 2000.0,
    }  # fmt: skip
    write_batch(engine, results=[row], images=image_rows("prior-source"), rejected=[])
    text = "\n".join(summary_lines(load_picture(engine, "prior-source")))
    engine.dispose()
    assert "z_lens = 0.500 ± 0.045 (measured)" in text
    assert "z_source ≈ 2.04 (prior median, SL2S)" in text
def test_legend_names_the_image_ellipses_and_a_missing_cutout_is_said(results_db: str) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    from lenscast.plotting.figure import ELLIPSE_LABEL, NO_CUTOUT_TEXT

    engine = make_engine(results_db)
    picture = load_picture(engine, "with-transient")
    engine.dispose()
    figure, ax = plt.subplots()
    draw_alert(ax, picture, circle_curves())
    handles, labels = ax.get_legend_handles_labels()
    assert isinstance(handles[labels.index(ELLIPSE_LABEL)], Ellipse)
    assert labels.count(ELLIPSE_LABEL) == 1  # one entry, however many images
    assert NO_CUTOUT_TEXT in [t.get_text() for t in ax.texts]
    plt.close(figure)
    figure, ax = plt.subplots()
    draw_alert(ax, replace(picture, cutouts=sky()), circle_curves())
    assert NO_CUTOUT_TEXT not in [t.get_text() for t in ax.texts]
    plt.close(figure)

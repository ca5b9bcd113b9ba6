"""Realistic lens light, coadd effects and non-lenses: the simulator options of model 2.0.0."""

from __future__ import annotations

import numpy as np
import pytest

from lenscast.cli import main
from lenscast.trainer.simulation import coadd_effects, non_lenses, observing, realistic_light
from lenscast.trainer.simulation.cosmology import distance_table
from lenscast.trainer.simulation.hudf import hudf_catalogue
from lenscast.trainer.simulation.lens_population import draw_lens
from lenscast.trainer.simulation.psf import moffat_kernel
from lenscast.trainer.simulation.render import render_scene
from lenscast.trainer.simulation.simulator import SimulationConfig, simulate_batch


def _lens(rng: np.random.Generator, theta_e: float) -> dict:
    return draw_lens(rng, theta_e=theta_e, z_lens=0.5, z_source=2.0, table=distance_table())


def test_realistic_brightness_and_size_do_not_follow_theta_e() -> None:
    """LRG-bright at every θ_E: the small and the large lenses share one magnitude range."""
    rng = np.random.default_rng(1)
    mags = {}
    for theta_e in (0.6, 4.0):
        drawn = [realistic_light.make_realistic(rng, _lens(rng, theta_e))[0]
                 for _ in range(400)]
        mags[theta_e] = np.array([d["lens_mag_i"] for d in drawn])
        assert mags[theta_e].min() >= realistic_light.MAG_I_RANGE[0] - 1e-9
        assert mags[theta_e].max() <= realistic_light.MAG_I_RANGE[1] + 1e-9
    # The analytic relation puts these two θ_E several magnitudes apart; here the medians agree.
    assert abs(np.median(mags[0.6]) - np.median(mags[4.0])) < 0.3


def test_realistic_light_has_a_twisted_bluer_envelope_and_an_offset_centre() -> None:
    rng = np.random.default_rng(2)
    offsets, twists = [], []
    for _ in range(300):
        lens, _ = realistic_light.make_realistic(rng, _lens(rng, 1.5))
        body, envelope = lens["light_components"]
        assert envelope["r_eff"] > 2.0 * body["r_eff"] or envelope["r_eff"] == 8.0
        # Bluer outskirts: the envelope's g-r is at most the body's.
        assert envelope["mags"][0] - envelope["mags"][1] <= body["mags"][0] - body["mags"][1]
        x, y = lens["lens_light_x"], lens["lens_light_y"]
        assert np.hypot(x, y) <= realistic_light.LIGHT_CENTRE_MAX + 1e-9
        assert max(abs(x), abs(y)) <= 0.78 + 1e-9
        assert np.hypot(lens["center_x"] - x, lens["center_y"] - y) < 0.1
        offsets.append(np.hypot(x, y))
        twists.append(np.arctan2(envelope["e2"], envelope["e1"])
                      - np.arctan2(body["e2"], body["e1"]))
    assert max(offsets) > 0.8  # light centres reach beyond the analytic 0.6"
    assert np.std(twists) > 0.1  # the isophotes twist


def test_companions_lie_within_one_and_a_half_arcsec() -> None:
    rng = np.random.default_rng(3)
    found = []
    for _ in range(200):
        found += realistic_light.companions(rng, centre=(0.3, -0.2), mag_i=18.0)
    assert found
    radii = [np.hypot(c["x"] - 0.3, c["y"] + 0.2) for c in found]
    assert max(radii) <= 1.5 + 1e-9
    g_r = np.array([c["mags"][0] - c["mags"][1] for c in found])
    assert (g_r < 0.8).any()  # blue ones
    assert (g_r > 1.2).any()  # and red ones


def test_correlated_noise_keeps_the_pixel_variance() -> None:
    noise = coadd_effects.correlated_normal(np.random.default_rng(4), (8, 64, 64), 0.7)
    assert noise.std() == pytest.approx(1.0, abs=0.03)
    neighbour = np.mean(noise[:, :, 1:] * noise[:, :, :-1])
    assert neighbour > 0.3  # white noise would give 0
    assert np.sum(coadd_effects.correlation_kernel(0.5) ** 2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        coadd_effects.correlation_kernel(0.0)


def test_psf_wings_keep_the_flux_and_widen_the_profile() -> None:
    core = moffat_kernel(fwhm=0.7, beta=3.5, pixel_scale=0.168)
    winged = coadd_effects.add_wings(core, fwhm=0.7, pixel_scale=0.168, fraction=0.08,
                                     scale=3.5)
    assert winged.sum() == pytest.approx(1.0)
    assert winged[0, 11] > core[0, 11] * 2  # more light at the kernel's edge
    with pytest.raises(ValueError, match="wing fraction"):
        coadd_effects.add_wings(core, fwhm=0.7, pixel_scale=0.168, fraction=1.0, scale=3.0)


def test_sky_residual_is_an_offset_plus_a_gradient() -> None:
    effects = coadd_effects.draw(np.random.default_rng(5))
    rms = np.array([0.05, 0.06, 0.08, 0.12])
    sky = coadd_effects.sky_residual(effects, rms, 64)
    for b, band in enumerate("griz"):
        assert sky[b].mean() == pytest.approx(rms[b] * effects[f"sky_offset_{band}"], abs=1e-9)
    # Linear: second differences vanish.
    assert np.abs(np.diff(sky, n=2, axis=-1)).max() < 1e-9


def test_realistic_conditions_give_wings_and_correlated_noise() -> None:
    rng = np.random.default_rng(6)
    conditions = observing.draw_conditions(rng)
    plain = observing.psf_kernels(conditions)
    conditions.update(coadd_effects.draw(rng))
    assert not np.allclose(observing.psf_kernels(conditions), plain)
    image = observing.add_noise(rng, np.zeros((4, 64, 64)), conditions)
    assert np.mean(image[2, :, 1:] * image[2, :, :-1]) > 0.0


def test_defaults_draw_lenses_only_with_analytic_light() -> None:
    batch = simulate_batch(6, seed=np.random.SeedSequence(7), config=SimulationConfig())
    assert (batch.truths["is_lens"] == 1).all()
    assert (batch.truths["non_lens_kind"] == -1).all()
    assert (batch.truths["lens_light_kind"] == 0).all()
    assert batch.attempts["non_lens"] == 0


def test_non_lenses_have_prior_targets_no_images_and_no_visible_arcs() -> None:
    config = SimulationConfig(lens_light="realistic", non_lens_fraction=0.5)
    batch = simulate_batch(40, seed=np.random.SeedSequence(8), config=config)
    truths = batch.truths
    non = truths["is_lens"] == 0
    assert 8 <= non.sum() <= 32
    assert (truths["n_images"][non] == 0).all()
    assert np.isnan(truths["image_x"][non]).all()
    assert ((truths["theta_e"][non] >= 0.5) & (truths["theta_e"][non] <= 5.0)).all()
    faint = non & (truths["non_lens_kind"] == non_lenses.NON_LENS_KINDS.index("faint_arcs"))
    if faint.any():
        assert truths["arc_snr"][faint].max() < 8.0
    lenses = ~non
    assert (truths["arc_snr"][lenses].max(axis=1) >= 20.0).all()
    assert (truths["lens_light_kind"][lenses] == 1).all()
    assert np.isfinite(batch.images).all()


@pytest.mark.parametrize("kind", non_lenses.NON_LENS_KINDS)
def test_every_non_lens_kind_renders(kind: str) -> None:
    rng = np.random.default_rng(9)
    catalogue = hudf_catalogue()
    lens, _ = realistic_light.make_realistic(rng, _lens(rng, 1.2))
    scene_lens, neighbours = non_lenses.scene(rng, kind, lens=lens, neighbours=[],
                                              catalogue=catalogue, split="val")
    source = {"source_x": 0.0, "source_y": 0.0, "galaxy_id": -1, "source_r_eff": 0.2,
              "source_n_sersic": 1.0, "source_e1": 0.0, "source_e2": 0.0, "n_clumps": 0,
              "clump_fraction": 0.0, "clumps": {},
              **{f"source_mag_{b}": 23.0 for b in "griz"}}
    conditions = observing.draw_conditions(rng)
    scene = render_scene(lens=scene_lens, source=source, neighbours=neighbours,
                         kernels=observing.psf_kernels(conditions), catalogue=catalogue)
    assert np.isfinite(scene.foreground).all()
    assert scene.foreground.sum() > 0.0
    if kind in ("hudf_foreground", "ring_galaxy", "edge_on_disc"):
        assert scene_lens["light_components"] == []


def test_unknown_non_lens_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown non-lens kind"):
        non_lenses.scene(np.random.default_rng(0), "comet", lens={"center_x": 0.0,
                                                                  "center_y": 0.0},
                         neighbours=[], catalogue=hudf_catalogue(), split="val")


def test_defects_are_added_to_a_copy() -> None:
    image = np.zeros((4, 64, 64), np.float32)
    out = non_lenses.add_defects(np.random.default_rng(10), image, np.full(4, 0.1))
    assert image.max() == 0.0
    assert out.max() >= 2.0  # at least 20 background rms


@pytest.mark.parametrize("value", ["-0.1", "1", "1.5"])
def test_cli_refuses_a_non_lens_fraction_out_of_range(value: str, tmp_path, capsys) -> None:
    code = main(["simulate", "--n", "2", "--seed", "1", "--out", str(tmp_path / "x"),
                 "--non-lens-fraction", value, "--no-progress"])
    assert code == 2
    assert "--non-lens-fraction must lie in [0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_refuses_an_unknown_lens_light(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--n", "2", "--seed", "1", "--out", str(tmp_path / "x"),
              "--lens-light", "photographic"])
    assert "invalid choice" in capsys.readouterr().err


def test_cli_records_the_options_in_the_manifest(tmp_path) -> None:
    import json

    out = tmp_path / "set"
    assert main(["simulate", "--n", "6", "--seed", "2", "--out", str(out), "--no-progress",
                 "--lens-light", "realistic", "--non-lens-fraction", "0.5",
                 "--shard-size", "6"]) == 0
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["lens_light"] == "realistic"
    assert config["non_lens_fraction"] == 0.5

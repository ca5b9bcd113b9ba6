"""Shards, the ``lenscast simulate`` command and the simulated populations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lenscast.cli import main
from lenscast.model.parameter_spec import MASS_PARAMETER_NAMES
from lenscast.trainer.dataset import (
    load_shards,
    load_truths,
    read_manifest,
    shard_name,
    write_shard,
)
from lenscast.trainer.simulation import lens_population, source_population
from lenscast.trainer.simulation.cosmology import distance_table
from lenscast.trainer.simulation.hudf import CATALOGUE_VERSION, SPLITS, hudf_catalogue
from lenscast.trainer.simulation.mass import ellipticity_to_phi_q
from lenscast.trainer.simulation.simulator import SimulationConfig, simulate_batch

REQUIRED_COLUMNS = (*MASS_PARAMETER_NAMES, "gamma", "z_lens", "z_source", "source_x", "source_y",
                    "image_x", "image_y", "time_delay_days", "n_images", "source_kind",
                    "galaxy_id", "seeing_g", "seeing_r", "seeing_i", "seeing_z", "lens_mag_i",
                    "lens_r_eff", "arc_snr", "split")


def test_write_and_load_round_trip(tmp_path):
    images = np.random.default_rng(0).normal(size=(5, 4, 64, 64)).astype(np.float32)
    truths = {"theta_e": np.arange(5.0), "image_x": np.full((5, 4), np.nan),
              "split": np.full(5, "test")}
    write_shard(tmp_path / shard_name(0), images=images, truths=truths)
    write_shard(tmp_path / shard_name(1), images=images[:3], truths={k: v[:3] for k, v in
                                                                    truths.items()})
    assert not list(tmp_path.glob("*.tmp"))
    data = load_shards(tmp_path)
    assert data.images.shape == (8, 4, 64, 64)
    assert data.images.dtype == np.float32
    np.testing.assert_array_equal(data.truths["theta_e"], [0, 1, 2, 3, 4, 0, 1, 2])
    assert data.truths["split"][0] == "test"
    assert len(load_shards(tmp_path, limit=6)) == 6
    np.testing.assert_array_equal(load_truths(tmp_path)["theta_e"], data.truths["theta_e"])
    with pytest.raises(ValueError, match="rows"):
        write_shard(tmp_path / "bad.npz", images=images, truths={"theta_e": np.arange(4.0)})


def _simulate(out, *extra):
    return main(["simulate", "--n", "25", "--seed", "7", "--out", str(out), "--shard-size", "10",
                 "--no-progress", *extra])


def test_cli_is_deterministic_resumable_and_complete(tmp_path):
    assert _simulate(tmp_path / "a", "--workers", "1", "--gallery", str(tmp_path / "g.png"),
                     "--distributions", str(tmp_path / "d.png")) == 0
    assert _simulate(tmp_path / "b", "--workers", "2") == 0
    manifest = read_manifest(tmp_path / "a")
    assert manifest["complete"] is True
    assert manifest["n_shards"] == 3
    assert manifest["attempts"]["accepted"] == 25
    a, b = load_shards(tmp_path / "a"), load_shards(tmp_path / "b")
    np.testing.assert_array_equal(a.images, b.images)
    # Resume: a lost shard is re-simulated identically, the others are kept.
    (tmp_path / "b" / shard_name(1)).unlink()
    assert _simulate(tmp_path / "b", "--workers", "1") == 0
    np.testing.assert_array_equal(load_shards(tmp_path / "b").images, a.images)
    # A different run into the same directory is refused.
    assert main(["simulate", "--n", "25", "--seed", "8", "--out", str(tmp_path / "a"),
                 "--no-progress"]) == 2
    # Out-of-range population options are refused before anything is written.
    for bad in (["--gaussian-psf-fraction", "1.5"], ["--mass-light-misalignment", "-5", "0.1"]):
        assert main(["simulate", "--n", "5", "--seed", "9", "--out", str(tmp_path / "bad"),
                     "--no-progress", *bad]) == 2
    assert not (tmp_path / "bad").exists()
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert (tmp_path / "d.png").stat().st_size > 1000
    json.loads((tmp_path / "a" / "shard_00000.json").read_text())


@pytest.fixture(scope="module")
def batch():
    return simulate_batch(60, seed=np.random.SeedSequence(11), config=SimulationConfig())


def test_every_truth_is_recorded_and_the_cuts_hold(batch):
    truths = batch.truths
    for name in REQUIRED_COLUMNS:
        assert name in truths, name
        assert len(truths[name]) == 60
    assert batch.images.shape == (60, 4, 64, 64)
    assert batch.images.dtype == np.float32
    assert np.all(truths["n_images"] >= 2)
    assert np.all(truths["arc_snr"].max(axis=1) >= 20)
    assert np.all(truths["gamma"] == 2.0)
    n = truths["n_images"]
    finite = np.isfinite(truths["image_x"])
    np.testing.assert_array_equal(finite.sum(axis=1), n)
    delays = truths["time_delay_days"]
    assert np.all(delays[:, 0] == 0)
    assert np.all(np.diff(delays, axis=1)[finite[:, 1:]] >= 0)
    for p in MASS_PARAMETER_NAMES:
        from lenscast.model.parameter_spec import parameter

        spec = parameter(p)
        assert np.all((truths[p] >= spec.low) & (truths[p] <= spec.high)), p
    assert np.all(np.hypot(truths["center_x"], truths["center_y"]) <= 0.6 + 1e-12)
    assert set(np.unique(truths["source_kind"])) <= {0, 1}
    hudf = truths["source_kind"] == 1
    assert 0.5 < hudf.mean() < 1.0
    assert np.all(truths["galaxy_id"][hudf] >= 0)
    assert np.all(truths["galaxy_id"][~hudf] == -1)


def test_hudf_galaxies_are_split_once_and_never_shared():
    catalogue = hudf_catalogue()
    sets = [set(catalogue.ids(s)) for s in SPLITS]
    assert len(catalogue.stamps) > 500
    assert not (sets[0] & sets[1])
    assert not (sets[0] & sets[2])
    assert not (sets[1] & sets[2])
    assert sum(map(len, sets)) == len(catalogue.stamps)
    for stamp in catalogue.stamps[:50]:
        assert stamp.griz[2].sum() == pytest.approx(1.0, rel=1e-5)
        assert np.all(stamp.griz >= 0)


def test_catalogue_split_is_the_one_every_shipped_model_was_trained_on():
    # The split of CATALOGUE_VERSION "hudf-1". If this changes without a new catalogue
    # version, sets simulated before and after would share galaxies across train and test;
    # trainer/scripts/gpu_refine.sh checks a GPU machine's catalogue against the same value.
    assert CATALOGUE_VERSION == "hudf-1"
    catalogue = hudf_catalogue()
    assert catalogue.fingerprint(pixels=False) == "afaaa954e934aade"
    assert catalogue.fingerprint() != catalogue.fingerprint(pixels=False)


def test_test_split_uses_only_test_galaxies():
    batch = simulate_batch(20, seed=np.random.SeedSequence(2),
                           config=SimulationConfig(split="test", hudf_fraction=1.0))
    test_ids = set(hudf_catalogue().ids("test"))
    assert set(batch.truths["galaxy_id"]) <= test_ids


def test_vdf_prior_favours_small_einstein_radii():
    rng = np.random.default_rng(4)
    table = distance_table()
    draws = {prior: [] for prior in lens_population.THETA_E_PRIORS}
    for prior, values in draws.items():
        for _ in range(400):
            z_l, z_s = lens_population.draw_redshifts(rng)
            values.append(lens_population.draw_theta_e(rng, prior=prior, z_lens=z_l,
                                                       z_source=z_s, table=table))
    uniform, vdf = np.array(draws["uniform"]), np.array(draws["vdf"])
    assert uniform.min() >= 0.5
    assert uniform.max() <= 5.0
    assert vdf.min() >= 0.5
    assert abs(np.median(uniform) - 2.75) < 0.3
    assert np.median(vdf) < 1.3


def _lens_light_residuals(scatter_mag: float, scatter_dex: float) -> tuple[np.ndarray, np.ndarray]:
    """Lens i magnitude and log size of 300 draws at one theta_e and redshift pair."""
    rng = np.random.default_rng(7)
    table = distance_table()
    lenses = [lens_population.draw_lens(rng, theta_e=2.0, z_lens=0.5, z_source=2.0, table=table,
                                        light_scatter_mag=scatter_mag,
                                        size_scatter_dex=scatter_dex)
              for _ in range(300)]
    return (np.array([d["lens_mag_i"] for d in lenses]),
            np.log10([d["lens_r_eff"] for d in lenses]))


def test_a_looser_lens_light_relation_scales_the_same_draws():
    """Wider scatter loosens the light-theta_e tie; the defaults draw what they always drew."""
    mag, size = _lens_light_residuals(lens_population.FJ_SCATTER_MAG,
                                      lens_population.SIZE_SCATTER_DEX)
    wide_mag, wide_size = _lens_light_residuals(1.0, 0.25)
    # Same generator, same draws, only the scale of the luminosity and size noise changes.
    centre = np.median(mag)
    assert np.allclose(wide_mag - centre, (mag - centre) * 1.0 / 0.35, atol=0.3)
    assert 2.5 < np.std(wide_mag) / np.std(mag) < 3.2
    assert 1.8 < np.std(wide_size) / np.std(size) < 2.4


def _mass_light_offsets(angle_deg: float, dq: float) -> tuple[np.ndarray, np.ndarray]:
    """Mass minus light position angle (deg) and axis ratio of 400 draws."""
    rng = np.random.default_rng(8)
    table = distance_table()
    lenses = [lens_population.draw_lens(rng, theta_e=2.0, z_lens=0.5, z_source=2.0, table=table,
                                        mass_angle_scatter_deg=angle_deg, mass_q_scatter=dq)
              for _ in range(400)]
    phi_m, q_m = ellipticity_to_phi_q(e1=[d["e1"] for d in lenses], e2=[d["e2"] for d in lenses])
    phi_l, q_l = ellipticity_to_phi_q(e1=[d["lens_e1"] for d in lenses],
                                      e2=[d["lens_e2"] for d in lenses])
    dphi = np.rad2deg((phi_m - phi_l + np.pi / 2) % np.pi - np.pi / 2)
    return dphi[q_l < 0.8], (q_m - q_l)[(q_l > 0.5) & (q_l < 0.8)]  # angles: elongated ones


def test_a_looser_mass_light_alignment_scales_the_same_draws():
    angle, dq = _mass_light_offsets(lens_population.MASS_ANGLE_SCATTER_DEG,
                                    lens_population.MASS_Q_SCATTER)
    wide_angle, wide_dq = _mass_light_offsets(25.0, 0.15)
    assert 7.0 < np.std(angle) < 13.0
    assert 2.0 < np.std(wide_angle) / np.std(angle) < 3.0
    assert 1.4 < np.std(wide_dq) / np.std(dq) < 2.4  # less than 0.15 / 0.08: q is clipped


def test_source_placement_uniform_in_area_moves_sources_outwards():
    catalogue = hudf_catalogue()
    lens = {"theta_e": 2.0, "center_x": 0.0, "center_y": 0.0, "gamma1": 0.0, "gamma2": 0.0}
    radii = {}
    for placement in source_population.SOURCE_PLACEMENTS:
        rng = np.random.default_rng(5)
        draws = [source_population.draw_source(rng, lens=lens, catalogue=catalogue, split="train",
                                               hudf_fraction=0.0, placement=placement)
                 for _ in range(400)]
        radii[placement] = np.hypot([d["source_x"] for d in draws], [d["source_y"] for d in draws])
    assert np.all(radii["radius"] <= 0.95 * 2.0)
    assert abs(np.median(radii["radius"]) / 1.9 - 0.5) < 0.06  # uniform in radius
    assert abs(np.median(radii["area"]) / 1.9 - np.sqrt(0.5)) < 0.06  # uniform in area
    assert np.median(radii["radius"]) < np.median(radii["mixed"]) < np.median(radii["area"])
    with pytest.raises(ValueError, match="placement"):
        source_population.draw_source(np.random.default_rng(0), lens=lens, catalogue=catalogue,
                                      split="train", hudf_fraction=0.0, placement="ring")


def test_no_source_observes_the_deflector_alone():
    """Non-lenses: each drawn system is observed without its source (no arcs, no images)."""
    from lenscast.trainer.simulation import observing
    from lenscast.trainer.simulation.render import render_scene
    from lenscast.trainer.simulation.simulator import arc_snr, draw_candidate

    seed = np.random.SeedSequence(5)  # its first system's source would show arcs at SNR ~290
    config = SimulationConfig(split="test", lensed_source=False)
    none = simulate_batch(3, seed=seed, config=config)
    assert np.all(none.truths["n_images"] == 0)
    assert np.all(np.isnan(none.truths["image_x"]))
    assert np.all(none.truths["arc_snr"] == 0)
    assert np.all(np.isnan(none.truths["magnification"]))
    assert none.attempts["accepted"] == none.attempts["total"] == 3  # no cut applies
    # The first system again, noiseless: the image is its foreground plus noise, no arcs.
    rng = np.random.default_rng(seed)
    first = draw_candidate(rng, config=config, catalogue=hudf_catalogue(), table=distance_table())
    assert first.lens["theta_e"] == none.truths["theta_e"][0]
    scene = render_scene(
        lens=first.lens,
        source=first.source,
        neighbours=first.neighbours,
        kernels=observing.psf_kernels(first.conditions),
        catalogue=hudf_catalogue(),
    )
    pulls = (none.images[0] - scene.foreground) / np.sqrt(
        observing.pixel_variance(scene.foreground, first.conditions)
    )
    assert abs(pulls.mean()) < 0.05  # 16384 pixels: the mean pull's 1 sigma is 0.008
    assert 0.95 < pulls.std() < 1.05
    # Where its arcs would be, the light is the foreground's: with them the pulls would be huge.
    assert arc_snr(scene, first.conditions).max() > 100
    arcs = scene.lensed_source > 0.5 * scene.lensed_source.max()
    assert abs(pulls[arcs].mean()) < 5 / np.sqrt(arcs.sum())

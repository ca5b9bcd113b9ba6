"""Real galaxies as lens light: the catalogue, its split, its shapes on the sky, the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenscast.cli import main
from lenscast.trainer.simulation import non_lenses, real_galaxies
from lenscast.trainer.simulation.mass import ellipticity_to_phi_q
from lenscast.trainer.simulation.render import _grid, _neighbour_light
from lenscast.trainer.simulation.simulator import SimulationConfig, simulate_batch

_SIZE = 423


def _display(*, q: float, phi: float, sigma: float, rgb: tuple[float, float, float],
             rng: np.random.Generator) -> np.ndarray:
    """An elliptical Gaussian galaxy through the SDSS asinh stretch, with sky noise (uint8)."""
    rows, cols = np.indices((_SIZE, _SIZE)) - (_SIZE - 1) / 2
    u = np.cos(phi) * cols + np.sin(phi) * rows
    v = -np.sin(phi) * cols + np.cos(phi) * rows
    profile = np.exp(-0.5 * (u**2 * q + v**2 / q) / sigma**2)
    flux = profile[..., None] * np.array(rgb) * 200.0 + rng.normal(0.0, 0.3, (_SIZE, _SIZE, 3))
    display = np.arcsinh(np.clip(flux, 0.0, None)) / real_galaxies.ASINH_Q
    return np.clip(np.round(display * 255.0 + 4.0), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def catalogue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14 ellipticals and 6 spirals in the fetched catalogue's layout, plus one empty image."""
    root = tmp_path_factory.mktemp("gz1")
    (root / "img").mkdir()
    rng = np.random.default_rng(0)
    rows = ["OBJID,CLASS"]
    for k in range(21):
        objid = 587722981736000000 + 7919 * k
        if k == 20:
            image = np.full((_SIZE, _SIZE, 3), 4, dtype=np.uint8)  # no galaxy at all
        else:
            red = k < 14
            image = _display(q=rng.uniform(0.4, 0.9), phi=rng.uniform(0, np.pi),
                             sigma=rng.uniform(12, 25),
                             rgb=(1.0, 0.7, 0.4) if red else (0.5, 0.7, 1.0), rng=rng)
        Image.fromarray(image).save(root / "img" / f"{objid}.jpeg", quality=95)
        rows.append(f"{objid},{0 if k < 14 or k == 20 else 1}")
    (root / "smallCSV_class.csv").write_text("\n".join(rows) + "\n")
    return root


def test_split_is_by_galaxy_fixed_and_complete(catalogue_dir: Path) -> None:
    first = real_galaxies.RealGalaxyCatalogue(catalogue_dir)
    again = real_galaxies.RealGalaxyCatalogue(catalogue_dir)
    assert first.split_of == again.split_of
    kinds = ("elliptical", "spiral")
    parts = [set(first.ids(s, kinds).tolist()) for s in ("train", "val", "test")]
    assert set.union(*parts) == set(range(21))
    assert sum(len(p) for p in parts) == 21
    assert len(parts[0]) == 15
    assert first.objids == tuple(sorted(first.objids, key=int))
    with pytest.raises(ValueError, match="unknown split"):
        first.ids("holdout", kinds)


def test_stamps_are_normalised_centred_and_shaped(catalogue_dir: Path) -> None:
    catalogue = real_galaxies.RealGalaxyCatalogue(catalogue_dir)
    empty = catalogue.objids.index(str(587722981736000000 + 7919 * 20))
    assert catalogue.stamp(empty) is None
    for galaxy_id in range(3):
        stamp = catalogue.stamp(galaxy_id)
        assert stamp is not None
        assert stamp.griz.shape == (4, _SIZE // 2, _SIZE // 2)
        assert (stamp.griz >= 0).all()
        centre = (_SIZE // 2 - 1) / 2
        assert abs(stamp.centre[0] - centre) < 1.0
        assert abs(stamp.centre[1] - centre) < 1.0
        assert stamp.colours[2] == pytest.approx(1.0)
        # The catalogue's ellipticals get a red galaxy's colours: g fainter than i.
        if catalogue.kinds[galaxy_id] == "elliptical":
            assert stamp.colours[0] < stamp.colours[2]


@pytest.mark.parametrize(("rotation", "mirror"), [(0.0, False), (0.7, False), (2.2, True)])
def test_sky_ellipticity_is_that_of_the_rendered_light(catalogue_dir: Path, rotation: float,
                                                       mirror: bool) -> None:
    """The e1, e2 a real lens gets match the second moments of its light as rendered."""
    catalogue = real_galaxies.RealGalaxyCatalogue(catalogue_dir)
    stamp = catalogue.stamp(catalogue.ids("train", ("elliptical",))[0])
    assert stamp is not None
    e1, e2 = real_galaxies.sky_ellipticity(stamp.moments, rotation=rotation, mirror=mirror)
    x, y = _grid(2)
    part = {"kind": "real", "stamp": stamp, "x": 0.3, "y": -0.2,
            "scale": 1.0 / stamp.half_light_pix, "rotation": rotation, "mirror": mirror,
            "mags": np.full(4, 20.0)}
    light = _neighbour_light(x, y, [part], catalogue=None, sub_area=0.084**2)[2]
    total = light.sum()
    mx, my = (x * light).sum() / total, (y * light).sum() / total
    assert mx == pytest.approx(0.3, abs=0.02)
    assert my == pytest.approx(-0.2, abs=0.02)
    dx, dy = x - mx, y - my
    cxx, cxy, cyy = ((dx * dx * light).sum(), (dx * dy * light).sum(), (dy * dy * light).sum())
    phi = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
    eig = np.linalg.eigvalsh([[cxx, cxy], [cxy, cyy]])
    q = np.sqrt(eig[0] / eig[1])
    phi_stamp, q_stamp = ellipticity_to_phi_q(e1=e1, e2=e2)
    assert q_stamp == pytest.approx(q, abs=0.03)
    assert np.cos(2 * (phi - phi_stamp)) > 0.99


def test_simulator_draws_real_lenses_and_real_foregrounds(catalogue_dir: Path) -> None:
    config = SimulationConfig(lens_light="real", real_galaxies=str(catalogue_dir),
                              non_lens_fraction=0.5)
    batch = simulate_batch(30, seed=np.random.SeedSequence(4), config=config)
    truths = batch.truths
    catalogue = real_galaxies.real_galaxy_catalogue(str(catalogue_dir))
    train = set(catalogue.ids("train", ("elliptical", "spiral")).tolist())
    lenses = truths["is_lens"] == 1
    assert lenses.any()
    assert (~lenses).any()
    assert (truths["lens_light_kind"] == 2).all()
    assert set(truths["lens_galaxy_id"][lenses].tolist()) <= train
    assert (truths["arc_snr"][lenses].max(axis=1) >= 20.0).all()
    assert (truths["non_lens_kind"][~lenses] < len(non_lenses.REAL_NON_LENS_KINDS)).all()
    assert np.isfinite(batch.images).all()
    rng = np.random.default_rng(2)
    lens = {"lens_light_x": 0.0, "lens_light_y": 0.0, "center_x": 0.0, "center_y": 0.0}
    _, parts = non_lenses.scene(rng, "real_foreground", lens=lens, neighbours=[],
                                catalogue=None, split="train", real_catalogue=catalogue)
    assert catalogue.kinds[parts[0]["stamp"].galaxy_id] == "spiral"


def test_cli_needs_the_catalogue_for_real_light(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    code = main(["simulate", "--n", "2", "--seed", "1", "--out", str(tmp_path / "a"),
                 "--lens-light", "real"])
    assert code == 2
    assert "--real-galaxies" in capsys.readouterr().err
    code = main(["simulate", "--n", "2", "--seed", "1", "--out", str(tmp_path / "b"),
                 "--lens-light", "real", "--real-galaxies", str(tmp_path)])
    assert code == 2
    assert "fetch_real_galaxies.sh" in capsys.readouterr().err

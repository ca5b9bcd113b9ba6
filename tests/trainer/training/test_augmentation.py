"""The D4 augmentation moves cutout and truths consistently (lenstronomy as the oracle).

A lensed source is rendered on the simulator's pixel grid with lenstronomy's SIE + SHEAR;
every symmetry applied to the rendered array must equal the rendering of the transformed
parameters and source position. A wrong pixel orientation must fail, so the test has teeth.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lenstronomy.LensModel.lens_model import LensModel

from lenscast.model import parameter_spec as spec
from lenscast.trainer.simulation.survey import pixel_grid
from lenscast.trainer.training.augmentation import (
    PIX_TO_SKY_HSC,
    SKY_SYMMETRIES,
    SymmetryAugmenter,
    pixel_permutation,
    transform_parameters,
)

LENS = LensModel(["SIE", "SHEAR"])
# Deliberately asymmetric: off-centre lens, tilted ellipticity and shear, off-axis source.
PARAMS = np.array([[1.3, 0.21, -0.09, 0.17, -0.11, 0.04, 0.06]])
SOURCE = np.array([0.12, 0.07])


def _render(params: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Lensed circular Gaussian source (sigma 0.1") plus a lens-light tracer at the centre."""
    values = spec.as_mapping(params[0])
    kwargs = [
        {"theta_E": values["theta_e"], "e1": values["e1"], "e2": values["e2"],
         "center_x": values["center_x"], "center_y": values["center_y"]},
        {"gamma1": values["gamma1"], "gamma2": values["gamma2"]},
    ]
    x, y = pixel_grid()
    bx, by = LENS.ray_shooting(x.ravel(), y.ravel(), kwargs)
    lensed = np.exp(-0.5 * ((bx - source[0]) ** 2 + (by - source[1]) ** 2) / 0.1**2)
    light = np.exp(-0.5 * ((x.ravel() - values["center_x"]) ** 2
                           + (y.ravel() - values["center_y"]) ** 2) / 0.3**2)
    return (lensed + light).reshape(x.shape)


@pytest.mark.parametrize("k", range(len(SKY_SYMMETRIES)))
def test_symmetry_matches_lenstronomy_rendering(k: int) -> None:
    matrix = SKY_SYMMETRIES[k]
    image = _render(PARAMS, SOURCE)
    moved = image.ravel()[pixel_permutation(matrix, pix_to_sky=PIX_TO_SKY_HSC)]
    expected = _render(transform_parameters(PARAMS, matrix), matrix @ SOURCE)
    np.testing.assert_allclose(moved.reshape(image.shape), expected, atol=1e-9)


def test_wrong_orientation_is_detected() -> None:
    """x increasing with column (not the simulator's grid) breaks the 90° rotation."""
    matrix = SKY_SYMMETRIES[1]
    image = _render(PARAMS, SOURCE)
    moved = image.ravel()[pixel_permutation(matrix, pix_to_sky=np.eye(2, dtype=int))]
    expected = _render(transform_parameters(PARAMS, matrix), matrix @ SOURCE)
    assert np.abs(moved.reshape(image.shape) - expected).max() > 0.1


def test_rotation_rules_by_hand() -> None:
    """90° counter-clockwise: (x, y) -> (-y, x); spin-2 (e1, e2) -> (-e1, -e2); θ_E kept."""
    out = transform_parameters(PARAMS, SKY_SYMMETRIES[1])[0]
    theta_e, e1, e2, cx, cy, g1, g2 = PARAMS[0]
    np.testing.assert_allclose(out, [theta_e, -e1, -e2, -cy, cx, -g1, -g2])
    flipped = transform_parameters(PARAMS, SKY_SYMMETRIES[4])[0]  # y -> -y
    np.testing.assert_allclose(flipped, [theta_e, e1, -e2, cx, -cy, g1, -g2])


def test_batch_augmenter_matches_per_sample_transform() -> None:
    rng = np.random.default_rng(3)
    images = torch.from_numpy(rng.normal(size=(8, 4, 64, 64)).astype(np.float32))
    targets = torch.from_numpy(np.repeat(PARAMS, 8, axis=0).astype(np.float32))
    choice = torch.arange(8)
    new_images, new_targets = SymmetryAugmenter()(images, targets, choice)
    for k in range(8):
        perm = pixel_permutation(SKY_SYMMETRIES[k])
        expected = images[k].reshape(4, -1)[:, torch.from_numpy(perm)].reshape(4, 64, 64)
        assert torch.equal(new_images[k], expected)
        np.testing.assert_allclose(new_targets[k].numpy(),
                                   transform_parameters(PARAMS, SKY_SYMMETRIES[k])[0], atol=1e-6)

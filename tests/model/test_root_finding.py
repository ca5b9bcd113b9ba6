"""The vectorised bracketing and root helpers behind the lens-equation solver."""

from __future__ import annotations

import numpy as np

from lenscast.model import root_finding as rf


def test_bracketed_newton_and_illinois_find_roots() -> None:
    targets = np.array([0.3, 1.1, 2.9])
    system = np.arange(3)

    def f(x: np.ndarray, s: np.ndarray) -> np.ndarray:
        return np.sin(x - targets[s]) + 0.1 * (x - targets[s]) ** 3

    def fd(x: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = x - targets[s]
        return np.sin(d) + 0.1 * d**3, np.cos(d) + 0.3 * d**2

    lo, hi = targets - 0.7, targets + 0.4
    brackets = rf.Brackets(lo, hi, f(lo, system), f(hi, system), system)
    newton = rf.bracketed_newton(fd, brackets)
    illinois = rf.illinois(f, brackets)
    np.testing.assert_allclose(newton, targets, atol=1e-12)
    np.testing.assert_allclose(illinois, targets, atol=1e-12)


def test_golden_minimum_finds_the_extremum_towards_zero() -> None:
    system = np.zeros(2, dtype=np.intp)

    def f(x: np.ndarray, s: np.ndarray) -> np.ndarray:
        return (x - 0.3) ** 2 + 0.5

    found = rf.golden_minimum(f, np.array([0.0, -1.0]), np.array([1.0, 0.9]), system, np.ones(2))
    np.testing.assert_allclose(found, 0.3, atol=1e-8)
    # A negative dip: minimise -f, i.e. find the maximum of f = -(x - 0.6)^2 - 1e-6.
    neg = rf.golden_minimum(
        lambda x, s: -((x - 0.6) ** 2) - 1e-6, np.array([0.0]), np.array([1.0]),
        np.zeros(1, dtype=np.intp), -np.ones(1),
    )  # fmt: skip
    np.testing.assert_allclose(neg, 0.6, atol=1e-8)


def test_cells_and_dips_on_a_periodic_grid() -> None:
    phi = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    values = np.stack([np.sin(phi), np.cos(2 * phi) + 1.05])
    valid = np.ones_like(values, dtype=bool)
    system, cell = rf.sign_change_cells(values, valid)
    assert system.tolist().count(0) == 3  # sin: zero at 0 flags two cells, pi one
    assert 1 not in system.tolist()
    s2, point = rf.discrete_extrema(values, valid)
    # cos(2 phi) + 1.05 dips towards zero at pi/2 and 3 pi/2 (grid points 4 and 12).
    assert sorted(point[s2 == 1].tolist()) == [4, 12]

"""Sigma widened below the p_lens threshold: the ramp, the fit and the appended ONNX nodes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from lenscast.model import parameter_spec as spec
from lenscast.trainer.training import evidence_sigma

N = spec.N_PARAMETERS


def test_the_ramp_is_zero_above_the_threshold_and_one_at_zero() -> None:
    r = evidence_sigma.absence(np.array([0.0, 0.35, 0.7, 0.9, 1.0]), 0.7)
    np.testing.assert_allclose(r, [1.0, 0.5, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="threshold"):
        evidence_sigma.absence(np.zeros(1), 0.0)


def _population(rng: np.random.Generator, n: int = 4000) -> tuple[np.ndarray, ...]:
    """Lenses read to sigma 0.1 with p_lens near 1; non-lenses answered at the prior's centre
    with a confident sigma 0.3 and p_lens near 0 (prior: uniform 0.5-5 for every parameter)."""
    lens = rng.random(n) < 0.6
    truth = rng.uniform(0.5, 5.0, (n, N))
    sigma = np.where(lens[:, None], 0.1, 0.3) * np.ones((n, N))
    mean = np.where(lens[:, None], truth + rng.normal(0.0, 0.1, (n, N)), 2.75)
    p_lens = np.where(lens, rng.uniform(0.8, 1.0, n), rng.uniform(0.0, 0.3, n))
    return mean, sigma, p_lens, truth, lens


def test_the_fit_covers_the_prior_on_non_lenses_and_leaves_lenses_alone() -> None:
    mean, sigma, p_lens, truth, lens = _population(np.random.default_rng(1))
    before = evidence_sigma.coverage_report(mean, sigma, truth, lens)
    assert before["non_lenses"]["theta_e"] < 0.2
    fit = evidence_sigma.fit_evidence_spread(mean, sigma, p_lens, truth, lens, threshold=0.7)
    np.testing.assert_allclose(fit["spread"], 4.5 / np.sqrt(12), rtol=0.05)
    assert (fit["weights"] > 0).all()
    widened = evidence_sigma.widened_sigma(sigma, p_lens, threshold=0.7, **fit)
    after = evidence_sigma.coverage_report(mean, widened, truth, lens)
    for name in spec.MASS_PARAMETER_NAMES:
        assert after["non_lenses"][name] == pytest.approx(0.6827, abs=0.01)
        assert after["lenses"][name] == before["lenses"][name]
    np.testing.assert_array_equal(widened[lens], sigma[lens])  # all lenses above 0.7


def test_no_widening_where_the_prior_is_already_covered() -> None:
    mean, sigma, p_lens, truth, lens = _population(np.random.default_rng(2))
    sigma[~lens] = 5.0
    fit = evidence_sigma.fit_evidence_spread(mean, sigma, p_lens, truth, lens, threshold=0.7)
    np.testing.assert_array_equal(fit["weights"], 0.0)
    with pytest.raises(ValueError, match="lenses and non-lenses"):
        evidence_sigma.fit_evidence_spread(mean, sigma, p_lens, truth, np.ones(len(lens)),
                                           threshold=0.7)


def _pass_through_graph() -> onnx.ModelProto:
    """A graph whose outputs mean, sigma and p_lens are its inputs."""
    inputs = [helper.make_tensor_value_info("m", TensorProto.FLOAT, ["batch", N]),
              helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch", N]),
              helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch"])]
    outputs = [helper.make_tensor_value_info(spec.ONNX_MEAN_NAME, TensorProto.FLOAT, ["batch", N]),
               helper.make_tensor_value_info(spec.ONNX_SIGMA_NAME, TensorProto.FLOAT, ["batch", N]),
               helper.make_tensor_value_info(spec.ONNX_P_LENS_NAME, TensorProto.FLOAT, ["batch"])]
    pairs = (("m", spec.ONNX_MEAN_NAME), ("s", spec.ONNX_SIGMA_NAME), ("p", spec.ONNX_P_LENS_NAME))
    nodes = [helper.make_node("Identity", [i], [o]) for i, o in pairs]
    graph = helper.make_graph(nodes, "pass", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip


def test_the_appended_graph_computes_the_formula() -> None:
    rng = np.random.default_rng(3)
    spread, weights = rng.uniform(0.05, 1.5, N), rng.uniform(0.0, 3.0, N)
    model = evidence_sigma.append_to_graph(_pass_through_graph(), threshold=0.7, spread=spread,
                                           weights=weights)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    mean = rng.normal(size=(50, N)).astype(np.float32)
    sigma = rng.uniform(0.01, 1.0, (50, N)).astype(np.float32)
    p_lens = rng.uniform(0.0, 1.0, 50).astype(np.float32)
    got_mean, got_sigma, got_p = session.run(None, {"m": mean, "s": sigma, "p": p_lens})
    np.testing.assert_array_equal(got_mean, mean)
    np.testing.assert_array_equal(got_p, p_lens)
    expected = evidence_sigma.widened_sigma(sigma, p_lens, threshold=0.7, spread=spread,
                                            weights=weights)
    np.testing.assert_allclose(got_sigma, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="already"):
        evidence_sigma.append_to_graph(model, threshold=0.7, spread=spread, weights=weights)

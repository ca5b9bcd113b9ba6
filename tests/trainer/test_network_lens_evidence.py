"""The lens-evidence head: network output, training, Platt calibration, export and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lenscast.cli import main
from lenscast.model import parameter_spec as spec
from lenscast.trainer.dataset import read_shard
from lenscast.trainer.network import P_LENS_OUTPUT, LensCNN, NetworkConfig
from lenscast.trainer.training import lens_evidence
from lenscast.trainer.training.shards import ShardStore

SMALL = {"widths": [8, 8, 16, 16, 16], "blocks": [0, 0, 0, 1], "head_channels": 8,
         "hidden": 32}
CONFIG = {"network": {**SMALL, "evidence": True}, "epochs": 2, "samples_per_epoch": 64,
          "batch_size": 16, "warmup_steps": 2, "bf16": False, "val_limit": 64}


def write_labelled_shards(directory: Path, *, n_shards: int, per_shard: int, seed: int,
                          labelled: bool = True, lens_fraction: float = 0.6) -> None:
    """Synthetic shards: lenses carry a ring of radius θ_E, non-lenses only the central blob."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    axis = (np.arange(64) - 31.5) * spec.PIXEL_SCALE_ARCSEC
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    radius = np.hypot(xx, yy)
    for s in range(n_shards):
        truths = {p.name: rng.uniform(p.low, p.high, per_shard) for p in spec.MASS_PARAMETERS}
        is_lens = (rng.uniform(size=per_shard) < lens_fraction).astype(np.int8)
        ring = np.exp(-0.5 * ((radius[None] - truths["theta_e"][:, None, None]) / 0.2) ** 2)
        images = (rng.normal(0, 0.08, (per_shard, 4, 64, 64))
                  + 20 * np.exp(-0.5 * radius**2 / 0.3**2)[None, None]
                  + 2.0 * (is_lens[:, None, None] * ring)[:, None])
        extra = {"is_lens": is_lens} if labelled else {}
        np.savez(directory / f"shard_{s:05d}.npz", images=images.astype(np.float32),
                 **truths, **extra)
    (directory / "manifest.json").write_text(json.dumps({"complete": True,
                                                         "n": n_shards * per_shard}))


def test_the_head_adds_a_probability_per_cutout() -> None:
    model = LensCNN(NetworkConfig.from_dict({**SMALL, "evidence": True})).eval()
    cutouts = torch.randn(5, 4, 64, 64)
    mean, sigma, p_lens = model(cutouts)
    assert mean.shape == sigma.shape == (5, spec.N_PARAMETERS)
    assert p_lens.shape == (5,)
    assert ((p_lens > 0) & (p_lens < 1)).all()
    model.test_views = 4
    assert model(cutouts)[2].shape == (5,)
    # The Platt constants act on the logit: a = 0, b = 0 gives exactly one half.
    model.evidence_scale.fill_(0.0)
    assert torch.allclose(model(cutouts)[2], torch.full((5,), 0.5))


def test_without_the_head_the_network_is_unchanged() -> None:
    model = LensCNN(NetworkConfig.from_dict(SMALL)).eval()
    assert len(model(torch.randn(2, 4, 64, 64))) == 2
    assert "evidence_scale" not in model.state_dict()


def test_platt_fit_recovers_known_constants() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 2.0, 20000)
    labels = rng.uniform(size=logits.size) < 1.0 / (1.0 + np.exp(-(0.5 * logits - 1.0)))
    a, b = lens_evidence.fit_platt(logits, labels)
    assert a == pytest.approx(0.5, abs=0.05)
    assert b == pytest.approx(-1.0, abs=0.08)
    with pytest.raises(ValueError, match="both lenses and non-lenses"):
        lens_evidence.fit_platt(logits, np.ones(logits.size))


def test_roc_auc_matches_the_pairwise_count() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(size=300)
    labels = rng.uniform(size=300) < 0.4
    pairs = (scores[labels][:, None] > scores[~labels][None, :]).mean()
    assert lens_evidence.roc_auc(scores, labels) == pytest.approx(pairs)


def test_report_precision_and_reliability() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(size=5000)
    labels = rng.uniform(size=5000) < p  # calibrated by construction
    report = lens_evidence.evidence_report(p, labels, threshold=0.5, stream_lens_fraction=0.01)
    tpr = np.mean(p[labels] >= 0.5)
    fpr = np.mean(p[~labels] >= 0.5)
    assert report["lenses_above_threshold"] == pytest.approx(tpr)
    assert report["non_lenses_below_threshold"] == pytest.approx(1 - fpr)
    assert report["precision_at_threshold"] == pytest.approx(
        0.01 * tpr / (0.01 * tpr + 0.99 * fpr))
    assert len(report["reliability"]) == lens_evidence.N_RELIABILITY_BINS
    assert report["max_abs_gap_bins_ge_50"] < 0.06
    # A miscalibrated score shows up in the bins.
    skewed = lens_evidence.evidence_report(p**3, labels, threshold=0.5)
    assert skewed["max_abs_gap_bins_ge_50"] > 0.1
    with pytest.raises(ValueError, match="lens fraction"):
        lens_evidence.evidence_report(p, labels, threshold=0.5, stream_lens_fraction=0.0)


def test_non_lens_sigma_covers_a_prior_it_spans() -> None:
    rng = np.random.default_rng(4)
    truth = rng.uniform(0.5, 5.0, 4000)
    mean = np.zeros((4000, spec.N_PARAMETERS))
    sigma = np.ones((4000, spec.N_PARAMETERS))
    mean[:, 0], sigma[:, 0] = 2.75, 1.3  # the prior's centre and standard deviation
    wide = lens_evidence.non_lens_sigma(mean, sigma, {"theta_e": truth})
    assert wide["theta_e_coverage_1sigma"] == pytest.approx(2.6 / 4.5, abs=0.03)
    sigma[:, 0] = 0.1  # a confident answer where there is no lens
    assert lens_evidence.non_lens_sigma(mean, sigma, {"theta_e": truth})[
        "theta_e_coverage_1sigma"] < 0.1


def test_lenses_above_the_threshold_by_best_band_arc_snr() -> None:
    # Per band SNR; the best band bins a lens: 25, 40, 60, 300; non-lenses are not counted.
    arc_snr = np.array([[25.0, 3.0], [10.0, 40.0], [60.0, 0.0], [300.0, 5.0], [0.0, 0.0],
                        [45.0, 0.0]])
    labels = np.array([1, 1, 1, 1, 0, 1])
    p = np.array([0.9, 0.2, 0.8, 0.7, 0.99, 0.71])
    bins = lens_evidence.above_by_arc_snr(p, labels, arc_snr, threshold=0.7)
    assert [(b["low"], b["high"], b["n"], b["lenses_above_threshold"]) for b in bins] == [
        (20.0, 30.0, 1, 1.0), (30.0, 50.0, 2, 0.5), (50.0, 100.0, 1, 1.0), (100.0, None, 1, 1.0)]


def test_balanced_threshold_separates_separable_classes() -> None:
    p = np.r_[np.full(50, 0.2), np.full(50, 0.8)]
    labels = np.r_[np.zeros(50), np.ones(50)]
    threshold = lens_evidence.balanced_threshold(p, labels)
    assert 0.2 < threshold <= 0.8


def test_shard_store_reads_labels_and_several_directories(tmp_path: Path) -> None:
    write_labelled_shards(tmp_path / "a", n_shards=2, per_shard=5, seed=1)
    write_labelled_shards(tmp_path / "b", n_shards=1, per_shard=4, seed=2, labelled=False)
    store = ShardStore([tmp_path / "a", tmp_path / "b"])
    assert store.refresh() == 14
    assert store.is_lens.shape == (14,)
    assert store.complete
    # Shards without the column are lenses (sets made before non-lenses existed).
    only_b = ShardStore(tmp_path / "b")
    only_b.refresh()
    assert (only_b.is_lens == 1).all()
    with pytest.raises(ValueError, match="at least one directory"):
        ShardStore([])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evidence")
    write_labelled_shards(root / "train", n_shards=2, per_shard=40, seed=1)
    write_labelled_shards(root / "train2", n_shards=1, per_shard=40, seed=3)
    write_labelled_shards(root / "val", n_shards=1, per_shard=64, seed=2)
    config = root / "config.json"
    config.write_text(json.dumps(CONFIG))
    assert main(["train", "--config", str(config), "--seed", "3", "--data", str(root / "train"),
                 str(root / "train2"), "--val", str(root / "val"), "--out", str(root / "run"),
                 "--no-progress", "--threads", "1"]) == 0
    assert main(["export", "--checkpoint", str(root / "run" / "last.pt"), "--out",
                 str(root / "model.onnx"), "--version", "2.0.0-test", "--views", "2",
                 "--calibrate", str(root / "val")]) == 0
    return root


def test_training_records_the_evidence_and_both_directories(exported: Path) -> None:
    history = [json.loads(line) for line in
               (exported / "run" / "history.jsonl").read_text().splitlines()]
    evidence = history[-1]["val"]["lens_evidence"]
    assert 0.0 <= evidence["roc_auc"] <= 1.0
    assert history[-1]["n_train"] == 120


def test_export_writes_p_lens_and_the_card_section(exported: Path) -> None:
    graph = onnx.load(str(exported / "model.onnx")).graph
    assert [o.name for o in graph.output] == [spec.ONNX_MEAN_NAME, spec.ONNX_SIGMA_NAME,
                                              P_LENS_OUTPUT]
    card = json.loads((exported / "model.json").read_text())
    section = card["lens_evidence"]
    assert section["output"] == "p_lens"
    assert 0.0 < section["default_threshold"] < 1.0
    assert section["calibration"]["n"] == 64
    session = ort.InferenceSession(str(exported / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    cutouts = np.random.default_rng(0).normal(0, 0.1, (3, 4, 64, 64)).astype(np.float32)
    (p_lens,) = session.run(["p_lens"], {spec.ONNX_INPUT_NAME: cutouts})
    assert p_lens.shape == (3,)
    assert p_lens.dtype == np.float32


def test_export_without_calibration_data_is_refused(exported: Path, capsys) -> None:
    code = main(["export", "--checkpoint", str(exported / "run" / "last.pt"), "--out",
                 str(exported / "nocal.onnx")])
    assert code == 2
    assert "needs --calibrate" in capsys.readouterr().out


@pytest.fixture(scope="module")
def simulated(exported: Path) -> Path:
    """A small realistic set with non-lenses, as `lenscast simulate` writes it."""
    out = exported / "simulated"
    assert main(["simulate", "--n", "30", "--seed", "4", "--split", "test", "--out", str(out),
                 "--lens-light", "realistic", "--non-lens-fraction", "0.4", "--shard-size",
                 "30", "--no-progress"]) == 0
    return out


def test_evaluate_scores_lenses_and_writes_the_evidence(exported: Path, simulated: Path
                                                        ) -> None:
    out = exported / "eval"
    assert main(["evaluate", "--model", str(exported / "model.onnx"), "--data",
                 str(simulated), "--out", str(out), "--update-card"]) == 0
    report = json.loads((out / "evaluation.json").read_text())
    labels = read_shard(simulated / "shard_00000.npz")[1]["is_lens"]
    assert report["data"]["n_lenses_evaluated"] == int(labels.sum())
    assert report["lens_evidence"]["n_non_lenses"] == int((labels == 0).sum())
    assert report["non_lenses"]["n"] == int((labels == 0).sum())
    assert 0.0 <= report["non_lenses"]["theta_e_coverage_1sigma"] <= 1.0
    by_snr = report["lens_evidence"]["lenses_above_threshold_by_arc_snr"]
    assert sum(b["n"] for b in by_snr) == int(labels.sum())  # every lens has SNR >= 20
    card = json.loads((exported / "model.json").read_text())
    assert card["lens_evidence"]["evaluation"]["n_lenses"] == int(labels.sum())
    assert card["lens_evidence"]["default_threshold"] == report["lens_evidence"]["threshold"]


def test_recalibrate_keeps_p_lens_and_fits_on_lenses(exported: Path, simulated: Path) -> None:
    out = exported / "recal.onnx"
    assert main(["recalibrate", "--model", str(exported / "model.onnx"), "--data",
                 str(simulated), "--out", str(out), "--version", "2.0.0-test"]) == 0
    assert P_LENS_OUTPUT in [o.name for o in onnx.load(str(out)).graph.output]
    card = json.loads(out.with_suffix(".json").read_text())
    labels = read_shard(simulated / "shard_00000.npz")[1]["is_lens"]
    assert card["sigma_theta_e_calibration"]["data"]["n"] == int(labels.sum())
    assert "lens_evidence" in card


def test_recalibrate_evidence_spread_widens_below_the_threshold(
    exported: Path, simulated: Path
) -> None:
    out = exported / "spread.onnx"
    assert main(["recalibrate", "--model", str(exported / "model.onnx"), "--data",
                 str(simulated), "--out", str(out), "--version", "2.0.0-test",
                 "--evidence-spread"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    section = card["sigma_evidence_spread"]
    labels = read_shard(simulated / "shard_00000.npz")[1]["is_lens"]
    assert section["data"]["n"] == len(labels)  # lenses and non-lenses
    assert section["threshold"] == card["lens_evidence"]["default_threshold"]
    assert section["coverage_1sigma_after"]["non_lenses"]["theta_e"] >= (
        section["coverage_1sigma_before"]["non_lenses"]["theta_e"])
    assert section["command"].endswith("--evidence-spread")
    with pytest.raises(ValueError, match="already carries"):  # refused, not stacked
        main(["recalibrate", "--model", str(out), "--data", str(simulated), "--out",
              str(exported / "twice.onnx"), "--version", "x", "--evidence-spread"])


def test_export_and_recalibrate_fit_several_validation_sets_as_one(exported: Path) -> None:
    sets = [str(exported / "val"), str(exported / "train2")]  # 64 + 40 labelled systems
    out = exported / "mixed.onnx"
    assert main(["export", "--checkpoint", str(exported / "run" / "last.pt"), "--out", str(out),
                 "--version", "2.0.0-mixed", "--calibrate", *sets]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["lens_evidence"]["calibration"]["data"] == ", ".join(sets)
    spread = exported / "mixed_spread.onnx"
    assert main(["recalibrate", "--model", str(out), "--data", *sets, "--out", str(spread),
                 "--version", "2.0.0-mixed", "--evidence-spread"]) == 0
    section = json.loads(spread.with_suffix(".json").read_text())["sigma_evidence_spread"]
    assert section["data"] == {"path": sets, "n": 104}
    assert section["command"].split(" --out ")[0].endswith(" ".join(sets))


def test_evaluate_a_set_of_non_lenses_only(exported: Path) -> None:
    write_labelled_shards(exported / "none", n_shards=1, per_shard=12, seed=5, lens_fraction=0.0)
    out = exported / "eval_none"
    assert main(["evaluate", "--model", str(exported / "model.onnx"), "--data",
                 str(exported / "none"), "--out", str(out)]) == 0
    evidence = json.loads((out / "evaluation.json").read_text())["lens_evidence"]
    assert evidence["n_non_lenses"] == 12
    assert 0.0 <= evidence["non_lenses_below_threshold"] <= 1.0
    with pytest.raises(ValueError, match="lenses only or non-lenses only"):
        lens_evidence.one_class_report(np.array([0.1, 0.9]), np.array([0, 1]), threshold=0.5)


def test_non_lens_weights_scale_their_mass_loss() -> None:
    from lenscast.trainer.training.loss import beta_nll

    gen = torch.Generator().manual_seed(0)
    mean, target = torch.randn(6, 7, generator=gen), torch.randn(6, 7, generator=gen)
    sigma = torch.rand(6, 7, generator=gen) + 0.1
    plain = beta_nll(mean, sigma, target)
    assert torch.allclose(beta_nll(mean, sigma, target, weights=torch.ones(6)), plain)
    # Weight 0 leaves a sample out entirely.
    dropped = beta_nll(mean, sigma, target, weights=torch.tensor([1.0, 1, 1, 1, 1, 0]))
    assert torch.allclose(dropped, beta_nll(mean[:5], sigma[:5], target[:5]))


def test_theta_e_sigma_fit_needs_a_spread_of_predicted_theta_e() -> None:
    from lenscast.trainer.training.theta_e_sigma import fit_theta_e_dependence

    rng = np.random.default_rng(6)
    truth = rng.uniform(0.5, 5.0, (40, spec.N_PARAMETERS))
    mean = truth + rng.normal(0.0, 0.1, truth.shape)
    mean[:, 0] = 3.03 + rng.normal(0.0, 0.002, 40)  # a network that has not learnt θ_E
    factors, slopes = fit_theta_e_dependence(mean, np.full(truth.shape, 0.1), truth)
    assert (slopes == 0.0).all()
    assert np.isfinite(factors).all()

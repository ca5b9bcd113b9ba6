"""Train (tiny, resumed), export to ONNX, check parity and the card the predictor reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from benchmarks import onnx_throughput
from lenscast.cli import main
from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import OnnxMassPredictor
from lenscast.trainer.network import LensCNN, NetworkConfig, count_flops
from lenscast.trainer.training.export import PARITY_TOLERANCE, parity_error, parity_inputs
from lenscast.trainer.training.loop import load_checkpoint
from lenscast.trainer.training.shards import ShardStore
from lenscast.trainer.training.theta_e_sigma import THETA_E_CLIP, append_to_graph
from lenscast.trainer.training.warm_start import model_from_onnx
from lenscast.trainer.views import back_transforms, views

CONFIG = {
    "network": {"widths": [8, 8, 16, 16, 16], "blocks": [0, 0, 0, 1], "head_channels": 8,
                "hidden": 32},
    "epochs": 2, "samples_per_epoch": 64, "batch_size": 16, "warmup_steps": 2,
    "bf16": False, "val_limit": 32,
}


def write_shards(directory: Path, *, n_shards: int, per_shard: int, seed: int) -> None:
    """Synthetic shards in the simulator's format: a blob at the lens centre plus sky noise."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    axis = (np.arange(64) - 31.5) * spec.PIXEL_SCALE_ARCSEC
    yy, xx = np.meshgrid(axis, -axis, indexing="xy")
    for s in range(n_shards):
        truths = {p.name: rng.uniform(p.low, p.high, per_shard) for p in spec.MASS_PARAMETERS}
        blob = np.exp(-0.5 * ((xx[None] - truths["center_x"][:, None, None]) ** 2
                              + (yy.T[None] - truths["center_y"][:, None, None]) ** 2) / 0.3**2)
        images = rng.normal(0, 0.08, (per_shard, 4, 64, 64)) + 20 * blob[:, None]
        np.savez(directory / f"shard_{s:05d}.npz", images=images.astype(np.float32), **truths)
    (directory / "manifest.json").write_text(json.dumps({"complete": True,
                                                         "n": n_shards * per_shard}))




@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    write_shards(root / "train", n_shards=2, per_shard=40, seed=1)
    write_shards(root / "val", n_shards=1, per_shard=32, seed=2)
    one_epoch = root / "one.json"
    one_epoch.write_text(json.dumps({**CONFIG, "epochs": 1}))
    two_epochs = root / "two.json"
    two_epochs.write_text(json.dumps(CONFIG))
    common = ["--seed", "3", "--data", str(root / "train"), "--val", str(root / "val"),
              "--out", str(root / "out"), "--no-progress", "--threads", "1"]
    assert main(["train", "--config", str(one_epoch), *common]) == 0
    assert main(["train", "--config", str(two_epochs), *common, "--resume"]) == 0
    return root


def test_resume_continues_the_run(trained: Path) -> None:
    lines = (trained / "out" / "history.jsonl").read_text().splitlines()
    history = [json.loads(line) for line in lines]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["step"] == 2 * 64 // 16
    _, checkpoint = load_checkpoint(trained / "out" / "last.pt")
    assert checkpoint["state"]["epoch"] == 2
    assert checkpoint["data"]["n_train"] == 80
    scale = checkpoint["model"]["sigma_scale"]
    assert torch.all(scale > 0)
    assert not torch.all(scale == 1.0)  # calibrated on validation


def test_resident_training_reads_the_set_from_device_tensors(trained: Path) -> None:
    # The accelerator path (set held in device tensors, batches drawn there), run on the CPU.
    out = trained / "resident"
    assert main(["train", "--config", str(trained / "one.json"), "--seed", "5",
                 "--data", str(trained / "train"), "--val", str(trained / "val"),
                 "--out", str(out), "--resident", "--start-systems", "80", "--no-progress",
                 "--threads", "1"]) == 0
    model, checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["data"]["n_train"] == 80
    assert checkpoint["data"]["train_complete"]
    assert checkpoint["data"]["shards"] == "0-1"
    assert checkpoint["state"]["step"] == 64 // 16
    assert "--resident" in checkpoint["state"]["command"]
    history = json.loads((out / "history.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(history["train_loss"])
    # It trained: the weights moved away from the fresh network's of the same seed.
    torch.manual_seed(5)
    assert not torch.equal(model.head[-1].weight,
                           LensCNN(NetworkConfig.from_dict(CONFIG["network"])).head[-1].weight)


def test_shard_store_grows_and_skips_partial_files(tmp_path: Path) -> None:
    write_shards(tmp_path / "d", n_shards=1, per_shard=5, seed=4)
    store = ShardStore(tmp_path / "d")
    assert store.refresh() == 5
    (tmp_path / "d" / "shard_00001.npz").write_bytes(b"PK\x03\x04 half written")
    assert store.refresh() == 0
    np.savez(tmp_path / "d" / "shard_00001.npz", images=np.zeros((3, 4, 64, 64), np.float32),
             **{name: np.zeros(3) for name in spec.MASS_PARAMETER_NAMES})
    assert store.refresh() == 3
    assert store.images.shape == (8, 4, 64, 64)
    assert store.images.dtype == np.float16
    assert store.complete


def test_export_parity_and_card(trained: Path) -> None:
    onnx_path = trained / "weights" / "lenscast-hsc.onnx"
    assert main(["export", "--checkpoint", str(trained / "out" / "last.pt"),
                 "--out", str(onnx_path), "--version", "0.0.1", "--note", "test",
                 "--calibrate", str(trained / "val")]) == 0
    model, _ = load_checkpoint(trained / "out" / "last.pt")
    # The benchmark's FLOP count from the ONNX graph agrees with the network's own count.
    assert onnx_throughput.onnx_macs(onnx_path) == count_flops(model)["macs"]

    card = json.loads(onnx_path.with_suffix(".json").read_text())
    # The export recalibrated on the validation set; the card records what the graph holds.
    for name, values in (("sigma_scale", card["sigma_calibration"]["factors"]),
                         ("mean_offset", card["mean_calibration"]["offsets"])):
        getattr(model, name).copy_(torch.tensor([values[n] for n in spec.MASS_PARAMETER_NAMES]))
    # Batch sizes 1 and 16 through the dynamic axis, both within the parity tolerance.
    for n in (1, 16):
        assert parity_error(model, onnx_path, parity_inputs(n, seed=n)) <= PARITY_TOLERANCE

    predictor = OnnxMassPredictor(onnx_path)
    assert predictor.identity.version == "0.0.1"
    cutouts = parity_inputs(5)
    prediction = predictor.predict(cutouts)
    with torch.no_grad():
        mean, sigma = model(torch.from_numpy(cutouts))
    for i, name in enumerate(spec.MASS_PARAMETER_NAMES):
        np.testing.assert_allclose(prediction.mean[name], mean[:, i].numpy(), atol=1e-4)
        np.testing.assert_allclose(prediction.sigma[name], sigma[:, i].numpy(), atol=1e-4)

    assert card["parameter_spec_version"] == spec.PARAMETER_SPEC_VERSION
    assert [o["name"] for o in card["outputs"]] == list(spec.MASS_PARAMETER_NAMES)
    assert card["training"]["seed"] == 3
    assert card["training"]["command"].startswith("lenscast train --config")
    assert card["onnx"]["sha256"] == predictor.identity.onnx_sha256
    assert card["training"]["data"]["n_calibration"] == 32
    offsets = card["mean_calibration"]["offsets"]
    assert set(offsets) == set(spec.MASS_PARAMETER_NAMES)
    assert any(v != 0.0 for v in offsets.values())  # fitted by --calibrate
    assert "| 0 | theta_e | arcsec |" in onnx_path.with_suffix(".md").read_text()


def _export_views(trained: Path, n_views: int) -> tuple[Path, dict[str, Any], int]:
    """Export the trained run with ``n_views`` test-time views; check its card and parity.

    Returns the ONNX path, its card and the single-view network's MACs per image.
    """
    onnx_path = trained / f"weights{n_views}" / "lenscast-hsc.onnx"
    assert main(["export", "--checkpoint", str(trained / "out" / "last.pt"),
                 "--out", str(onnx_path), "--version", f"0.0.{n_views}", "--views", str(n_views),
                 "--calibrate", str(trained / "val")]) == 0
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    model, _ = load_checkpoint(trained / "out" / "last.pt")
    single = int(count_flops(model)["macs"])
    model.test_views = n_views
    assert card["architecture"]["test_time_views"] == n_views
    # The card counts the views, and the ONNX graph agrees.
    assert card["architecture"]["macs_per_image"] == count_flops(model)["macs"]
    assert onnx_throughput.onnx_macs(onnx_path) == card["architecture"]["macs_per_image"]
    for name, values in (("sigma_scale", card["sigma_calibration"]["factors"]),
                         ("mean_offset", card["mean_calibration"]["offsets"])):
        getattr(model, name).copy_(torch.tensor([values[n] for n in spec.MASS_PARAMETER_NAMES]))
    assert parity_error(model, onnx_path, parity_inputs(8, seed=8)) <= PARITY_TOLERANCE
    return onnx_path, card, single


def test_two_view_export_averages_the_half_turn(trained: Path) -> None:
    onnx_path, card, single = _export_views(trained, 2)
    # Twice the network, once the constant CoordConv term.
    assert single < card["architecture"]["macs_per_image"] < 2 * single

    # Turning the sky by 180 degrees swaps the two views: the answer turns with the sky
    # exactly (centre negated, everything else unchanged), up to the mean offset's sign.
    predictor = OnnxMassPredictor(onnx_path)
    cutouts = parity_inputs(6, seed=9)
    plain = predictor.predict(cutouts)
    turned = predictor.predict(np.ascontiguousarray(cutouts[:, :, ::-1, ::-1]))
    for name in spec.MASS_PARAMETER_NAMES:
        offset = card["mean_calibration"]["offsets"][name]
        if name in ("center_x", "center_y"):
            np.testing.assert_allclose(turned.mean[name] + offset, -(plain.mean[name] + offset),
                                       atol=2e-5)
        else:
            np.testing.assert_allclose(turned.mean[name], plain.mean[name], atol=2e-5)
        np.testing.assert_allclose(turned.sigma[name], plain.sigma[name], rtol=1e-5, atol=1e-6)


def test_eight_view_export_turns_and_mirrors_with_the_sky(trained: Path) -> None:
    onnx_path, card, single = _export_views(trained, 8)
    model, _ = load_checkpoint(trained / "out" / "last.pt")
    model.test_views = 2
    one_more_view = count_flops(model)["macs"] - single  # the CoordConv term is computed once
    assert card["architecture"]["macs_per_image"] == single + 7 * one_more_view
    assert "8 views in the graph" in onnx_path.with_suffix(".md").read_text()

    # The average over the whole group is exactly equivariant: the cutout turned or mirrored
    # gives the transformed lens (before the mean offset, which is not transformed).
    predictor = OnnxMassPredictor(onnx_path)
    cutouts = parity_inputs(6, seed=11)
    offset = np.array([card["mean_calibration"]["offsets"][n] for n in spec.MASS_PARAMETER_NAMES])

    def means(batch: np.ndarray) -> np.ndarray:
        out = predictor.predict(np.ascontiguousarray(batch)).mean
        return np.stack([out[n] for n in spec.MASS_PARAMETER_NAMES], -1) + offset

    plain = means(cutouts)
    for view, back in zip(views(8), back_transforms(8), strict=True):
        seen = means(view.apply(torch.from_numpy(cutouts)).numpy())
        np.testing.assert_allclose(seen @ back, plain, atol=5e-5)
    # A wrong back-transform would show: theta_E alone is invariant, e1 is not.
    turned = means(views(4)[2].apply(torch.from_numpy(cutouts)).numpy())
    assert np.allclose(turned[:, 0], plain[:, 0], atol=5e-5)
    assert not np.allclose(turned[:, 1], plain[:, 1], atol=5e-5)


def test_fine_tuning_starts_from_the_exported_network(trained: Path) -> None:
    onnx_path = trained / "weights2" / "lenscast-hsc.onnx"
    if not onnx_path.exists():  # written by the two-view test; make it when run alone
        assert main(["export", "--checkpoint", str(trained / "out" / "last.pt"),
                     "--out", str(onnx_path), "--version", "0.0.2", "--views", "2",
                     "--calibrate", str(trained / "val")]) == 0
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    store = ShardStore(trained / "train")
    store.refresh()
    rebuilt = model_from_onnx(onnx_path, NetworkConfig.from_dict(CONFIG["network"]),
                              store.images[:64])
    # BatchNorm re-measured on the cutouts: train mode stays close to the exported function.
    assert rebuilt.training
    rebuilt.eval()
    rebuilt.test_views = 2
    for name, values in (("sigma_scale", card["sigma_calibration"]["factors"]),
                         ("mean_offset", card["mean_calibration"]["offsets"])):
        getattr(rebuilt, name).copy_(
            torch.tensor([values[n] for n in spec.MASS_PARAMETER_NAMES]))
    assert parity_error(rebuilt, onnx_path, parity_inputs(8, seed=10)) <= PARITY_TOLERANCE
    with pytest.raises(ValueError, match="folded convolutions|network's layer"):
        model_from_onnx(onnx_path, NetworkConfig.from_dict({**CONFIG["network"],
                                                            "blocks": [0, 0, 0, 0]}),
                        store.images[:8])

    # `lenscast train --init-onnx` records where it started; the card says so.
    out = trained / "tuned"
    assert main(["train", "--config", str(trained / "one.json"), "--seed", "4",
                 "--data", str(trained / "train"), "--val", str(trained / "val"),
                 "--out", str(out), "--init-onnx", str(onnx_path), "--no-progress",
                 "--threads", "1"]) == 0
    _, checkpoint = load_checkpoint(out / "last.pt")
    started = checkpoint["state"]["initialised_from"]
    assert started["onnx"] == str(onnx_path)
    assert started["sha256"] == card["onnx"]["sha256"]
    assert "--init-onnx" in checkpoint["state"]["command"]


def _card_of(command: list[str], out: Path) -> dict[str, Any]:
    """Run a ``lenscast`` command that writes the model ``out``; return that model's card."""
    assert main([*command, "--out", str(out)]) == 0
    return json.loads(out.with_suffix(".json").read_text())


def test_recalibrate_appends_the_theta_e_correction_and_keeps_the_means(trained: Path) -> None:
    onnx_path, card, _ = _export_views(trained, 1)
    out = trained / "recalibrated" / "lenscast-hsc.onnx"
    new_card = _card_of(["recalibrate", "--model", str(onnx_path), "--data", str(trained / "val"),
                         "--version", "0.0.9", "--threads", "1"], out)  # fmt: skip
    fit = new_card["sigma_theta_e_calibration"]
    assert new_card["version"] == "0.0.9"
    assert new_card["recalibrated_from"]["version"] == card["version"]
    assert new_card["onnx"]["sha256"] == OnnxMassPredictor(out).identity.onnx_sha256
    assert new_card["evaluation"] is None  # the sigma changed: to be evaluated again
    assert "θ_E-dependent" in out.with_suffix(".md").read_text()

    cutouts = parity_inputs(6, seed=11)
    before = OnnxMassPredictor(onnx_path).predict(cutouts)
    after = OnnxMassPredictor(out).predict(cutouts)
    theta = np.clip(before.mean["theta_e"], *THETA_E_CLIP)
    for name in spec.MASS_PARAMETER_NAMES:
        np.testing.assert_array_equal(after.mean[name], before.mean[name])
        expected = before.sigma[name] * fit["factors"][name] * theta ** fit["slopes"][name]
        np.testing.assert_allclose(after.sigma[name], expected, rtol=1e-5)
    # Once is enough: a second correction on top is refused.
    with pytest.raises(ValueError, match="already"):
        append_to_graph(onnx.load(str(out)), np.ones(7), np.zeros(7))


def test_quantize_writes_an_int8_graph_with_its_own_card(trained: Path) -> None:
    onnx_path, card, _ = _export_views(trained, 1)
    out = trained / "int8" / "lenscast-hsc-int8.onnx"
    int8_card = _card_of(["quantize", "--model", str(onnx_path), "--calibration",
                          str(trained / "val"), "--name", "lenscast-hsc-int8", "--version",
                          "0.0.8"], out)  # fmt: skip
    assert (int8_card["name"], int8_card["version"]) == ("lenscast-hsc-int8", "0.0.8")
    assert int8_card["quantized_from"]["version"] == card["version"]
    assert int8_card["quantization"]["float32_convolutions"]  # the stem, by default
    assert int8_card["onnx"]["parity_max_abs_torch_vs_onnxruntime"] is None
    assert "no torch parity" in out.with_suffix(".md").read_text()
    graph = onnx.load(str(out)).graph
    assert any(node.op_type == "DequantizeLinear" for node in graph.node)
    predictor = OnnxMassPredictor(out)
    assert predictor.identity.onnx_sha256 == int8_card["onnx"]["sha256"]
    cutouts = parity_inputs(4, seed=12)
    near, far = predictor.predict(cutouts), OnnxMassPredictor(onnx_path).predict(cutouts)
    # An approximation of the float network, not a different one.
    for name in spec.MASS_PARAMETER_NAMES:
        scale = spec.MASS_PARAMETERS[spec.MASS_PARAMETER_NAMES.index(name)]
        tolerance = 0.1 * (scale.high - scale.low)
        np.testing.assert_allclose(near.mean[name], far.mean[name], atol=tolerance)
    # Its sigma is then fitted on its own outputs.
    refitted = _card_of(["recalibrate", "--model", str(out), "--data", str(trained / "val"),
                         "--version", "0.0.9", "--threads", "1"], out)  # fmt: skip
    assert refitted["sigma_theta_e_calibration"]

"""The device-resident training set: filled by loader threads while the simulator writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lenscast.model import parameter_spec as spec
from lenscast.trainer.training.device_store import DeviceShardCache


def write_shard(directory: Path, index: int, first: int, count: int) -> None:
    """A shard whose system ``k`` has every pixel and theta_e equal to ``first + k``."""
    values = np.arange(first, first + count, dtype=np.float32)
    images = np.broadcast_to(values[:, None, None, None], (count, 4, 64, 64))
    truths = {name: np.zeros(count) for name in spec.MASS_PARAMETER_NAMES}
    truths["theta_e"] = values.astype(np.float64)
    np.savez(directory / f"shard_{index:05d}.npz", images=images, **truths)


def write_manifest(directory: Path, *, n: int, complete: bool) -> None:
    (directory / "manifest.json").write_text(json.dumps({"n": n, "complete": complete}))


def test_cache_grows_with_the_directory_and_keeps_each_system_whole(tmp_path: Path) -> None:
    write_manifest(tmp_path, n=30, complete=False)
    write_shard(tmp_path, 0, first=0, count=10)
    cache = DeviceShardCache(tmp_path, device="cpu", loaders=2, poll_seconds=0.01).start()
    try:
        assert cache.wait_for(10, timeout_s=30) == 10
        assert not cache.complete
        (tmp_path / "shard_00001.npz").write_bytes(b"PK\x03\x04 half written")
        write_shard(tmp_path, 2, first=20, count=10)
        assert cache.wait_for(20, timeout_s=30) == 20
        assert not cache.complete  # shard 1 is still unreadable
        write_shard(tmp_path, 1, first=10, count=10)
        write_manifest(tmp_path, n=30, complete=True)
        assert cache.wait_for(30, timeout_s=30) == 30
        assert cache.complete
    finally:
        cache.close()
    assert sorted(cache.shards_loaded) == [f"shard_{k:05d}.npz" for k in range(3)]
    # Every system landed whole, once, with its own target, in whichever order shards came.
    theta = cache.targets[:, 0]
    assert sorted(theta.tolist()) == list(range(30))
    assert torch.equal(cache.images.float().amin(dim=(1, 2, 3)), theta)
    assert torch.equal(cache.images.float().amax(dim=(1, 2, 3)), theta)

    generator = torch.Generator().manual_seed(0)
    images, targets = cache.sample(256, generator)
    assert images.dtype == torch.float32
    assert torch.equal(images[:, 0, 0, 0], targets[:, 0])
    assert len(set(targets[:, 0].tolist())) > 20  # uniform over what is held


def test_cache_stops_at_its_capacity_and_reports_loader_errors(tmp_path: Path) -> None:
    write_manifest(tmp_path, n=25, complete=True)
    for k in range(3):
        write_shard(tmp_path, k, first=10 * k, count=10)
    cache = DeviceShardCache(tmp_path, device="cpu", capacity=25, loaders=1).start()
    cache.wait_for(25, timeout_s=30)
    cache.close()
    assert len(cache) == 25
    assert cache.full
    assert cache.complete

    bad = tmp_path / "bad"
    bad.mkdir()
    write_manifest(bad, n=5, complete=True)
    np.savez(bad / "shard_00000.npz", images=np.full((5, 4, 64, 64), 1e6, np.float32),
             **{name: np.zeros(5) for name in spec.MASS_PARAMETER_NAMES})
    broken = DeviceShardCache(bad, device="cpu", loaders=1).start()
    with pytest.raises(RuntimeError, match="loading shards"):
        broken.wait_for(5, timeout_s=30)
    broken.close()
    with pytest.raises(ValueError, match="capacity"):
        DeviceShardCache(tmp_path / "nowhere", device="cpu")

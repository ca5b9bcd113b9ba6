"""Several simulated runs loaded as one set (a mixed validation or calibration set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lenscast.trainer.dataset import load_sets, shard_name, write_manifest, write_shard


def _run(directory: Path, *, n: int, offset: float, columns: tuple[str, ...] = ("theta_e",)
         ) -> Path:
    """A one-shard run whose images and truths are ``offset + arange(n)``."""
    directory.mkdir()
    values = offset + np.arange(n, dtype=np.float32)
    images = np.broadcast_to(values[:, None, None, None], (n, 4, 64, 64))
    write_shard(directory / shard_name(0), images=images,
                truths={name: values for name in columns})
    write_manifest(directory, {"complete": True, "seed": int(offset),
                               "shards": [{"name": shard_name(0), "n": n}]})
    return directory


def test_runs_are_concatenated_in_the_order_given(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", n=3, offset=100.0)
    second = _run(tmp_path / "b", n=2, offset=200.0)

    mixed = load_sets([second, first])

    assert mixed.truths["theta_e"].tolist() == [200, 201, 100, 101, 102]
    assert mixed.images[:, 0, 0, 0].tolist() == [200, 201, 100, 101, 102]
    assert [source["directory"] for source in mixed.manifest["sources"]] == [
        str(second), str(first)]
    assert [source["seed"] for source in mixed.manifest["sources"]] == [200, 100]


def test_one_run_loads_as_itself(tmp_path: Path) -> None:
    only = _run(tmp_path / "a", n=3, offset=1.0)

    loaded = load_sets([only])

    assert loaded.truths["theta_e"].tolist() == [1, 2, 3]
    assert loaded.manifest["seed"] == 1


def test_runs_with_different_columns_are_refused(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", n=2, offset=0.0, columns=("theta_e", "is_lens"))
    second = _run(tmp_path / "b", n=2, offset=0.0)

    with pytest.raises(ValueError, match="is_lens"):
        load_sets([first, second])
    with pytest.raises(ValueError, match="at least one"):
        load_sets([])

"""``lenscast make-stream`` and the shipped sample stream.

The generator is run on small synthetic shards (the shard contract of docs/architecture.md), and
its alerts are decoded back: pixels bit for bit, each transient on the true image it was put on.
The shipped sample stream (``consumer/samples``) must decode completely and agree with its truths.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lenscast.cli import main
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.framing import read_alert_file
from lenscast.model import parameter_spec as spec

SAMPLES = Path(__file__).resolve().parents[1] / "consumer" / "samples"


def _write_shards(directory: Path, n: int, seed: int = 0) -> np.ndarray:
    """Two synthetic shards with the columns the generator reads; return all images."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.5, 0.1, (n, 4, 64, 64)).astype(np.float32)
    image_x = np.full((n, 4), np.nan)
    image_y = np.full((n, 4), np.nan)
    image_x[:, :2] = rng.uniform(-4.0, 4.0, (n, 2))
    image_y[:, :2] = rng.uniform(-4.0, 4.0, (n, 2))
    image_x[0, 1] = 20.0  # beyond a transient's 15" reach: never chosen for one
    delays = np.where(np.isfinite(image_x), [0.0, 12.5, 0.0, 0.0], np.nan)
    truths: dict[str, Any] = {name: rng.uniform(-0.1, 0.1, n) for name in spec.MASS_PARAMETER_NAMES}
    truths |= {
        "theta_e": rng.uniform(0.5, 3.0, n),
        "z_lens": rng.uniform(0.2, 0.8, n),
        "z_source": rng.uniform(1.0, 3.0, n),
        "source_x": rng.uniform(-0.5, 0.5, n),
        "source_y": rng.uniform(-0.5, 0.5, n),
        "image_x": image_x,
        "image_y": image_y,
        "time_delay_days": delays,
        "split": np.full(n, "test"),
    }
    directory.mkdir()
    half = n // 2
    for k, rows in enumerate((slice(0, half), slice(half, n))):
        columns = {key: value[rows] for key, value in truths.items()}
        np.savez_compressed(directory / f"shard_{k:05d}.npz", images=images[rows], **columns)
    (directory / "manifest.json").write_text(json.dumps({"complete": True, "n": n}))
    return images


def test_make_stream_round_trip(tmp_path: Path) -> None:
    images = _write_shards(tmp_path / "shards", 6)
    out, truths_path = tmp_path / "stream.avro", tmp_path / "truths.jsonl"
    status = main(["make-stream", "--data", str(tmp_path / "shards"), "--n", "5", "--out",
                   str(out), "--truths", str(truths_path), "--transient-fraction", "1",
                   "--seed", "3"])  # fmt: skip
    assert status == 0
    truths = [json.loads(line) for line in truths_path.read_text().splitlines()]
    messages = read_alert_file(out)
    assert len(messages) == len(truths) == 5
    for i, (message, truth) in enumerate(zip(messages, truths, strict=True)):
        alert = decode_alert(message)
        assert alert.alert_id == truth["alert_id"] == f"lenscast-sim-3-{i:06d}"
        np.testing.assert_array_equal(alert.cutouts, images[i])
        assert (alert.z_lens, alert.z_source) == (truth["z_lens"], truth["z_source"])
        assert alert.transient is not None  # fraction 1: every alert has one
        k = truth["transient_image"]
        assert (alert.transient.x_arcsec, alert.transient.y_arcsec) == pytest.approx(
            (truth["image_x"][k], truth["image_y"][k]), abs=1e-6
        )
    assert truths[0]["transient_image"] == 0  # its image 1 lies beyond the reach


def test_make_stream_refuses_more_alerts_than_systems(tmp_path: Path) -> None:
    _write_shards(tmp_path / "shards", 2)
    with pytest.raises(SystemExit, match="only 2 systems"):
        main(["make-stream", "--data", str(tmp_path / "shards"), "--n", "3", "--out",
              str(tmp_path / "s.avro"), "--truths", str(tmp_path / "t.jsonl")])  # fmt: skip


def test_generator_does_not_import_torch_or_lenstronomy() -> None:
    code = (
        "import sys, lenscast.tools.stream_generator_cli, lenscast.consumer.decoding; "
        "bad = {'torch', 'lenstronomy', 'trainer'} & {m.split('.')[0] for m in sys.modules}; "
        "sys.exit(bool(bad))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_shipped_sample_stream() -> None:
    stream, truths_path = SAMPLES / "hsc-sample.avro", SAMPLES / "hsc-sample-truths.jsonl"
    assert stream.stat().st_size + truths_path.stat().st_size < 5 * 2**20
    truths = [json.loads(line) for line in truths_path.read_text().splitlines()]
    messages = read_alert_file(stream)
    assert len(messages) == len(truths) >= 30
    n_transients = 0
    for message, truth in zip(messages, truths, strict=True):
        alert = decode_alert(message)
        assert alert.alert_id == truth["alert_id"]
        assert truth["split"] == "test"
        assert np.all(np.isfinite(alert.cutouts))
        assert set(spec.MASS_PARAMETER_NAMES) <= truth.keys()
        if truth["transient_image"] is None:
            assert alert.transient is None
            continue
        n_transients += 1
        assert alert.transient is not None
        k = truth["transient_image"]
        assert (alert.transient.x_arcsec, alert.transient.y_arcsec) == pytest.approx(
            (truth["image_x"][k], truth["image_y"][k]), abs=1e-6
        )
    assert 5 <= n_transients < len(truths)

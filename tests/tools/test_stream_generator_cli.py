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

from harness.paths import ROOT
from lenscast.cli import main
from lenscast.consumer.decoding import decode_alert
from lenscast.consumer.framing import read_alert_file
from lenscast.model import parameter_spec as spec

SAMPLES = ROOT / "consumer" / "samples"


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
        if not truth["is_lens"]:
            continue  # test_shipped_sample_stream_has_non_lenses
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


def _write_non_lens_shard(directory: Path, n: int) -> np.ndarray:
    """A shard of systems without lensed images (what ``simulate --no-source`` writes)."""
    rng = np.random.default_rng(5)
    images = rng.normal(0.5, 0.1, (n, 4, 64, 64)).astype(np.float32)
    truths: dict[str, Any] = {name: rng.uniform(-0.1, 0.1, n) for name in spec.MASS_PARAMETER_NAMES}
    truths |= {
        "theta_e": rng.uniform(0.5, 3.0, n),
        "z_lens": rng.uniform(0.2, 0.8, n),
        "z_source": rng.uniform(1.0, 3.0, n),
        "image_x": np.full((n, 4), np.nan),
        "image_y": np.full((n, 4), np.nan),
        "time_delay_days": np.full((n, 4), np.nan),
        "split": np.full(n, "test"),
    }
    directory.mkdir()
    np.savez_compressed(directory / "shard_00000.npz", images=images, **truths)
    return images


def test_make_stream_appends_non_lenses(tmp_path: Path) -> None:
    from lenscast.tools.stream_generator_cli import NON_LENS_TRANSIENT_RADIUS_ARCSEC

    _write_shards(tmp_path / "lenses", 6)
    non_lens_images = _write_non_lens_shard(tmp_path / "none", 3)
    out, truths_path = tmp_path / "stream.avro", tmp_path / "truths.jsonl"
    common = ["make-stream", "--data", str(tmp_path / "lenses"), "--n", "4", "--out", str(out),
              "--truths", str(truths_path), "--transient-fraction", "1", "--seed", "3"]  # fmt: skip
    assert main(common) == 0
    lenses_only = [decode_alert(m) for m in read_alert_file(out)]
    assert main([*common, "--non-lens-data", str(tmp_path / "none"), "--n-non-lens", "3"]) == 0
    truths = [json.loads(line) for line in truths_path.read_text().splitlines()]
    alerts = [decode_alert(m) for m in read_alert_file(out)]
    assert [t["is_lens"] for t in truths] == [True] * 4 + [False] * 3
    # The lenses are the same alerts as in the stream without non-lenses.
    for a, b in zip(alerts[:4], lenses_only, strict=True):
        assert (a.alert_id, a.transient, a.ra) == (b.alert_id, b.transient, b.ra)
    lo, hi = NON_LENS_TRANSIENT_RADIUS_ARCSEC
    for k, (alert, truth) in enumerate(zip(alerts[4:], truths[4:], strict=True)):
        np.testing.assert_array_equal(alert.cutouts, non_lens_images[k])
        assert alert.candidate_id.startswith("sim-nonlens-")
        assert truth["theta_e"] is None
        assert truth["image_x"] == []
        assert truth["transient_image"] is None
        assert alert.transient is not None  # fraction 1: a supernova in each galaxy
        assert (alert.transient.x_arcsec, alert.transient.y_arcsec) == pytest.approx(
            (truth["transient_x"], truth["transient_y"]), abs=1e-6
        )
        # truth has no centre (no mass model): the shard's centres are within 0.1" of 0.
        radius = np.hypot(alert.transient.x_arcsec, alert.transient.y_arcsec)
        assert lo - 0.15 <= radius <= hi + 0.15


def test_make_stream_refuses_lenses_as_non_lenses(tmp_path: Path) -> None:
    _write_shards(tmp_path / "lenses", 4)
    files = ["--out", str(tmp_path / "s.avro"), "--truths", str(tmp_path / "t.jsonl")]
    lenses = ["make-stream", "--data", str(tmp_path / "lenses"), "--n", "2"]
    with pytest.raises(SystemExit, match="not a non-lens system"):
        main([*lenses, "--non-lens-data", str(tmp_path / "lenses"), "--n-non-lens", "1", *files])
    with pytest.raises(SystemExit, match="go together"):
        main([*lenses, "--n-non-lens", "1", *files])


def test_shipped_sample_stream_has_non_lenses() -> None:
    truths = [
        json.loads(line) for line in (SAMPLES / "hsc-sample-truths.jsonl").read_text().splitlines()
    ]
    non_lenses = [t for t in truths if not t["is_lens"]]
    assert 1 <= len(non_lenses) < len(truths) / 10  # a few, after the lenses
    assert all(not t["is_lens"] for t in truths[-len(non_lenses) :])
    assert any(t["transient_x"] is not None for t in non_lenses)
    for t in non_lenses:
        assert t["image_x"] == []
        assert t["theta_e"] is None
        assert t["transient_image"] is None

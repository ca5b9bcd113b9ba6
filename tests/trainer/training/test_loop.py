"""The training loop's choice of arithmetic."""

from __future__ import annotations

import pytest
import torch

from lenscast.trainer.network import LensCNN, NetworkConfig
from lenscast.trainer.training.loop import TrainConfig, _parameter_groups, bf16_is_native


def test_bf16_only_where_the_cpu_has_bf16_units(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    for avx512_bf16, amx, expected in ((False, False, False), (True, False, True),
                                       (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert bf16_is_native(cpu) is expected
    assert bf16_is_native(torch.device("cuda"))


def test_the_colour_residual_convolution_has_its_own_rate() -> None:
    small = {"widths": [8, 8, 16, 16, 16], "blocks": [0, 0, 0, 1], "head_channels": 8,
             "hidden": 32}
    plain = LensCNN(NetworkConfig.from_dict(small))
    assert len(_parameter_groups(plain, TrainConfig())) == 1
    model = LensCNN(NetworkConfig.from_dict({**small, "colour_residuals": True}))
    config = TrainConfig(colour_residual_lr_factor=10.0)
    rest, planes = _parameter_groups(model, config)
    assert planes["params"] == [model.stem_residuals.weight]
    assert planes["lr_factor"] == 10.0
    assert "lr_factor" not in rest
    assert len(rest["params"]) + 1 == len(list(model.parameters()))

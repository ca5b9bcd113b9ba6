"""The training loop's choice of arithmetic."""

from __future__ import annotations

import pytest
import torch

from lenscast.trainer.training.loop import bf16_is_native


def test_bf16_only_where_the_cpu_has_bf16_units(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    for avx512_bf16, amx, expected in ((False, False, False), (True, False, True),
                                       (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert bf16_is_native(cpu) is expected
    assert bf16_is_native(torch.device("cuda"))

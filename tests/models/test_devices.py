"""Device defaults: dtype resolution and the batch token budget."""

from __future__ import annotations

import pytest
import torch

from models import devices
from models.devices import batch_token_budget, resolve_dtype


def test_batch_budget_is_small_on_cpu_large_on_gpu_and_never_below_one_input() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert batch_token_budget(None, cpu, 256) == 2048
    assert batch_token_budget(None, gpu, 256) == 16384
    assert batch_token_budget(None, cpu, 8192) == 8192  # one full-length input always fits
    assert batch_token_budget(4096, cpu, 256) == 4096  # an explicit value wins (checked against the model later)


def test_explicit_dtype_is_kept_and_auto_never_picks_fp16_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype("float16", cpu) is torch.float16
    assert resolve_dtype("auto", cpu) in (torch.float32, torch.bfloat16)


@pytest.mark.parametrize(("speedup", "expected"), [(0.0, torch.float32), (0.6, torch.float32), (2.9, torch.bfloat16)])
def test_auto_dtype_on_cpu_follows_the_measured_bf16_speed(monkeypatch, speedup, expected) -> None:  # type: ignore[no-untyped-def]
    # 0.6: a VM exposing avx512_bf16 whose bf16 kernels ran slower than fp32 (measured).
    monkeypatch.setattr(devices, "cpu_bf16_speedup", lambda: speedup)
    assert resolve_dtype("auto", torch.device("cpu")) is expected
    assert resolve_dtype("float32", torch.device("cpu")) is torch.float32


def test_bf16_speed_is_measured_only_where_the_cpu_has_bf16_instructions() -> None:
    devices.cpu_bf16_speedup.cache_clear()
    speedup = devices.cpu_bf16_speedup()
    assert (speedup > 0) == devices.cpu_has_bf16_instructions()

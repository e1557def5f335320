"""Device defaults: dtype resolution and the batch token budget."""

from __future__ import annotations

import torch

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

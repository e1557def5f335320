"""Device and dtype resolution for `--device` / `--dtype` / the card's dtype."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import torch

from models.card import DTypeName
from models.errors import CardError

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@functools.cache
def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matmuls run several times faster than fp32 on such CPUs."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def resolve_dtype(name: DTypeName, device: torch.device) -> torch.dtype:
    """'auto' picks bf16 where the hardware runs it natively, else fp32 (fp16 is never implicit)."""
    if name != "auto":
        return DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


# On CPU a batch runs about as fast per token at 2k tokens as at 16k (faster, measured: smaller
# working sets), but a short request arriving behind it waits for all of it.
CPU_BATCH_TOKENS = 2048
GPU_BATCH_TOKENS = 16384


def batch_token_budget(requested: int | None, device: torch.device, max_tokens: int) -> int:
    """The padded-token budget of one batch: `requested`, or the device's default (never below
    one input of the model's full length)."""
    if requested is not None:
        return requested
    return max(GPU_BATCH_TOKENS if device.type == "cuda" else CPU_BATCH_TOKENS, max_tokens)


def replica_devices(device: str, workers: int) -> list[torch.device]:
    """One device per worker replica: 'auto'/'cuda' spread over cuda:0..N-1; 'cpu' repeats the CPU."""
    if workers < 1:
        raise CardError("workers must be at least 1", key="workers")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return [torch.device("cpu")] * workers
    if device == "cuda":
        available = torch.cuda.device_count()
        if available < workers:
            raise CardError(f"{workers} workers asked for, {available} CUDA devices visible", key="workers")
        return [torch.device("cuda", index) for index in range(workers)]
    if re.fullmatch(r"cuda:\d+", device):
        if not torch.cuda.is_available() or int(device.split(":")[1]) >= torch.cuda.device_count():
            raise CardError(f"device {device} is not available", key="device")
        return [torch.device(device)] * workers
    raise CardError(f"device {device!r} is not one of auto, cpu, cuda, cuda:N", key="device")

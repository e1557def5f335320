"""Device and dtype resolution for `--device` / `--dtype` / the card's dtype."""

from __future__ import annotations

import functools
import logging
import re
import time
from pathlib import Path

import torch

from models.card import DTypeName
from models.errors import CardError

log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# `--dtype auto` serves bf16 on a CPU only where it is clearly faster than fp32. The
# avx512_bf16/amx_bf16 flags are necessary but not sufficient: bf16 ran 2.9x faster than fp32
# on an EPYC with AVX-512 BF16, but at 0.55x on a VM exposing avx512_bf16 without AMX (Xeon
# model 207, same oneDNN kernel), so the choice is measured on the machine itself.
BF16_MIN_SPEEDUP = 1.25


def cpu_has_bf16_instructions() -> bool:
    """AVX-512 BF16 or AMX: without them bf16 is emulated (~500x slower than fp32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time / bf16 time of a transformer-sized linear layer on this CPU, best of a few
    alternated runs (~0.1 s, once per process); 0.0 where bf16 has no instructions."""
    if not cpu_has_bf16_instructions():
        return 0.0
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(512, 1024, generator=generator)
    w = torch.randn(1024, 1024, generator=generator)
    operands = {dtype: (x.to(dtype), w.to(dtype)) for dtype in (torch.float32, torch.bfloat16)}
    best = dict.fromkeys(operands, float("inf"))
    with torch.inference_mode():
        for attempt in range(6):
            for dtype, (a, b) in operands.items():
                started = time.perf_counter()
                torch.nn.functional.linear(a, b)
                if attempt:  # the first call of each dtype sets up its kernels
                    best[dtype] = min(best[dtype], time.perf_counter() - started)
    speedup = best[torch.float32] / best[torch.bfloat16]
    log.info("bf16 runs %.2fx as fast as fp32 on this CPU (auto dtype: %s)", speedup,
             "bfloat16" if speedup >= BF16_MIN_SPEEDUP else "float32")  # fmt: skip
    return speedup


def cpu_prefers_bf16() -> bool:
    return cpu_bf16_speedup() >= BF16_MIN_SPEEDUP


def resolve_dtype(name: DTypeName, device: torch.device) -> torch.dtype:
    """'auto' picks bf16 where the hardware runs it clearly faster, else fp32 (fp16 is never implicit)."""
    if name != "auto":
        return DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_prefers_bf16():
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

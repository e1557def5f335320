"""Every pooling method against a plain per-sequence loop (no padding), for both padding sides."""

from __future__ import annotations

import math

import pytest
import torch

from models.pooling import TOKEN_POOLERS, PoolingMask


def reference(method: str, tokens: torch.Tensor, prompt: int) -> torch.Tensor:
    """One unpadded sequence [n, H]; `prompt` leading tokens left out where the method pools many."""
    n = tokens.shape[0]
    keep = list(range(prompt, n)) or list(range(n))
    if method == "cls":
        return tokens[0]
    if method == "last":
        return tokens[n - 1]
    if method == "mean":
        return sum(tokens[i] for i in keep) / len(keep)
    if method == "mean_sqrt_len":
        return sum(tokens[i] for i in keep) / math.sqrt(len(keep))
    if method == "max":
        out = tokens[keep[0]].clone()
        for i in keep[1:]:
            out = torch.maximum(out, tokens[i])
        return out
    if method == "weighted_mean":
        weights = [i + 1 for i in keep]
        return sum(w * tokens[i] for w, i in zip(weights, keep, strict=True)) / sum(weights)
    raise AssertionError(method)


def pad(sequences: list[torch.Tensor], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(s.shape[0] for s in sequences)
    hidden = torch.full((len(sequences), width, sequences[0].shape[1]), 1e4)  # garbage in padding
    mask = torch.zeros(len(sequences), width, dtype=torch.bool)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        hidden[row, span] = seq
        mask[row, span] = True
    return hidden, mask


# Single-token methods have no prompt exclusion (a card refuses that combination).
CASES = [(m, p) for m in sorted(TOKEN_POOLERS) for p in (False, True) if not (p and m in ("cls", "last"))]


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(("method", "with_prompt"), CASES)
def test_pooling_matches_reference(method: str, side: str, with_prompt: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    lengths = [5, 1, 9, 3]
    prompts = [2, 0, 4, 3] if with_prompt else [0] * 4  # the last one is all prompt: falls back to all tokens
    sequences = [torch.randn(n, 8, generator=generator) for n in lengths]
    hidden, attention = pad(sequences, side)
    mask = PoolingMask.build(attention, torch.tensor(prompts))
    pooled = TOKEN_POOLERS[method](hidden, mask)
    for row, seq in enumerate(sequences):
        torch.testing.assert_close(pooled[row], reference(method, seq, prompts[row]), rtol=1e-5, atol=1e-5)

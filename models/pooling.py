"""Pooling: reduce a padded batch of token vectors to one vector per sequence.

Every method works for either padding side: positions come from the attention mask, never
from the padded index. Pooling runs in float32 whatever the model's dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.card import POOLING_METHODS, PoolingMethod


@dataclass(frozen=True, slots=True)
class PoolingMask:
    """What pooling needs to know about a padded batch, built once per batch."""

    attention: torch.Tensor  # [B, T] bool: real tokens
    pooled: torch.Tensor  # [B, T] bool: real tokens minus any excluded prompt tokens
    positions: torch.Tensor  # [B, T] float: 1-based position of each real token, 0 on padding
    first: torch.Tensor  # [B] long: index of the first real token
    last: torch.Tensor  # [B] long: index of the last real token

    @classmethod
    def build(cls, attention: torch.Tensor, prompt_tokens: torch.Tensor) -> PoolingMask:
        """`attention` [B, T] bool; `prompt_tokens` [B] long: leading real tokens to leave out of pooling."""
        positions = attention.long().cumsum(dim=1) * attention
        pooled = attention & (positions > prompt_tokens.unsqueeze(1))
        # A sequence made only of prompt tokens keeps them rather than pooling nothing.
        empty = ~pooled.any(dim=1, keepdim=True)
        pooled = torch.where(empty, attention, pooled)
        lengths = attention.sum(dim=1)
        first = attention.long().argmax(dim=1)
        last = first + lengths - 1
        return cls(attention=attention, pooled=pooled, positions=positions.float(), first=first, last=last)


Pooler = Callable[[torch.Tensor, PoolingMask], torch.Tensor]


def _rows(hidden: torch.Tensor) -> torch.Tensor:
    return torch.arange(hidden.shape[0], device=hidden.device)


def cls_pooling(hidden: torch.Tensor, mask: PoolingMask) -> torch.Tensor:
    return hidden[_rows(hidden), mask.first]


def last_token_pooling(hidden: torch.Tensor, mask: PoolingMask) -> torch.Tensor:
    return hidden[_rows(hidden), mask.last]


def mean_pooling(hidden: torch.Tensor, mask: PoolingMask) -> torch.Tensor:
    weights = mask.pooled.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def mean_sqrt_len_pooling(hidden: torch.Tensor, mask: PoolingMask) -> torch.Tensor:
    weights = mask.pooled.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0).sqrt()


def weighted_mean_pooling(hidden: torch.Tensor, mask: PoolingMask) -> torch.Tensor:
    """SGPT's position-weighted mean: token i of the sequence (1-based) has weight i."""
    weights = (mask.positions * mask.pooled).unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def max_pooling(hidden: torch.Tensor, mask: PoolingMask) -> torch.Tensor:
    return hidden.masked_fill(~mask.pooled.unsqueeze(-1), float("-inf")).amax(dim=1)


TOKEN_POOLERS: dict[str, Pooler] = {
    "cls": cls_pooling,
    "last": last_token_pooling,
    "mean": mean_pooling,
    "mean_sqrt_len": mean_sqrt_len_pooling,
    "weighted_mean": weighted_mean_pooling,
    "max": max_pooling,
}


def token_pooler(method: PoolingMethod) -> Pooler:
    """The parameter-free pooler for `method` (latent attention has weights: see latent_attention.py)."""
    try:
        return TOKEN_POOLERS[method]
    except KeyError:
        raise ValueError(f"unknown pooling method {method!r}; valid: {', '.join(POOLING_METHODS)}") from None

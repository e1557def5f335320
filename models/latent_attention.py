"""NV-Embed's latent-attention pooling head (Lee et al. 2024, arXiv 2405.17428).

The token vectors (queries) cross-attend to a trained latent array (keys and values), pass
through a GEGLU MLP, each with a residual, and are then mean-pooled over the pooled tokens.
Module and tensor names follow NV-Embed's checkpoint so its weights load unchanged:

  {prefix}latents                                   [num_latents, latent_dim]
  {prefix}cross_attend_blocks.0.norm / .norm_context LayerNorms (queries, latents)
  {prefix}cross_attend_blocks.0.fn.to_q / to_kv / to_out
  {prefix}cross_attend_blocks.1.norm                LayerNorm
  {prefix}cross_attend_blocks.1.fn.net.0 / net.2    Linear(d, 2*m*d), GEGLU, Linear(m*d, d)
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from models.card import LatentAttentionConfig
from models.errors import SourceError
from models.pooling import PoolingMask, mean_pooling


class _CrossAttention(nn.Module):
    def __init__(self, hidden: int, latent_dim: int, inner: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(hidden, inner, bias=False)
        self.to_kv = nn.Linear(latent_dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, hidden, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = self.to_q(x)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).flatten(2))


class _GEGLUFeedForward(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, inner * 2), _GEGLU(), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _GEGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gates = x.chunk(2, dim=-1)
        return x * F.gelu(gates)


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module, context_dim: int | None = None) -> None:
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim) if context_dim is not None else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(x)
        if self.norm_context is not None:
            assert context is not None
            return self.fn(x, self.norm_context(context))
        return self.fn(x)


class LatentAttentionPooler(nn.Module):
    def __init__(self, hidden: int, num_latents: int, latent_dim: int, inner: int, heads: int, ff_inner: int) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(num_latents, latent_dim))
        self.cross_attend_blocks = nn.ModuleList(
            [
                _PreNorm(hidden, _CrossAttention(hidden, latent_dim, inner, heads), context_dim=latent_dim),
                _PreNorm(hidden, _GEGLUFeedForward(hidden, ff_inner)),
            ]
        )

    def forward(self, hidden: torch.Tensor, mask: PoolingMask) -> torch.Tensor:
        cross_attention, feed_forward = self.cross_attend_blocks
        latents = self.latents.unsqueeze(0).expand(hidden.shape[0], -1, -1)
        hidden = cross_attention(hidden, latents) + hidden
        hidden = feed_forward(hidden) + hidden
        return mean_pooling(hidden, mask)


def load_latent_attention(folder: Path, config: LatentAttentionConfig, hidden: int) -> LatentAttentionPooler:
    prefix = config.weights_prefix
    files = [folder / config.weights_file] if config.weights_file else sorted(folder.glob("*.safetensors"))
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                if key.startswith(prefix):
                    tensors[key.removeprefix(prefix)] = handle.get_tensor(key)
    if "latents" not in tensors:
        raise SourceError(f"{folder}: no latent-attention tensors with prefix {prefix!r}")
    num_latents, latent_dim = tensors["latents"].shape
    inner = tensors["cross_attend_blocks.0.fn.to_q.weight"].shape[0]
    ff_inner = tensors["cross_attend_blocks.1.fn.net.2.weight"].shape[1]
    head = LatentAttentionPooler(hidden, num_latents, latent_dim, inner, config.num_heads, ff_inner)
    head.load_state_dict(tensors, strict=True)
    return head.float().eval().requires_grad_(False)

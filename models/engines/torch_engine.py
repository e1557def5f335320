"""The torch/transformers engine: one replica of the backbone on one device."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.backbone import Backbone
from models.card import PaddingSide
from models.engines.base import EngineInput, EngineOutput
from models.pooling import Pooler, PoolingMask


@dataclass(slots=True)
class TorchBatch:
    """Host tensors (pinned when a GPU will read them), so any replica of the pool can run it."""

    input_ids: torch.Tensor  # [B, T] long
    attention: torch.Tensor  # [B, T] bool
    prompt_tokens: torch.Tensor  # [B] long
    span_weights: dict[int, torch.Tensor]  # row -> [spans, T] 0/1 matrix over the padded row

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])


class TorchEngine:
    def __init__(
        self,
        backbone: Backbone,
        pooler: Pooler,
        *,
        device: torch.device,
        pad_id: int,
        padding_side: PaddingSide,
    ) -> None:
        self.device = device
        self.device_label = str(device)
        self.hidden_size = backbone.hidden_size
        self._pad_id = pad_id
        self._left = padding_side == "left"
        # CPU replicas share one copy of the weights; each GPU gets its own.
        self._module: nn.Module = backbone.module if device.type == "cpu" else copy.deepcopy(backbone.module).to(device)
        self._pooler = pooler.to(device) if isinstance(pooler, nn.Module) else pooler
        self._pin = device.type == "cuda"

    def prepare(self, inputs: Sequence[EngineInput]) -> TorchBatch:
        width = max(len(item.ids) for item in inputs)
        ids = np.full((len(inputs), width), self._pad_id, dtype=np.int64)
        attention = np.zeros((len(inputs), width), dtype=np.bool_)
        for row, item in enumerate(inputs):
            n = len(item.ids)
            span = slice(width - n, width) if self._left else slice(0, n)
            ids[row, span] = item.ids
            attention[row, span] = True
        prompt = np.fromiter((item.prompt_tokens for item in inputs), dtype=np.int64, count=len(inputs))
        span_weights = {}
        for row, item in enumerate(inputs):
            if item.spans is not None:
                weights = np.zeros((len(item.spans), width), dtype=np.float32)
                offset = width - len(item.ids) if self._left else 0
                for index, (start, end) in enumerate(item.spans):
                    weights[index, offset + start : offset + end] = 1.0
                span_weights[row] = self._host(weights)
        return TorchBatch(
            input_ids=self._host(ids),
            attention=self._host(attention),
            prompt_tokens=self._host(prompt),
            span_weights=span_weights,
        )

    def run(self, batch: TorchBatch) -> EngineOutput:
        with torch.inference_mode():
            input_ids = batch.input_ids.to(self.device, non_blocking=True)
            attention = batch.attention.to(self.device, non_blocking=True)
            prompt_tokens = batch.prompt_tokens.to(self.device, non_blocking=True)
            kwargs: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention.long()}
            if self._left:
                # Positions count real tokens only, so left padding does not shift them.
                kwargs["position_ids"] = (attention.long().cumsum(dim=1) - 1).clamp(min=0)
            hidden = self._module(**kwargs).last_hidden_state.float()
            mask = PoolingMask.build(attention, prompt_tokens)
            pooled = self._pooler(hidden, mask).cpu().numpy()
            span_sums: list[np.ndarray | None] = [None] * batch.size
            for row, weights in batch.span_weights.items():
                # One matmul sums every span (spans may overlap) without copying token vectors out.
                span_sums[row] = (weights.to(self.device, non_blocking=True) @ hidden[row]).cpu().numpy()
        return EngineOutput(pooled=pooled, span_sums=span_sums)

    def close(self) -> None:
        if self.device.type == "cuda":
            del self._module
            torch.cuda.empty_cache()

    def _host(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        return tensor.pin_memory() if self._pin else tensor

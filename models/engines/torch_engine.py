"""The torch/transformers engine: one replica of the backbone on one device.

Two layouts for a batch: plain padding to the longest input, or packing (several inputs per
row, block-diagonal attention, per-input position ids; see models/packing.py) when that is
clearly cheaper. Packed outputs are unpacked into the padded layout before pooling, so
pooling and span sums see one layout whichever ran.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.backbone import Backbone
from models.card import PaddingSide
from models.engines.base import IN_PROCESS, EngineInput, EngineOutput, ReplicaHealth
from models.packing import PackedLayout, PackingPolicy
from models.pooling import Pooler, PoolingMask

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PackedRows:
    input_ids: torch.Tensor  # [R, W] long
    position_ids: torch.Tensor  # [R, W] long
    mask: torch.Tensor  # [R, 1, W, W] bool: who attends to whom
    gather: torch.Tensor  # [B, T] long: index into the flattened [R * W + 1] outputs (last = zeros)


@dataclass(slots=True)
class TorchBatch:
    """Host tensors (pinned when a GPU will read them), so any replica of the pool can run it."""

    input_ids: torch.Tensor  # [B, T] long (padded layout)
    attention: torch.Tensor  # [B, T] bool
    prompt_tokens: torch.Tensor  # [B] long
    span_weights: dict[int, torch.Tensor]  # row -> [spans, T] 0/1 matrix over the padded row
    packed: PackedRows | None = None

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
        packing: PackingPolicy | None = None,
    ) -> None:
        self.device = device
        self.device_label = str(device)
        self.hidden_size = backbone.hidden_size
        self._pad_id = pad_id
        self._left = padding_side == "left"
        self._causal = backbone.attention == "causal"
        # CPU replicas share one copy of the weights; each GPU gets its own.
        self._module: nn.Module = backbone.module if device.type == "cpu" else copy.deepcopy(backbone.module).to(device)
        self._pooler = pooler.to(device) if isinstance(pooler, nn.Module) else pooler
        self._pin = device.type == "cuda"
        self._packing = packing

    @property
    def packing(self) -> bool:
        return self._packing is not None

    def prepare(self, inputs: Sequence[EngineInput]) -> TorchBatch:
        lengths = [len(item.ids) for item in inputs]
        layout = self._packing.choose(lengths) if self._packing is not None else None
        left = self._left and layout is None  # unpacked outputs are laid out right-padded
        width = max(lengths)
        ids = np.full((len(inputs), width), self._pad_id, dtype=np.int64)
        attention = np.zeros((len(inputs), width), dtype=np.bool_)
        for row, item in enumerate(inputs):
            n = lengths[row]
            span = slice(width - n, width) if left else slice(0, n)
            ids[row, span] = item.ids
            attention[row, span] = True
        prompt = np.fromiter((item.prompt_tokens for item in inputs), dtype=np.int64, count=len(inputs))
        span_weights = {}
        for row, item in enumerate(inputs):
            if item.spans is not None:
                weights = np.zeros((len(item.spans), width), dtype=np.float32)
                offset = width - lengths[row] if left else 0
                for index, (start, end) in enumerate(item.spans):
                    weights[index, offset + start : offset + end] = 1.0
                span_weights[row] = self._host(weights)
        return TorchBatch(
            input_ids=self._host(ids),
            attention=self._host(attention),
            prompt_tokens=self._host(prompt),
            span_weights=span_weights,
            packed=self._pack(inputs, lengths, layout, width) if layout is not None else None,
        )

    def run(self, batch: TorchBatch) -> EngineOutput:
        with torch.inference_mode():
            attention = batch.attention.to(self.device, non_blocking=True)
            prompt_tokens = batch.prompt_tokens.to(self.device, non_blocking=True)
            hidden = self._packed_forward(batch.packed) if batch.packed else self._padded_forward(batch, attention)
            mask = PoolingMask.build(attention, prompt_tokens)
            pooled = self._pooler(hidden, mask).cpu().numpy()
            span_sums: list[np.ndarray | None] = [None] * batch.size
            for row, weights in batch.span_weights.items():
                # One matmul sums every span (spans may overlap) without copying token vectors out.
                span_sums[row] = (weights.to(self.device, non_blocking=True) @ hidden[row]).cpu().numpy()
        return EngineOutput(pooled=pooled, span_sums=span_sums)

    def verify_packing(self, tolerance: float) -> bool:
        """Packing relies on the architecture honouring position ids and 4-D masks: compare
        packed and padded results on a probe batch once, and turn packing off if they differ."""
        if self._packing is None:
            return False
        probe = [EngineInput(list(range(100, 100 + n))) for n in (7, 3, 12, 5, 9, 2, 11)]
        packed = self.run(self.prepare(probe)).pooled
        policy, self._packing = self._packing, None
        padded = self.run(self.prepare(probe)).pooled
        cosine = (packed * padded).sum(1) / (np.linalg.norm(packed, axis=1) * np.linalg.norm(padded, axis=1))
        if float(cosine.min()) >= 1.0 - tolerance:
            self._packing = policy
            return True
        log.warning("sequence packing disabled for this model: packed results differ (cosine %.6f)", cosine.min())
        return False

    def disable_packing(self) -> None:
        self._packing = None

    def health(self) -> ReplicaHealth:
        return IN_PROCESS

    def close(self) -> None:
        if self.device.type == "cuda":
            del self._module
            torch.cuda.empty_cache()

    # -- internals -----------------------------------------------------------------

    def _padded_forward(self, batch: TorchBatch, attention: torch.Tensor) -> torch.Tensor:
        kwargs = {"input_ids": batch.input_ids.to(self.device, non_blocking=True), "attention_mask": attention.long()}
        if self._left:
            # Positions count real tokens only, so left padding does not shift them.
            kwargs["position_ids"] = (attention.long().cumsum(dim=1) - 1).clamp(min=0)
        return self._module(**kwargs).last_hidden_state.float()

    def _packed_forward(self, packed: PackedRows) -> torch.Tensor:
        rows = self._module(
            input_ids=packed.input_ids.to(self.device, non_blocking=True),
            attention_mask=packed.mask.to(self.device, non_blocking=True),
            position_ids=packed.position_ids.to(self.device, non_blocking=True),
        ).last_hidden_state.float()
        flat = torch.cat([rows.reshape(-1, rows.shape[-1]), rows.new_zeros(1, rows.shape[-1])])
        return flat[packed.gather.to(self.device, non_blocking=True)]

    def _pack(self, inputs: Sequence[EngineInput], lengths: list[int], layout: PackedLayout, width: int) -> PackedRows:
        rows, row_width = layout.rows, layout.width
        ids = np.full((rows, row_width), self._pad_id, dtype=np.int64)
        positions = np.zeros((rows, row_width), dtype=np.int64)
        # Segment id per position: the input it belongs to; unused positions get a unique
        # negative id so they attend only to themselves (no all-masked rows, no NaN).
        segments = -1 - np.arange(rows * row_width, dtype=np.int64).reshape(rows, row_width)
        gather = np.full((len(inputs), width), rows * row_width, dtype=np.int64)
        for index, item in enumerate(inputs):
            row, start, n = layout.row_of[index], layout.offset_of[index], lengths[index]
            ids[row, start : start + n] = item.ids
            positions[row, start : start + n] = np.arange(n)
            segments[row, start : start + n] = index
            gather[index, :n] = row * row_width + start + np.arange(n)
        mask = segments[:, :, None] == segments[:, None, :]
        if self._causal:
            mask &= np.tri(row_width, dtype=np.bool_)[None]
        return PackedRows(
            input_ids=self._host(ids),
            position_ids=self._host(positions),
            mask=self._host(mask[:, None]),
            gather=self._host(gather),
        )

    def _host(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor.pin_memory() if self._pin else tensor

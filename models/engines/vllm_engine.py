"""The vLLM engine: vLLM's pooling runner, in the calling process, behind the same engine contract.

vLLM's AsyncLLM always puts its engine core in child processes (which a crash of ours would
orphan, and which double the memory); its synchronous LLMEngine runs in-process when
VLLM_ENABLE_V1_MULTIPROCESSING=0. The worker pool already gives every replica one thread
of its own, so that thread drives the engine: each of our token-budget batches is added
as requests and stepped until all finish (vLLM packs them without padding). By default the
engine lives in a replica process (models/engines/process_engine.py), like the torch
engine, so its Python work never holds the server's GIL; that process exits with its pipe.

What the card says reaches vLLM: the pooling type for the native pooler (mean, cls, last),
is_causal for decoders (bidirectional, or causal where a config says otherwise), dtype and
max length. Vectors come back raw (use_activation=False): Matryoshka truncation and
normalisation stay in the server, as for the torch engine. Pooling vLLM lacks (weighted
mean, max, mean_sqrt_len, prompt exclusion) and late-chunking span sums use vLLM's per-token
output (`token_embed`) and our own pooling.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.backbone import Backbone
from models.card import ModelCard
from models.engines.base import IN_PROCESS, EngineInput, EngineOutput, ReplicaHealth
from models.errors import EngineError
from models.pooling import Pooler, PoolingMask

NATIVE_POOLING = {"mean": "MEAN", "cls": "CLS", "last": "LAST"}


@dataclass(frozen=True, slots=True)
class VllmBatch:
    inputs: list[EngineInput]

    @property
    def size(self) -> int:
        return len(self.inputs)


def vllm_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("vllm") is not None
    except ValueError:
        return False


class VllmEngine:
    def __init__(
        self,
        *,
        folder: Path,
        card: ModelCard,
        backbone: Backbone,
        pooler: Pooler,
        max_tokens: int,
        max_batch_tokens: int,
        max_batch_size: int,
    ) -> None:
        # Read by vLLM at import: the engine core in this process, a bounded KV-cache arena
        # (pooling keeps no cache across steps), no telemetry.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        from vllm import PoolingParams, TokensPrompt
        from vllm.config import PoolerConfig
        from vllm.engine.arg_utils import EngineArgs
        from vllm.v1.engine.llm_engine import LLMEngine

        self.hidden_size = backbone.hidden_size
        self.device_label = "vllm"
        self._pooler = pooler
        self._native = NATIVE_POOLING.get(card.pooling)
        self._params = PoolingParams
        self._prompt = TokensPrompt
        overrides: dict[str, Any] = {}
        if backbone.is_decoder:
            # Explicit both ways: some configs (gte-Qwen2) say is_causal false for a causal card.
            overrides["is_causal"] = backbone.attention == "causal"
        args = EngineArgs(
            model=str(folder),
            tokenizer=str(folder),
            runner="pooling",
            dtype=str(backbone.dtype).removeprefix("torch."),
            max_model_len=max_tokens,
            enforce_eager=True,
            pooler_config=PoolerConfig(pooling_type=self._native or "MEAN"),
            hf_overrides=overrides,
            max_num_batched_tokens=max(max_batch_tokens, max_tokens),
            max_num_seqs=max_batch_size,
            disable_log_stats=True,
            seed=0,
        )
        self._engine = LLMEngine.from_engine_args(args)
        self._ids = itertools.count()

    def prepare(self, inputs: Sequence[EngineInput]) -> VllmBatch:
        return VllmBatch(list(inputs))

    def run(self, batch: VllmBatch) -> EngineOutput:
        outputs = self._step_all(batch.inputs)
        pooled = np.zeros((batch.size, self.hidden_size), dtype=np.float32)
        span_sums: list[np.ndarray | None] = [None] * batch.size
        token_rows = []
        for row, (item, output) in enumerate(zip(batch.inputs, outputs, strict=True)):
            if self._wants_tokens(item):
                if item.spans is not None:
                    weights = np.zeros((len(item.spans), len(item.ids)), dtype=np.float32)
                    for index, (start, end) in enumerate(item.spans):
                        weights[index, start:end] = 1.0
                    span_sums[row] = weights @ output.numpy()
                else:
                    token_rows.append(row)
            else:
                pooled[row] = output.numpy()
        if token_rows:
            pooled[token_rows] = self._pool_tokens([batch.inputs[r] for r in token_rows],
                                                   [outputs[r] for r in token_rows])  # fmt: skip
        return EngineOutput(pooled=pooled, span_sums=span_sums)

    def health(self) -> ReplicaHealth:
        return IN_PROCESS

    def close(self) -> None:
        self._engine.engine_core.shutdown()

    # -- internals -----------------------------------------------------------------

    def _wants_tokens(self, item: EngineInput) -> bool:
        return item.spans is not None or item.prompt_tokens > 0 or self._native is None

    def _step_all(self, inputs: list[EngineInput]) -> list[torch.Tensor]:
        rows: dict[str, int] = {}
        for row, item in enumerate(inputs):
            request_id = f"r{next(self._ids)}"
            task = "token_embed" if self._wants_tokens(item) else "embed"
            self._engine.add_request(
                request_id, self._prompt(prompt_token_ids=item.ids), self._params(task=task, use_activation=False)
            )
            rows[request_id] = row
        results: list[torch.Tensor | None] = [None] * len(inputs)
        try:
            while self._engine.has_unfinished_requests():
                for output in self._engine.step():
                    if output.finished:
                        results[rows[output.request_id]] = output.outputs.data.float()
        except Exception:
            self._engine.abort_request(list(rows))
            raise
        if any(result is None for result in results):
            raise EngineError("vLLM finished without a result for every input")
        return results  # type: ignore[return-value]

    def _pool_tokens(self, inputs: list[EngineInput], states: list[torch.Tensor]) -> np.ndarray:
        """Our pooling over vLLM's per-token output, padded on the right."""
        width = max(len(item.ids) for item in inputs)
        hidden = torch.zeros(len(inputs), width, self.hidden_size)
        attention = torch.zeros(len(inputs), width, dtype=torch.bool)
        for row, state in enumerate(states):
            hidden[row, : state.shape[0]] = state
            attention[row, : state.shape[0]] = True
        prompt = torch.tensor([item.prompt_tokens for item in inputs])
        with torch.inference_mode():
            return self._pooler(hidden, PoolingMask.build(attention, prompt)).numpy()

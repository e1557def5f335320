"""Load everything a card describes: tokenizer, backbone, pooling head, engines per device."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.backbone import Backbone, load_backbone
from models.card import ModelCard
from models.devices import resolve_dtype
from models.engines.base import Engine
from models.engines.process_engine import CoreShare
from models.engines.torch_engine import TorchEngine
from models.errors import CardError
from models.latent_attention import load_latent_attention
from models.packing import PackingPolicy
from models.pooling import Pooler, token_pooler
from models.sources import resolve_source
from models.tokenization import InputTokenizer

log = logging.getLogger(__name__)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    # Load reports list e.g. an unused lm_head when a *ForCausalLM checkpoint becomes an embedder.
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


@dataclass
class LoadedModel:
    card: ModelCard
    folder: Path
    tokenizer: InputTokenizer
    backbone: Backbone
    pooler: Pooler | None  # None: the weights (and a head's) are loaded by other processes
    dtype: torch.dtype

    @property
    def dimensions(self) -> int:
        return self.backbone.hidden_size

    @property
    def max_tokens(self) -> int:
        return self.tokenizer.max_tokens

    def allowed_dimensions(self) -> tuple[int, ...] | None:
        """Matryoshka sizes the model was trained for; None means any size 1..full."""
        dims = self.card.matryoshka_dims
        return None if dims == "any" else tuple(d for d in dims if d <= self.dimensions)

    def create_engines(
        self,
        devices: list[torch.device],
        *,
        packing: bool = True,
        max_batch_tokens: int = 16384,
        max_batch_size: int = 256,
        processes: bool = False,
        threads: int = 1,
        cores: CoreShare | None = None,
        replica_timeout_s: float = 60.0,
    ) -> list[Engine]:
        """One engine per device. `processes`: each replica (torch or vLLM) in a process of its
        own, with `threads` intra-op threads, or, given `cores`, an equal share of them among
        the replicas running a batch at the time (models/engines/process_engine.py); a replica
        that does not answer within `replica_timeout_s` (or longer for a large batch) is replaced."""
        if self.card.engine == "vllm" and len(devices) > 1:
            raise CardError(f"{self.card.name}: the vllm engine runs one replica (vLLM parallelises itself)",
                            key="workers")  # fmt: skip
        if processes:
            from models.engines.process_engine import ProcessEngine, ReplicaSpec

            card = self.card.model_dump(mode="json")
            dtype = str(self.dtype).removeprefix("torch.")
            threads = cores.cores if cores is not None else threads
            return [
                ProcessEngine(
                    ReplicaSpec(card, str(device), dtype, packing, threads, max_batch_tokens, max_batch_size),
                    hidden_size=self.dimensions,
                    cores=cores,
                    timeout_s=replica_timeout_s,
                )
                for device in devices
            ]
        assert self.pooler is not None, "this model was loaded without weights"
        if self.card.engine == "vllm":
            from models.engines.vllm_engine import VllmEngine

            engine = VllmEngine(
                folder=self.folder,
                card=self.card,
                backbone=self.backbone,
                pooler=self.pooler,
                max_tokens=self.max_tokens,
                max_batch_tokens=max_batch_tokens,
                max_batch_size=max_batch_size,
            )
            return [engine]
        engines = [
            TorchEngine(
                self.backbone,
                self.pooler,
                device=device,
                pad_id=self.tokenizer.pad_id,
                padding_side=self.card.padding_side,
                packing=PackingPolicy(self.dimensions) if packing else None,
            )
            for device in devices
        ]
        if packing and not engines[0].verify_packing(tolerance=1e-5 if self.dtype == torch.float32 else 1e-3):
            for engine in engines:
                engine.disable_packing()
        return engines

    def describe(self) -> dict[str, Any]:
        """Facts clients may rely on, published in /v1/models."""
        causal = self.backbone.attention == "causal"
        return {
            "engine": self.card.engine,
            "dimensions": self.dimensions,
            "matryoshka_dimensions": list(self.allowed_dimensions() or []) or "any",
            "max_tokens": self.max_tokens,
            "attention": self.backbone.attention,
            "pooling": self.card.pooling,
            "layer": self.card.layer,
            "normalize": self.card.normalize,
            "dtype": str(self.dtype).removeprefix("torch."),
            "prompts": sorted(self.card.prompts),
            "default_prompt": self.card.default_prompt,
            "accepts_instruction": self.card.instruction_template is not None,
            "late_chunking_context": "preceding text only" if causal else "whole document",
        }


def load_model(
    card: ModelCard, *, device: torch.device, dtype_override: str | None = None, weights: bool | None = None
) -> LoadedModel:
    """`weights=False` reads everything but the weights (tokenizer, shapes, attention): for
    a process whose engines load them elsewhere (replica processes, vLLM)."""
    _quiet_transformers()
    folder = resolve_source(card.source, card.revision)
    dtype = resolve_dtype(dtype_override or card.dtype, device)  # type: ignore[arg-type]
    with_weights = card.engine == "torch" if weights is None else weights
    log.info("loading %s from %s as %s%s", card.name, folder, dtype, "" if with_weights else " (no weights)")
    backbone = load_backbone(folder, card, dtype, weights=with_weights)
    if card.max_tokens is not None and backbone.max_positions is not None and card.max_tokens > backbone.max_positions:
        raise CardError(
            f"{card.name}: max_tokens {card.max_tokens} exceeds the model's {backbone.max_positions} positions",
            key="max_tokens",
        )
    try:
        tokenizer = InputTokenizer.from_folder(
            folder,
            gguf_file=card.gguf_file,
            max_tokens=card.max_tokens,
            append_eos=card.append_eos,
            max_positions=backbone.max_positions,
        )
    except ValueError as exc:
        raise CardError(f"{card.name}: {exc}", key="append_eos" if "EOS" in str(exc) else "max_tokens") from None
    _check_matryoshka(card, backbone.hidden_size)
    pooler: Pooler | None = None
    if card.pooling != "latent_attention":
        pooler = token_pooler(card.pooling)
    elif with_weights:
        assert card.latent_attention is not None
        pooler = load_latent_attention(folder, card.latent_attention, backbone.hidden_size)
    return LoadedModel(card=card, folder=folder, tokenizer=tokenizer, backbone=backbone, pooler=pooler, dtype=dtype)


def _check_matryoshka(card: ModelCard, hidden: int) -> None:
    if card.matryoshka_dims != "any" and max(card.matryoshka_dims) > hidden:
        raise CardError(
            f"{card.name}: matryoshka_dims {list(card.matryoshka_dims)} exceed the model's {hidden} dimensions",
            key="matryoshka_dims",
        )

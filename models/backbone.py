"""Load a transformer backbone and shape it as the card says: attention mode and exit layer.

- Attention: decoders keep their causal mask unless the card says `bidirectional`, in which
  case the same weights run with a padding-only mask (how LLM2Vec, NV-Embed and GritLM serve).
- Layer: `layer` is a Hugging Face `hidden_states` index. When it is not the last layer the
  later layers are removed (early exit), and so is the final norm that only the last output
  gets, so the output equals `hidden_states[layer]` of the full model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.card import Attention, ModelCard
from models.errors import CardError, SourceError

_LAYER_LISTS = ("layers", "encoder.layer", "encoder.layers", "transformer.h", "h", "model.layers", "decoder.layers")
_UNUSED_POOLER_MODELS = frozenset({"bert", "mpnet", "roberta", "xlm-roberta"})
_FINAL_NORMS = ("norm", "final_layernorm", "final_norm", "ln_f", "model.norm", "transformer.ln_f")


@dataclass
class Backbone:
    module: nn.Module
    hidden_size: int
    total_layers: int
    exit_layer: int  # number of transformer layers that run
    native_attention: Attention
    attention: Attention
    max_positions: int | None
    dtype: torch.dtype

    @property
    def is_decoder(self) -> bool:
        return self.native_attention == "causal"


def load_backbone(folder: Path, card: ModelCard, dtype: torch.dtype) -> Backbone:
    """Load on the CPU; replicas are moved to their devices by the engine."""
    from transformers import AutoModel

    try:
        module = AutoModel.from_pretrained(
            str(folder), gguf_file=card.gguf_file, dtype=dtype, attn_implementation="sdpa"
        )
    except (OSError, ValueError, KeyError) as exc:
        raise SourceError(f"{card.name}: cannot load weights from {folder}: {exc}") from None
    module = module.to(dtype).eval().requires_grad_(False)
    config = module.config
    if config.model_type in _UNUSED_POOLER_MODELS:
        module.pooler = None  # the CLS dense+tanh head: computed by default, never used for embeddings
    native: Attention = "causal" if _has_causal_attention(module) else "bidirectional"
    attention = card.attention or native
    if attention != native:
        if native == "bidirectional":
            raise CardError(f"{card.name}: attention 'causal' needs a decoder; this is an encoder", key="attention")
        _make_bidirectional(module)
    if card.padding_side == "left" and native == "bidirectional":
        raise CardError(
            f"{card.name}: padding_side 'left' is for decoders; encoders pad on the right", key="padding_side"
        )
    total = int(config.num_hidden_layers)
    exit_layer = _exit_layer(card.layer, total, card.name)
    if exit_layer < total:
        _truncate(module, exit_layer)
    return Backbone(
        module=module,
        hidden_size=int(config.hidden_size),
        total_layers=total,
        exit_layer=exit_layer,
        native_attention=native,
        attention=attention,
        max_positions=getattr(config, "max_position_embeddings", None),
        dtype=dtype,
    )


def _has_causal_attention(module: nn.Module) -> bool:
    return any(getattr(sub, "is_causal", False) is True for sub in module.modules())


def _make_bidirectional(module: nn.Module) -> None:
    # transformers builds a padding-only mask when config.is_causal is False; SDPA also reads
    # each attention module's own is_causal flag when no mask is passed, so clear both.
    for config in {id(c): c for c in _configs(module)}.values():
        config.is_causal = False
    for sub in module.modules():
        if getattr(sub, "is_causal", None) is True:
            sub.is_causal = False


def _configs(module: nn.Module) -> list[object]:
    return [sub.config for sub in module.modules() if hasattr(sub, "config")]


def _exit_layer(layer: int, total: int, name: str) -> int:
    index = layer if layer >= 0 else total + 1 + layer
    if not 0 <= index <= total:
        raise CardError(
            f"{name}: layer {layer} is out of range for {total} layers (-{total + 1}..{total})", key="layer"
        )
    return index


def _truncate(module: nn.Module, keep: int) -> None:
    layers = _find(module, _LAYER_LISTS)
    if not isinstance(layers, nn.ModuleList):
        raise CardError(f"cannot find the layer list of {type(module).__name__} to stop at layer {keep}", key="layer")
    del layers[keep:]
    module.config.num_hidden_layers = keep
    if hasattr(module.config, "layer_types") and module.config.layer_types:
        module.config.layer_types = module.config.layer_types[:keep]
    for path in _FINAL_NORMS:
        owner, _, attr = path.rpartition(".")
        parent = _find(module, (owner,)) if owner else module
        if parent is not None and isinstance(getattr(parent, attr, None), nn.Module):
            setattr(parent, attr, nn.Identity())
            break


def _find(module: nn.Module, paths: tuple[str, ...]) -> nn.Module | None:
    for path in paths:
        node: object = module
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, nn.Module):
            return node
    return None

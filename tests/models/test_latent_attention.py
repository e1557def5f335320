"""NV-Embed layout end to end on a tiny checkpoint: a Mistral backbone stored under
"embedding_model." in a wrapper config, a latent-attention head under
"latent_attention_model.", bidirectional attention, the instruction kept out of the mean.
Checked against a plain-tensor re-implementation of NV-Embed's head."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from models.card import card_from_mapping
from models.engines.base import EngineInput
from models.loader import load_model
from tests.models.test_backbone import reference_decoder

HEADS, HEAD_DIM, LATENTS, HIDDEN = 2, 32, 16, 64
INSTRUCTION = "Instruct: Given a question, retrieve passages that answer it\nQuery: "


@pytest.fixture(scope="module")
def nv_embed_dir(tiny_models, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    stock = tiny_models["mistral"]
    folder = tmp_path_factory.mktemp("nv-embed")
    backbone = {
        "embedding_model." + key.removeprefix("model."): tensor
        for key, tensor in load_file(str(stock / "model.safetensors")).items()
        if key.startswith("model.")
    }
    generator = torch.Generator().manual_seed(3)

    def rand(*shape: int, scale: float = 0.3) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * scale

    inner = HEADS * HEAD_DIM
    head = {
        "latents": rand(LATENTS, HIDDEN, scale=1.0),
        "cross_attend_blocks.0.norm.weight": 1 + rand(HIDDEN, scale=0.1),
        "cross_attend_blocks.0.norm.bias": rand(HIDDEN, scale=0.1),
        "cross_attend_blocks.0.norm_context.weight": 1 + rand(HIDDEN, scale=0.1),
        "cross_attend_blocks.0.norm_context.bias": rand(HIDDEN, scale=0.1),
        "cross_attend_blocks.0.fn.to_q.weight": rand(inner, HIDDEN),
        "cross_attend_blocks.0.fn.to_kv.weight": rand(2 * inner, HIDDEN),
        "cross_attend_blocks.0.fn.to_out.weight": rand(HIDDEN, inner),
        "cross_attend_blocks.1.norm.weight": 1 + rand(HIDDEN, scale=0.1),
        "cross_attend_blocks.1.norm.bias": rand(HIDDEN, scale=0.1),
        "cross_attend_blocks.1.fn.net.0.weight": rand(8 * HIDDEN, HIDDEN),
        "cross_attend_blocks.1.fn.net.0.bias": rand(8 * HIDDEN, scale=0.1),
        "cross_attend_blocks.1.fn.net.2.weight": rand(HIDDEN, 4 * HIDDEN, scale=0.1),
        "cross_attend_blocks.1.fn.net.2.bias": rand(HIDDEN, scale=0.1),
    }
    tensors = {**backbone, **{"latent_attention_model." + key: value for key, value in head.items()}}
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(folder / "model.safetensors"))
    text_config = json.loads((stock / "config.json").read_text())
    text_config["model_type"] = "bidir_mistral"  # as NV-Embed-v2's config.json names it
    text_config["architectures"] = ["MistralModel"]
    wrapper = {
        "architectures": ["NVEmbedModel"],
        "model_type": "nvembed",
        "auto_map": {"AutoModel": "modeling_nvembed.NVEmbedModel"},
        "text_config": text_config,
        "latent_attention_config": {"model_type": "latent_attention"},
        "padding_side": "right",
        "add_eos": True,
        "is_mask_instruction": True,
    }
    (folder / "config.json").write_text(json.dumps(wrapper))
    for item in stock.iterdir():
        if item.name.startswith("tokenizer") or item.name.endswith(".jinja"):
            shutil.copy(item, folder / item.name)
    return folder


def layer_norm(x: torch.Tensor, prefix: str, head: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), head[prefix + ".weight"], head[prefix + ".bias"])


def reference_nv_embed(folder: Path, stock: Path, ids: list[int], instruction_tokens: int) -> np.ndarray:
    head = {
        key.removeprefix("latent_attention_model."): value
        for key, value in load_file(str(folder / "model.safetensors")).items()
        if key.startswith("latent_attention_model.")
    }
    hidden = reference_decoder(stock, ids, causal=False)  # NV-Embed: padding-only mask
    x = layer_norm(hidden, "cross_attend_blocks.0.norm", head)
    context = layer_norm(head["latents"], "cross_attend_blocks.0.norm_context", head)
    q = (x @ head["cross_attend_blocks.0.fn.to_q.weight"].T).view(-1, HEADS, HEAD_DIM).transpose(0, 1)
    k, v = (context @ head["cross_attend_blocks.0.fn.to_kv.weight"].T).chunk(2, dim=-1)
    k = k.view(-1, HEADS, HEAD_DIM).transpose(0, 1)
    v = v.view(-1, HEADS, HEAD_DIM).transpose(0, 1)
    attention = (q @ k.transpose(1, 2) / math.sqrt(HEAD_DIM)).softmax(-1) @ v
    hidden = attention.transpose(0, 1).reshape(len(ids), -1) @ head["cross_attend_blocks.0.fn.to_out.weight"].T + hidden
    y = layer_norm(hidden, "cross_attend_blocks.1.norm", head)
    y = y @ head["cross_attend_blocks.1.fn.net.0.weight"].T + head["cross_attend_blocks.1.fn.net.0.bias"]
    value, gates = y.chunk(2, dim=-1)
    y = (value * F.gelu(gates)) @ head["cross_attend_blocks.1.fn.net.2.weight"].T
    hidden = y + head["cross_attend_blocks.1.fn.net.2.bias"] + hidden
    return hidden[instruction_tokens:].mean(0).numpy()  # the instruction stays out of the mean


def test_nv_embed_layout_matches_reference(nv_embed_dir, tiny_models) -> None:  # type: ignore[no-untyped-def]
    card = card_from_mapping(
        {
            "name": "tiny-nv-embed", "source": str(nv_embed_dir), "dtype": "float32",
            "attention": "bidirectional", "pooling": "latent_attention", "append_eos": True,
            "latent_attention": {"num_heads": HEADS, "weights_prefix": "latent_attention_model."},
            "backbone": {"config_key": "text_config", "model_type": "mistral", "weights_prefix": "embedding_model."},
            "instruction_template": "Instruct: {instruction}\nQuery: ", "exclude_prompt_from_pooling": True,
        },
        "test",
    )  # fmt: skip
    model = load_model(card, device=torch.device("cpu"))
    assert model.backbone.attention == "bidirectional" and model.backbone.is_decoder
    engine = model.create_engines([torch.device("cpu")])[0]
    texts = ["how do magnets attract iron", "why is the sky blue"]
    tokenized = model.tokenizer.encode_texts(texts, prompt=INSTRUCTION)
    got = engine.run(engine.prepare([EngineInput(t.ids, t.prompt_tokens) for t in tokenized])).pooled
    for row, item in enumerate(tokenized):
        assert item.ids[-1] == model.tokenizer.eos_id
        # Exactly the instruction's tokens are excluded: its trailing space merges into the first
        # word (" how"), which stays in the mean.
        instruction_only = model.tokenizer.encode_texts([""], prompt=INSTRUCTION.rstrip(" "))[0]
        assert item.prompt_tokens == len(instruction_only.ids) - len(model.tokenizer.suffix)
        expected = reference_nv_embed(nv_embed_dir, tiny_models["mistral"], item.ids, item.prompt_tokens)
        np.testing.assert_allclose(got[row], expected, rtol=1e-4, atol=1e-4)

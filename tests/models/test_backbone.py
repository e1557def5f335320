"""Backbones on tiny random Qwen3, Llama, Mistral and BERT models against independent references:
causal last-token pooling under both padding sides, bidirectional attention, layer selection."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from models.card import card_from_mapping
from models.engines.base import EngineInput
from models.errors import CardError
from models.loader import LoadedModel, load_model
from models.pooling import TOKEN_POOLERS, PoolingMask

DECODER_KINDS = ["qwen3", "llama", "mistral"]
TEXTS = ["The cat sat.", "A much longer sentence about embeddings and attention masks.", "x", ""]
CPU = torch.device("cpu")


def load(folder: Path, **fields: object) -> LoadedModel:
    card = card_from_mapping({"name": "tiny", "source": str(folder), "dtype": "float32", **fields}, "test")
    return load_model(card, device=CPU)


def embed(model: LoadedModel, texts: list[str], prompt: str | None = None) -> np.ndarray:
    engine = model.create_engines([CPU])[0]
    tokenized = model.tokenizer.encode_texts(texts, prompt=prompt)
    exclude = model.card.exclude_prompt_from_pooling
    inputs = [EngineInput(t.ids, t.prompt_tokens if exclude else 0) for t in tokenized]
    return engine.run(engine.prepare(inputs)).pooled


@functools.cache
def stock_model(folder: Path) -> torch.nn.Module:
    return AutoModel.from_pretrained(str(folder), dtype=torch.float32).eval()


def plain_hidden(folder: Path, ids: list[int]) -> torch.Tensor:
    """Stock transformers, one unpadded sequence, stock (causal for decoders) attention."""
    module = stock_model(folder)
    with torch.inference_mode():
        return module(input_ids=torch.tensor([ids])).last_hidden_state[0]


def reference_decoder(folder: Path, ids: list[int], *, causal: bool) -> torch.Tensor:
    """An independent re-implementation of a Llama/Mistral/Qwen3 forward pass, in plain tensor
    ops, with a causal or a full (bidirectional) attention matrix."""
    module = stock_model(folder)
    cfg = module.config
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    theta = cfg.rope_parameters["rope_theta"]
    n = len(ids)
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.arange(n, dtype=torch.float32)[:, None] * inv_freq[None, :]
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()

    def rms(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps)

    def rotate(t: torch.Tensor) -> torch.Tensor:
        half = t.shape[-1] // 2
        return t * cos + torch.cat([-t[..., half:], t[..., :half]], -1) * sin

    with torch.inference_mode():
        x = module.embed_tokens.weight[ids]
        for layer in module.layers:
            attn = layer.self_attn
            h = rms(x, layer.input_layernorm.weight)
            q = attn.q_proj(h).view(n, heads, head_dim).transpose(0, 1)
            k = attn.k_proj(h).view(n, kv_heads, head_dim).transpose(0, 1)
            v = attn.v_proj(h).view(n, kv_heads, head_dim).transpose(0, 1)
            if hasattr(attn, "q_norm"):  # Qwen3 normalises q and k per head before RoPE
                q, k = rms(q, attn.q_norm.weight), rms(k, attn.k_norm.weight)
            q, k = rotate(q), rotate(k)
            k = k.repeat_interleave(heads // kv_heads, dim=0)
            v = v.repeat_interleave(heads // kv_heads, dim=0)
            scores = q @ k.transpose(1, 2) / math.sqrt(head_dim)
            if causal:
                scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
            out = (scores.softmax(-1) @ v).transpose(0, 1).reshape(n, heads * head_dim)
            x = x + attn.o_proj(out)
            h = rms(x, layer.post_attention_layernorm.weight)
            mlp = layer.mlp
            x = x + mlp.down_proj(torch.nn.functional.silu(mlp.gate_proj(h)) * mlp.up_proj(h))
        return rms(x, module.norm.weight)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("kind", DECODER_KINDS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_causal_last_token_any_padding(tiny_models, kind: str, side: str) -> None:  # type: ignore[no-untyped-def]
    model = load(tiny_models[kind], pooling="last", padding_side=side)
    assert model.backbone.attention == "causal"
    batch = embed(model, TEXTS)
    for row, text in enumerate(TEXTS):
        ids = model.tokenizer.encode_texts([text])[0].ids
        expected = plain_hidden(tiny_models[kind], ids)[-1].numpy()
        np.testing.assert_allclose(batch[row], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(embed(model, [text])[0], batch[row], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", DECODER_KINDS)
def test_independent_reference_reproduces_stock_causal(tiny_models, kind: str) -> None:  # type: ignore[no-untyped-def]
    # The reference below is trusted for bidirectional mode because it reproduces stock causal mode.
    ids = AutoTokenizer.from_pretrained(str(tiny_models[kind]))(TEXTS[1])["input_ids"]
    torch.testing.assert_close(
        reference_decoder(tiny_models[kind], ids, causal=True),
        plain_hidden(tiny_models[kind], ids),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize("kind", DECODER_KINDS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_bidirectional_decoder_matches_reference(tiny_models, kind: str, side: str) -> None:  # type: ignore[no-untyped-def]
    bidirectional = load(tiny_models[kind], pooling="mean", attention="bidirectional", padding_side=side)
    causal = load(tiny_models[kind], pooling="mean", attention="causal", padding_side=side)
    assert bidirectional.backbone.attention == "bidirectional" and bidirectional.backbone.native_attention == "causal"
    got = embed(bidirectional, TEXTS)
    mean_causal = embed(causal, TEXTS)
    for row, text in enumerate(TEXTS):
        ids = bidirectional.tokenizer.encode_texts([text])[0].ids
        expected = reference_decoder(tiny_models[kind], ids, causal=False).mean(0).numpy()
        np.testing.assert_allclose(got[row], expected, rtol=1e-4, atol=1e-4)
        if len(ids) > 2:
            assert cosine(got[row], mean_causal[row]) < 0.99, "bidirectional mode must change the vectors"


def test_encoders_cannot_be_made_causal(tiny_models) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CardError) as error:
        load(tiny_models["bert"], pooling="mean", attention="causal")
    assert error.value.key == "attention"
    with pytest.raises(CardError) as error:
        load(tiny_models["bert"], pooling="mean", padding_side="left")
    assert error.value.key == "padding_side"


@pytest.mark.parametrize(
    ("kind", "layer", "index"), [("qwen3", 1, 1), ("llama", -2, 1), ("bert", 2, 2), ("bert", 0, 0)]
)
def test_layer_selection_exits_early(tiny_models, kind: str, layer: int, index: int) -> None:  # type: ignore[no-untyped-def]
    model = load(tiny_models[kind], pooling="mean", layer=layer)
    layers = model.backbone.module.layers if kind != "bert" else model.backbone.module.encoder.layer
    assert len(layers) == index == model.backbone.exit_layer
    got = embed(model, TEXTS[:2])
    full = stock_model(tiny_models[kind])
    for row, text in enumerate(TEXTS[:2]):
        ids = model.tokenizer.encode_texts([text])[0].ids
        with torch.inference_mode():
            hidden = full(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[index][0]
        np.testing.assert_allclose(got[row], hidden.mean(0).numpy(), rtol=1e-4, atol=1e-4)


def test_layer_out_of_range(tiny_models) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CardError) as error:
        load(tiny_models["qwen3"], pooling="last", layer=5)
    assert error.value.key == "layer" and "-3..2" in str(error.value)


@pytest.mark.parametrize("kind", ["bert", "qwen3"])
@pytest.mark.parametrize("method", sorted(TOKEN_POOLERS))
def test_every_pooling_method_through_the_engine(tiny_models, kind: str, method: str) -> None:  # type: ignore[no-untyped-def]
    if method == "cls" and kind == "qwen3":
        method_fields = {"pooling": method, "attention": "bidirectional"}  # cls needs a token that sees others
    else:
        method_fields = {"pooling": method}
    model = load(tiny_models[kind], **method_fields)
    got = embed(model, TEXTS)
    for row, text in enumerate(TEXTS):
        ids = model.tokenizer.encode_texts([text])[0].ids
        if model.backbone.attention == "bidirectional" and kind == "qwen3":
            hidden = reference_decoder(tiny_models[kind], ids, causal=False)
        else:
            hidden = plain_hidden(tiny_models[kind], ids)
        mask = PoolingMask.build(torch.ones(1, len(ids), dtype=torch.bool), torch.zeros(1, dtype=torch.long))
        expected = TOKEN_POOLERS[method](hidden[None], mask)[0].numpy()
        np.testing.assert_allclose(got[row], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("side", ["left", "right"])
def test_prompt_excluded_from_pooling_still_attends(tiny_models, side: str) -> None:  # type: ignore[no-untyped-def]
    prompt = "Instruct: find similar sentences\nQuery: "
    fields = {"pooling": "mean", "attention": "bidirectional", "padding_side": side,
              "prompts": {"query": prompt}}  # fmt: skip
    excluded = load(tiny_models["mistral"], **fields, exclude_prompt_from_pooling=True)
    included = load(tiny_models["mistral"], **fields)
    got = embed(excluded, TEXTS[:2], prompt=prompt)
    with_prompt = embed(included, TEXTS[:2], prompt=prompt)
    without_prompt = embed(included, TEXTS[:2])
    for row, text in enumerate(TEXTS[:2]):
        tokenized = excluded.tokenizer.encode_texts([text], prompt=prompt)[0]
        assert tokenized.prompt_tokens > 0
        hidden = reference_decoder(tiny_models["mistral"], tokenized.ids, causal=False)
        expected = hidden[tokenized.prompt_tokens :].mean(0).numpy()
        np.testing.assert_allclose(got[row], expected, rtol=1e-4, atol=1e-4)
        assert cosine(got[row], with_prompt[row]) < 0.999  # exclusion changes the pooled tokens
        assert cosine(got[row], without_prompt[row]) < 0.999  # and the prompt still shapes them


def test_append_eos(tiny_models) -> None:  # type: ignore[no-untyped-def]
    model = load(tiny_models["qwen3"], pooling="last", append_eos=True)
    eos = AutoTokenizer.from_pretrained(str(tiny_models["qwen3"])).eos_token_id
    for tokenized in model.tokenizer.encode_texts(["hello", ""]):
        assert tokenized.ids[-1] == eos
    plain = load(tiny_models["qwen3"], pooling="last")
    assert plain.tokenizer.encode_texts(["hello"])[0].ids[-1] != eos

"""Sequence packing: the row planner, the cost policy, and packed == padded results on
every architecture the suite builds (and on the real MiniLM)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch

from models.card import card_from_mapping
from models.engines.base import EngineInput
from models.engines.torch_engine import TorchEngine
from models.loader import load_model
from models.packing import PackingPolicy, plan_rows

CPU = torch.device("cpu")


def test_rows_are_filled_first_fit_decreasing() -> None:
    layout = plan_rows([50, 20, 70, 30, 10], capacity=100)
    assert layout.rows == 2 and layout.width == 100
    spans = sorted((layout.row_of[i], layout.offset_of[i], n) for i, n in enumerate([50, 20, 70, 30, 10]))
    for (row_a, start_a, n_a), (row_b, start_b, _) in pairwise(spans):
        if row_a == row_b:
            assert start_a + n_a <= start_b  # no overlap inside a row


def test_policy_packs_many_short_inputs_only() -> None:
    policy = PackingPolicy(hidden_size=384)
    assert policy.choose([12, 40, 9, 15, 11, 30, 8, 14] * 4) is not None
    assert policy.choose([250, 240, 255]) is None  # long inputs: padding is as good
    assert policy.choose([20]) is None


def engines(folder: Path, **fields: object) -> tuple[TorchEngine, TorchEngine]:
    card = card_from_mapping({"name": "t", "source": str(folder), "dtype": "float32", **fields}, "test")
    model = load_model(card, device=CPU)
    packed = model.create_engines([CPU], packing=True)[0]
    padded = model.create_engines([CPU], packing=False)[0]
    assert isinstance(packed, TorchEngine) and packed.packing and not padded.packing
    return packed, padded


def compare(packed: TorchEngine, padded: TorchEngine, lengths: list[int], **extra: object) -> None:
    inputs = [EngineInput(list(range(200, 200 + n)), **extra) for n in lengths]  # type: ignore[arg-type]
    batch = packed.prepare(inputs)
    assert batch.packed is not None, "the policy should pack this batch"
    np.testing.assert_allclose(packed.run(batch).pooled, padded.run(padded.prepare(inputs)).pooled, atol=2e-5)


LENGTHS = [12, 30, 5, 17, 9, 25, 3, 14] * 2


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("bert", {"pooling": "mean"}),
        ("qwen3", {"pooling": "last", "padding_side": "left"}),
        ("llama", {"pooling": "mean", "attention": "bidirectional"}),
        ("mistral", {"pooling": "weighted_mean"}),
    ],
)
def test_packed_equals_padded(tiny_models, kind: str, fields: dict) -> None:  # type: ignore[no-untyped-def]
    compare(*engines(tiny_models[kind], **fields), LENGTHS)


def test_packed_equals_padded_with_spans_and_prompts(tiny_models) -> None:  # type: ignore[no-untyped-def]
    packed, padded = engines(tiny_models["qwen3"], pooling="mean", exclude_prompt_from_pooling=True)
    inputs = [EngineInput(list(range(300, 300 + n)), prompt_tokens=2, spans=((0, 2), (2, n))) for n in LENGTHS]
    got, expected = packed.run(packed.prepare(inputs)), padded.run(padded.prepare(inputs))
    np.testing.assert_allclose(got.pooled, expected.pooled, atol=2e-5)
    for a, b in zip(got.span_sums, expected.span_sums, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_real_minilm_packs_exactly(minilm_dir) -> None:  # type: ignore[no-untyped-def]
    packed, padded = engines(minilm_dir, pooling="mean", max_tokens=256)
    compare(packed, padded, LENGTHS)

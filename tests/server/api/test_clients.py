"""Real client libraries against the real server: the official openai SDK and LangChain."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import cosine_rows

TEXTS = ["The cat sits on the mat.", "Quantum computers use qubits.", "", "Café au lait, s'il vous plaît 😀"]


def test_openai_sdk_default_base64(minilm_server, st_minilm) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=minilm_server.url + "/v1", api_key="unused")
    response = client.embeddings.create(input=TEXTS, model="all-MiniLM-L6-v2")
    vectors = np.array([item.embedding for item in response.data])
    assert cosine_rows(vectors, st_minilm.encode(TEXTS)).min() > 0.9999
    assert response.usage.prompt_tokens > 0
    small = client.embeddings.create(input="one text", model="all-MiniLM-L6-v2", dimensions=128)
    assert len(small.data[0].embedding) == 128
    float_format = client.embeddings.create(input=TEXTS, model="all-MiniLM-L6-v2", encoding_format="float")
    np.testing.assert_allclose(np.array([item.embedding for item in float_format.data]), vectors, atol=1e-6)


def test_openai_sdk_errors(minilm_server) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=minilm_server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as not_found:
        client.embeddings.create(input="x", model="missing-model")
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(input="x", model="all-MiniLM-L6-v2", dimensions=1000)


@pytest.fixture(scope="module")
def tiktoken_cache(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """LangChain asks tiktoken for cl100k_base, which downloads unless cached: seed the cache offline."""
    import tiktoken_ext

    source = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    cache = tmp_path_factory.mktemp("tiktoken")
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    shutil.copy(source, cache / hashlib.sha1(url.encode()).hexdigest())
    return cache


def test_langchain_token_ids_equal_strings(minilm_server, tiktoken_cache, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from langchain_openai import OpenAIEmbeddings

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tiktoken_cache))
    sent: list[object] = []
    recorder = httpx.Client(event_hooks={"request": [lambda request: sent.append(json.loads(request.read()))]})
    common = {"model": "all-MiniLM-L6-v2", "base_url": minilm_server.url + "/v1", "api_key": "unused"}
    default_client = OpenAIEmbeddings(**common, http_client=recorder)
    from_ids = np.array(default_client.embed_documents(TEXTS))
    token_inputs = [body["input"] for body in sent if isinstance(body["input"], list)]
    assert token_inputs and all(isinstance(ids, list) and all(isinstance(t, int) for t in ids)
                                for ids in token_inputs[0])  # fmt: skip
    from_strings = np.array(OpenAIEmbeddings(**common, check_embedding_ctx_length=False).embed_documents(TEXTS))
    assert cosine_rows(from_ids, from_strings).min() > 0.99999
    query = np.array(default_client.embed_query("Where does the cat sit?"))
    assert query.shape == (384,)

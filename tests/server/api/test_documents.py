"""POST /v1/documents/embeddings: exact chunk offsets, late chunking against the independent
reference, naive chunking equal to plain embeddings, limits and errors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import cosine_rows
from tests.helpers import computed_inputs
from tests.references import reference_late_chunking

DOCUMENT = (
    "Berlin is the capital and largest city of Germany, both by area and by population. "
    "Its more than 3.85 million inhabitants make it the European Union's most populous city. "
    "The city is also one of the states of Germany.\n\n"
    "Zoë's café ☕ sells 東京 pastries, naïve e\u0301clairs and 😀 cookies. Prices rose in 2024! "
    "Nobody complained."
)


def chunks_of(body: dict, document: int = 0) -> list[dict]:
    return body["data"][document]["chunks"]


def vectors(chunks: list[dict]) -> np.ndarray:
    return np.stack([np.asarray(chunk["embedding"], dtype=np.float32) for chunk in chunks])


@pytest.mark.parametrize(
    "chunking",
    [
        {"kind": "sentences", "max_tokens": 24},
        {"kind": "tokens", "max_tokens": 16},
        {"kind": "separators", "separators": ["\n\n", ". "], "max_tokens": 30},
    ],
)
def test_offsets_are_exact_and_chunks_cover_the_document(minilm_server, chunking) -> None:  # type: ignore[no-untyped-def]
    request = {"input": [DOCUMENT, "short one"], "chunking": chunking}
    body = minilm_server.post("/v1/documents/embeddings", request).json()
    assert body["object"] == "list" and len(body["data"]) == 2
    for index, document in enumerate([DOCUMENT, "short one"]):
        item = body["data"][index]
        assert item["object"] == "document" and item["index"] == index
        chunks = item["chunks"]
        assert [chunk["index"] for chunk in chunks] == list(range(len(chunks)))
        for chunk in chunks:
            assert document[chunk["start"] : chunk["end"]] == chunk["text"]
            assert chunk["tokens"] >= 1 and len(chunk["embedding"]) == 384
        assert "".join(chunk["text"] for chunk in chunks) == document
    assert len(chunks_of(body)) >= 3


def test_late_chunks_match_the_reference(minilm_server, reference_model) -> None:  # type: ignore[no-untyped-def]
    body = minilm_server.post(
        "/v1/documents/embeddings", {"input": DOCUMENT, "chunking": {"kind": "sentences", "max_tokens": 24}}
    ).json()
    chunks = chunks_of(body)
    expected = reference_late_chunking(*reference_model, [c["text"] for c in chunks], window=256, overlap=0)
    assert cosine_rows(vectors(chunks), expected).min() > 0.9999
    assert body["usage"]["prompt_tokens"] == len(reference_model[0](DOCUMENT)["input_ids"])


def test_long_document_matches_the_reference(minilm_server, reference_model) -> None:  # type: ignore[no-untyped-def]
    document = " ".join(f"Paragraph {i} discusses subject {i % 11} and cites source {i * 7}." for i in range(150))
    body = minilm_server.post(
        "/v1/documents/embeddings",
        {"input": document, "chunking": {"kind": "tokens", "max_tokens": 64}, "window_overlap": 32},
    ).json()
    chunks = chunks_of(body)
    expected = reference_late_chunking(*reference_model, [c["text"] for c in chunks], window=256, overlap=32)
    assert len(reference_model[0](document)["input_ids"]) > 1500
    assert cosine_rows(vectors(chunks), expected).min() > 0.9999


def test_naive_chunks_equal_plain_embeddings(minilm_server) -> None:  # type: ignore[no-untyped-def]
    # Cache off throughout: with the default cache the plain request would be answered with the
    # naive chunks' own vectors (same model, same token ids), and compared with itself.
    sentences = {"kind": "sentences", "max_tokens": 24}
    before = computed_inputs(minilm_server)
    body = minilm_server.post(
        "/v1/documents/embeddings", {"input": DOCUMENT, "chunking": sentences, "late_chunking": False, "cache": False}
    ).json()
    chunks = chunks_of(body)
    assert computed_inputs(minilm_server) - before == len(chunks) >= 3
    before = computed_inputs(minilm_server)
    plain = minilm_server.embed([chunk["text"] for chunk in chunks], cache=False)
    assert computed_inputs(minilm_server) - before == len(chunks)
    np.testing.assert_allclose(vectors(chunks), plain, atol=1e-5)
    before = computed_inputs(minilm_server)
    late = vectors(chunks_of(minilm_server.post(
        "/v1/documents/embeddings", {"input": DOCUMENT, "chunking": sentences, "cache": False}
    ).json()))  # fmt: skip
    assert computed_inputs(minilm_server) - before == 1  # the whole document, one window
    assert cosine_rows(late, plain).min() < 0.99  # context changes the vectors


def test_dimensions_and_base64(minilm_server) -> None:  # type: ignore[no-untyped-def]
    body = minilm_server.post(
        "/v1/documents/embeddings", {"input": DOCUMENT, "dimensions": 64, "encoding_format": "base64"}
    ).json()
    first = body["data"][0]["chunks"][0]["embedding"]
    assert isinstance(first, str)
    decoded = np.frombuffer(__import__("base64").b64decode(first), dtype="<f4")
    assert decoded.shape == (64,) and abs(np.linalg.norm(decoded) - 1) < 1e-5


@pytest.mark.parametrize(
    ("fields", "param", "fragment"),
    [
        ({"chunking": {"kind": "tokens", "max_tokens": 8, "overlap_tokens": 8}}, "chunking.tokens.overlap_tokens",
         "less than max_tokens"),
        ({"chunking": {"kind": "paragraphs", "max_tokens": 8}}, "chunking", "kind"),
        ({"chunking": {"kind": "separators", "separators": [""], "max_tokens": 8}}, "chunking.separators.separators",
         "empty"),
        ({"chunking": {"kind": "sentences", "max_tokens": 400}, "late_chunking": False}, "chunking", "document 0"),
        ({"late_chunking": False, "window_overlap": 8}, "window_overlap", "late_chunking"),
        ({"input": []}, "input", "non-empty"),
    ],
)  # fmt: skip
def test_errors(minilm_server, fields, param, fragment) -> None:  # type: ignore[no-untyped-def]
    body = {"input": DOCUMENT + (" more words" * 200 if "late_chunking" in fields else ""), **fields}
    response = minilm_server.post("/v1/documents/embeddings", body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and fragment in error["message"], error


def test_chunk_limit(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(max_chunks=5)
    request = {"input": DOCUMENT, "chunking": {"kind": "tokens", "max_tokens": 4}}
    response = server.post("/v1/documents/embeddings", request)
    assert response.status_code == 400 and "limit of 5" in response.json()["error"]["message"]

"""InputTokenizer: special-token template, prompts, truncation sides, native ids, offsets."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from models.errors import InputTooLongError, UnknownTokenIdError
from models.tokenization import InputTokenizer


@pytest.fixture(scope="module")
def hf(minilm_dir):  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(str(minilm_dir))


@pytest.fixture(scope="module")
def tok(hf) -> InputTokenizer:  # type: ignore[no-untyped-def]
    return InputTokenizer(hf.backend_tokenizer, max_tokens=16, pad_id=0)


def test_template_matches_the_tokenizer(tok, hf) -> None:  # type: ignore[no-untyped-def]
    texts = ["Hello world", "", "naïve café 😀"]
    for text, encoded in zip(texts, tok.encode_texts(texts), strict=True):
        assert encoded.ids == hf(text)["input_ids"]
        assert encoded.prompt_tokens == 0 and not encoded.truncated
    assert tok.prefix == [hf.cls_token_id] and tok.suffix == [hf.sep_token_id]


def test_tokenizer_json_padding_is_ignored(tok) -> None:  # type: ignore[no-untyped-def]
    # MiniLM's tokenizer.json pads to 128; inputs must keep their real length.
    assert len(tok.encode_texts(["a"])[0]) == 3


def test_prompt_counts_like_sentence_transformers(tok, hf) -> None:  # type: ignore[no-untyped-def]
    encoded = tok.encode_texts(["what is love"], prompt="query: ")[0]
    assert encoded.ids == hf("query: what is love")["input_ids"]
    assert encoded.prompt_tokens == len(hf("query: ")["input_ids"]) - 1  # ST drops the trailing [SEP]


def test_too_long_is_refused_with_index_and_counts(tok) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputTooLongError) as error:
        tok.encode_texts(["fine", "one two three " * 10])
    assert error.value.index == 1
    assert "input[1] has 32 tokens" in str(error.value) and "limit of 16" in str(error.value)


def test_truncation_keeps_special_tokens_and_prompt(tok, hf) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(f"w{i}" for i in range(20))
    content = hf(text, add_special_tokens=False)["input_ids"]
    end = tok.encode_texts([text], truncation="end")[0]
    assert end.truncated and end.ids == [hf.cls_token_id, *content[:14], hf.sep_token_id]
    start = tok.encode_texts([text], truncation="start")[0]
    assert start.ids == [hf.cls_token_id, *content[-14:], hf.sep_token_id]
    prompted = tok.encode_texts([text], prompt="query: ", truncation="start")[0]
    prompt_ids = hf("query: ", add_special_tokens=False)["input_ids"]
    assert prompted.ids[1 : 1 + len(prompt_ids)] == prompt_ids
    assert prompted.ids[-2] == content[-1] and len(prompted) == 16


def test_native_ids_are_wrapped_and_checked(tok, hf) -> None:  # type: ignore[no-untyped-def]
    content = hf("hello there", add_special_tokens=False)["input_ids"]
    assert tok.encode_token_ids([content])[0].ids == hf("hello there")["input_ids"]
    with pytest.raises(UnknownTokenIdError) as error:
        tok.encode_token_ids([content, [5, tok.vocab_size]])
    assert error.value.index == 1


def test_document_offsets_are_exact(tok) -> None:  # type: ignore[no-untyped-def]
    text = "Zoë's café ☕ in 東京 — naïve e\u0301 😀!"
    document = tok.encode_document(text)
    assert document.ids[0] == tok.prefix[0] and document.ids[-1] == tok.suffix[-1]
    assert document.prefix_tokens == 1 and document.suffix_tokens == 1
    spans = document.offsets[1:-1]
    assert all(0 <= start <= end <= len(text) for start, end in spans)
    assert [start for start, _ in spans] == sorted(start for start, _ in spans)
    assert "".join(text[s:e] for s, e in spans).replace(" ", "") != ""

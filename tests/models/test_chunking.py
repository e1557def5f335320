"""Document splitters: exact slices, token coverage, limits, grapheme safety, validation, scale."""

from __future__ import annotations

import itertools
import random

import pytest
import regex
from pydantic import BaseModel, TypeAdapter, ValidationError
from transformers import AutoTokenizer

from models.chunking import Chunk, SentenceSplitter, SeparatorSplitter, Splitter, TokenSplitter, sentence_ends
from models.late_chunking import fold_specials, token_spans
from models.tokenization import InputTokenizer, TokenizedDocument

PROSE = (
    "The quick brown fox jumps over the lazy dog. It was not amused! Was it? Nobody knows… "
    "Dr. Smith wrote e.g. this sentence, and 3.14 is not a sentence end.\n\n"
    "A second paragraph starts here. It has two sentences.\n"
    "A single line follows."
)
TEXTS = {
    "prose": PROSE,
    "emoji": "Smile 😀 please 😀😀 and the family 👨‍👩‍👧 waves 🇯🇵🇺🇸 with 👍🏽.",
    "cjk": "東京は日本の首都です。大阪は大きな都市です！京都は古い？はい。",
    "combining": "Cafe\u0301 au lait, nai\u0308ve re\u0301sume\u0301 and e\u0301\u0301\u0301 marks.",
    "windows": "First line.\r\nSecond line.\r\n\r\nNew paragraph here.\r\n",
    "padded": "  \n\t  Leading and trailing whitespace.   Two spaces.  \n\n  ",
    "one_word": "word",
    "mixed": "Zoë's café ☕ in 東京 — naïve e\u0301 😀! Next.\n\nTab\there.",
}
SEPARATORS = ["\n\n", "\n", ". ", " "]


@pytest.fixture(scope="module")
def minilm(minilm_dir) -> InputTokenizer:  # type: ignore[no-untyped-def]
    return InputTokenizer(AutoTokenizer.from_pretrained(str(minilm_dir)).backend_tokenizer, max_tokens=512)


@pytest.fixture(scope="module")
def bpe(decoder_tokenizer_dir) -> InputTokenizer:  # type: ignore[no-untyped-def]
    return InputTokenizer(AutoTokenizer.from_pretrained(str(decoder_tokenizer_dir)).backend_tokenizer, max_tokens=512)


@pytest.fixture(params=["minilm", "bpe"])
def tok(request) -> InputTokenizer:  # type: ignore[no-untyped-def]
    return request.getfixturevalue(request.param)


def content_offsets(document: TokenizedDocument) -> list[tuple[int, int]]:
    return document.offsets[document.prefix_tokens : len(document.ids) - document.suffix_tokens]


def anchor(text: str, start: int, end: int) -> int:
    """Where a token lives: its first non-space character, else its start."""
    stripped = len(text[start:end]) - len(text[start:end].lstrip())
    return start + stripped if stripped < end - start else start


def clean_cuts(text: str, document: TokenizedDocument) -> set[int]:
    """Token indices a chunk may start at, from the spec with an independent grapheme oracle
    (the `regex` module's \\X): the token's anchor starts a grapheme past every earlier token."""
    graphemes = {match.start() for match in regex.finditer(r"\X", text)}
    cuts, reach = set(), 0
    for index, (start, end) in enumerate(content_offsets(document)):
        at = anchor(text, start, end)
        if index and start < end and at > 0 and reach <= at and at in graphemes:
            cuts.add(index)
        reach = max(reach, end)
    return cuts


def check(
    text: str, document: TokenizedDocument, chunks: list[Chunk], max_tokens: int, *, overlap: bool = False
) -> None:
    """Every property a splitter promises."""
    n = document.content_tokens
    graphemes = {match.start() for match in regex.finditer(r"\X", text)}
    assert chunks and chunks[0].start == 0 and chunks[-1].end == len(text)
    assert chunks[0].token_start == 0 and chunks[-1].token_end == n
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.tokens == chunk.token_end - chunk.token_start
        assert chunk.tokens > 0 or n == 0
        assert chunk.text or not text
        assert chunk.start in graphemes or not text
    for before, after in itertools.pairwise(chunks):
        if overlap:
            assert before.start < after.start <= before.end < after.end
            assert before.token_start < after.token_start <= before.token_end < after.token_end
        else:
            assert before.end == after.start and before.token_end == after.token_start
    if not overlap:
        assert "".join(chunk.text for chunk in chunks) == text
    offsets = content_offsets(document)
    for chunk in chunks:  # a token lives in the chunk that holds its anchor
        for start, end in offsets[chunk.token_start : chunk.token_end]:
            assert start == end or chunk.start <= anchor(text, start, end) < chunk.end
    cuts = clean_cuts(text, document)
    for chunk in chunks:  # longer than asked only when no clean cut lies within reach
        if chunk.tokens > max_tokens:
            reachable = range(chunk.token_start + 1, chunk.token_start + max_tokens + 1)
            assert not cuts.intersection(reachable), (chunk, max_tokens)


def splitters(max_tokens: int) -> list[Splitter]:
    return [
        TokenSplitter(max_tokens=max_tokens),
        SentenceSplitter(max_tokens=max_tokens),
        SeparatorSplitter(max_tokens=max_tokens, separators=SEPARATORS),
        SeparatorSplitter(max_tokens=max_tokens, separators=["\n", "。"], keep_separator="start"),
    ]


@pytest.mark.parametrize("name", sorted(TEXTS))
@pytest.mark.parametrize("max_tokens", [1, 2, 3, 5, 8, 16, 1000])
def test_chunks_tile_the_document(tok, name, max_tokens) -> None:  # type: ignore[no-untyped-def]
    text = TEXTS[name]
    document = tok.encode_document(text)
    for splitter in splitters(max_tokens):
        check(text, document, splitter.split(text, document), max_tokens)
    for overlap in {0, max_tokens // 2, max_tokens - 1}:
        chunks = TokenSplitter(max_tokens=max_tokens, overlap_tokens=overlap).split(text, document)
        check(text, document, chunks, max_tokens, overlap=overlap > 0)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_wordpiece_tokens_never_force_a_long_chunk(minilm, name) -> None:  # type: ignore[no-untyped-def]
    # Every WordPiece token starts a clean cut, so every limit holds exactly.
    text = TEXTS[name]
    document = minilm.encode_document(text)
    for max_tokens in (1, 2, 7):
        for splitter in splitters(max_tokens):
            assert all(chunk.tokens <= max_tokens for chunk in splitter.split(text, document))


def test_a_grapheme_is_never_split(bpe) -> None:  # type: ignore[no-untyped-def]
    text = "a 👨‍👩‍👧 b e\u0301 🇯🇵 c"
    document = bpe.encode_document(text)
    chunks = TokenSplitter(max_tokens=1).split(text, document)
    check(text, document, chunks, 1)
    assert [chunk.text.strip() for chunk in chunks] == ["a", "👨‍👩‍👧", "b", "e\u0301", "🇯🇵", "c"]
    assert chunks[1].tokens > 1  # byte-level pieces of one emoji stay together


@pytest.mark.parametrize(("tokenizer", "max_tokens"), [("minilm", 2), ("bpe", 5)])  # one sentence per chunk
def test_whitespace_trails_the_previous_chunk(request, tokenizer, max_tokens) -> None:  # type: ignore[no-untyped-def]
    text = "  One.  \n\n  Two.\r\n Three.  "
    document = request.getfixturevalue(tokenizer).encode_document(text)
    chunks = SentenceSplitter(max_tokens=max_tokens).split(text, document)
    assert [chunk.text for chunk in chunks] == ["  One.  \n\n  ", "Two.\r\n ", "Three.  "]


def test_weak_cut_splits_a_long_whitespace_run(bpe) -> None:  # type: ignore[no-untyped-def]
    text = "start" + " " * 400 + "\n" * 200 + "end"
    document = bpe.encode_document(text)
    chunks = TokenSplitter(max_tokens=8).split(text, document)
    check(text, document, chunks, 8)
    assert all(chunk.tokens <= 8 for chunk in chunks) and len(chunks) > 2


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_a_document_without_content_is_one_chunk(tok, text) -> None:  # type: ignore[no-untyped-def]
    document = tok.encode_document(text)
    for splitter in [*splitters(4), TokenSplitter(max_tokens=4, overlap_tokens=2)]:
        chunks = splitter.split(text, document)
        # MiniLM has no content tokens; the BPE tokenizer keeps one (its fallback for "", or the blank).
        assert chunks == [Chunk(0, len(text), text, 0, document.content_tokens)]


def test_one_word(tok) -> None:  # type: ignore[no-untyped-def]
    document = tok.encode_document("word")
    for splitter in splitters(4):
        assert splitter.split("word", document) == [Chunk(0, 4, "word", 0, document.content_tokens)]


def test_chunks_index_content_tokens_after_a_prompt(tok) -> None:  # type: ignore[no-untyped-def]
    text = TEXTS["prose"]
    plain = tok.encode_document(text)
    prompted = tok.encode_document(text, prompt="search_document: ")
    assert prompted.prompt_tokens > 0 and prompted.content_tokens == plain.content_tokens
    for splitter in splitters(12):
        chunks = splitter.split(text, prompted)
        check(text, prompted, chunks, 12)
        assert chunks == splitter.split(text, plain)


@pytest.mark.parametrize("splitter", splitters(6), ids=lambda splitter: splitter.kind)
def test_token_spans_agree_with_late_chunking(minilm, splitter) -> None:  # type: ignore[no-untyped-def]
    # WordPiece has no whitespace-only tokens, the one case where the two rules differ.
    text = TEXTS["mixed"] + " " + TEXTS["prose"]
    document = minilm.encode_document(text)
    chunks = splitter.split(text, document)
    from_chars = token_spans(document, text, [(chunk.start, chunk.end) for chunk in chunks])
    assert from_chars == fold_specials([(chunk.token_start, chunk.token_end) for chunk in chunks], document)


def test_token_windows_and_overlap(minilm) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(f"word{index % 10}" for index in range(40))
    document = minilm.encode_document(text)
    n = document.content_tokens
    plain = TokenSplitter(max_tokens=7).split(text, document)
    assert [chunk.token_start for chunk in plain] == list(range(0, n, 7))
    overlapped = TokenSplitter(max_tokens=7, overlap_tokens=3).split(text, document)
    assert [chunk.token_start for chunk in overlapped] == list(range(0, n - 7 + 4, 4))  # stride 7 - 3
    assert all(chunk.tokens == 7 for chunk in overlapped[:-1]) and overlapped[-1].token_end == n
    assert overlapped[-2].token_end < n  # no window lies inside the previous one


def test_sentences_are_packed_whole(minilm) -> None:  # type: ignore[no-untyped-def]
    text = PROSE
    document = minilm.encode_document(text)
    ends = {0, len(text), *sentence_ends(text)}
    for max_tokens in (12, 20, 40):
        chunks = SentenceSplitter(max_tokens=max_tokens).split(text, document)
        check(text, document, chunks, max_tokens)
        for before, after in itertools.pairwise(chunks):
            longest_sentence = before.tokens == max_tokens  # a window of an over-long sentence
            assert before.end in ends or longest_sentence
            if before.end in ends:  # greedy: the next sentence did not fit
                assert before.tokens + _first_sentence_tokens(after, ends, text, document) > max_tokens


def _first_sentence_tokens(chunk: Chunk, ends: set[int], text: str, document: TokenizedDocument) -> int:
    end = min(position for position in ends if position > chunk.start)
    return sum(1 for start, stop in content_offsets(document) if chunk.start <= anchor(text, start, stop) < end)


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Hello world. How are you? Fine!", ["Hello world. ", "How are you? ", "Fine!"]),
        ("See e.g. this one. And 3.14 too.", ["See e.g. this one. ", "And 3.14 too."]),
        ("Wait... What?! Ok…  Done", ["Wait... ", "What?! ", "Ok…  ", "Done"]),
        ('He said "Hi." Then (left.) Gone', ['He said "Hi." ', "Then (left.) ", "Gone"]),
        ("東京は日本の首都です。大阪！京都？はい", ["東京は日本の首都です。", "大阪！", "京都？", "はい"]),
        ("line one\nline two\r\n\r\nline three", ["line one\n", "line two\r\n\r\n", "line three"]),
        ("a list:\n- item one\n- item two.\nend", ["a list:\n", "- item one\n", "- item two.\n", "end"]),
        ("no end at all", ["no end at all"]),
        ("\n\nLeading breaks.", ["\n\nLeading breaks."]),
    ],
)
def test_sentence_ends(text, sentences) -> None:  # type: ignore[no-untyped-def]
    bounds = [0, *sentence_ends(text), len(text)]
    assert [text[a:b] for a, b in itertools.pairwise(bounds)] == sentences


def test_separators_split_recursively_then_pack(minilm) -> None:  # type: ignore[no-untyped-def]
    paragraphs = ["Short one.", "Also short.", "A much longer paragraph. " * 6 + "End.", "Tail."]
    text = "\n\n".join(paragraphs)
    document = minilm.encode_document(text)
    chunks = SeparatorSplitter(max_tokens=12, separators=SEPARATORS).split(text, document)
    check(text, document, chunks, 12)
    texts = [chunk.text for chunk in chunks]
    assert texts[0] == "Short one.\n\nAlso short.\n\n"  # small pieces merged
    assert texts[1] == "A much longer paragraph. A much longer paragraph. "  # split at ". ", then packed
    assert texts[-1] == "Tail."  # pieces of a split piece do not merge across it
    assert all(chunk.tokens <= 12 for chunk in chunks)


def test_keep_separator_side(minilm) -> None:  # type: ignore[no-untyped-def]
    text = "# Intro\nSome words here.\n# Usage\nMore words there."
    document = minilm.encode_document(text)
    start = SeparatorSplitter(max_tokens=6, separators=["\n#"], keep_separator="start").split(text, document)
    assert [chunk.text for chunk in start] == ["# Intro\nSome words here.\n", "# Usage\nMore words there."]
    end = SeparatorSplitter(max_tokens=6, separators=["."], keep_separator="end").split(text, document)
    assert end[0].text == "# Intro\nSome words here.\n"


def test_no_separator_falls_back_to_token_windows(minilm) -> None:  # type: ignore[no-untyped-def]
    text = "alpha beta gamma delta epsilon zeta eta theta"
    document = minilm.encode_document(text)
    chunks = SeparatorSplitter(max_tokens=3, separators=["\n\n", "|"]).split(text, document)
    n = document.content_tokens
    assert [chunk.token_start for chunk in chunks] == list(range(0, n, 3))
    check(text, document, chunks, 3)


ALPHABET = [
    *"abcdefghij",
    "word",
    "Hello",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\r\n",
    "\t",
    ". ",
    "! ",
    "? ",
    "…",
    "。",
    "東京",
    "😀",
    "👨‍👩‍👧",
    "🇯🇵",
    "\u0301",
    "e\u0301",
    "ß",
    "İ",
    "ﬁ",
    '"',
    "'",
    "\u200d",
    "👍🏽",
    "🇺🇸🇯🇵🇫",
    "한국어",
    "\u1100\u1161",
    "ﾟ",
    "\u2028",
    "\x0b",
    "\xa0",
    "\ufe0f",
    "Mr. ",
    "\n#",
]


@pytest.mark.parametrize("seed", range(40))
def test_random_texts(tok, seed) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 120)))
    document = tok.encode_document(text)
    max_tokens = rng.randint(1, 12)
    for splitter in splitters(max_tokens):
        check(text, document, splitter.split(text, document), max_tokens)
    overlapped = TokenSplitter(max_tokens=max_tokens, overlap_tokens=rng.randrange(max_tokens))
    check(text, document, overlapped.split(text, document), max_tokens, overlap=overlapped.overlap_tokens > 0)


def test_a_large_document_is_linearithmic(tok) -> None:  # type: ignore[no-untyped-def]
    # ~1 MB / 200k+ tokens: a quadratic step would not finish; no timing is asserted.
    rng = random.Random(7)
    words = ["alpha", "beta", "東京", "😀", "e\u0301", "gamma.", "delta!", "\n", "\n\n", "x" * 12]
    text = " ".join(rng.choice(words) for _ in range(150_000))
    document = tok.encode_document(text)
    assert document.content_tokens > 200_000
    for splitter in [*splitters(256), TokenSplitter(max_tokens=256, overlap_tokens=32)]:
        chunks = splitter.split(text, document)
        assert chunks[0].start == 0 and chunks[-1].end == len(text)
        assert sum(chunk.tokens for chunk in chunks) >= document.content_tokens


def test_sentence_regex_is_linear_on_runs() -> None:
    for text in ("." * 300_000, " " * 300_000, "!" * 100_000 + "a", "。" * 300_000, "\n " * 150_000):
        list(sentence_ends(text))


class Request(BaseModel):
    chunking: Splitter


@pytest.mark.parametrize(
    ("chunking", "location", "message"),
    [
        ({"kind": "tokens", "max_tokens": 0}, ("chunking", "tokens", "max_tokens"), "greater than or equal to 1"),
        ({"kind": "tokens", "max_tokens": "5"}, ("chunking", "tokens", "max_tokens"), "valid integer"),
        ({"kind": "tokens", "max_tokens": 4, "overlap_tokens": 4}, ("chunking", "tokens", "overlap_tokens"),
         "must be less than max_tokens (4), got 4"),
        ({"kind": "tokens", "max_tokens": 4, "overlap_tokens": -1}, ("chunking", "tokens", "overlap_tokens"),
         "greater than or equal to 0"),
        ({"kind": "sentences"}, ("chunking", "sentences", "max_tokens"), "Field required"),
        ({"kind": "separators", "max_tokens": 9, "separators": []}, ("chunking", "separators", "separators"),
         "at least 1 item"),
        ({"kind": "separators", "max_tokens": 9, "separators": ["\n", ""]}, ("chunking", "separators", "separators"),
         "separators[1] is empty"),
        ({"kind": "separators", "max_tokens": 9, "separators": [" "], "keep_separator": "both"},
         ("chunking", "separators", "keep_separator"), "'end' or 'start'"),
        ({"kind": "words", "max_tokens": 9}, ("chunking",), "'tokens', 'sentences', 'separators'"),
        ({"max_tokens": 9}, ("chunking",), "discriminator 'kind'"),
        ({"kind": "sentences", "max_tokens": 9, "overlap_tokens": 1}, ("chunking", "sentences", "overlap_tokens"),
         "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_field(chunking, location, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as error:
        Request.model_validate({"chunking": chunking})
    (first,) = error.value.errors(include_url=False)
    assert tuple(first["loc"]) == location and message in first["msg"]


def test_configs_parse_by_kind() -> None:
    adapter = TypeAdapter(Splitter)
    assert adapter.validate_python({"kind": "tokens", "max_tokens": 5}) == TokenSplitter(max_tokens=5)
    parsed = adapter.validate_python({"kind": "separators", "max_tokens": 5, "separators": ["\n"]})
    assert isinstance(parsed, SeparatorSplitter) and parsed.keep_separator == "end"
    assert isinstance(adapter.validate_python({"kind": "sentences", "max_tokens": 5}), SentenceSplitter)


def test_mismatched_offsets_are_refused(minilm) -> None:  # type: ignore[no-untyped-def]
    document = minilm.encode_document("a much longer text than the one given")
    with pytest.raises(ValueError, match="past the document"):
        TokenSplitter(max_tokens=4).split("short", document)

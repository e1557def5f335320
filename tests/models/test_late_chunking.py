"""Macro-chunk assembly: windows, span assignment and accumulation reproduce span means exactly;
the linear planning returns exactly what the direct (quadratic) formulation does."""

from __future__ import annotations

import bisect
import itertools
import random
import sys
import time
from collections.abc import Sequence

import numpy as np
import pytest

from models.late_chunking import (
    Span,
    SpanAccumulator,
    Window,
    WindowSpans,
    assign_spans,
    fold_specials,
    join_chunks,
    plan_windows,
    token_spans,
)
from models.tokenization import TokenizedDocument


def random_spans(rng: np.random.Generator, n_tokens: int, n_chunks: int) -> list[tuple[int, int]]:
    cuts = sorted(rng.choice(np.arange(1, n_tokens), size=n_chunks - 1, replace=False).tolist())
    bounds = [0, *cuts, n_tokens]
    return list(itertools.pairwise(bounds))


def test_a_document_that_fits_is_one_window() -> None:
    assert plan_windows(256, 256, 64) == [Window(0, 256, 0)]
    assert plan_windows(10, 256, 0) == [Window(0, 10, 0)]


@pytest.mark.parametrize(("n_tokens", "length", "overlap"), [(200, 256, 64), (1000, 256, 64), (1001, 128, 0),
                                                             (5000, 512, 511), (257, 256, 255)])  # fmt: skip
def test_windows_reproduce_the_single_pass_means(n_tokens: int, length: int, overlap: int) -> None:
    """With token vectors that do not depend on context, every window sees the same vectors as
    a single pass, so the assembled chunk means must equal the plain span means."""
    rng = np.random.default_rng(n_tokens)
    tokens = rng.standard_normal((n_tokens, 8))
    spans = random_spans(rng, n_tokens, min(40, n_tokens // 3))
    windows = plan_windows(n_tokens, length, overlap)
    assert windows[0].start == 0 and windows[-1].end == n_tokens
    assert all(w.processed <= length for w in windows)
    # Every token is contributed by exactly one window.
    kept = np.concatenate([np.arange(w.keep_from, w.end) for w in windows])
    np.testing.assert_array_equal(kept, np.arange(n_tokens))
    accumulator = SpanAccumulator(spans, hidden=8)
    for plan in assign_spans(windows, spans):
        local = tokens[plan.window.start : plan.window.end]
        accumulator.add(plan, np.stack([local[a:b].sum(0) for a, b in plan.local]) if plan.local else np.zeros((0, 8)))
    expected = np.stack([tokens[a:b].mean(0) for a, b in spans])
    np.testing.assert_allclose(accumulator.means(), expected.astype(np.float32), rtol=1e-5, atol=1e-6)


def test_overlap_must_leave_a_stride() -> None:
    with pytest.raises(ValueError):
        plan_windows(1000, 256, 256)


# -- the planning functions against straightforward references ---------------------------------
# The references are the direct formulations (per-token scans, every window against every span),
# quadratic at document scale but obviously right; the library must return exactly what they do.

WHITESPACE = "".join(chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace())
WORDS = ["Berlin", "café", "naïve", "東京", "😀", "e\u0301", "3.14", "x", "ab-cd", "👨\u200d👩\u200d👧"]


def reference_token_spans(
    document: TokenizedDocument, text: str, char_spans: Sequence[Span], *, pool_prompt: bool = True
) -> list[Span]:
    ids_total = len(document.ids)
    lead, tail = document.prefix_tokens, document.suffix_tokens
    starts = [start for start, _ in char_spans]
    owner = []
    for start, end in document.offsets[lead : ids_total - tail]:
        anchor = start
        while anchor < end and text[anchor].isspace():
            anchor += 1
        owner.append(max(0, bisect.bisect_right(starts, anchor) - 1))
    first = [-1] * len(char_spans)
    last = [-1] * len(char_spans)
    for position, chunk in enumerate(owner):
        index = lead + position
        if first[chunk] < 0:
            first[chunk] = index
        last[chunk] = index + 1
    spans: list[Span] = []
    cursor = lead
    for chunk in range(len(char_spans)):
        if first[chunk] < 0:
            at = min(cursor, ids_total - 1)
            spans.append((at, at + 1))
        else:
            spans.append((first[chunk], last[chunk]))
            cursor = last[chunk]
    if spans:
        excluded = document.prefix_tokens if document.prompt_tokens and not pool_prompt else 0
        spans[0] = (min(excluded, spans[0][1] - 1), spans[0][1])
        spans[-1] = (spans[-1][0], ids_total)
    return spans


def reference_assign_spans(windows: Sequence[Window], spans: Sequence[Span]) -> list[WindowSpans]:
    plan = []
    for window in windows:
        local: list[Span] = []
        chunks: list[int] = []
        for chunk, (start, end) in enumerate(spans):
            lo, hi = max(start, window.keep_from), min(end, window.end)
            if lo < hi:
                local.append((lo - window.start, hi - window.start))
                chunks.append(chunk)
        plan.append(WindowSpans(window, tuple(local), tuple(chunks)))
    return plan


def random_chunks(rng: random.Random) -> list[str]:
    """Words, punctuation and every kind of whitespace; some chunks empty or whitespace only."""
    chunks = []
    for _ in range(rng.randint(1, 40)):
        kind = rng.random()
        if kind < 0.1:
            chunks.append("")
        elif kind < 0.2:
            chunks.append("".join(rng.choices(WHITESPACE, k=rng.randint(1, 4))))
        else:
            parts = []
            for _ in range(rng.randint(1, 12)):
                parts.append(rng.choice(WORDS))
                parts.append("".join(rng.choices(" \n\t\u3000\xa0", k=rng.randint(0, 2))))
            chunks.append("".join(parts))
    return chunks


def random_document(rng: random.Random, text: str) -> TokenizedDocument:
    """Offsets as tokenizers make them: pieces with or without their leading whitespace,
    whitespace-only pieces, repeated offsets (byte-level pieces of one character), empty ones."""
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(0, len(text))))) if text else []
    offsets: list[Span] = []
    for start, end in itertools.pairwise([0, *cuts, len(text)] if text else []):
        piece = text[start:end]
        style = rng.random()
        if style < 0.4 and piece.strip():
            start += len(piece) - len(piece.lstrip())  # WordPiece: whitespace belongs to no token
            end -= len(piece) - len(piece.rstrip())
        elif style < 0.45 and not piece.strip():
            continue
        offsets.extend([(start, end)] * (2 if style > 0.95 else 1))
        if rng.random() < 0.03:
            offsets.append((end, end))
    if not offsets and rng.random() < 0.5:
        offsets = [(0, 0)]  # the empty-document fallback token
    prefix, suffix = rng.randint(0, 3), rng.randint(0, 2)
    prompt = rng.randint(0, prefix)
    return TokenizedDocument(
        ids=list(range(prefix + len(offsets) + suffix)),
        offsets=[(0, 0)] * prefix + offsets + [(len(text), len(text))] * suffix,
        prefix_tokens=prefix,
        suffix_tokens=suffix,
        prompt_tokens=prompt,
    )


@pytest.mark.parametrize("seed", range(400))
def test_token_spans_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    text, char_spans = join_chunks(random_chunks(rng))
    document = random_document(rng, text)
    if not document.ids:
        return
    for pool_prompt in (True, False):
        expected = reference_token_spans(document, text, char_spans, pool_prompt=pool_prompt)
        assert token_spans(document, text, char_spans, pool_prompt=pool_prompt) == expected


def test_token_spans_skip_every_kind_of_whitespace() -> None:
    # One token per whitespace character then a word: each must go to the chunk holding the word.
    text, char_spans = join_chunks(["head", *(space + "w" for space in WHITESPACE)])
    offsets = [(start, end) for start, end in char_spans]
    document = TokenizedDocument(ids=list(range(len(offsets))), offsets=offsets, prefix_tokens=0, suffix_tokens=0)
    assert token_spans(document, text, char_spans) == reference_token_spans(document, text, char_spans)
    assert token_spans(document, text, char_spans) == [(i, i + 1) for i in range(len(offsets))]


def boundary_spans(rng: random.Random, n_tokens: int, length: int, overlap: int) -> list[Span]:
    """A partition of the tokens cut at and next to every window edge."""
    stride = length - overlap
    edges = {edge + delta for start in range(0, n_tokens, stride) for edge in (start, start + overlap, start + length)
             for delta in (-1, 0, 1)}  # fmt: skip
    cuts = sorted(edge for edge in edges if 0 < edge < n_tokens and rng.random() < 0.7)
    return list(itertools.pairwise([0, *cuts, n_tokens]))


def overlapping_spans(rng: random.Random, n_tokens: int) -> list[Span]:
    """Chunks that share tokens (splitters with overlap), empty and one-token spans, any order."""
    spans = []
    for _ in range(rng.randint(1, 60)):
        start = rng.randint(0, n_tokens - 1)
        spans.append((start, min(n_tokens, start + rng.choice([0, 1, 2, rng.randint(1, n_tokens)]))))
    return spans


@pytest.mark.parametrize("seed", range(300))
def test_assign_spans_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    length = rng.choice([1, 2, 8, 64, 256, 512])
    overlap = min(length - 1, rng.choice([0, 0, 1, length // 2, length - 1, rng.randint(0, length - 1)]))
    # Up to ~50 windows, which keeps the quadratic reference quick.
    n_tokens = rng.choice([1, length, length + 1, rng.randint(1, min(3_000, 50 * (length - overlap)))])
    windows = plan_windows(n_tokens, length, overlap)
    for spans in (
        random_spans(np.random.default_rng(seed), n_tokens, rng.randint(1, n_tokens)),
        boundary_spans(rng, n_tokens, length, overlap),
        overlapping_spans(rng, n_tokens),
        [(0, n_tokens)],
    ):
        plan = assign_spans(windows, spans)
        assert plan == reference_assign_spans(windows, spans)
        sums = [rng_sums(seed, len(part.local)) for part in plan]
        accumulator = SpanAccumulator(spans, hidden=4)
        expected = np.zeros((len(spans), 4))
        for part, part_sums in zip(plan, sums, strict=True):
            accumulator.add(part, part_sums)
            np.add.at(expected, list(part.chunks), part_sums)
        np.testing.assert_array_equal(accumulator._sums, expected)


def rng_sums(seed: int, rows: int) -> np.ndarray:
    return np.random.default_rng(seed + rows).standard_normal((rows, 4)).astype(np.float32)


def test_document_pipeline_matches_the_reference() -> None:
    """Real chunkings end to end: chunk spans, windows of several overlaps, pieces per window."""
    rng = random.Random(7)
    for _ in range(20):
        text, char_spans = join_chunks(random_chunks(rng) * rng.randint(1, 5))
        document = random_document(rng, text)
        spans = token_spans(document, text, char_spans)
        assert spans == reference_token_spans(document, text, char_spans)
        length = rng.choice([16, 64, 256])
        for overlap in (0, 1, length // 2, length - 1):
            windows = plan_windows(len(document.ids), length, overlap)
            assert assign_spans(windows, spans) == reference_assign_spans(windows, spans)


def test_windows_must_contribute_disjoint_ranges_in_order() -> None:
    with pytest.raises(ValueError, match="overlapping"):
        assign_spans([Window(0, 10, 0), Window(5, 15, 5)], [(0, 15)])
    with pytest.raises(ValueError, match="overlapping"):
        assign_spans([Window(10, 20, 10), Window(0, 10, 0)], [(0, 20)])


def test_planning_at_the_server_limits_is_fast() -> None:
    """--max-document-tokens (262,144) with --max-chunks (16,384): the direct formulation took
    seconds here (every window against every span); linear planning must be far below that.
    CPU time of this thread, so other processes on the machine do not count."""
    n_tokens, n_chunks = 262_144, 16_384
    content = n_tokens - 2
    offsets = [(0, 0)] + [(6 * i, 6 * i + 5) for i in range(content)] + [(6 * content - 1, 6 * content - 1)]
    document = TokenizedDocument(ids=[100] * n_tokens, offsets=offsets, prefix_tokens=1, suffix_tokens=1)
    text = " ".join(["abcde"] * content)
    per_chunk = -(-content // n_chunks)
    content_spans = [(start, min(start + per_chunk, content)) for start in range(0, content, per_chunk)]
    char_spans = [(6 * start, 6 * end) for start, end in content_spans]
    assert len(content_spans) == n_chunks
    timings = []
    for _ in range(2):
        started = time.thread_time()
        from_chars = token_spans(document, text, char_spans)
        spans = fold_specials(content_spans, document)
        windows = plan_windows(n_tokens, 256, 64)
        plan = assign_spans(windows, spans)
        timings.append(time.thread_time() - started)
    assert from_chars == spans
    assert sum(len(part.local) for part in plan) >= n_chunks
    assert min(timings) < 0.5, timings

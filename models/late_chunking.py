"""Late chunking math (Günther et al. 2024, arXiv 2409.04701): the whole document runs
through the model once and each chunk's vector is the mean of its own token vectors.

Terms: the document's token sequence is [prefix specials + prompt] content [suffix specials];
a chunk's *span* is a half-open range of that sequence. Special tokens and the prompt are
folded into the first chunk's span and the final special tokens into the last, as the paper
does. Documents longer than the model's context are encoded as *macro-chunks*: windows of
the model's length with a stride of (length - overlap), each window after the first
contributing only its tokens after the first `overlap` (those only give it context), exactly
as the paper's reference implementation slices the token sequence.

Engines return per-span *sums* of token vectors for each window, so a 200,000-token document
never holds all its token vectors at once; `SpanAccumulator` adds them up and divides.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.tokenization import TokenizedDocument

Span = tuple[int, int]


def join_chunks(chunks: Sequence[str]) -> tuple[str, list[Span]]:
    """The document made of consecutive chunks, and each chunk's character span in it.

    Chunks are concatenated as sent; a single space is put between two chunks only where
    neither side has whitespace, so that no token straddles two chunks.
    """
    parts: list[str] = []
    spans: list[Span] = []
    position = 0
    for index, chunk in enumerate(chunks):
        if index and chunk and parts and parts[-1] and not parts[-1][-1].isspace() and not chunk[0].isspace():
            parts.append(" ")
            position += 1
        spans.append((position, position + len(chunk)))
        parts.append(chunk)
        position += len(chunk)
    return "".join(parts), spans


def token_spans(
    document: TokenizedDocument, text: str, char_spans: Sequence[Span], *, pool_prompt: bool = True
) -> list[Span]:
    """Map chunk character spans to spans of the document's token sequence.

    A content token belongs to the chunk whose territory [start_i, start_{i+1}) holds its
    first non-space character. A chunk that owns no token (empty or whitespace only) gets
    the one token at its position, so no chunk is ever dropped.
    """
    ids_total = len(document.ids)
    lead, tail = document.prefix_tokens, document.suffix_tokens
    starts = [start for start, _ in char_spans]
    owner = []
    for start, end in document.offsets[lead : ids_total - tail]:
        anchor = start
        while anchor < end and text[anchor].isspace():
            anchor += 1
        owner.append(max(0, bisect.bisect_right(starts, anchor) - 1))
    n_chunks = len(char_spans)
    first = [-1] * n_chunks
    last = [-1] * n_chunks
    for position, chunk in enumerate(owner):
        index = lead + position
        if first[chunk] < 0:
            first[chunk] = index
        last[chunk] = index + 1
    spans: list[Span] = []
    cursor = lead
    for chunk in range(n_chunks):
        if first[chunk] < 0:  # no token of its own: the token at its position
            at = min(cursor, ids_total - 1)
            spans.append((at, at + 1))
        else:
            spans.append((first[chunk], last[chunk]))
            cursor = last[chunk]
    return _fold(spans, document, pool_prompt)


def fold_specials(
    content_spans: Sequence[Span], document: TokenizedDocument, *, pool_prompt: bool = True
) -> list[Span]:
    """Spans given over content tokens (as splitters produce them) → spans of the full sequence."""
    lead = document.prefix_tokens
    return _fold([(lead + start, lead + end) for start, end in content_spans], document, pool_prompt)


def _fold(spans: list[Span], document: TokenizedDocument, pool_prompt: bool) -> list[Span]:
    """Leading specials (and the prompt, unless the card keeps it out of pooling, as
    sentence-transformers does with the whole prefix) go to the first chunk; trailing
    specials to the last."""
    if spans:
        excluded = document.prefix_tokens if document.prompt_tokens and not pool_prompt else 0
        first_start = min(excluded, spans[0][1] - 1)
        spans[0] = (first_start, spans[0][1])
        spans[-1] = (spans[-1][0], len(document.ids))
    return spans


@dataclass(frozen=True, slots=True)
class Window:
    start: int  # first token of the window in the document sequence
    end: int
    keep_from: int  # first token whose vector this window contributes

    @property
    def processed(self) -> int:
        return self.end - self.start


def plan_windows(n_tokens: int, length: int, overlap: int) -> list[Window]:
    """The paper's macro-chunks: one window if the document fits, else overlapping windows."""
    if not 0 <= overlap < length:
        raise ValueError(f"overlap must be in 0..{length - 1}, got {overlap}")
    if n_tokens <= length:
        return [Window(0, n_tokens, 0)]
    windows = []
    stride = length - overlap
    start = 0
    while True:
        end = min(start + length, n_tokens)
        windows.append(Window(start, end, start if start == 0 else start + overlap))
        if end >= n_tokens:
            return windows
        start += stride


@dataclass(frozen=True, slots=True)
class WindowSpans:
    """What one window must return: sums over `local` spans, each adding to chunk `chunks[i]`."""

    window: Window
    local: tuple[Span, ...]
    chunks: tuple[int, ...]


def assign_spans(windows: Sequence[Window], spans: Sequence[Span]) -> list[WindowSpans]:
    """Cut every chunk span by the token ranges that windows contribute ([keep_from, end))."""
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


class SpanAccumulator:
    """Sums of token vectors per chunk, filled window by window, then averaged."""

    def __init__(self, spans: Sequence[Span], hidden: int) -> None:
        self._sums = np.zeros((len(spans), hidden), dtype=np.float64)
        self._counts = np.array([end - start for start, end in spans], dtype=np.float64)

    def add(self, window: WindowSpans, sums: np.ndarray) -> None:
        np.add.at(self._sums, list(window.chunks), sums)

    def means(self) -> np.ndarray:
        return (self._sums / self._counts[:, None]).astype(np.float32)

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
import itertools
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
    the one token at its position, so no chunk is ever dropped. `char_spans` are in document
    order, as `join_chunks` makes them. Array operations over the whole text and all tokens
    (no per-token Python loop): linear in characters + tokens + chunks.
    """
    if not char_spans:
        return []
    ids_total = len(document.ids)
    lead, tail = document.prefix_tokens, document.suffix_tokens
    anchors = _anchors(text, document.offsets)[lead : ids_total - tail]
    starts = np.fromiter((start for start, _ in char_spans), dtype=np.int64, count=len(char_spans))
    owner = np.maximum(np.searchsorted(starts, anchors, side="right") - 1, 0)
    positions = np.arange(len(anchors), dtype=np.int64)
    first = np.full(len(char_spans), len(anchors), dtype=np.int64)
    last = np.full(len(char_spans), -1, dtype=np.int64)
    np.minimum.at(first, owner, positions)
    np.maximum.at(last, owner, positions)
    spans: list[Span] = []
    cursor = lead
    for chunk_first, chunk_last in zip(first.tolist(), last.tolist(), strict=True):
        if chunk_last < 0:  # no token of its own: the token at its position
            at = min(cursor, ids_total - 1)
            spans.append((at, at + 1))
        else:
            cursor = lead + chunk_last + 1
            spans.append((lead + chunk_first, cursor))
    return _fold(spans, document, pool_prompt)


# Every code point for which str.isspace() holds is at most U+3000 (IDEOGRAPHIC SPACE).
_LAST_SPACE = 0x3000
_IS_SPACE = np.array([chr(code).isspace() for code in range(_LAST_SPACE + 1)])


def _anchors(text: str, offsets: Sequence[Span]) -> np.ndarray:
    """Each token's first non-space character in `text` (its end if it has none, its start if empty)."""
    bounds = np.fromiter(itertools.chain.from_iterable(offsets), dtype=np.int64, count=2 * len(offsets))
    starts, ends = bounds[0::2], bounds[1::2]
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    solid = (codes > _LAST_SPACE) | ~_IS_SPACE[np.minimum(codes, _LAST_SPACE)]
    # Positions of non-space characters, then len(text) so that every search finds one.
    solid_at = np.append(np.flatnonzero(solid), len(text))
    next_solid = solid_at[np.minimum(np.searchsorted(solid_at, starts), len(solid_at) - 1)]
    return np.where(starts < ends, np.minimum(next_solid, ends), starts)


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
    """Cut every chunk span by the token ranges that windows contribute ([keep_from, end)).

    Those ranges must follow one another without overlapping, as `plan_windows` makes them; a
    span then meets a run of consecutive windows, found by bisection, so the cost is linear in
    windows + spans + pieces rather than windows x spans. Each window lists its pieces in chunk
    order.
    """
    for before, after in itertools.pairwise(windows):
        if after.keep_from < max(before.keep_from, before.end):
            raise ValueError(f"windows contribute overlapping or unordered token ranges: {before}, {after}")
    keeps = [window.keep_from for window in windows]
    local: list[list[Span]] = [[] for _ in windows]
    chunks: list[list[int]] = [[] for _ in windows]
    for chunk, (start, end) in enumerate(spans):
        index = max(bisect.bisect_right(keeps, start) - 1, 0)
        while index < len(windows) and keeps[index] < end:
            window = windows[index]
            lo, hi = max(start, window.keep_from), min(end, window.end)
            if lo < hi:
                local[index].append((lo - window.start, hi - window.start))
                chunks[index].append(chunk)
            index += 1
    return [
        WindowSpans(window, tuple(pieces), tuple(owners))
        for window, pieces, owners in zip(windows, local, chunks, strict=True)
    ]


class SpanAccumulator:
    """Sums of token vectors per chunk, filled window by window, then averaged.

    A window holds at most one piece of each chunk (`assign_spans`), so a plain indexed add
    is exact; `np.add.at`, which allows repeats, is many times slower.
    """

    def __init__(self, spans: Sequence[Span], hidden: int) -> None:
        self._sums = np.zeros((len(spans), hidden), dtype=np.float64)
        self._counts = np.array([end - start for start, end in spans], dtype=np.float64)

    def add(self, window: WindowSpans, sums: np.ndarray) -> None:
        self._sums[np.asarray(window.chunks, dtype=np.intp)] += sums

    def means(self) -> np.ndarray:
        return (self._sums / self._counts[:, None]).astype(np.float32)

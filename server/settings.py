"""Server settings: one typed model, filled from CLI flags and EMBED_* environment variables.

Nothing reads the environment at import time; `ServerSettings()` is built once by the CLI
(or by tests) and passed down.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.card import Attention, DTypeName, EngineKind, PoolingMethod
from models.catalog import DEFAULT_MODEL

LogFormat = Literal["text", "json"]
TokenIdMode = Literal["tiktoken", "native", "reject"]
TruncationDefault = Literal["none", "end", "start"]
LogLevel = Literal["debug", "info", "warning", "error"]


REDACTED = "<redacted>"


def redact_url(url: str) -> str:
    """The URL with its password (and user) replaced: redis://:secret@host -> redis://<redacted>@host."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{REDACTED}@{host}" if sep and at and credentials else url


def _split_env_list(value: object) -> object:
    # In the environment a list is comma-separated: EMBED_API_KEY="k1,k2".
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


StrList = Annotated[list[str], NoDecode, BeforeValidator(_split_env_list)]


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMBED_", extra="forbid", validate_default=True)

    # Models
    model: StrList = Field(
        default_factory=lambda: [DEFAULT_MODEL],
        description="Model to serve: a card file, a shipped card's name, or a model folder. Repeat for several.",
    )
    served_model_name: StrList = Field(
        default_factory=list,
        description="Names clients use in `model` (first is the main name, others are aliases). Single model only.",
    )
    engine: EngineKind | None = Field(None, description="Engine for every model (default: the card's, else torch).")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N. With cuda, worker i runs on cuda:i.")
    dtype: DTypeName | None = Field(
        None, description="Weights and activations dtype (default: the card's; auto = bf16 where native, else fp32)."
    )
    pooling: PoolingMethod | None = Field(None, description="Override the card's pooling method.")
    attention: Attention | None = Field(None, description="Override the card's attention mode.")
    layer: int | None = Field(None, description="Override the card's hidden layer to pool (-1 = last).")
    normalize: bool | None = Field(None, description="Override the card's L2 normalisation.")

    # Network
    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind.")
    api_key: StrList = Field(
        default_factory=list,
        description="Accepted bearer keys, comma-separated, from the environment only (a flag would show them in "
        "the process list). None given (and no --api-keys-file): no authentication.",
        json_schema_extra={"env_only": True},
    )
    api_keys_file: str | None = Field(
        None,
        description="Tenants and their keys (YAML or JSON; reloaded on SIGHUP or change): per tenant its keys, "
        "requests and tokens per minute, concurrent requests and allowed models.",
    )
    rate_limit_replicas: int = Field(
        1,
        ge=1,
        description="While Redis is unreachable, tenant limits are enforced per replica, each limit divided by "
        "this (the number of replicas sharing a tenant's traffic); 1 never refuses a tenant below its limit.",
    )
    rate_limit_timeout_ms: float = Field(
        20, gt=0, description="Longest a request waits on Redis for a rate-limit decision before deciding locally."
    )
    max_request_bytes: int = Field(32 << 20, ge=1024, description="Largest accepted request body (413 beyond).")
    request_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Deadline of a /v1 request, in seconds (a client may ask for less with an X-Request-Timeout "
        "header); past it the client gets 504 and the request's queued inputs are dropped.",
    )
    cors_origin: StrList = Field(
        default_factory=list, description="Origins allowed to call the API from a browser (CORS); none: CORS off."
    )

    # Inputs
    token_ids: TokenIdMode = Field(
        "tiktoken",
        description="Meaning of token-id inputs: tiktoken (OpenAI's cl100k_base ids, re-tokenized), "
        "native (the model's own ids), reject (400).",
    )
    truncate: TruncationDefault = Field(
        "none", description="Over-long inputs: none (400), end or start (cut that side). Requests may override."
    )
    max_inputs: int = Field(2048, ge=1, description="Most inputs in one request.")
    max_document_tokens: int = Field(
        262_144, ge=1, description="Longest document for late chunking, in tokens (400 beyond)."
    )
    max_chunks: int = Field(16_384, ge=1, description="Most chunks in one documents request (400 beyond).")
    window_overlap: int = Field(
        64, ge=0, description="Late chunking beyond the context: tokens of context each window repeats."
    )

    # Scheduling
    workers: int = Field(1, ge=1, description="Model replicas per model (one per GPU with --device cuda).")
    worker_processes: bool = Field(
        True,
        description="Run each replica (torch or vLLM engine) in a process of its own, so the model's Python "
        "overhead never competes with the event loop for the GIL.",
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="Intra-op threads per replica. Default on CPU: the replicas share the cores, each batch "
        "running on cores / (replicas running a batch at that moment).",
    )
    max_batch_tokens: int | None = Field(
        None,
        ge=1,
        description="Token budget of one batch, counting padding (default: 16384 on GPU, 2048 on CPU, where "
        "larger batches are no faster and a short request waits behind them; never below one full-length input).",
    )
    max_batch_size: int = Field(256, ge=1, description="Most inputs in one batch.")
    max_queue_tokens: int = Field(
        1 << 20, ge=1, description="Tokens waiting per model beyond which requests get 429 at once."
    )
    max_queue_wait_s: float = Field(
        30.0,
        gt=0,
        description="A request whose estimated wait in the queue (queued tokens / the model's recent tokens per "
        "second) exceeds this gets 429 with a Retry-After from that estimate.",
    )
    replica_timeout_s: float = Field(
        60.0,
        gt=0,
        description="A replica process that has not answered a batch within this, or 10x the time its recent "
        "speed predicts for the batch if longer, is declared hung, killed and replaced; the batch is retried.",
    )
    packing: bool = Field(
        True, description="Pack short inputs into shared rows (block-diagonal attention) when cheaper than padding."
    )
    batch_wait_ms: float = Field(
        5.0,
        ge=0,
        description="Under steady load, how long a batch's first input may wait for as many requests as the "
        "previous batch served (a lone request after a busy spell waits once; 0: never).",
    )
    # Result cache
    redis_url: str | None = Field(
        None, description="Redis shared by every replica for cached vectors, e.g. redis://cache:6379/0 (off: none)."
    )
    local_cache_mb: int = Field(256, ge=0, description="In-process cache tier size in MiB (0 turns it off).")
    cache_prefix: str = Field("embed:", description="Key prefix in Redis: one namespace per deployment.")
    cache_ttl_s: float = Field(7 * 24 * 3600, ge=0, description="Lifetime of a vector in Redis, seconds (0: none).")
    cache_timeout_ms: float = Field(
        50, gt=0, description="Longest a request waits on a Redis lookup before treating it as a miss."
    )
    cache_storage: Literal["float32", "float16"] = Field("float32", description="How vectors are stored in Redis.")
    cache_hits_header: bool = Field(False, description="Add X-Cache-Hits: <hits>/<inputs> to responses.")
    # Operations
    data_dir: str | None = Field(
        None,
        description="The one directory the server writes to (unpacked models, tokenizer and compile caches, "
        "temporary files), so the rest of the filesystem can be read-only (default: ~/.cache/embed-server).",
    )
    drain_timeout_s: float = Field(
        30.0,
        ge=0,
        description="After SIGTERM, how long accepted requests may take to finish; then the rest get 503 and "
        "the process exits. Kubernetes: terminationGracePeriodSeconds > preStop pause + this + 5.",
    )
    log_level: LogLevel = Field("info", description="Log level.")
    log_format: LogFormat = Field("text", description="Log lines as text or as JSON objects (one per line).")
    access_log: bool = Field(
        False, description="Log one line per request: id, tenant, model, inputs, tokens, status, stage times."
    )
    otlp_endpoint: str | None = Field(
        None,
        description="Send OpenTelemetry traces (a span per request, child spans per stage) to this OTLP/HTTP "
        "collector, e.g. http://otel-collector:4318 (off: none).",
    )

    def redacted(self) -> dict[str, object]:
        """Every setting, secrets hidden: safe to log."""
        values = self.model_dump()
        values["api_key"] = [REDACTED] * len(self.api_key)
        if self.redis_url:
            values["redis_url"] = redact_url(self.redis_url)
        return values

    @model_validator(mode="after")
    def _check(self) -> ServerSettings:
        if self.served_model_name and len(self.model) > 1:
            raise ValueError("--served-model-name applies to a single --model; give names in each model's card")
        if not self.model:
            raise ValueError("at least one --model is needed")
        return self

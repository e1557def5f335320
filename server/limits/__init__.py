"""Per-tenant rate limits shared by every replica through Redis (GCRA, one Lua script per
decision), with an in-process fallback: `limiter` (the request-path API), `gcra` (the
algorithm, in-process store), `redis_store` (the same in Lua)."""

from server.limits.limiter import (
    Admission,
    Quota,
    RateLimiter,
    RateLimitError,
    RateLimitMetrics,
    charge_tokens,
    current_admission,
    format_duration,
)

__all__ = [
    "Admission",
    "Quota",
    "RateLimitError",
    "RateLimitMetrics",
    "RateLimiter",
    "charge_tokens",
    "current_admission",
    "format_duration",
]

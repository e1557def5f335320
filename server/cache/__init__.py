"""Result cache: full-dimension vectors of inputs already computed, keyed by the caller.

Two tiers. `LocalCache` is an in-process LRU bounded in bytes; `RedisCache` is shared by
every replica, looked up in one MGET per request and written in the background through a
bounded queue, behind a circuit breaker so an outage or a slow Redis costs a request at most
a small timeout. `ResultCache` puts them together: local first, Redis for the local misses
(promoting its hits), writes to both. Without Redis the local tier works alone.

The caller builds the keys (a hash of the model fingerprint and the exact model input) and
stores the full-dimension vector once; `dimensions` and normalisation are applied after a
hit as after a computation. Stored values carry a checked header (`codec`), so a corrupt or
foreign value is a miss that the caller's next write overwrites. Metrics go to the registry
the app passes in (`metrics.CacheMetrics`).
"""

"""Server state and its life: resolve cards, load and warm every model, serve, drain, stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

import torch

from models.card import ModelCard, with_overrides
from models.catalog import find_card
from models.cpus import usable_cpus
from models.devices import batch_token_budget, replica_devices
from models.engines.process_engine import CoreShare
from models.fingerprint import model_fingerprint
from models.loader import load_model
from server.cache.local import LocalCache
from server.cache.metrics import CacheMetrics
from server.cache.redis_tier import RedisCache
from server.cache.tiered import ResultCache
from server.document_service import DocumentService
from server.embedding_service import EmbeddingService
from server.errors import NotReadyError
from server.limits.limiter import RateLimiter
from server.metrics import Metrics
from server.model_runtime import ModelRuntime
from server.registry import ModelRegistry
from server.settings import ServerSettings
from server.tenants import Tenants
from server.token_ids import TokenIdPolicy

log = logging.getLogger(__name__)


def resolve_cards(settings: ServerSettings) -> list[ModelCard]:
    """Every --model as a validated card with the CLI overrides applied (raises CardError)."""
    cards = []
    for spec in settings.model:
        card = with_overrides(
            find_card(spec),
            pooling=settings.pooling,
            attention=settings.attention,
            layer=settings.layer,
            normalize=settings.normalize,
            engine=settings.engine,
        )
        if settings.served_model_name:
            name, *aliases = settings.served_model_name
            card = with_overrides(card, name=name, aliases=tuple(aliases))
        cards.append(card)
    return cards


def build_cache(settings: ServerSettings, metrics: Metrics) -> ResultCache:
    """The local tier unless --local-cache-mb 0; Redis when --redis-url is given."""
    cache_metrics = CacheMetrics(metrics.registry)
    local = LocalCache(settings.local_cache_mb << 20) if settings.local_cache_mb else None
    redis = None
    if settings.redis_url:
        redis = RedisCache(
            settings.redis_url,
            key_prefix=settings.cache_prefix,
            ttl_s=settings.cache_ttl_s or None,
            timeout_s=settings.cache_timeout_ms / 1000,
            storage=settings.cache_storage,
            metrics=cache_metrics,
        )
    return ResultCache(local, redis, cache_metrics)


def cpu_plan(settings: ServerSettings, devices: list[torch.device], *, models: int) -> tuple[int, CoreShare | None]:
    """Intra-op threads per replica, and the core share CPU replicas draw from: from the CPUs
    this process may really use (affinity, cgroup quota), for every model's replicas together."""
    cpus = usable_cpus()
    replicas = len(devices) * models if devices[0].type == "cpu" else len(devices)
    if settings.torch_threads is not None:
        return settings.torch_threads, None
    if devices[0].type == "cpu" and replicas > 1:
        return cpus, CoreShare(cpus)  # each batch gets cpus / (replicas running one)
    return max(1, cpus // replicas), None


class ServerState:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.registry = ModelRegistry()
        self.tenants = Tenants(settings.api_key, settings.api_keys_file)  # a bad file stops start-up
        self.limiter = RateLimiter(
            settings.redis_url,
            registry=self.metrics.registry,
            key_prefix=f"{settings.cache_prefix}rl:",
            replicas=settings.rate_limit_replicas,
            timeout_s=settings.rate_limit_timeout_ms / 1000,
        )
        self.token_ids = TokenIdPolicy(settings.token_ids)
        self.embeddings = EmbeddingService(self.registry, settings)
        self.documents = DocumentService(self.registry, settings)
        self.cache = build_cache(settings, self.metrics)
        self.ready = False
        self.draining = False  # SIGTERM seen: /ready fails so load balancers move on; work goes on
        self.stopping = False  # drain over: new work is refused
        self.started_at = int(time.time())
        self.loop: asyncio.AbstractEventLoop | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self.metrics.watch_replicas(lambda: ((r.name, r.replica_health()) for r in self.registry.runtimes))

    def require_ready(self) -> None:
        if self.stopping:
            raise NotReadyError("the server is shutting down")
        if not self.ready:
            raise NotReadyError("the model is still loading; retry shortly")

    def begin_drain(self) -> None:
        """On SIGTERM (on the loop): readiness fails from now on; accepted work has
        --drain-timeout-s to finish, then whatever still waits is answered 503."""
        if self._drain_timer is not None:
            return
        self.draining = True
        self.metrics.ready.set(0)
        log.info("draining: /ready answers 503; accepted requests have %.0f s to finish", self.settings.drain_timeout_s)
        self._drain_timer = asyncio.get_running_loop().call_later(self.settings.drain_timeout_s, self.end_drain)

    def end_drain(self) -> None:
        """The drain time is over: refuse new work, answer every waiting request 503."""
        self.stopping = True
        error = NotReadyError("the server is shutting down and its drain time ran out; retry on another replica")
        aborted = sum(runtime.abort_waiting(error) for runtime in self.registry.runtimes)
        if aborted:
            log.warning("drain time over: %d waiting requests answered 503", aborted)

    def liveness(self) -> str | None:
        """Why the process should be restarted (None: it should not). The event loop answering
        is most of liveness; beyond that, a model whose every replica is dead and none is being
        restarted (its restarts keep failing) cannot recover by itself."""
        for runtime in self.registry.runtimes:
            replicas = runtime.replica_health()
            if replicas and not any(replica.alive or replica.restarting for replica in replicas):
                return f"every replica of {runtime.name} is dead and none is restarting"
        return None

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready when loaded, not draining, and every model has a live replica; with the reason."""
        models = {
            runtime.name: {
                "replicas": len(health := runtime.replica_health()),
                "alive": sum(replica.alive for replica in health),
                "restarts": sum(replica.restarts for replica in health),
            }
            for runtime in self.registry.runtimes
        }
        if self.stopping or self.draining:
            status = "draining"
        elif not self.ready:
            status = "loading"
        elif any(model["alive"] == 0 for model in models.values()):
            status = "no live replica"
        else:
            status = "ready"
        return status == "ready", {"status": status, "models": models}

    async def load(self, cards: list[ModelCard], on_fatal: Callable[[BaseException], None] | None = None) -> None:
        """Load, warm and start every model, then report ready. A failure is fatal."""
        try:
            self.loop = loop = asyncio.get_running_loop()
            await self.cache.start()
            await self.limiter.start()
            devices = replica_devices(self.settings.device, self.settings.workers)
            threads, cores = cpu_plan(self.settings, devices, models=len(cards))
            for card in cards:
                processes = self.settings.worker_processes
                loaded = await asyncio.to_thread(
                    load_model,
                    card,
                    device=devices[0],
                    dtype_override=self.settings.dtype,
                    weights=False if processes else None,
                )
                # Cold, the fingerprint reads every weight file: hash while the replicas load.
                fingerprinting = asyncio.ensure_future(asyncio.to_thread(model_fingerprint, loaded))
                budget = batch_token_budget(self.settings.max_batch_tokens, devices[0], loaded.max_tokens)
                engines = await asyncio.to_thread(
                    loaded.create_engines,
                    devices,
                    packing=self.settings.packing,
                    max_batch_tokens=budget,
                    max_batch_size=self.settings.max_batch_size,
                    processes=processes,
                    threads=threads,
                    cores=cores,
                    replica_timeout_s=self.settings.replica_timeout_s,
                )
                fingerprint = await fingerprinting
                runtime = ModelRuntime(
                    loaded,
                    engines,
                    names=card.served_names,
                    settings=self.settings,
                    token_ids=self.token_ids,
                    metrics=self.metrics,
                    loop=loop,
                    max_batch_tokens=budget,
                    cache=self.cache,
                    fingerprint=fingerprint,
                )
                await asyncio.to_thread(runtime.warm_up)
                runtime.start()
                self.registry.add(runtime)
                self.metrics.model_info.labels(
                    runtime.name, fingerprint.hex()[:16], card.engine, str(loaded.dtype).removeprefix("torch."),
                    ",".join(map(str, devices)),
                ).set(1)  # fmt: skip
                log.info("serving %s as %s on %s", card.name, ", ".join(card.served_names),
                         ", ".join(map(str, devices)))  # fmt: skip
            # Everything loaded so far (modules, weights' Python objects) lives as long as the
            # process: keep it out of garbage collection, or every full collection walks
            # hundreds of thousands of objects (~0.1 s each) on the event loop's time.
            gc.collect()
            gc.freeze()
            self.ready = True
            if not self.draining:
                self.metrics.ready.set(1)
            log.info("ready")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.critical("start-up failed: %s", exc, exc_info=not isinstance(exc, ValueError))
            if on_fatal is not None:
                on_fatal(exc)
            raise

    async def drain_and_stop(self) -> None:
        """Refuse new work, finish what is queued (within the drain time), stop the workers."""
        self.stopping = True
        self.metrics.ready.set(0)
        timeout = self.settings.drain_timeout_s
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            timeout = max(1.0, self._drain_timer.when() - asyncio.get_running_loop().time())
        for runtime in self.registry.runtimes:
            await asyncio.to_thread(runtime.drain_and_stop, timeout)
        await self.limiter.close()
        await self.cache.close()

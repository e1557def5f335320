"""OpenTelemetry traces (`--otlp-endpoint`), off by default.

Spans are made after the response, from the stage times the request already records
(server/request_context.py), with their real start and end times: the request path never
calls the tracing SDK, so tracing costs the hot path nothing beyond keeping the stage list,
and nothing at all when off (the SDK is not even imported). The client's W3C `traceparent`
(and `tracestate`) make the request's span a child of the caller's.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

from server.request_context import RequestContext

# Span names for the paths that exist; anything else is one name, so unknown paths cannot
# multiply span names.
_ROUTES = {"/v1/embeddings", "/v1/documents/embeddings", "/v1/models", "/health", "/ready", "/metrics"}


class RequestTracer:
    def __init__(self, tracer: Any, propagator: Any) -> None:
        self._tracer = tracer
        self._propagator = propagator

    @classmethod
    def to_otlp(cls, endpoint: str, service_name: str = "embed-server") -> RequestTracer:
        """Spans batched and sent to an OTLP/HTTP collector (e.g. http://otel-collector:4318)."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
        return cls.with_provider(provider)

    @classmethod
    def with_provider(cls, provider: Any) -> RequestTracer:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        return cls(provider.get_tracer("embed-server"), TraceContextTextMapPropagator())

    def export(self, context: RequestContext, scope: Scope) -> None:
        from opentelemetry.trace import SpanKind, set_span_in_context

        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        parent = self._propagator.extract(carrier) if carrier else None
        route = context.path if context.path in _ROUTES else "other"
        root = self._tracer.start_span(
            f"{context.method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=context.wall_started_ns,
            attributes={
                "http.request.method": context.method,
                "url.path": context.path,
                "http.response.status_code": context.status,
                "embed.request_id": context.id,
                "embed.tenant": context.tenant,
                "embed.model": context.model,
                "embed.inputs": context.inputs,
                "embed.tokens": context.tokens,
            },
        )
        inside = set_span_in_context(root)
        for stage, started, ended in context.spans or ():
            span = self._tracer.start_span(stage, context=inside, start_time=context.wall_ns(started))
            span.end(end_time=context.wall_ns(ended))
        root.end()

"""OpenTelemetry traces, only when `KILDE_OTLP_ENDPOINT` is set (the optional `otel` extra).

Sits around the request flow: `TracingMiddleware` opens a server span per HTTP request
(continuing an incoming `traceparent`), `traced_registry()` wraps every connector so each
source's fetch in the fan-out is a child span, and `inject_trace_headers()` passes the trace on
to the upstreams. Nothing is imported from OpenTelemetry unless tracing is on. Spans carry no
personal data: method, route path, status, request id, operation label, source, outcome.

>>> provider = tracer_provider("")  # tracing off: nothing imported, nothing to do
>>> provider is None
True
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.base import FetchRequest, SourceResult
from connectors.registry import Registry


def tracer_provider(endpoint: str, service_name: str = "kilde") -> Any | None:
    """An SDK tracer provider exporting OTLP/HTTP to `endpoint`, or None when it is empty."""
    if not endpoint:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ValueError("KILDE_OTLP_ENDPOINT is set but OpenTelemetry is not installed; "
                         "install Kilde with the 'otel' extra (pip install 'kilde[otel]').") from None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class TracingMiddleware:
    """One server span per HTTP request, continuing the caller's trace if it sent one."""

    def __init__(self, app: ASGIApp, tracer: Any) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"] if scope["path"] in ("/graphql", "/healthz", "/readyz",
                                                  "/metrics") else "other"
        status = 500
        with self.tracer.start_as_current_span(
            f"{scope['method']} {path}", kind=SpanKind.SERVER,
            context=propagate.extract(carrier),
            attributes={"http.request.method": scope["method"], "url.path": path},
        ) as span:

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    for key, value in message.get("headers", []):
                        if key == b"x-request-id":
                            span.set_attribute("kilde.request_id", value.decode("latin-1"))
                await send(message)

            try:
                await self.app(scope, receive, sending)
            finally:
                span.set_attribute("http.response.status_code", status)
                operation = scope.get("state", {}).get("operation")
                if operation:
                    span.set_attribute("graphql.operation.root_fields", operation)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


class TracedConnector:
    """A connector whose every fetch is a span named after the source (a fan-out child)."""

    def __init__(self, inner: Any, tracer: Any) -> None:
        self._inner = inner
        self._tracer = tracer
        self.name = inner.name
        self.categories = inner.categories

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def fetch(self, request: FetchRequest) -> SourceResult:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        with self._tracer.start_as_current_span(
            f"fetch {self.name}", kind=SpanKind.CLIENT,
            attributes={"kilde.source": self.name, "kilde.request_id": request.request_id,
                        "kilde.categories": sorted(c.value for c in request.categories)},
            record_exception=False,
        ) as span:
            try:
                result = await self._inner.fetch(request)
            except BaseException as exc:
                code = getattr(exc, "code", type(exc).__name__)
                span.set_attribute("kilde.outcome", str(code))
                span.set_status(Status(StatusCode.ERROR, str(code)))
                raise
            span.set_attribute("kilde.outcome", "OK")
            span.set_attribute("kilde.from_cache", bool(result.from_cache))
            return result

    async def aclose(self) -> None:
        await self._inner.aclose()


def traced_registry(registry: Registry, tracer: Any) -> Registry:
    """The same registry with every connector wrapped in a `TracedConnector`."""
    return Registry(dataclasses.replace(entry, connector=TracedConnector(entry.connector, tracer))
                    for entry in registry)


def inject_trace_headers(http: httpx.AsyncClient) -> None:
    """Send the current trace context (`traceparent`) with every upstream request."""
    from opentelemetry import propagate

    async def inject(request: httpx.Request) -> None:
        propagate.inject(request.headers)

    http.event_hooks["request"] = [*http.event_hooks["request"], inject]

"""Prometheus metrics: delivery counters without personal data, served at `/metrics`.

Sits at the gateway's edge beside the audit sink: the lifespan builds one `Metrics` (its own
`CollectorRegistry`, no module globals) and puts it on the app state, the GraphQL endpoint
counts deliveries only after their audit events are committed, and `/metrics` renders the
registry. Labels are bounded and never identify anyone: source (connector name), category and
the caller's municipality number (four digits; anything else a token might carry is `other`),
route templates and status codes. Other gateway metrics register on `Metrics.registry`.

The exposition is prometheus_client's own: `render(accept)` negotiates the format as
Prometheus does (OpenMetrics for `Accept: application/openmetrics-text`, else the text format
0.0.4), the registry holds the process (`process_*`: CPU, memory, open files), platform
(`python_info`) and garbage-collector (`python_gc_*`) collectors, and no `_created` series is
exposed (they double the series count and Prometheus ignores them by default). Every HTTP
answer is counted by route and status (`kilde_http_responses_total`), 5xx ones included, by
`ResponseMetrics` at the edge.

>>> metrics = Metrics()
>>> metrics.record([])
>>> b"kilde_deliveries_total" in metrics.render()[0]
True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.audit import AuditEvent
from gateway.logs import route_template

DELIVERY_LABELS = ("source", "category", "municipality")
NO_MUNICIPALITY = "none"  # callers without a municipality (citizens, external clients)
OTHER = "other"  # a municipality claim that is not a municipality number
_MUNICIPALITY = re.compile(r"[0-9]{4}")


# series every counter, histogram and summary would add, which Kilde does not expose
_CREATED_TYPES = ("counter", "histogram", "summary", "gaugehistogram")


def status_label(status: int) -> str:
    """An HTTP status as a bounded label: the code, or `other` outside 100-599."""
    return str(status) if 100 <= status <= 599 else OTHER


def municipality_label(number: str | None) -> str:
    """A bounded label for a caller's municipality: its four-digit number, `none` or `other`."""
    if not number:
        return NO_MUNICIPALITY
    return number if _MUNICIPALITY.fullmatch(number) else OTHER


class Children:
    """A labelled metric's children, each looked up once: prometheus_client's `labels()`
    converts and locks on every call, some 30 times per request (bench/RESULTS.md, issue 16
    item 3). Label values are bounded by design (this module's labels), so this is too."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._known: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._known.get(values)
        if child is None:
            child = self._known[values] = self.metric.labels(*values)
        return child


class Metrics:
    """The gateway's metrics registry and the usage counters (docs/audit.md: usage statistics).

    `kilde_deliveries_total` counts (source, category) deliveries that handed over at least one
    item, `kilde_items_delivered_total` the items they handed over: the same figures as
    `Query.usage`, which reads them back from the audit trail.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # the collectors prometheus_client's default registry has, on this one (each app its
        # own registry, no module globals)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.deliveries = Counter(
            "kilde_deliveries", "Deliveries of at least one item, per source, category and "
            "caller municipality (counted after the audit write).",
            DELIVERY_LABELS, registry=self.registry,
        )
        self.items = Counter(
            "kilde_items_delivered", "Items delivered, per source, category and caller "
            "municipality (counted after the audit write).",
            DELIVERY_LABELS, registry=self.registry,
        )
        self.responses = Counter(
            "kilde_http_responses", "HTTP answers by route template and status code, 5xx "
            "included (an unhandled error answered at the edge counts as 500).",
            ("route", "status"), registry=self.registry,
        )
        self._delivered, self._items = Children(self.deliveries), Children(self.items)
        self._responses = Children(self.responses)

    def response(self, route: str, status: int) -> None:
        """Count one HTTP answer (`route`: the route template, never the path)."""
        self._responses(route, status_label(status)).inc()

    def record(self, events: Iterable[AuditEvent]) -> None:
        """Count what committed audit events delivered; call only after the write succeeded."""
        for event in events:
            if event.outcome != "DELIVERED":
                continue
            municipality = municipality_label(event.actor_municipality)
            for d in event.deliveries:
                if d.count <= 0:
                    continue
                self._delivered(d.source, d.category, municipality).inc()
                self._items(d.source, d.category, municipality).inc(d.count)

    def gauge(self, name: str, documentation: str, value: Callable[[], float]) -> None:
        """A gauge read from `value()` at each scrape (no labels)."""
        Gauge(name, documentation, registry=self.registry).set_function(value)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format `accept` (an Accept header) asks for, and its content
        type: OpenMetrics when asked for, else the Prometheus text format."""
        encode, content_type = choose_encoder(accept)
        return encode(_WithoutCreated(self.registry)), content_type


class _WithoutCreated(Collector):
    """A registry's metrics without their `_created` samples (each scrape builds new Metric
    objects, so filtering them changes nothing the registry keeps)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            if metric.type in _CREATED_TYPES:
                metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class ResponseMetrics:
    """ASGI middleware counting every HTTP answer on the app's `Metrics` (lifespan state);
    outside `RequestEdgeMiddleware`, so the 500 its crash guard sends is counted too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # no answer at all is a server error

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            metrics = _metrics_of(scope)
            if metrics is not None:
                metrics.response(route_template(scope), status)


def _metrics_of(scope: Scope) -> Metrics | None:
    state: Any = scope.get("state")
    kilde = state.get("kilde") if isinstance(state, dict) else None
    metrics = getattr(kilde, "metrics", None)
    return metrics if isinstance(metrics, Metrics) else None

"""Request and source metrics on the gateway's Prometheus registry (gateway/metrics.py).

Sits at the edge beside the GraphQL endpoint: the app's `/graphql` route reports every request
(operation label and HTTP status, latency), and after execution the request's ledger
(`schema.pipeline.ledger`) reports each finished fetch's latency, outcome and whether the
cache answered. Breaker state is read
when `/metrics` is scraped. Every label is bounded and carries no personal data: operation
labels are schema root-field names (gateway/admission.py), sources are connector names,
statuses are codes.

>>> from prometheus_client import CollectorRegistry
>>> metrics = RequestMetrics(CollectorRegistry())
>>> metrics.request("patient", 200, 0.01)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.metrics import Children
from schema.pipeline.ledger import Ledger

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
BREAKER_STATES = ("CLOSED", "OPEN", "HALF_OPEN")


class _BreakerCollector(Collector):
    """Reads breaker states at scrape time: 1 for each source's current state."""

    def __init__(self, breakers: Callable[[], Mapping[str, str]]) -> None:
        self.breakers = breakers

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("kilde_source_breaker_state",
                                   "Circuit breaker state per source (1 = current state).",
                                   labels=("source", "state"))
        for source, state in sorted(self.breakers().items()):
            current = str(state).upper()
            for candidate in BREAKER_STATES:
                family.add_metric((source, candidate), 1.0 if current == candidate else 0.0)
        yield family


class RequestMetrics:
    """GraphQL request rate and latency by operation; per-source latency, outcome, cache."""

    def __init__(self, registry: CollectorRegistry,
                 breakers: Callable[[], Mapping[str, str]] | None = None) -> None:
        self.requests = Counter(
            "kilde_graphql_requests", "GraphQL requests by operation (root fields) and HTTP "
            "status.", ("operation", "status"), registry=registry)
        self.latency = Histogram(
            "kilde_graphql_request_seconds", "GraphQL request latency by operation.",
            ("operation",), buckets=LATENCY_BUCKETS, registry=registry)
        self.source_latency = Histogram(
            "kilde_source_fetch_seconds", "Latency of one source's fetch within a request.",
            ("source",), buckets=LATENCY_BUCKETS, registry=registry)
        self.source_outcomes = Counter(
            "kilde_source_fetches", "Source fetches by outcome: OK or the UPSTREAM_* code.",
            ("source", "outcome"), registry=registry)
        self.cache = Counter(
            "kilde_source_cache_lookups", "Source answers served from cache (hit) or live "
            "(miss); hit ratio = hit / (hit + miss).", ("source", "result"), registry=registry)
        if breakers is not None:
            registry.register(_BreakerCollector(breakers))
        self._requests, self._latency = Children(self.requests), Children(self.latency)
        self._source_latency = Children(self.source_latency)
        self._source_outcomes, self._cache = Children(self.source_outcomes), Children(self.cache)

    def request(self, operation: str, status: int, seconds: float) -> None:
        self._requests(operation, str(status)).inc()
        self._latency(operation).observe(seconds)

    def sources(self, ledger: Ledger) -> None:
        """Record the finished fetches in a request's ledger."""
        for patient in ledger.patients:
            for fetch in patient.fetches:
                self._source_latency(fetch.source).observe(fetch.latency_ms / 1000)
                self._source_outcomes(fetch.source, fetch.code).inc()
                if fetch.from_cache is not None:
                    self._cache(fetch.source, "hit" if fetch.from_cache else "miss").inc()

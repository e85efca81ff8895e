"""Prometheus metrics: delivery counters without personal data, served at `/metrics`.

Sits at the gateway's edge beside the audit sink: the lifespan builds one `Metrics` (its own
`CollectorRegistry`, no module globals) and puts it on the app state, the GraphQL endpoint
counts deliveries only after their audit events are committed, and `/metrics` renders the
registry. Labels are bounded and never identify anyone: source (connector name), category and
the caller's municipality number (four digits; anything else a token might carry is `other`).
Other gateway metrics register on `Metrics.registry`.

>>> metrics = Metrics()
>>> metrics.record([])
>>> b"kilde_deliveries_total" in metrics.render()[0]
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from gateway.audit import AuditEvent

DELIVERY_LABELS = ("source", "category", "municipality")
NO_MUNICIPALITY = "none"  # callers without a municipality (citizens, external clients)
OTHER = "other"  # a municipality claim that is not a municipality number
_MUNICIPALITY = re.compile(r"[0-9]{4}")


def municipality_label(number: str | None) -> str:
    """A bounded label for a caller's municipality: its four-digit number, `none` or `other`."""
    if not number:
        return NO_MUNICIPALITY
    return number if _MUNICIPALITY.fullmatch(number) else OTHER


class Metrics:
    """The gateway's metrics registry and the usage counters (DESIGN.md: usage statistics).

    `kilde_deliveries_total` counts (source, category) deliveries that handed over at least one
    item, `kilde_items_delivered_total` the items they handed over: the same figures as
    `Query.usage`, which reads them back from the audit trail.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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

    def record(self, events: Iterable[AuditEvent]) -> None:
        """Count what committed audit events delivered; call only after the write succeeded."""
        for event in events:
            if event.outcome != "DELIVERED":
                continue
            municipality = municipality_label(event.actor_municipality)
            for d in event.deliveries:
                if d.count <= 0:
                    continue
                self.deliveries.labels(d.source, d.category, municipality).inc()
                self.items.labels(d.source, d.category, municipality).inc(d.count)

    def render(self) -> tuple[bytes, str]:
        """The registry in the Prometheus text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

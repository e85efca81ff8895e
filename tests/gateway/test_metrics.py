"""The delivery counters: what they count, and that they hold no personal data."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gateway.audit import Delivery
from gateway.metrics import Metrics
from tests.gateway.audit_support import LEGE, PATIENT_A, event, full_event


def _samples(metrics: Metrics) -> dict[tuple[str, str, str, str], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render()[0].decode()):
        for s in family.samples:
            if s.name.endswith("_total"):
                out[(s.name, s.labels["source"], s.labels["category"],
                     s.labels["municipality"])] = s.value
    return out


def test_delivered_items_are_counted_per_source_category_and_municipality() -> None:
    metrics = Metrics()
    metrics.record([event(1), event(2), event(3, actor_municipality=None, deliveries=(
        Delivery("medications", "pll", "OK", 5),))])
    assert _samples(metrics) == {
        ("kilde_deliveries_total", "pll", "medications", "4601"): 2.0,
        ("kilde_items_delivered_total", "pll", "medications", "4601"): 4.0,
        ("kilde_deliveries_total", "pll", "medications", "none"): 1.0,
        ("kilde_items_delivered_total", "pll", "medications", "none"): 5.0,
    }


def test_denials_and_empty_deliveries_are_not_counted() -> None:
    metrics = Metrics()
    metrics.record([event(1, outcome="DENIED", reason="CARE_RELATIONSHIP_MISSING"),
                    event(2, deliveries=(Delivery("medications", "pll", "EMPTY", 0),))])
    assert _samples(metrics) == {}


def test_the_exposition_names_no_patient_and_no_professional() -> None:
    metrics = Metrics()
    metrics.record([full_event()])
    text = metrics.render()[0].decode()
    assert "kilde_items_delivered_total" in text
    for value in (PATIENT_A, LEGE.pid, LEGE.name, LEGE.hpr, "legevakt-epj", "req-0001"):
        assert value not in text


def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.record([event(1)])
    assert _samples(second) == {}
    assert first.registry is not second.registry


def test_a_municipality_claim_that_is_not_a_municipality_number_is_counted_as_other() -> None:
    metrics = Metrics()
    metrics.record([event(1, actor_municipality="14033841389"),
                    event(2, actor_municipality="Kari Nordmann")])
    text = metrics.render()[0].decode()
    assert 'municipality="other"' in text
    assert "14033841389" not in text
    assert "Nordmann" not in text

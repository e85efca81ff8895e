"""The delivery counters: what they count, and that they hold no personal data."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.audit import Delivery
from gateway.metrics import Metrics
from tests.gateway.audit_support import LEGE, PATIENT_A, event, full_event


def _samples(metrics: Metrics) -> dict[tuple[str, str, str, str], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render()[0].decode()):
        for s in family.samples:
            if s.name.endswith("_total") and s.name.startswith(("kilde_deliveries", "kilde_items")):
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


# --- the exposition: prometheus_client's own, negotiated, with the runtime collectors --------

OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"


def test_openmetrics_is_negotiated_and_the_text_format_is_the_default() -> None:
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as openmetrics_families,
    )

    metrics = Metrics()
    metrics.record([event(1)])
    body, media = metrics.render(OPENMETRICS)
    assert media.startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}  # parses as OpenMetrics
    assert families["kilde_deliveries"].type == "counter"
    body, media = metrics.render("")
    assert media.startswith("text/plain; version=0.0.4")
    assert "# EOF" not in body.decode()
    assert metrics.render("text/html,*/*")[1].startswith("text/plain")


@pytest.mark.parametrize("accept", ["", OPENMETRICS])
def test_process_and_python_runtime_series_and_no_created_series(accept: str) -> None:
    metrics = Metrics()
    metrics.record([event(1)])
    metrics.response("/graphql", 200)
    text = metrics.render(accept)[0].decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes",
            "process_open_fds", "python_info", "python_gc_collections_total"} <= names
    assert [n for n in names if n.endswith("_created")] == []
    assert "kilde_deliveries_total" in names


def test_status_labels_are_bounded() -> None:
    metrics = Metrics()
    for status in (200, 503, 99, 600, 10**9):
        metrics.response("/graphql", status)
    samples = [s.labels["status"] for f in text_string_to_metric_families(
        metrics.render()[0].decode()) if f.name == "kilde_http_responses" for s in f.samples
        if s.name.endswith("_total")]
    assert sorted(samples) == ["200", "503", "other"]


async def test_metrics_over_http_negotiate_and_count_5xx_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.gateway.inprocess import gateway

    async with gateway() as kilde:
        r = await kilde.client.get("/metrics", headers={"accept": OPENMETRICS})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert "process_cpu_seconds_total" in r.text
        assert "_created" not in r.text

        async def no_audit() -> bool:
            return False

        async def broken_audit() -> bool:
            raise RuntimeError("the audit store's driver fell over")

        monkeypatch.setattr(kilde.state.audit, "ping", no_audit)
        assert (await kilde.client.get("/readyz")).status_code == 503
        monkeypatch.setattr(kilde.state.audit, "ping", broken_audit)
        assert (await kilde.client.get("/readyz")).status_code == 500  # the edge's crash guard
        r = await kilde.client.post("/graphql", json={"query": "{ me { kind } }"})  # no token
        assert r.status_code == 401
        # a path no route has is counted as `other`, never by the path it names
        assert (await kilde.client.get("/patients/14033841389")).status_code == 404
        text = (await kilde.client.get("/metrics")).text
    counted = {(s.labels["route"], s.labels["status"]): s.value
               for f in text_string_to_metric_families(text) if f.name == "kilde_http_responses"
               for s in f.samples if s.name.endswith("_total")}
    assert counted[("/readyz", "503")] == 1
    assert counted[("/readyz", "500")] == 1
    assert counted[("/graphql", "401")] == 1
    assert counted[("/metrics", "200")] == 1
    assert counted[("other", "404")] == 1
    assert "14033841389" not in text

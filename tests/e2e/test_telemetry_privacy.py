"""After the demo scenarios, metrics and logs hold no identity number and no name."""

from __future__ import annotations

import logging

import httpx
import pytest

from gateway.cli import EXAMPLE_QUERY
from gateway.demo import PERSONAS
from gateway.logs import JsonFormatter
from sandbox.world import PATIENTS
from tests.e2e.conftest import Stack

ACCESS_LOG = "query($nin: String!) { accessLog(nin: $nin) { totalCount } }"


def _forbidden() -> set[str]:
    words = {p.nin for p in PATIENTS} | {p.name for p in PATIENTS}
    words |= {part for p in PATIENTS for part in p.name.split() if len(part) > 3}
    words |= {p.name for p in PERSONAS.values() if p.name}
    words |= {p.pid for p in PERSONAS.values() if p.pid}
    return words


def _run_scenarios(e2e: Stack) -> None:
    for patient in PATIENTS:
        for persona in ("legevakt-lege", "hjemmesykepleier", "lege-annen-kommune"):
            e2e.query(EXAMPLE_QUERY, e2e.token(persona, patient.nin), {"nin": patient.nin})
        e2e.query("{ myAccessLog { totalCount } }", e2e.token("innbygger", patient.nin))
        e2e.query(ACCESS_LOG, e2e.token("personvernombud"), {"nin": patient.nin})
        # inline identity numbers, a typo, and a GET with the number in the URL
        e2e.query(f'{{ patient(nin: "{patient.nin}") {{ alerts {{ titel }} }} }}',
                  e2e.token("legevakt-lege", patient.nin))
        httpx.get(f"{e2e.gateway.url}/graphql", params={
            "query": f'{{ patient(nin: "{patient.nin}") {{ nin }} }}'},
            headers={"authorization": f"Bearer {e2e.token('legevakt-lege', patient.nin)}"})
    e2e.fault("kjernejournal", mode="error")
    first = PATIENTS[0]
    e2e.query(EXAMPLE_QUERY, e2e.token("legevakt-lege", first.nin), {"nin": first.nin})


@pytest.mark.slow
def test_metrics_and_logs_after_the_demo_scenarios_name_nobody(
        e2e: Stack, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)
    for chatty in ("httpx", "httpcore"):  # as gateway.logs.configure_logging sets them
        monkeypatch.setattr(logging.getLogger(chatty), "level", logging.WARNING)
    _run_scenarios(e2e)
    metrics = httpx.get(f"{e2e.gateway.url}/metrics").text
    assert "kilde_graphql_requests_total" in metrics
    assert 'kilde_source_fetches_total{outcome="UPSTREAM_UNAVAILABLE",source="kjernejournal"}' \
        in metrics
    formatter = JsonFormatter()
    logs = "\n".join(formatter.format(record) for record in caplog.records)
    assert '"logger":"kilde.access"' in logs  # the request log was captured at all
    for word in sorted(_forbidden()):
        assert word not in metrics, f"metrics contain {word!r}"
        assert word not in logs, f"logs contain {word!r}"

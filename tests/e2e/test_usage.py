"""Usage statistics without personal data: `Query.usage` (from the audit trail) and the
Prometheus counters at `/metrics` tell the same story, and neither names anyone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.world import BERGEN, PATIENTS, PROFESSIONALS, by_tag
from tests.e2e.auditing import AuditedGateway, audited_gateway
from tests.e2e.conftest import Stack

SUMMARY = """query($nin: String!) { patient(nin: $nin) {
  treatmentLimitations { code { code } } medications { name } labResults { code { code } }
  municipalServices { code { code } } } }"""
USAGE = "query($from: Date) { usage(from: $from) { day source category municipality deliveries items } }"
Key = tuple[str, str, str]  # source, category, municipality


@pytest.fixture
def gateway(stack: Stack, tmp_path: Path) -> Iterator[AuditedGateway]:
    stack.reset()
    with audited_gateway(stack.sandbox.url, f"sqlite:///{tmp_path / 'audit.sqlite3'}") as gw:
        yield gw


def _counters(gw: AuditedGateway) -> tuple[str, dict[str, dict[Key, float]]]:
    text = httpx.get(f"{gw.url}/metrics", timeout=10).text
    out: dict[str, dict[Key, float]] = {"kilde_deliveries": {}, "kilde_items_delivered": {}}
    for family in text_string_to_metric_families(text):
        if family.name in out:
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    labels = sample.labels
                    key = (labels["source"], labels["category"], labels["municipality"])
                    out[family.name][key] = sample.value
    return text, out


def test_usage_and_prometheus_counters_agree_and_name_no_one(gateway: AuditedGateway) -> None:
    asks = [("legevakt-lege", by_tag("legevakt-hlr")), ("hjemmesykepleier", by_tag("multi-service")),
            ("hjemmesykepleier-bergen", by_tag("other-municipality")),
            ("helsefagarbeider", by_tag("legevakt-hlr"))]  # labResults denied to HF: not counted
    for persona, patient in asks:
        r = gateway.query(SUMMARY, gateway.token(persona, patient.nin), {"nin": patient.nin})
        assert r.status_code == 200, r.text
    denied = gateway.query(SUMMARY, gateway.token("legevakt-lege", PATIENTS[0].nin),
                           {"nin": by_tag("multi-service").nin})
    assert denied.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # each officer reads their own municipality's deliveries (docs/policies.md); here each
    # municipality's personnel read its own patients, so together they are every delivery
    usage_deliveries: dict[Key, int] = {}
    usage_items: dict[Key, int] = {}
    answers = []
    for orgnr, own in ((None, "0301"), (BERGEN.orgnr, "4601")):
        r = gateway.query(USAGE, gateway.officer(orgnr),
                          {"from": datetime.now(UTC).date().isoformat()})
        answers.append(r.text)
        rows = r.json()["data"]["usage"]
        assert {u["municipality"] for u in rows} == {own}
        for u in rows:
            key = (u["source"], u["category"], u["municipality"] or "none")
            usage_deliveries[key] = usage_deliveries.get(key, 0) + u["deliveries"]
            usage_items[key] = usage_items.get(key, 0) + u["items"]
    text, counters = _counters(gateway)

    assert counters["kilde_deliveries"] == usage_deliveries
    assert counters["kilde_items_delivered"] == usage_items
    assert {m for _, _, m in usage_deliveries} == {"0301", "4601"}
    assert ("proevesvar", "lab_results", "0301") in usage_deliveries
    assert all(n > 0 for n in usage_deliveries.values())
    people = [p.nin for p in PATIENTS] + [p.name for p in PATIENTS] + [
        p.pid for p in PROFESSIONALS] + [p.name for p in PROFESSIONALS]
    assert not [v for v in people if v in text or any(v in a for a in answers)]


def test_usage_is_for_the_privacy_officer_only(gateway: AuditedGateway) -> None:
    nin = by_tag("legevakt-hlr").nin
    r = gateway.query(USAGE, gateway.token("legevakt-lege", nin), {})
    assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

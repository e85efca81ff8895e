"""Each SFM connector maps only the part of `$getMedication` it serves (`read_bundle(part=...)`):
the same answer for its own part, the other part's statements placed but not mapped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from connectors import eresept, pll
from connectors.base import AccessBasis, Connector, ConnectorSettings, FetchRequest
from connectors.errors import UpstreamInvalidError
from connectors.medication import sfm
from connectors.medication.sfm import read_bundle, read_response
from connectors.model import Category, Status
from sandbox import medication as fake
from sandbox.world import by_tag

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MULTI = by_tag("multi-service")
MED_URL = "urn:uuid:00000000-0000-4000-8000-000000000001"
PLL_URL = "urn:uuid:00000000-0000-4000-8000-000000000002"
RX_URL = "urn:uuid:00000000-0000-4000-8000-000000000003"
BARE_URL = "urn:uuid:00000000-0000-4000-8000-000000000004"
UNLISTED_URL = "urn:uuid:00000000-0000-4000-8000-000000000005"


def _statement(identifiers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "identifier": [{"type": {"text": kind}, "value": value}
                       for kind, value in identifiers.items()],
        "status": "active",
        "medicationReference": {"reference": MED_URL},
        "dosage": [{"text": "1 tablett x 2"}],
    }
    resource.update(overrides)
    return resource


def document(*, pll_stmt: dict[str, Any] | None = None,
             rx_stmt: dict[str, Any] | None = None) -> dict[str, Any]:
    """A PLL statement, a prescription, a statement of neither part and a PLL entry its
    section does not list (one lost for both, one lost for the PLL)."""
    return {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [
            {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Composition", "section": [
                {"title": "Resepter", "entry": [{"reference": RX_URL}]},
                {"title": "PLL info", "entry": [{"reference": PLL_URL}]}]}},
            {"fullUrl": MED_URL, "resource": {
                "resourceType": "Medication",
                "code": {"coding": [{"system": sfm.ATC_SYSTEM, "code": "A10BA02"}],
                         "text": "Metformin 500 mg tablett"}}},
            {"fullUrl": PLL_URL, "resource": pll_stmt or _statement({"PLL": "pll-1"})},
            {"fullUrl": RX_URL, "resource": rx_stmt or _statement({"prescriptionID": "rx-1"})},
            {"fullUrl": BARE_URL, "resource": _statement({"treatmentID": "tr-1"})},
            {"fullUrl": UNLISTED_URL, "resource": _statement({"PLL": "pll-9"})},
        ],
    }


DANGLING = {"medicationReference": {"reference": "urn:uuid:missing"}}


def test_each_part_is_what_reading_both_gives_for_it_with_the_same_counts() -> None:
    both = read_bundle(document(), "src", AT)
    assert [m.pll_id for m in both[0]] == ["pll-1"]
    assert [m.prescription_id for m in both[1]] == ["rx-1"]
    assert both[2:] == (2, 1)
    assert read_bundle(document(), "src", AT, part="pll") == (both[0], (), 2, 1)
    assert read_bundle(document(), "src", AT, part="prescriptions") == ((), both[1], 2, 1)


@pytest.mark.parametrize(("part", "mapped"), [("pll", ["pll-1"]), ("prescriptions", ["rx-1"]),
                                              (None, ["pll-1", "rx-1"])])
def test_only_the_part_served_is_mapped(
    monkeypatch: pytest.MonkeyPatch, part: sfm.Part | None, mapped: list[str]
) -> None:
    seen: list[str] = []
    real = sfm.read_statement

    def counting(statement: Any, *args: Any, **kwargs: Any) -> Any:
        item = real(statement, *args, **kwargs)
        seen.append(item.pll_id or item.prescription_id or "")
        return item

    monkeypatch.setattr(sfm, "read_statement", counting)
    read_bundle(document(), "src", AT, part=part)
    assert seen == mapped


def test_a_broken_prescription_fails_only_the_prescriptions() -> None:
    broken = document(rx_stmt=_statement({"prescriptionID": "rx-1"}, **DANGLING))
    pll_items, _, lost_pll, _ = read_bundle(broken, "pll", AT, part="pll")
    assert ([m.pll_id for m in pll_items], lost_pll) == (["pll-1"], 2)
    for part in ("prescriptions", None):
        with pytest.raises(UpstreamInvalidError, match="Medication is missing"):
            read_bundle(broken, "eresept", AT, part=part)


def test_a_broken_pll_statement_fails_only_the_pll() -> None:
    broken = document(pll_stmt=_statement({"PLL": "pll-1"}, **DANGLING))
    _, rx_items, _, lost_rx = read_bundle(broken, "eresept", AT, part="prescriptions")
    assert ([m.prescription_id for m in rx_items], lost_rx) == (["rx-1"], 1)
    with pytest.raises(UpstreamInvalidError, match="Medication is missing"):
        read_bundle(broken, "pll", AT, part="pll")


@pytest.mark.parametrize("part", ["pll", "prescriptions"])
@pytest.mark.parametrize("change", [
    lambda d: d.update(type="searchset"),
    lambda d: d.update(entry=d["entry"][1:]),
], ids=["not-a-document", "no-composition"])
def test_the_whole_document_is_checked_whatever_the_part(
        part: sfm.Part, change: Callable[[dict[str, Any]], None]) -> None:
    bad = document()
    change(bad)
    with pytest.raises(UpstreamInvalidError):
        read_bundle(bad, "src", AT, part=part)


@pytest.mark.parametrize("part", ["pll", "prescriptions"])
def test_read_response_passes_the_part_on_and_still_checks_the_patient(part: sfm.Part) -> None:
    body: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
        {"name": "medication", "resource": document()},
        {"name": "RFHentetTidspunkt", "valueDateTime": "2026-12-01T11:59:30+01:00"}]}
    read = read_response(body, "src", AT, part=part)
    assert (len(read.pll), len(read.prescriptions)) == ((1, 0) if part == "pll" else (0, 1))
    assert read.rf_fetched_at is not None
    body["parameter"][0]["resource"]["entry"][3]["resource"]["subject"] = {
        "identifier": {"value": "14033841389"}}
    with pytest.raises(UpstreamInvalidError, match="another patient"):
        read_response(body, "src", AT, nin=MULTI.nin, part=part)


# -- the connectors: a broken statement of the other source's part no longer fails a source ---


class BrokenOne:
    """The sandbox's answer with the first statement carrying `identifier_type` left without
    its Medication."""

    def __init__(self, identifier_type: str) -> None:
        self.identifier_type = identifier_type

    def __call__(self, req: httpx.Request) -> httpx.Response:
        body = fake.render_response(fake.read_query(orjson.loads(req.content)),
                                    datetime.now(UTC))
        bundle = next(p["resource"] for p in body["parameter"] if p["name"] == "medication")
        statement = next(
            e["resource"] for e in bundle["entry"]
            if e["resource"]["resourceType"] == "MedicationStatement"
            and any(i["type"]["text"] == self.identifier_type
                    for i in e["resource"]["identifier"]))
        statement.update(DANGLING)
        return httpx.Response(200, json=body)


def connector(create: Callable[[ConnectorSettings, httpx.AsyncClient], Connector], name: str,
              handler: Callable[[httpx.Request], httpx.Response]) -> Connector:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return create(ConnectorSettings(name=name, base_url="http://sfm.test/api"), http)


def request() -> FetchRequest:
    return FetchRequest(patient_nin=MULTI.nin, categories=frozenset({Category.MEDICATIONS}),
                        access_basis=AccessBasis.AKUTT, timeout=1.0)


async def test_a_broken_prescription_leaves_the_pll_ok_and_fails_eresept() -> None:
    result = await connector(pll.create, "pll", BrokenOne("prescriptionID")).fetch(request())
    assert result.status is Status.OK
    assert sorted(m.pll_id for m in result.items[Category.MEDICATIONS]) == [
        "pll-d1", "pll-d2", "pll-d3"]
    with pytest.raises(UpstreamInvalidError, match="Medication is missing"):
        await connector(eresept.create, "eresept", BrokenOne("prescriptionID")).fetch(request())


async def test_a_broken_pll_statement_leaves_eresept_ok_and_fails_the_pll() -> None:
    result = await connector(eresept.create, "eresept", BrokenOne("PLL")).fetch(request())
    assert result.status is Status.OK
    assert len(result.items[Category.MEDICATIONS]) == 4
    with pytest.raises(UpstreamInvalidError, match="Medication is missing"):
        await connector(pll.create, "pll", BrokenOne("PLL")).fetch(request())

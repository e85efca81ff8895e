"""The right patient, always: the municipal connector against stores that collide, lie or differ.

Each store is the sandbox's FHIR engine over resources chosen here (tests/connectors/
municipal_stores.py), so the connector meets real searches: its own Patient search, searches
by reference, chained searches where declared, paging, strict and lenient handling.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.errors import UpstreamInvalidError
from connectors.model import Category, Status
from tests.connectors.municipal_stores import (
    BASE,
    DNR,
    FNR,
    NIN,
    OTHER,
    condition,
    consent,
    fetch_request,
    patient,
    stores,
)

MINE = patient("p1", (FNR, NIN))
THEIRS = patient("p2", (FNR, OTHER))
CONDITIONS = frozenset({Category.CONDITIONS})


def ids(result: Any, category: Category = Category.CONDITIONS) -> list[str]:
    return sorted(i.id for i in result.items[category])


@pytest.mark.parametrize("profile", ["full", "batch", "plain", "paged"])
async def test_only_the_resolved_patients_records_arrive_in_every_profile(profile: str) -> None:
    held = [MINE, THEIRS, condition("c1", "Patient/p1"), condition("c2", "Patient/p2"),
            condition("c3", "Patient/p1"), consent("hlr", "Patient/p1"),
            consent("hlr-other", "Patient/p2")]
    conn, recorder = stores({"0301": held}, profile)
    result = await conn.fetch(fetch_request())
    assert result.status is Status.OK
    assert ids(result) == ["c1", "c3"]
    assert ids(result, Category.TREATMENT_LIMITATIONS) == ["hlr"]
    for request in recorder.searches():
        assert NIN not in str(request.url)  # only in POST bodies
        assert request.headers["prefer"] == "handling=strict"


async def test_round_trips_per_profile() -> None:
    """Metadata once per store; then 1 (batch + chained), 2 (batch) or 1 + n (plain)."""
    held = [MINE, condition("c1", "Patient/p1")]
    counts = {}
    for profile in ("full", "batch", "plain"):
        conn, recorder = stores({"0301": held}, profile)
        await conn.fetch(fetch_request())
        await conn.fetch(fetch_request())
        metadata = len(recorder.seen) - len(recorder.searches())
        counts[profile] = (metadata, len(recorder.searches()) // 2)
    searches = len(ALL_SEARCHES)
    assert counts == {"full": (1, 1), "batch": (1, 2), "plain": (1, 1 + searches)}


ALL_SEARCHES = ("Consent treatment", "EpisodeOfCare", "Condition", "MedicationAdministration",
                "DocumentReference", "AllergyIntolerance", "Flag", "Consent privacy")


async def test_no_patient_in_the_store_is_empty_with_a_reason() -> None:
    conn, _ = stores({"0301": [THEIRS, condition("c2", "Patient/p2")]})
    result = await conn.fetch(fetch_request())
    assert result.status is Status.EMPTY
    assert result.detail is not None
    assert "'0301' has no patient record" in result.detail
    assert NIN not in result.detail


@pytest.mark.parametrize("twin", [
    patient("p9", (FNR, NIN)),
    patient("p9", (FNR, NIN), active=False,
            link=[{"type": "replaced-by", "other": {"reference": "Patient/p1"}}]),
    patient("p9", ("http://hl7.no/fhir/NamingSystem/FNR", NIN)),
], ids=["duplicate", "linked-duplicate", "alias-system-duplicate"])
async def test_several_patients_for_one_person_are_invalid_never_merged(twin: dict) -> None:
    conn, _ = stores({"0301": [MINE, twin, condition("c1", "Patient/p1"),
                               condition("c9", "Patient/p9")]})
    with pytest.raises(UpstreamInvalidError, match="several patient records"):
        await conn.fetch(fetch_request())


@pytest.mark.parametrize("impostor", [
    patient("p5", ("HNR", NIN)),                       # a local H-nummer with the same digits
    patient("p5", (DNR, NIN)),                         # the digits under the D-nummer system
    patient("p5", ("urn:oid:2.16.578.1.12.4.1.4.3", NIN)),  # ... under felles hjelpenummer
    patient("p5", ("urn:oid:1.2.3", NIN)),
], ids=["hnr", "dnr-system", "fhn-system", "foreign-system"])
async def test_the_same_digits_under_another_system_are_someone_else(impostor: dict) -> None:
    conn, _ = stores({"0301": [impostor, condition("c5", "Patient/p5")]})
    result = await conn.fetch(fetch_request(categories=CONDITIONS))
    assert result.status is Status.EMPTY
    assert ids(result) == []


async def test_a_patient_with_several_identifiers_and_an_alias_system_resolves() -> None:
    me = patient("p1", ("HNR", "12345"), ("http://hl7.no/fhir/NamingSystem/FNR", NIN),
                 (DNR, "41010199999"), active=False)
    conn, _ = stores({"0301": [me, condition("c1", "Patient/p1")]})
    result = await conn.fetch(fetch_request(categories=CONDITIONS))
    assert ids(result) == ["c1"]


async def test_a_patient_replaced_by_another_record_is_invalid() -> None:
    me = patient("p1", (FNR, NIN), link=[{"type": "replaced-by",
                                          "other": {"reference": "Patient/p7"}}])
    conn, _ = stores({"0301": [me, condition("c1", "Patient/p1")]})
    with pytest.raises(UpstreamInvalidError, match="replaced"):
        await conn.fetch(fetch_request(categories=CONDITIONS))


@pytest.mark.parametrize("subject", [
    "Patient/p1",
    f"{BASE}/0301/Patient/p1",
    "Patient/p1/_history/3",
    {"reference": "Patient/p1", "identifier": {"system": FNR, "value": NIN}},
], ids=["relative", "absolute", "versioned", "reference-and-identifier"])
async def test_every_literal_form_of_the_patients_reference_is_accepted(subject: Any) -> None:
    conn, _ = stores({"0301": [MINE, condition("c1", subject)]})
    result = await conn.fetch(fetch_request(categories=CONDITIONS))
    assert ids(result) == ["c1"]


class _Tamper(httpx.AsyncBaseTransport):
    """Passes requests to the store and rewrites every Condition's subject in the answers."""

    def __init__(self, inner: httpx.AsyncBaseTransport, subject: Any, **extra: Any) -> None:
        self.inner, self.subject, self.extra = inner, subject, extra

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        body = json.loads(response.content)
        for resource in _walk(body):
            if resource.get("resourceType") == "Condition":
                if self.subject is None:
                    resource.pop("subject", None)
                else:
                    resource["subject"] = self.subject
                resource.update(self.extra)
        return httpx.Response(response.status_code, json=body, headers={
            "content-type": "application/fhir+json"})


def _walk(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [r for v in value for r in _walk(v)]
    if not isinstance(value, dict):
        return []
    found = [value] if "resourceType" in value else []
    return found + [r for v in value.values() for r in _walk(v)]


def tampered(subject: Any, **extra: Any) -> Any:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, "plain")
    conn._http = httpx.AsyncClient(transport=_Tamper(recorder, subject, **extra))
    conn._capabilities._http = conn._http
    return conn


@pytest.mark.parametrize(("subject", "extra"), [
    ({"reference": "#pat"}, {"contained": [patient("pat", (FNR, NIN))]}),
    ({"identifier": {"system": FNR, "value": NIN}}, {}),
    ({"identifier": {"system": "http://hl7.no/fhir/NamingSystem/FNR", "value": NIN}}, {}),
], ids=["contained", "identifier", "identifier-alias"])
async def test_a_contained_or_identified_patient_is_accepted(subject: Any, extra: Any) -> None:
    result = await tampered(subject, **extra).fetch(fetch_request(categories=CONDITIONS))
    assert ids(result) == ["c1"]


@pytest.mark.parametrize(("subject", "extra"), [
    ({"reference": "Patient/p2"}, {}),
    ({"reference": "http://elsewhere.test/fhir/Patient/p1"}, {}),
    ({"reference": "Group/p1"}, {}),
    ({"display": "Arne"}, {}),
    (None, {}),
    ({"reference": "Patient/p1", "identifier": {"system": FNR, "value": OTHER}}, {}),
    ({"reference": "#pat"}, {"contained": [patient("pat", (FNR, OTHER))]}),
    ({"identifier": {"system": "HNR", "value": NIN}}, {}),
    ({"reference": "urn:uuid:0c3e"}, {}),
], ids=["other-id", "other-server", "other-type", "display-only", "missing",
        "other-identifier", "contained-other", "hnr-identifier", "unresolvable-urn"])
async def test_a_record_that_is_not_provably_the_patients_makes_the_store_invalid(
    subject: Any, extra: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(UpstreamInvalidError, match="another patient") as info:
        await tampered(subject, **extra).fetch(fetch_request(categories=CONDITIONS))
    assert NIN not in str(info.value)
    (record,) = [r for r in caplog.records if "another patient" in r.getMessage()]
    assert NIN not in record.getMessage()
    assert "p1" not in record.getMessage()


async def test_the_lenient_store_shows_no_item_of_any_other_patient() -> None:
    """A store that ignores every search parameter (sandbox profile `lenient`): INVALID."""
    held = [MINE, THEIRS, condition("c1", "Patient/p1"), condition("c2", "Patient/p2"),
            consent("hlr-other", "Patient/p2")]
    conn, _ = stores({"0301": held, "4601": [patient("b1", (FNR, NIN)),
                                             condition("b-c1", "Patient/b1")]}, "lenient")
    with pytest.raises(UpstreamInvalidError):
        await conn.fetch(fetch_request(municipalities=frozenset({"0301"})))


async def test_one_lenient_store_among_good_ones_is_partial_with_only_the_good_items() -> None:
    good, _ = stores({"0301": [MINE, condition("c1", "Patient/p1")]})
    bad, _ = stores({"4601": [THEIRS, MINE, condition("b2", "Patient/p2")]}, "lenient")
    good.stores["4601"] = bad.stores["4601"]
    good._http = httpx.AsyncClient(transport=_Route({"0301": good._http, "4601": bad._http}))
    good._capabilities._http = good._http
    result = await good.fetch(fetch_request(municipalities=frozenset({"0301", "4601"})))
    assert result.status is Status.PARTIAL
    assert ids(result) == ["c1"]
    assert result.detail is not None
    assert "'4601'" in result.detail


class _Route(httpx.AsyncBaseTransport):
    def __init__(self, by_store: dict[str, httpx.AsyncClient]) -> None:
        self.by_store = by_store

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        number = request.url.path.split("/municipal/")[1][:4]
        transport = self.by_store[number]._transport
        return await transport.handle_async_request(request)


async def test_outcome_and_include_entries_are_not_records() -> None:
    """Lenient handling reports an ignored parameter; `_include` brings the Patient: neither is
    an item, and an included other patient does not make the answer invalid."""
    held = [MINE, THEIRS, condition("c1", "Patient/p1")]
    conn, recorder = stores({"0301": held}, "full")
    result = await conn.fetch(fetch_request(categories=CONDITIONS))
    assert ids(result) == ["c1"]
    assert len(recorder.searches()) == 1


async def test_paging_follows_next_links_to_the_last_page() -> None:
    held = [MINE, *(condition(f"c{i}", "Patient/p1") for i in range(7))]
    conn, recorder = stores({"0301": held}, "paged")
    result = await conn.fetch(fetch_request(categories=CONDITIONS))
    assert ids(result) == sorted(f"c{i}" for i in range(7))
    assert result.status_for(Category.CONDITIONS) is Status.OK
    pages = [r for r in recorder.searches() if r.url.path.endswith("/Condition")]
    assert len(pages) == 4  # pages of 2


async def test_chained_search_with_more_pages_is_searched_again_by_reference() -> None:
    from sandbox.fhirsearch import StoreProfile

    chained_paged = StoreProfile("chained-paged", page_size=2)
    held = [MINE, *(condition(f"c{i}", "Patient/p1") for i in range(3))]
    conn, recorder = stores({"0301": held}, chained_paged)
    result = await conn.fetch(fetch_request(categories=CONDITIONS))
    assert ids(result) == ["c0", "c1", "c2"]
    for request in recorder.searches():
        assert NIN not in str(request.url)


class _Links(httpx.AsyncBaseTransport):
    """A store whose Condition pages link to `next_url` forever."""

    def __init__(self, inner: httpx.AsyncBaseTransport, next_url: str) -> None:
        self.inner, self.next_url, self.seen = inner, next_url, []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(str(request.url))
        if request.url.host != "store.test":
            return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})
        response = await self.inner.handle_async_request(request)
        await response.aread()
        body = json.loads(response.content)
        if body.get("type") == "searchset" and "Condition" in request.url.path:
            body["link"] = [{"relation": "next", "url": self.next_url}]
        return httpx.Response(response.status_code, json=body,
                              headers={"content-type": "application/fhir+json"})


@pytest.mark.parametrize("next_url", [
    f"{BASE}/0301/Condition?patient=Patient/p1&_offset=0",  # a loop
    "http://elsewhere.test/fhir/Condition?page=2",          # another host
    f"{BASE}/4601/Condition?patient=Patient/p1",           # another store on the same host
], ids=["loop", "other-host", "other-store"])
async def test_a_next_link_that_loops_or_leaves_the_store_gives_partial(next_url: str) -> None:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, "plain")
    links = _Links(recorder, next_url)
    conn._http = httpx.AsyncClient(transport=links)
    conn._capabilities._http = conn._http
    result = await conn.fetch(fetch_request(categories=CONDITIONS))
    assert ids(result) == ["c1"]
    assert result.status_for(Category.CONDITIONS) is Status.PARTIAL
    reason = result.reason_for(Category.CONDITIONS)
    assert reason is not None
    assert reason.code == "PARTIAL_ANSWER"
    assert "incomplete" in reason.detail
    assert not any("elsewhere" in u or "/4601/" in u for u in links.seen)
    assert len(links.seen) < 25  # the loop was cut


async def test_pages_past_the_deadline_give_partial_not_timeout() -> None:
    """The third page hangs: the first pages arrive and the category says PARTIAL when the
    budget (the last tenth kept back) runs out, instead of the whole store timing out."""
    held = [MINE, *(condition(f"c{i}", "Patient/p1") for i in range(5))]
    conn, recorder = stores({"0301": held}, "paged")

    class HangingThirdPage(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if "_offset=4" in str(request.url):
                await asyncio.Event().wait()  # never answers
            return await recorder.handle_async_request(request)

    conn._http = httpx.AsyncClient(transport=HangingThirdPage())
    conn._capabilities._http = conn._http
    result = await conn.fetch(fetch_request(categories=CONDITIONS, timeout=3.0))
    assert ids(result) == ["c0", "c1", "c2", "c3"]
    assert result.status_for(Category.CONDITIONS) is Status.PARTIAL


async def test_parameters_the_store_does_not_declare_are_not_sent() -> None:
    """A strict store without `scope` on Consent: one Consent search serves both uses."""
    from sandbox.fhirsearch import StoreProfile

    class NoScope(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            if not request.url.path.endswith("/metadata"):
                return response
            await response.aread()
            body = json.loads(response.content)
            for resource in body["rest"][0]["resource"]:
                resource["searchParam"] = [p for p in resource["searchParam"]
                                           if p["name"] != "scope"]
            return httpx.Response(200, json=body)

    sperr = consent("sperr", "Patient/p1", scope="patient-privacy")
    sperr["provision"] = {"type": "deny", "class": [{"code": "DocumentReference"}]}
    held = [MINE, consent("hlr", "Patient/p1"), sperr]
    conn, recorder = stores({"0301": held}, StoreProfile("plain-ish", batch=False,
                                                         chained=False))
    conn._http = httpx.AsyncClient(transport=NoScope(recorder))
    conn._capabilities._http = conn._http
    result = await conn.fetch(fetch_request(
        categories=frozenset({Category.TREATMENT_LIMITATIONS, Category.DOCUMENTS})))
    assert ids(result, Category.TREATMENT_LIMITATIONS) == ["hlr"]
    assert result.detail is not None
    assert "restricted records" in result.detail  # the privacy Consent was read too
    consents = [r for r in recorder.searches() if r.url.path.endswith("/Consent")]
    assert len(consents) == 1
    assert "scope" not in parse_qs(consents[0].url.query.decode())


async def test_a_block_of_the_requesting_professional_is_reported() -> None:
    block = consent("blokk", "Patient/p1", scope="patient-privacy")
    block["provision"] = {"type": "deny", "actor": [{
        "role": {"text": "blocked"},
        "reference": {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.4",
                                     "value": "9144901"}}}]}
    conn, _ = stores({"0301": [MINE, block, condition("c1", "Patient/p1")]})
    result = await conn.fetch(fetch_request())
    assert result.privacy.blocked_requester is True
    assert result.status_for(Category.CONDITIONS) is Status.OK  # not a restriction
    other = await conn.fetch(fetch_request(requester=fetch_request().requester.__class__(
        hpr_number="9144902", role_code="LE")))
    assert other.privacy.blocked_requester is False


async def test_metadata_is_fetched_once_and_a_store_without_it_still_answers() -> None:
    class NoMetadata(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner, self.asked = inner, 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/metadata"):
                self.asked += 1
                return httpx.Response(404, json={"resourceType": "OperationOutcome"})
            return await self.inner.handle_async_request(request)

    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, "plain")
    transport = NoMetadata(recorder)
    conn._http = httpx.AsyncClient(transport=transport)
    conn._capabilities._http = conn._http
    for _ in range(3):
        result = await conn.fetch(fetch_request(categories=CONDITIONS))
        assert ids(result) == ["c1"]
    assert transport.asked == 1  # kept (briefly) even when it failed

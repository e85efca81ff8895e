"""The legevakt query end to end with Oslo's store on an independent FHIR server, and on a
lenient store that answers every patient's records.

Oslo's store (0301) is Medplum's fhir-router (the interop host) loaded with the sandbox world
as transaction Bundles (`sandbox.fhirbundle`: every person Oslo knows, so the server holds
other patients' records too); the national sources are the sandbox. The gateway is the real
one over loopback HTTP, with `KILDE_CONNECTORS__MUNICIPAL__STORES` pointing 0301 at the host.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.demo import mint_token
from gateway.settings import Settings
from sandbox.app import create_app as create_sandbox
from sandbox.fhirbundle import patient_bundle, world_bundles
from sandbox.municipal_records import patient_id
from sandbox.world import PATIENTS, by_tag
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

QUERY = """query($nin: String!) { patient(nin: $nin) {
  alerts { kind title provenance { source municipality recordId } }
  treatmentLimitations { code { code } status provenance { source recordId municipality } }
  criticalInformation { type description severity provenance { source recordId municipality }
                        provenances { source recordId municipality } }
  medications { name provenances { source recordId municipality } }
  municipalServices { code { code } status phone provenance { source recordId municipality } }
  conditions { code { code } provenance { source recordId municipality } }
  documents { title provenance { source recordId municipality } }
  sources { source category status detail }
} }"""
HLR = by_tag("legevakt-hlr")
# A CAVE kept only in Oslo's own EPJ (not in Kjernejournal), added to what the store holds.
CAVE = {"resourceType": "AllergyIntolerance", "id": "cave-oslo-1",
        "meta": {"lastUpdated": "2026-03-01T10:00:00+01:00"},
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "code": "active"}]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "code": "confirmed"}]},
        "type": "allergy", "category": ["medication"], "criticality": "high",
        "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "N02AA01",
                             "display": "Morfin"}], "text": "Morfin"},
        "patient": {"reference": f"Patient/{patient_id('0301', HLR.nin)}"},
        "recordedDate": "2026-03-01T10:00:00+01:00",
        "reaction": [{"manifestation": [{"text": "Respirasjonsdepresjon"}],
                      "severity": "severe"}]}


FLAG = {"resourceType": "Flag", "id": "flag-oslo-1", "status": "active",
        "meta": {"lastUpdated": "2026-04-01T10:00:00+02:00"},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category",
                                  "code": "safety", "display": "Safety"}]}],
        "code": {"text": "Smitteregime: MRSA-bærer"},
        "subject": {"reference": f"Patient/{patient_id('0301', HLR.nin)}"},
        "period": {"start": "2026-04-01"}}


class Gateway:
    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings

    def ask(self, nin: str, persona: str = "legevakt-lege") -> dict[str, Any]:
        token = mint_token(persona, nin, issuer=self.settings.auth.issuer,
                           audience=self.settings.auth.audience)
        r = httpx.post(f"{self.url}/graphql", json={"query": QUERY, "variables": {"nin": nin}},
                       headers={"authorization": f"Bearer {token}"}, timeout=20)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


def _gateway(sandbox_url: str, oslo_store: str, audit: Path) -> Iterator[Gateway]:
    sock = listening_socket()
    settings = e2e_settings(port_of(sock), sandbox_url, f"sqlite:///{audit}", source_timeout=5.0)
    municipal = settings.connectors["municipal"]
    stores = {**municipal.stores, "0301": oslo_store}
    settings = replace(settings, connectors={
        **settings.connectors, "municipal": replace(municipal, stores=stores)})
    with running(demo_app(settings), sock) as gateway:
        yield Gateway(gateway.url, settings)


@pytest.fixture(scope="module")
def medplum_store(fhir_host: str) -> str:
    """The interop host loaded with everyone Oslo's store knows, one transaction per person."""
    for bundle in world_bundles("0301"):
        r = httpx.post(f"{fhir_host}/", json=bundle, timeout=30)
        assert r.status_code == 200, r.text
        assert all(e["response"]["status"].startswith("20") for e in r.json()["entry"])
    for extra in (CAVE, FLAG):
        r = httpx.put(f"{fhir_host}/{extra['resourceType']}/{extra['id']}", json=extra,
                      timeout=30)
        assert r.status_code in (200, 201), r.text
    return fhir_host


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with running(create_sandbox({})) as sandbox:
        yield sandbox.url


@pytest.fixture(scope="module")
def medplum_gateway(medplum_store: str, sandbox_url: str,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _gateway(sandbox_url, medplum_store,
                        tmp_path_factory.mktemp("medplum") / "audit.sqlite3")


def _municipal(items: list[dict[str, Any]], key: str = "provenance") -> list[dict[str, Any]]:
    return [i for i in items if i[key]["source"] == "municipal"]


def _municipal_ids(patient: dict[str, Any], field: str) -> set[str]:
    """Record ids of the municipal store's items in `field`; a critical item merged from
    several sources (d's shape stage) counts for each of its provenances."""
    return {p["recordId"] for i in patient[field]
            for p in (i.get("provenances") or [i["provenance"]]) if p["source"] == "municipal"}


def test_the_legevakt_query_gets_everything_oslos_independent_store_holds(
    medplum_gateway: Gateway,
) -> None:
    body = medplum_gateway.ask(HLR.nin)
    assert "errors" not in body, body.get("errors")
    patient = body["data"]["patient"]
    municipal = {s["category"]: s["status"] for s in patient["sources"]
                 if s["source"] == "municipal"}
    # everything answered; the one document labelled restricted (R) is withheld by policy
    assert municipal == {c: "OK" for c in municipal} | {"DOCUMENTS": municipal["DOCUMENTS"]}
    assert municipal["DOCUMENTS"] != "EMPTY"

    (hlr,) = patient["treatmentLimitations"]
    assert hlr["code"]["code"] == "304253006"
    assert hlr["provenance"] == {"source": "municipal", "recordId": "hlr-1",
                                 "municipality": "0301"}
    assert patient["alerts"][0]["kind"] == "TREATMENT_LIMITATION"
    assert patient["alerts"][0]["provenance"]["recordId"] == "hlr-1"

    (service,) = patient["municipalServices"]
    assert service["provenance"] == {"source": "municipal", "recordId": "svc-a1",
                                     "municipality": "0301"}
    assert service["phone"] == "+47 21 80 21 80"
    assert sorted(c["provenance"]["recordId"] for c in patient["conditions"]) == [
        "cond-a1", "cond-a2"]
    assert {c["provenance"]["municipality"] for c in patient["conditions"]} == {"0301"}
    assert [d["provenance"]["recordId"] for d in _municipal(patient["documents"])] == ["doc-a1"]
    administered = {p["recordId"] for m in patient["medications"] for p in m["provenances"]
                    if p["source"] == "municipal"}
    assert administered == {"adm-med-a1", "adm-med-a2", "adm-med-a3"}
    # the municipal administrations are linked with PLL and e-resept by treatment id
    linked = {m["name"]: {p["source"] for p in m["provenances"]} for m in patient["medications"]}
    assert {"municipal", "pll", "eresept"} <= linked["Furosemid 40 mg tablett"]

    critical = [(c, p) for c in patient["criticalInformation"] for p in c["provenances"]
                if p["source"] == "municipal"]
    assert sorted((c["type"], c["description"], p["recordId"], p["municipality"])
                  for c, p in critical) == [
        ("ALLERGY", "Morfin", "cave-oslo-1", "0301"),
        ("INFECTION", "Smitteregime: MRSA-bærer", "flag-oslo-1", "0301")]
    assert any(a["title"] == "CAVE Morfin" and a["provenance"]["source"] == "municipal"
               for a in patient["alerts"])
    # Kjernejournal's own CAVE still arrives beside it
    assert any(c["provenance"]["source"] == "kjernejournal"
               for c in patient["criticalInformation"])


FIELDS = {"Consent": ("treatmentLimitations", "TREATMENT_LIMITATIONS"),
          "EpisodeOfCare": ("municipalServices", "MUNICIPAL_SERVICES"),
          "Condition": ("conditions", "CONDITIONS"),
          "DocumentReference": ("documents", "DOCUMENTS"),
          "AllergyIntolerance": ("criticalInformation", "CRITICAL_INFORMATION")}


def test_every_other_person_in_the_independent_store_gets_only_their_own_records(
    medplum_gateway: Gateway,
) -> None:
    for person in PATIENTS:
        if person.municipality != "0301" or person.nin == HLR.nin:
            continue
        patient = medplum_gateway.ask(person.nin)["data"]["patient"]
        status = {s["category"]: s["status"] for s in patient["sources"]
                  if s["source"] == "municipal"}
        held = [e["resource"] for e in patient_bundle(person, "0301")["entry"]]
        for rtype, (field, category) in FIELDS.items():
            shown = _municipal_ids(patient, field)
            mine = {r["id"] for r in held if r["resourceType"] == rtype}
            assert shown <= mine, (person.tags, field)  # never another person's record
            if status.get(category) == "OK":  # all of it, unless policy withheld some
                assert shown == mine, (person.tags, field)
            else:
                assert status.get(category) in ("EMPTY", "RESTRICTED", "BLOCKED", "DENIED", None)
                assert status.get(category) != "EMPTY" or not mine, (person.tags, field)


@pytest.fixture(scope="module")
def lenient_gateway(sandbox_url: str, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Gateway]:
    """Oslo's store on a sandbox whose stores ignore every search parameter."""
    # a store of its own that trusts the same HelseID (the first sandbox's simulator)
    with running(create_sandbox({"KILDE_SANDBOX__MUNICIPAL__PROFILE": "lenient",
                                 "KILDE_SANDBOX__HELSEID__ISSUER": f"{sandbox_url}/helseid"})
                 ) as lenient:
        yield from _gateway(sandbox_url, f"{lenient.url}/municipal/0301",
                            tmp_path_factory.mktemp("lenient") / "audit.sqlite3")


@pytest.mark.parametrize("tag", ["legevakt-hlr", "multi-service", "no-data"])
def test_a_lenient_store_never_shows_another_patients_item(
    lenient_gateway: Gateway, tag: str
) -> None:
    body = lenient_gateway.ask(by_tag(tag).nin)
    patient = body["data"]["patient"]
    for field in ("treatmentLimitations", "municipalServices", "conditions", "documents",
                  "criticalInformation", "alerts"):
        assert _municipal(patient[field]) == [], field
    assert _municipal_ids(patient, "criticalInformation") == set()
    assert not any(p["source"] == "municipal" for m in patient["medications"]
                   for p in m["provenances"])
    statuses = {s["status"] for s in patient["sources"] if s["source"] == "municipal"}
    assert statuses == {"INVALID"}, patient["sources"]
    codes = {e["extensions"]["code"] for e in body.get("errors", [])}
    assert "UPSTREAM_INVALID" in codes

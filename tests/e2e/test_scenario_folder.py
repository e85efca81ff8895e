"""A vendor's own scenario patient, from a folder of FHIR Bundles, through Kilde over HTTP.

The rules hold for data Kilde has never seen: this patient's HLR-minus (another SNOMED code
than the sandbox's) sits in the municipal store and a full-treatment decision written in words
only sits in Kjernejournal; Kilde finds the conflict by meaning and says so first.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import orjson
import pytest

from connectors.identifiers import make_nin
from sandbox import world
from sandbox.app import create_app as create_sandbox
from sandbox.scenarios import export_patient
from tests.e2e.client import Client
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

NIN = next(n for i in range(370, 500) if (n := make_nin(date(1947, 4, 4), i)))
QUERY = """query($nin: String!) { patient(nin: $nin) {
  alerts { kind itemIds meaning provenance { source } }
  treatmentLimitations { id meaning conflictsWith { source recordId } } } }"""
VENDOR = world.Patient(
    nin=NIN, name="Kåre Leverandørsen", born=date(1947, 4, 4), gender="male",
    municipality="0301", tags=("vendor-conflict",),
    treatment_limitations=(
        world.TreatmentLimitationFact(
            id="v-dnacpr", code="450476008", display="Not for attempted CPR",
            description="Ikke forsøk hjerte-lunge-redning.",
            decided_at=datetime.fromisoformat("2026-02-01T09:00:00+01:00"),
            decided_by="Sykehjemslege", reason="Pasientens ønske", where=world.MUNICIPAL,
            municipality="0301", organisation="950000007"),
        world.TreatmentLimitationFact(
            id="v-full", code="LOCAL-7", display="Full behandling, også HLR",
            description="Full behandling inkludert HLR etter ny samtale.",
            decided_at=datetime.fromisoformat("2026-11-15T12:00:00+01:00"),
            decided_by="Fastlege", reason="Pasienten har endret mening",
            where=world.KJERNEJOURNAL, system="urn:oid:2.16.578.1.12.4.1.9999"),
    ),
)


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    folder = tmp_path_factory.mktemp("scenarios")
    (Path(folder) / "kare.json").write_bytes(orjson.dumps(export_patient(VENDOR)))
    audit = tmp_path_factory.mktemp("vendor-audit") / "audit.sqlite3"
    with running(create_sandbox({"KILDE_SANDBOX__SCENARIOS": str(folder)})) as sandbox:
        sock = listening_socket()
        settings = e2e_settings(port_of(sock), sandbox.url, f"sqlite:///{audit}")
        with running(demo_app(settings), sock) as gateway:
            client = Client(gateway.url, sandbox.url, settings)
            yield client
            client.close()


def test_a_vendors_patient_is_listed_by_the_sandbox(vendor: Client) -> None:
    listed = vendor.http.get(f"{vendor.sandbox_url}/_sandbox/patients").json()
    assert {"nin": NIN, "name": "Kåre Leverandørsen", "municipality": "0301",
            "tags": ["vendor-conflict"]} in listed


def test_a_vendors_conflicting_decisions_are_found_by_meaning(vendor: Client) -> None:
    body = vendor.query(QUERY, vendor.token("legevakt-lege", NIN), {"nin": NIN})
    patient = body["data"]["patient"]
    first = patient["alerts"][0]
    assert (first["kind"], first["itemIds"]) == ("CONFLICT", ["v-full", "v-dnacpr"])
    assert {t["id"]: (t["meaning"], [c["recordId"] for c in t["conflictsWith"]])
            for t in patient["treatmentLimitations"]} == {
        "v-full": ("FULL_TREATMENT", ["v-dnacpr"]),
        "v-dnacpr": ("HLR_MINUS", ["v-full/1"])}

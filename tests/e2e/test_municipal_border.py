"""The municipal border over real HTTP: a store's data leaves its municipality only by agreement.

The session gateway has no agreements; a second gateway, on the same sandbox, is configured with
`agreements=(("4601", "0301"),)`: Bergen's store may be seen by Oslo's personnel, not the
reverse. The sandbox counts requests per municipal store, so "not delivered" is also "not asked".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from sandbox.world import by_tag
from tests.e2e.client import Client
from tests.e2e.conftest import Stack
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

BERGEN_PATIENT = by_tag("other-municipality")
OSLO_PATIENT = by_tag("multi-service")
QUERY = """query($nin: String!) { patient(nin: $nin) {
  treatmentLimitations { provenance { source recordId municipality } }
  municipalServices { status provenance { source recordId municipality } }
  conditions { provenance { source recordId municipality } }
  criticalInformation { provenance { source } }
  sources { source category status fromCache } } }"""


def _stores(gw: Client) -> set[str]:
    """The municipal stores that were asked anything at all (searches, or the
    CapabilityStatement the connector reads once per store and keeps)."""
    return {store for store, count in gw.requests_below("municipal").items() if count}


def _municipal(patient: dict[str, Any]) -> set[tuple[str, str]]:
    """(recordId, municipality) of every item that came from a municipal store."""
    return {(i["provenance"]["recordId"], i["provenance"]["municipality"])
            for field in ("treatmentLimitations", "municipalServices", "conditions")
            for i in patient[field]}


@pytest.fixture(scope="module")
def plain(stack: Stack) -> Iterator[Client]:
    """The session gateway: no agreements."""
    stack.reset()
    client = Client(stack.gateway.url, stack.sandbox.url, stack.settings)
    yield client
    client.close()


@pytest.fixture(scope="module")
def agreed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A second gateway on the same sandbox, with Bergen -> Oslo configured; no cache, so every
    query reaches the stores it may."""
    audit = tmp_path_factory.mktemp("agreed-audit") / "audit.sqlite3"
    sock = listening_socket()
    settings = e2e_settings(port_of(sock), stack.sandbox.url, f"sqlite:///{audit}",
                            agreements=(("4601", "0301"),))
    settings = replace(settings, cache=replace(settings.cache, enabled=False))
    with running(demo_app(settings), sock) as gateway:
        client = Client(gateway.url, stack.sandbox.url, settings)
        yield client
        client.close()


def _ask(gw: Client, persona: str, nin: str) -> dict[str, Any]:
    gw.reset_counts()
    body = gw.query(QUERY, gw.token(persona, nin), {"nin": nin})
    assert "errors" not in body, body.get("errors")
    patient: dict[str, Any] = body["data"]["patient"]
    assert not any(r["fromCache"] for r in patient["sources"] if r["source"] == "municipal")
    return patient


def test_without_an_agreement_an_oslo_nurse_never_reaches_bergens_store(plain: Client) -> None:
    patient = _ask(plain, "hjemmesykepleier", BERGEN_PATIENT.nin)
    assert _municipal(patient) == set()
    assert patient["criticalInformation"]  # the national sources still answer
    assert _stores(plain) == {"0301"}


def test_with_the_agreement_an_oslo_nurse_gets_bergens_store_data(agreed: Client) -> None:
    patient = _ask(agreed, "hjemmesykepleier", BERGEN_PATIENT.nin)
    assert _municipal(patient) == {("tl-e1", "4601"), ("svc-e1", "4601"), ("cond-e1", "4601"),
                                   ("cond-e2", "4601")}
    assert [s["status"] for s in patient["municipalServices"]] == ["active"]
    assert _stores(agreed) == {"0301", "4601"}


def test_the_agreement_is_one_way_the_bergen_nurse_gets_nothing_from_oslo(agreed: Client) -> None:
    patient = _ask(agreed, "hjemmesykepleier-bergen", OSLO_PATIENT.nin)
    assert _municipal(patient) == set()
    assert patient["criticalInformation"]
    assert _stores(agreed) == {"4601"}


def test_the_agreement_names_oslo_only_trondheim_stays_outside(agreed: Client) -> None:
    patient = _ask(agreed, "lege-annen-kommune", BERGEN_PATIENT.nin)
    assert _municipal(patient) == set()
    assert _stores(agreed) == {"5001"}


def test_the_bergen_nurse_sees_her_own_municipalitys_store_either_way(plain: Client) -> None:
    patient = _ask(plain, "hjemmesykepleier-bergen", BERGEN_PATIENT.nin)
    assert ("svc-e1", "4601") in _municipal(patient)
    assert _stores(plain) == {"4601"}

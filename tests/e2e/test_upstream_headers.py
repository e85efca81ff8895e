"""Sources can enforce too: every upstream call carries the caller's role and access basis.

A gateway in front of a sandbox wrapped in a recorder: each persona's query is answered over
real loopback HTTP, and the recorder shows what each of the five sources was told, in the
headers (or, for SFM's `$getMedication`, the Parameters body) that source expects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import jwt
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.credentials import access_token_hash, load_private_key
from gateway.demo import mint_token
from gateway.settings import Settings
from sandbox.app import create_app as create_sandbox
from sandbox.helseid import RESOURCES, key_file
from sandbox.world import by_tag
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

PROFESSION = "urn:oid:2.16.578.1.12.4.1.1.9060"
FIVE = ("municipal", "kjernejournal", "pll", "eresept", "proevesvar")
QUERY = """query($nin: String!, $reason: String) { patient(nin: $nin, emergencyReason: $reason) {
  treatmentLimitations { code { code } } criticalInformation { type } medications { name }
  labResults { code { code } } municipalServices { status } conditions { code { code } }
  documents { title } sources { source category status } } }"""
MULTI = by_tag("multi-service")


@dataclass(frozen=True)
class Seen:
    source: str
    path: str
    headers: dict[str, str]
    body: bytes


class Recorder:
    """ASGI middleware in front of the sandbox: remembers every upstream request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[Seen] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source = scope.get("path", "").lstrip("/").split("/", 1)[0]
        if scope["type"] != "http" or source not in FIVE:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.seen.append(Seen(source, scope["path"], headers, body))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@dataclass
class Recorded:
    recorder: Recorder
    gateway_url: str
    settings: Settings
    last_caller_token: str = ""

    def ask(self, persona: str, reason: str | None = None, nin: str = MULTI.nin,
            **token: Any) -> dict[str, list[Seen]]:
        self.recorder.seen.clear()
        bearer = mint_token(persona, nin, issuer=self.settings.auth.issuer,
                            audience=self.settings.auth.audience, **token)
        self.last_caller_token = bearer
        r = httpx.post(f"{self.gateway_url}/graphql",
                       json={"query": QUERY, "variables": {"nin": nin, "reason": reason}},
                       headers={"authorization": f"Bearer {bearer}"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["patient"] is not None
        by_source: dict[str, list[Seen]] = {s: [] for s in FIVE}
        for seen in self.recorder.seen:
            by_source[seen.source].append(seen)
        return by_source


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    recorder = Recorder(create_sandbox({}))
    audit: Path = tmp_path_factory.mktemp("headers-audit") / "audit.sqlite3"
    with running(recorder) as sandbox:
        sock = listening_socket()
        settings = e2e_settings(port_of(sock), sandbox.url, f"sqlite:///{audit}")
        # no cache: every query must reach the upstreams for the recorder to see it
        settings = replace(settings, cache=replace(settings.cache, enabled=False))
        with running(demo_app(settings), sock) as gateway:
            yield Recorded(recorder, gateway.url, settings)


def _role(value: str) -> dict[str, str]:
    return json.loads(unquote(value))  # type: ignore[no-any-return]


def _sfm_parameters(seen: Seen) -> dict[str, Any]:
    body = json.loads(seen.body)
    return {p["name"]: p.get("valueCode", p.get("valueBoolean")) for p in body["parameter"]
            if p["name"] != "patient"}


# persona, emergency reason -> role code, purpose, our access basis, SFM's SamtykkeKjernejournal
CASES = [
    ("legevakt-lege", None, "LE", "ETREAT", "SAMTYKKE", "HPMOTTATTSAMTYKKE"),
    ("legevakt-lege", "Bevisstløs ved ankomst", "LE", "ETREAT", "FORHOYET_AKUTT", "HPAKUTT"),
    ("hjemmesykepleier", None, "SP", "TREAT", "SAMTYKKE", "HPMOTTATTSAMTYKKE"),
    # an emergency reason without an emergency purpose is BAD_USER_INPUT before any call
    # (tests/e2e/test_emergency.py), so it elevates nothing either
]


@pytest.mark.parametrize(("persona", "reason", "role", "purpose", "basis", "samtykke"), CASES)
def test_every_source_is_told_the_callers_role_and_access_basis(
    recorded: Recorded, persona: str, reason: str | None, role: str, purpose: str, basis: str,
    samtykke: str,
) -> None:
    calls = recorded.ask(persona, reason)
    assert all(calls[s] for s in FIVE), {s: len(c) for s, c in calls.items()}
    elevated = basis.startswith("FORHOYET")

    for seen in calls["municipal"]:
        assert _role(seen.headers["nhn-user-role"]) == {"system": PROFESSION, "code": role}
        assert seen.headers["nhn-purpose-of-use"] == purpose
        assert seen.headers["nhn-access-basis"] == basis
    for seen in calls["kjernejournal"]:
        assert _role(seen.headers["nhn-user-role"]) == {"system": PROFESSION, "code": role}
        assert seen.headers["nhn-access-basis"] == basis
        assert seen.headers["nhn-user-hpr"]
    for source in ("pll", "eresept"):
        for seen in calls[source]:
            assert _role(seen.headers["nhn-user-role"]) == {"system": PROFESSION, "code": role}
            params = _sfm_parameters(seen)
            assert params["SamtykkeKjernejournal"] == samtykke
            assert params["SamtykkeSperretLegemidler"] is elevated
    for seen in calls["proevesvar"]:
        assert seen.headers["requester-hpr-role"] == role
        assert seen.headers["access-basis"] == basis


def test_the_patient_never_travels_in_an_upstream_url(recorded: Recorded) -> None:
    calls = recorded.ask("legevakt-lege", "Bevisstløs ved ankomst")
    for seen in (s for found in calls.values() for s in found):
        assert MULTI.nin not in seen.path


def test_a_case_handler_without_profession_sends_no_role_and_the_exception_basis(
    recorded: Recorded,
) -> None:
    calls = recorded.ask("saksbehandler")
    assert [s for s in FIVE if calls[s]] == ["municipal"]
    for seen in calls["municipal"]:
        assert "nhn-user-role" not in seen.headers
        assert seen.headers["nhn-purpose-of-use"] == "COC"
        assert seen.headers["nhn-access-basis"] == "UNNTAK"


@pytest.mark.parametrize(("persona", "searched", "silent"), [
    ("legevakt-lege", {"Consent", "EpisodeOfCare", "Condition", "MedicationAdministration",
                       "DocumentReference", "AllergyIntolerance", "Flag"}, set()),
    ("hjemmesykepleier", {"Consent", "EpisodeOfCare", "Condition", "MedicationAdministration",
                          "AllergyIntolerance", "Flag"}, set()),
    ("helsefagarbeider", {"Consent", "EpisodeOfCare", "MedicationAdministration",
                          "AllergyIntolerance", "Flag"}, {"proevesvar"}),
    ("saksbehandler", {"EpisodeOfCare"}, {"kjernejournal", "pll", "eresept", "proevesvar"}),
])
def test_a_forbidden_section_is_not_even_searched_for_in_a_store_that_serves_others(
    recorded: Recorded, persona: str, searched: set[str], silent: set[str]
) -> None:
    calls = recorded.ask(persona)
    assert {s for s in FIVE if not calls[s]} == silent
    # the store's CapabilityStatement is fetched once and kept; the searches are one batch
    (batch,) = [c for c in calls["municipal"] if not c.path.endswith("/metadata")]
    urls = [e["request"]["url"] for e in json.loads(batch.body)["entry"]]
    assert urls[0].startswith("Patient?identifier=")  # the patient is resolved first
    # the patient-privacy Consent search always goes along: it is how a store says "restricted"
    assert {url.split("?")[0] for url in urls[1:-1]} == searched
    assert "scope=patient-privacy" in urls[-1]


def test_every_upstream_call_carries_its_own_dpop_bound_token_never_the_callers(
        recorded: Recorded) -> None:
    """What each source sees (RFC 8707, RFC 9449): a token for its own resource only, from
    the sandbox's HelseID, bound to Kilde's DPoP key, with a fresh proof for that request."""
    calls = recorded.ask("legevakt-lege", "Bevisstløs ved ankomst")
    dpop_key = load_private_key(key_file("kilde-dpop.json"))
    proofs = set()
    for source in FIVE:
        assert calls[source], source
        for seen in calls[source]:
            scheme, _, token = seen.headers["authorization"].partition(" ")
            assert scheme == "DPoP"
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["aud"] == RESOURCES[source][0], source
            assert claims["iss"] == recorded.settings.helseid.issuer
            assert claims["cnf"] == {"jkt": dpop_key.thumbprint}
            assert claims["client_id"] == "kilde"
            proof = jwt.decode(seen.headers["dpop"], options={"verify_signature": False})
            assert proof["ath"] == access_token_hash(token)
            assert proof["htu"].endswith(seen.path)
            proofs.add(proof["jti"])
    assert len(proofs) == sum(len(c) for c in calls.values())  # one fresh proof per call
    assert not any(recorded.last_caller_token in value for c in calls.values() for seen in c
                   for value in seen.headers.values())

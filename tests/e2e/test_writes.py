"""Writes over HTTP against a demo gateway and its own sandbox (#17): the mutation reaches the
owning municipal store once, comes back with that store's provenance, shows in the next read,
is safe to repeat, decided, and audited before and after."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.audit import AuditEvent
from gateway.demo import mint_token
from gateway.settings import Settings
from sandbox import world
from sandbox.app import create_app as create_sandbox
from tests.e2e.auditing import kilde_audit_verify, read_events
from tests.servers import ServerThread, demo_app, e2e_settings, listening_socket, port_of, running

MULTI = world.by_tag("multi-service").nin  # home 0301 (Oslo)
HOLIDAY = world.by_tag("holiday").nin  # home 0301, seen by the Trondheim legevakt
RECORD = """
mutation Record($nin: String!, $input: TreatmentLimitationInput!) {
  recordTreatmentLimitation(nin: $nin, input: $input) {
    id code { system code display } status decidedBy decidedAt reason meaning
    provenance { source recordId municipality fromCache }
  }
}"""
ALERTS = """
query($nin: String!) { patient(nin: $nin) {
  alerts { kind meaning title itemId provenance { source recordId municipality } }
  treatmentLimitations { id provenance { recordId } }
} }"""
HLR = {"code": "304253006", "display": "Ikke gjenoppliv (HLR-minus)",
       "decidedBy": "Dr. Sykehjem", "reason": "Pasientens ønske, drøftet med pårørende",
       "decidedAt": "2026-11-30T10:00:00+01:00"}


class WriteStack:
    def __init__(self, gateway: ServerThread, sandbox: ServerThread, settings: Settings,
                 audit_url: str) -> None:
        self.gateway, self.sandbox, self.settings, self.audit_url = (gateway, sandbox,
                                                                     settings, audit_url)
        self.http = httpx.Client(timeout=15.0)

    def token(self, persona: str, patient: str) -> str:
        return mint_token(persona, patient, issuer=self.settings.auth.issuer,
                          audience=self.settings.auth.audience)

    def post(self, query: str, token: str, variables: dict[str, Any],
             key: str | None = None) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {token}"}
        if key is not None:
            headers["idempotency-key"] = key
        r = self.http.post(f"{self.gateway.url}/graphql", headers=headers,
                           json={"query": query, "variables": variables})
        assert r.status_code in (200, 503), r.text[:500]
        return r.json()  # type: ignore[no-any-return]

    def written(self) -> dict[str, dict[str, int]]:
        return self.http.get(f"{self.sandbox.url}/_sandbox/written").json()  # type: ignore[no-any-return]

    def municipal_requests(self) -> int:
        return int(self.http.get(f"{self.sandbox.url}/_sandbox/requests").json()["municipal"])

    def consents(self, number: str = "0301") -> int:
        return self.written().get(number, {}).get("Consent", 0)

    def reset_counts(self) -> None:
        self.http.delete(f"{self.sandbox.url}/_sandbox/requests")

    def events(self) -> list[AuditEvent]:
        return read_events(self.audit_url)


@pytest.fixture(scope="module")
def writes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WriteStack]:
    folder = tmp_path_factory.mktemp("writes")
    policy = folder / "policy.toml"
    policy.write_text('[[agreements]]\nprovider = "0301"\nconsumer = "5001"\nwrite = true\n')
    audit_url = f"sqlite:///{folder / 'audit.sqlite3'}"
    with running(create_sandbox({})) as sandbox:
        sock = listening_socket()
        settings = e2e_settings(port_of(sock), sandbox.url, audit_url, source_timeout=3.0,
                                policy_file=str(policy))
        with running(demo_app(settings), sock) as gateway:
            stack = WriteStack(gateway, sandbox, settings, audit_url)
            yield stack
            stack.http.close()


def _input(**changes: Any) -> dict[str, Any]:
    return {**HLR, "clientIdentifier": uuid.uuid4().hex, **changes}


def test_the_legevakt_physician_records_hlr_minus_and_the_next_read_shows_it_first(
        writes: WriteStack) -> None:
    token = writes.token("legevakt-lege", MULTI)
    before = writes.written().get("0301", {}).get("Consent", 0)
    body = writes.post(RECORD, token, {"nin": MULTI, "input": _input()})
    assert "errors" not in body, body
    made = body["data"]["recordTreatmentLimitation"]
    assert made["provenance"]["source"] == "municipal"
    assert made["provenance"]["municipality"] == "0301"
    assert made["provenance"]["fromCache"] is False
    assert made["meaning"] == "HLR_MINUS"
    assert made["status"] == "active"
    assert made["code"] == {"system": "http://snomed.info/sct", "code": "304253006",
                            "display": "Ikke gjenoppliv (HLR-minus)"}
    assert writes.written()["0301"]["Consent"] == before + 1
    patient = writes.post(ALERTS, token, {"nin": MULTI})["data"]["patient"]
    first = patient["alerts"][0]
    assert (first["kind"], first["meaning"]) == ("TREATMENT_LIMITATION", "HLR_MINUS")
    assert first["provenance"]["recordId"] == made["provenance"]["recordId"]


def _code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


def test_the_same_idempotency_key_returns_the_first_result_and_records_nothing_new(
        writes: WriteStack) -> None:
    token = writes.token("legevakt-lege", MULTI)
    key = uuid.uuid4().hex
    variables = {"nin": MULTI, "input": {**HLR}}  # no clientIdentifier: the key alone
    first = writes.post(RECORD, token, variables, key=key)["data"]["recordTreatmentLimitation"]
    count = writes.consents()
    writes.reset_counts()
    again = writes.post(RECORD, token, variables, key=key)["data"]["recordTreatmentLimitation"]
    assert again == first
    assert writes.consents() == count  # nothing new in the store
    assert writes.municipal_requests() == 0  # answered from the first result
    # the same key for another write is refused, not answered with the wrong record
    other = writes.post(RECORD, token, {"nin": MULTI, "input": {**HLR, "reason": "Annet"}},
                        key=key)
    assert _code(other) == "BAD_USER_INPUT"
    assert other["data"] is None
    assert writes.consents() == count


def test_the_same_client_identifier_records_once(writes: WriteStack) -> None:
    token = writes.token("legevakt-lege", MULTI)
    variables = {"nin": MULTI, "input": _input()}
    first = writes.post(RECORD, token, variables)["data"]["recordTreatmentLimitation"]
    count = writes.consents()
    again = writes.post(RECORD, token, variables)["data"]["recordTreatmentLimitation"]
    # no Idempotency-Key: the store's conditional create found the first record
    assert again["provenance"]["recordId"] == first["provenance"]["recordId"]
    assert writes.consents() == count


@pytest.mark.parametrize(("persona", "reason"), [
    ("hjemmesykepleier", "WRITE_NOT_PERMITTED"),  # a nurse does not decide HLR-minus
    ("helsefagarbeider", "WRITE_NOT_PERMITTED"),
    ("saksbehandler", "WRITE_NOT_PERMITTED"),  # COC, no profession
])
def test_a_persona_the_write_policy_denies_gets_forbidden_and_the_store_sees_nothing(
        writes: WriteStack, persona: str, reason: str) -> None:
    token = writes.token(persona, MULTI)
    count = writes.consents()
    writes.reset_counts()
    body = writes.post(RECORD, token, {"nin": MULTI, "input": _input()})
    assert body["data"] is None
    assert _code(body) == "FORBIDDEN"
    assert body["errors"][0]["extensions"]["reason"] == reason
    assert writes.municipal_requests() == 0
    assert writes.consents() == count
    denied = [e for e in writes.events() if e.outcome == "DENIED" and e.reason == reason
              and e.patient_nin == MULTI]
    assert denied, "the denied write is audited"


def test_no_care_relationship_no_write(writes: WriteStack) -> None:
    token = writes.token("legevakt-lege", HOLIDAY)  # attested for another patient
    writes.reset_counts()
    body = writes.post(RECORD, token, {"nin": MULTI, "input": _input()})
    assert _code(body) == "FORBIDDEN"
    assert body["errors"][0]["extensions"]["reason"] == "CARE_RELATIONSHIP_MISSING"
    assert writes.municipal_requests() == 0


def test_writes_across_the_border_need_a_write_agreement(writes: WriteStack) -> None:
    # Trondheim's legevakt (5001) and the holiday patient from Oslo (0301): the policy file
    # of this stack lets 5001 write to 0301's store, and nothing else
    trondheim = writes.token("lege-annen-kommune", HOLIDAY)
    count = writes.consents("0301")
    made = writes.post(RECORD, trondheim, {"nin": HOLIDAY,
                                           "input": _input(municipality="0301")})
    assert "errors" not in made, made
    assert made["data"]["recordTreatmentLimitation"]["provenance"]["municipality"] == "0301"
    assert writes.consents("0301") == count + 1
    writes.reset_counts()
    bergen = writes.post(RECORD, trondheim, {"nin": HOLIDAY,
                                             "input": _input(municipality="4601")})
    assert bergen["errors"][0]["extensions"]["reason"] == "WRITE_MUNICIPAL_BORDER"
    # the agreement runs one way: Oslo may not write in Trondheim's store
    oslo = writes.post(RECORD, writes.token("legevakt-lege", MULTI),
                       {"nin": MULTI, "input": _input(municipality="5001")})
    assert oslo["errors"][0]["extensions"]["reason"] == "WRITE_MUNICIPAL_BORDER"
    assert writes.municipal_requests() == 0


def test_a_store_without_the_patient_rejects_the_write(writes: WriteStack) -> None:
    # Trondheim's own store (the default: the caller's municipality) has no record of her
    trondheim = writes.token("lege-annen-kommune", HOLIDAY)
    body = writes.post(RECORD, trondheim, {"nin": HOLIDAY, "input": _input()})
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "UPSTREAM_REJECTED"
    assert error["extensions"]["source"] == "municipal"
    assert error["extensions"]["issues"] == ["not-found"]
    assert error["extensions"]["writeOutcome"] == "NOT_WRITTEN"
    assert writes.written().get("5001", {}) == {}


def test_the_stores_operation_outcome_becomes_upstream_rejected_with_its_issue_codes(
        writes: WriteStack) -> None:
    token = writes.token("legevakt-lege", MULTI)
    count = writes.consents()
    # valid R4 and valid input, but dated before the patient's birth: the store says no
    body = writes.post(RECORD, token, {"nin": MULTI, "input": _input(
        decidedAt="1930-01-01T10:00:00+01:00")})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "UPSTREAM_REJECTED"
    assert error["extensions"]["issues"] == ["business-rule"]
    assert MULTI not in error["message"]
    assert "1930" not in error["message"]
    assert writes.consents() == count
    rejected = [e for e in writes.events() if e.outcome == "WRITE_REJECTED"
                and e.patient_nin == MULTI]
    assert rejected
    assert rejected[-1].reason == "UPSTREAM_REJECTED"


@pytest.mark.parametrize(("change", "field"), [
    ({"code": "304253007"}, "input.code"),  # SNOMED CT check digit wrong
    ({"code": "22298006", "display": None}, "input.code"),  # a concept, not a limitation
    ({"decidedAt": "2026-11-30T10:00:00"}, "input.decidedAt"),  # no time zone
    ({"decidedAt": "2999-01-01T10:00:00Z"}, "input.decidedAt"),  # the future
    ({"decidedBy": "  "}, "input.decidedBy"),
    ({"reason": "x" * 2001}, "input.reason"),
    ({"reason": "bad\x1b[2Jtext"}, "input.reason"),
    ({"system": "not a uri"}, "input.system"),
    ({"validUntil": "2020-01-01"}, "input.validUntil"),
    ({"municipality": "03"}, "input.municipality"),
    ({"clientIdentifier": "has space"}, "input.clientIdentifier"),
])
def test_bad_input_is_a_field_level_bad_user_input_and_reaches_no_store(
        writes: WriteStack, change: dict[str, Any], field: str) -> None:
    token = writes.token("legevakt-lege", MULTI)
    writes.reset_counts()
    body = writes.post(RECORD, token, {"nin": MULTI, "input": _input(**change)})
    assert _code(body) == "BAD_USER_INPUT", body
    assert body["errors"][0]["extensions"].get("field", field) == field
    assert writes.municipal_requests() == 0


def test_audit_holds_attempt_and_outcome_and_verifies(writes: WriteStack) -> None:
    token = writes.token("legevakt-lege", MULTI)
    made = writes.post(RECORD, token, {"nin": MULTI, "input": _input()})
    record_id = made["data"]["recordTreatmentLimitation"]["provenance"]["recordId"]
    events = writes.events()
    written = [e for e in events if e.outcome == "WRITTEN" and e.record_id == record_id]
    assert len(written) == 1
    outcome = written[0]
    attempts = [e for e in events if e.event_id == outcome.attempt_id]
    assert len(attempts) == 1
    assert attempts[0].outcome == "WRITE_ATTEMPTED"
    attempt = attempts[0]
    assert events.index(attempt) < events.index(outcome)
    for event in (attempt, outcome):
        assert (event.action, event.record_category, event.record_store) == (
            "create", "treatment_limitations", "0301")
        assert event.patient_nin == MULTI
        assert event.actor_hpr == "9144901"
        assert event.request_id == attempt.request_id
    verified = kilde_audit_verify(writes.audit_url)  # `kilde audit verify` as a user runs it
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # the patient sees who recorded what kind of record about them (innsyn), never its text
    citizen = writes.token("innbygger", MULTI)
    log = writes.post("{ myAccessLog(first: 50) { edges { node { outcome reason who "
                      "categories } } } }", citizen, {})["data"]["myAccessLog"]["edges"]
    written = [(e["node"]["who"], e["node"]["categories"]) for e in log
               if e["node"]["outcome"] == "WRITTEN"]
    assert ("Ingrid Vaktmo", ["treatment_limitations"]) in written


def test_the_write_reaches_the_store_with_the_stores_own_token(writes: WriteStack) -> None:
    before = writes.http.get(f"{writes.sandbox.url}/_sandbox/auth").json()["municipal"]
    made = writes.post(RECORD, writes.token("legevakt-lege", MULTI), {"nin": MULTI,
                                                                      "input": _input()})
    assert "errors" not in made, made
    after = writes.http.get(f"{writes.sandbox.url}/_sandbox/auth").json()["municipal"]
    assert after["accepted"] > before["accepted"]  # DPoP-bound, for the store's audience
    assert after["refused"] == before["refused"]
    assert set(after["audiences_seen"]) == {after["audience"]}


NOTE = """
mutation($nin: String!, $input: ClinicalNoteInput!) {
  recordClinicalNote(nin: $nin, input: $input) {
    id title author status type { system code } provenance { source recordId municipality }
  }
}"""
ADMINISTRATION = """
mutation($nin: String!, $input: MedicationAdministrationInput!) {
  recordMedicationAdministration(nin: $nin, input: $input) {
    name status code { system code } dosage { text }
    provenance { source recordId municipality } records { provenance { recordId } }
  }
}"""


def test_the_legevakt_sends_its_visit_note_to_the_home_municipality(writes: WriteStack) -> None:
    # Trondheim's legevakt saw the Oslo patient on holiday: the note goes to Oslo's store,
    # which the agreement of this stack lets it write to
    token = writes.token("lege-annen-kommune", HOLIDAY)
    body = writes.post(NOTE, token, {"nin": HOLIDAY, "input": {
        "typeCode": "J01", "typeDisplay": "Legevaktnotat", "title": "Legevaktbesøk",
        "text": "Sett på legevakt for fall. Ingen brudd.\nHjemmesykepleien bes følge opp.",
        "author": "Eva Nidaros", "date": "2026-11-30T22:15:00+01:00",
        "municipality": "0301", "clientIdentifier": uuid.uuid4().hex}})
    assert "errors" not in body, body
    note = body["data"]["recordClinicalNote"]
    assert (note["title"], note["author"], note["status"]) == (
        "Legevaktbesøk", "Eva Nidaros", "current")
    assert note["provenance"]["municipality"] == "0301"
    oslo = writes.token("legevakt-lege", HOLIDAY)  # Oslo's physician reads it in Oslo's store
    docs = writes.post("query($nin: String!) { patient(nin: $nin) { documents { id } } }",
                       oslo, {"nin": HOLIDAY})["data"]["patient"]["documents"]
    assert note["id"] in [d["id"] for d in docs]


def test_a_nurse_records_a_medication_administration(writes: WriteStack) -> None:
    token = writes.token("hjemmesykepleier", MULTI)
    body = writes.post(ADMINISTRATION, token, {"nin": MULTI, "input": {
        "atcCode": "B01AF01", "name": "Xarelto 20 mg tablett", "dose": "1 tablett",
        "administeredAt": "2026-11-30T20:00:00+01:00", "administeredBy": "Jonas Hjemdal",
        "clientIdentifier": uuid.uuid4().hex}})
    assert "errors" not in body, body
    made = body["data"]["recordMedicationAdministration"]
    assert made["code"] == {"system": "http://www.whocc.no/atc", "code": "B01AF01"}
    assert made["dosage"] == {"text": "1 tablett"}
    assert made["provenance"]["municipality"] == "0301"
    bad = writes.post(ADMINISTRATION, token, {"nin": MULTI, "input": {
        "atcCode": "warfarin", "name": "x", "dose": "1", "administeredAt":
        "2026-11-30T20:00:00+01:00", "administeredBy": "J"}})
    assert _code(bad) == "BAD_USER_INPUT"
    assert bad["errors"][0]["extensions"]["field"] == "input.atcCode"


@pytest.mark.parametrize(("persona", "expected"), [
    ("legevakt-lege", ["TREATMENT_LIMITATIONS", "MEDICATIONS", "DOCUMENTS"]),
    ("hjemmesykepleier", ["MEDICATIONS", "DOCUMENTS"]),
    ("helsefagarbeider", ["MEDICATIONS"]),
    ("saksbehandler", []),
])
def test_may_record_says_what_the_write_policy_allows(writes: WriteStack, persona: str,
                                                      expected: list[str]) -> None:
    token = writes.token(persona, MULTI)
    writes.reset_counts()
    body = writes.post("query($nin: String!) { patient(nin: $nin) { mayRecord } }", token,
                       {"nin": MULTI})
    assert sorted(body["data"]["patient"]["mayRecord"]) == sorted(expected)
    assert writes.municipal_requests() == 0  # asks no source


def test_a_mutation_over_get_is_refused(writes: WriteStack) -> None:
    token = writes.token("legevakt-lege", MULTI)
    r = writes.http.get(f"{writes.gateway.url}/graphql", headers={
        "authorization": f"Bearer {token}"}, params={
        "query": 'mutation { recordTreatmentLimitation(nin: "' + MULTI + '", input: {code: '
                 '"304253006", decidedBy: "x", reason: "y", decidedAt: "2026-01-01T00:00:00Z"})'
                 " { id } }"})
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


@pytest.mark.parametrize("key", ["", "x" * 256, "a\tb"])  # what an HTTP client lets through
def test_a_bad_idempotency_key_is_refused_before_anything_runs(writes: WriteStack,
                                                                key: str) -> None:
    token = writes.token("legevakt-lege", MULTI)
    r = writes.http.post(f"{writes.gateway.url}/graphql", headers={
        "authorization": f"Bearer {token}", "idempotency-key": key}, json={"query": RECORD, "variables": {"nin": MULTI, "input": _input()}})
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(("mode", "code"), [("hang", "UPSTREAM_TIMEOUT"),
                                            ("error", "UPSTREAM_UNAVAILABLE")])
def test_a_store_that_cannot_be_asked_writes_nothing_and_says_so(
        writes: WriteStack, mode: str, code: str) -> None:
    token = writes.token("legevakt-lege", MULTI)
    variables = {"nin": MULTI, "input": _input()}
    count = writes.consents()
    writes.http.put(f"{writes.sandbox.url}/_sandbox/faults/municipal",
                    json={"mode": mode}).raise_for_status()
    try:
        body = writes.post(RECORD, token, variables)
    finally:
        writes.http.put(f"{writes.sandbox.url}/_sandbox/faults/municipal",
                        json={"mode": "none"}).raise_for_status()
    assert body["data"] is None
    error = body["errors"][0]["extensions"]
    # the patient search failed, so the record never left Kilde
    assert (error["code"], error["writeOutcome"]) == (code, "NOT_WRITTEN")
    failed = [e for e in writes.events() if e.outcome == "WRITE_FAILED"]
    assert failed
    assert failed[-1].reason == code
    assert writes.consents() == count
    again = writes.post(RECORD, token, variables)
    assert "errors" not in again, again
    assert writes.consents() == count + 1


def test_no_log_record_of_a_write_names_the_patient_the_person_or_the_record(
        writes: WriteStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = writes.token("legevakt-lege", MULTI)
    secret_reason = "Hemmelig begrunnelse 4711"
    for change in ({}, {"decidedAt": "1930-01-01T10:00:00+01:00"}):  # written, then refused
        writes.post(RECORD, token, {"nin": MULTI, "input": _input(reason=secret_reason,
                                                                   **change)})
    gateway = [r for r in caplog.records if r.name.startswith("kilde")]
    assert any(r.name == "kilde.access" for r in gateway)  # the gateway's own lines are here
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in gateway)  # message and extras
    assert "/graphql" in text  # extras (the access line's path) are searched too
    for value in (MULTI, "Ingrid Vaktmo", "Dr. Sykehjem", secret_reason, token):
        assert value not in text

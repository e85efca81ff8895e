"""No personal data in the logs: run `kilde serve` at DEBUG through the demo scenarios (every
persona x scenario patient, faults, bad identity numbers, bad tokens, an emergency opening) and
scan everything it wrote for every synthetic identity number, name and token."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from gateway.demo import PERSONAS, PRIVACY_OFFICER_PID, mint_token
from gateway.settings import Settings
from sandbox.world import PATIENTS, PROFESSIONALS, by_tag
from tests.e2e.auditing import serve_env, start_serve, stop
from tests.e2e.conftest import Stack
from tests.servers import listening_socket, port_of

pytestmark = pytest.mark.slow

SUMMARY = """query($nin: String!) { patient(nin: $nin) {
  nin alerts { kind title } treatmentLimitations { code { code display } decidedBy }
  criticalInformation { type description } medications { name dosage { text } }
  labResults(first: 2) { code { display } } municipalServices { code { display } unit }
  conditions { code { code } } documents { title } sources { source status detail } } }"""
EMERGENCY = """query($nin: String!, $why: String) { patient(nin: $nin, emergencyReason: $why) {
  criticalInformation { description } sources { source status } } }"""
MY_LOG = "{ myAccessLog(first: 5) { totalCount edges { node { who reason } } } }"
ACCESS_LOG = "query($nin: String!) { accessLog(nin: $nin) { totalCount edges { node { who } } } }"
USAGE = "{ usage { day source category municipality deliveries items } }"
HLR = by_tag("legevakt-hlr")


def inline(nin: str, fields: str = "nin") -> str:
    """A patient query with the identity number in the query text itself."""
    return '{ patient(nin: "' + nin + '") { ' + fields + " } }"


class Driver:
    """Sends the scenarios and remembers every token it used."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = f"{url}/graphql"
        self.settings = settings
        self.tokens: list[str] = []
        self.request_ids: list[str] = []
        self.bad_nins: list[str] = []
        self.delivered = 0  # answers with patient data: the scenarios really reached sources
        self.client = httpx.Client(timeout=10)

    def token(self, persona: str, patient: str | None = None, **kw: object) -> str:
        token = mint_token(persona, patient, issuer=self.settings.auth.issuer,
                           audience=self.settings.auth.audience, **kw)  # type: ignore[arg-type]
        self.tokens.append(token)
        return token

    def post(self, query: str, token: str | None, **variables: object) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        r = self.client.post(self.url, json={"query": query, "variables": variables},
                             headers=headers)
        assert r.status_code < 500 or r.status_code == 503, r.text
        self.request_ids.append(r.headers.get("x-request-id", ""))
        if r.status_code == 200 and (r.json().get("data") or {}).get("patient"):
            self.delivered += 1
        return r

    def scenarios(self, stack: Stack) -> None:
        for patient in PATIENTS:
            for persona in PERSONAS:
                if persona == "personvernombud":
                    self.post(ACCESS_LOG, self.token(persona), nin=patient.nin)
                elif persona == "innbygger":
                    token = self.token(persona, patient.nin)
                    self.post(SUMMARY, token, nin=patient.nin)
                    self.post(MY_LOG, token)
                else:
                    self.post(SUMMARY, self.token(persona, patient.nin), nin=patient.nin)
        self.post(USAGE, self.token("personvernombud"))
        lege = self.token("legevakt-lege", by_tag("restricted-kj").nin)
        self.post(EMERGENCY, lege, nin=by_tag("restricted-kj").nin,
                  why="Bevisstløs pasient, trenger kritisk informasjon")
        self.post(SUMMARY, lege, nin=HLR.nin)  # attest bound to another patient: denied
        self.post(ACCESS_LOG, lege, nin=HLR.nin)  # a clinician may not read access logs
        for source, mode in (("kjernejournal", "hang"), ("pll", "error"),
                             ("proevesvar", "garbage"), ("municipal", "error")):
            stack.fault(source, mode=mode)
            self.post(SUMMARY, self.token("legevakt-lege", HLR.nin), nin=HLR.nin)
            stack.fault(source, mode="none")
        self.bad_input()
        self.bad_tokens()

    def bad_input(self) -> None:
        token = self.token("legevakt-lege", HLR.nin)
        wrong_check_digit = HLR.nin[:-1] + str((int(HLR.nin[-1]) + 1) % 10)
        self.bad_nins = [wrong_check_digit, "01017000027", HLR.nin + "0"]
        for nin in (*self.bad_nins, "abc"):
            self.post(SUMMARY, token, nin=nin)
        self.post(inline(HLR.nin[:-1]), token)
        self.post(inline(HLR.nin).replace(f'"{HLR.nin}"', HLR.nin), token)  # not a String
        self.post(inline(HLR.nin, "nin nosuchfield"), token)
        self.client.get(self.url, params={"query": inline(HLR.nin)},
                        headers={"authorization": f"Bearer {token}"})
        self.client.post(self.url, content=b'{"query": "{ patient(nin: \\"' + HLR.nin.encode(),
                         headers={"authorization": f"Bearer {token}",
                                  "content-type": "application/json"})

    def bad_tokens(self) -> None:
        good = self.token("legevakt-lege", HLR.nin)
        expired = self.token("legevakt-lege", HLR.nin, now=time.time() - 7200, lifetime=600)
        stale_attest = self.token("hjemmesykepleier", HLR.nin, attest_age=7200)
        head, body, signature = good.split(".")
        forged = f"{head}.{body}.{signature[::-1]}"
        other_audience = mint_token("legevakt-lege", HLR.nin, issuer=self.settings.auth.issuer,
                                    audience="someone-else")
        self.tokens += [forged, other_audience, "not-a-token"]
        for token in (expired, stale_attest, forged, other_audience, "not-a-token", good[:-4]):
            self.post(SUMMARY, token, nin=HLR.nin)
        self.client.post(self.url, json={"query": SUMMARY, "variables": {"nin": HLR.nin}},
                         headers={"authorization": good})  # no Bearer scheme


@pytest.fixture
def driven(stack: Stack, tmp_path: Path) -> tuple[str, Driver, str]:
    """Run the scenarios against a DEBUG-level `kilde serve`; yield all it wrote, and the driver."""
    stack.reset()
    sock = listening_socket()
    port = port_of(sock)
    env = serve_env(port, stack.sandbox.url, f"sqlite:///{tmp_path / 'audit.sqlite3'}",
                    KILDE_LOG_LEVEL="DEBUG", KILDE_CONNECTORS__KJERNEJOURNAL__TIMEOUT="0.3")
    output = tmp_path / "gateway.log"
    proc = start_serve(env, output, sock)
    # serve_env trusts the sandbox's HelseID for callers' tokens, as the shared stack does
    driver = Driver(f"http://127.0.0.1:{port}", stack.settings)
    try:
        driver.scenarios(stack)
    finally:
        driver.client.close()
        stop(proc, signal.SIGTERM)
        stack.reset()
    return output.read_text(errors="replace"), driver, stack.sandbox.url


def test_logs_at_debug_carry_no_identity_number_name_or_token(
    driven: tuple[str, Driver, str],
) -> None:
    text, driver, upstream = driven
    secrets: dict[str, str] = {}
    for p in PATIENTS:
        secrets[p.nin] = f"patient identity number ({p.tags[0]})"
        secrets[p.name] = f"patient name ({p.tags[0]})"
    for pro in PROFESSIONALS:
        secrets[pro.pid] = f"identity number of {pro.key}"
        secrets[pro.name] = f"name of {pro.key}"
    secrets[PRIVACY_OFFICER_PID] = "identity number of personvernombud"
    secrets["Vigdis Vernvik"] = "name of personvernombud"
    secrets[HLR.nin[:-1]] = "a truncated identity number"
    for nin in driver.bad_nins:
        secrets[nin] = "an identity number that failed validation or is unknown"
    secrets[upstream] = "an upstream URL (its path and query can carry identifiers)"
    for i, token in enumerate(driver.tokens):
        secrets[token] = f"token #{i}"
        secrets[token.split(".")[-1][:40]] = f"signature of token #{i}"

    found = sorted({what for value, what in secrets.items() if value in text})
    assert not found, f"the gateway's log output contains: {found}"
    # nor any other JWT: the upstream tokens Kilde got, its DPoP proofs, client assertions
    assert not re.search(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}", text)
    assert driver.delivered > len(PATIENTS), "the scenarios delivered (almost) no patient data"
    assert len(text.splitlines()) > 100, "the gateway logged (almost) nothing at DEBUG"
    # the request log is there, with request ids to follow a request by
    logged_ids = [rid for rid in driver.request_ids if rid and rid in text]
    assert len(logged_ids) == len([rid for rid in driver.request_ids if rid])

"""The legevakt screen follows the open patient live: Chromium, the demo stack with DPoP
required, the app's own graphql-transport-ws client (gateway/webapp/live.js).

The page subscribes to `patientUpdates` for the patient it shows, over a WebSocket whose
connection_init carries a DPoP-bound token and a proof of the handshake (the gateway refuses
anything else in this mode, so a live screen is itself the proof that the app's WebSocket DPoP
is right). When the municipal event store says the patient's treatment limitations changed,
the screen asks Kilde again, without a reload, and says what changed.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.credentials import dpop_proof, generate_key
from gateway.demo import mint_event_token
from sandbox.app import create_app as create_sandbox
from sandbox.world import by_tag
from tests.e2e.browser import app_page
from tests.e2e.test_webapp import browser  # noqa: F401 - the shared fixture
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

PATIENT = by_tag("multi-service")
EVENT_KEY = generate_key()  # the event store's DPoP key


class Demo:
    def __init__(self, url: str, settings: Any, audit: Path) -> None:
        self.url, self.settings, self.audit = url, settings, audit

    def event(self, **event: Any) -> None:
        """The municipal event store posts a change (DPoP-bound, as this stack requires)."""
        token = mint_event_token(issuer=self.settings.auth.issuer,
                                 audience=self.settings.auth.audience, jkt=EVENT_KEY.thumbprint)
        url = f"{self.url}/events"
        r = httpx.post(url, json={"patient": PATIENT.nin, **event}, headers={
            "authorization": f"DPoP {token}",
            "dpop": dpop_proof(EVENT_KEY, "POST", url, access_token=token)})
        assert r.status_code == 202, r.text

    def until_watching(self, count: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            text = httpx.get(f"{self.url}/metrics").text
            match = re.search(r"^kilde_live_watchers (\S+)$", text, re.M)
            if match and float(match.group(1)) >= count:
                return
            assert time.monotonic() < deadline, "the page never subscribed"
            time.sleep(0.05)

    def patient_reads(self) -> int:
        with sqlite3.connect(self.audit) as db:
            bodies = [json.loads(r[0]) for r in db.execute("SELECT body FROM audit_events")]
        return sum(1 for b in bodies if b["patient_nin"] == PATIENT.nin and any(
            d["status"] != "CHANGED" for d in b.get("deliveries", ())))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    audit = tmp_path_factory.mktemp("webapp-live") / "audit.sqlite3"
    sock = listening_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    settings = e2e_settings(port_of(sock), url, f"sqlite:///{audit}")
    settings = replace(settings, auth=replace(settings.auth, dpop="required"))
    with running(demo_app(settings, sandbox=create_sandbox({})), sock):
        yield Demo(url, settings, audit)


@pytest.fixture
def page(browser: Any, demo: Demo) -> Iterator[Any]:  # noqa: F811 - browser is the fixture
    with app_page(browser, f"{demo.url}/app/") as page:
        yield page


def _open_live(page: Any, persona: str) -> None:
    page.select_option("#persona", persona)
    page.select_option("#patient", PATIENT.nin)
    page.click("#open")
    page.wait_for_selector("#screen[data-view=patient]")
    page.wait_for_selector("#screen[data-live=live]")  # connection_ack: DPoP accepted


def test_the_open_screen_asks_again_when_the_event_store_says_the_patient_changed(
        page: Any, demo: Demo) -> None:
    _open_live(page, "legevakt-lege")
    reads = demo.patient_reads()
    demo.until_watching(1)  # the subscription starts a moment after connection_ack
    demo.event(source="municipal", categories=["treatment_limitations"])
    page.wait_for_selector("#screen[data-updates='1']")
    status = page.locator("#status").inner_text()
    assert "Oppdatert" in status
    assert "behandlingsavklaringer" in status
    assert page.locator("#screen[data-view=patient]").count() == 1
    assert demo.patient_reads() == reads + 1  # asked again, audited as any query


def test_an_hlr_minus_recorded_in_one_session_appears_on_the_screen_open_in_another(
        browser: Any, demo: Demo, page: Any) -> None:  # noqa: F811 - browser is the fixture
    # page: the legevakt's screen, open for the patient before anything is recorded
    _open_live(page, "legevakt-lege")
    assert page.locator("[data-testid=hlr-minus]").count() == 0
    demo.until_watching(1)
    # another session (another physician's browser) records the decision with the app's button
    other = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nb-NO",
                                timezone_id="Europe/Oslo")
    try:
        recorder = other.new_page()
        recorder.set_default_timeout(20_000)
        recorder.goto(f"{demo.url}/app/")
        recorder.wait_for_selector("body[data-ready=true]")
        recorder.select_option("#persona", "legevakt-lege")
        recorder.select_option("#patient", PATIENT.nin)
        recorder.click("#open")
        recorder.wait_for_selector("#screen[data-view=patient]")
        recorder.click("#record-hlr")
        recorder.fill("#hlr-reason", "Drøftet med pasient og pårørende på sykehjemmet.")
        recorder.click("#hlr-confirm")
        recorder.locator("[data-testid=hlr-minus]").wait_for()
    finally:
        other.close()
    # the first screen shows it without a reload, first among the alerts
    banner = page.locator("[data-testid=hlr-minus]")
    banner.wait_for()
    assert page.locator(".alert").first.get_attribute("data-testid") == "hlr-minus"
    assert "Drøftet med pasient" in banner.inner_text()
    assert "Oppdatert" in page.locator("#status").inner_text()

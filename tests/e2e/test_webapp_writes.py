"""The legevakt app records an HLR-minus (#17 item 5, the write half): "Registrer HLR-minus" is
offered to a persona the write policy allows and to no other, and what it records is on the
open screen at once, as the municipal store holds it. Headless Chromium against its own demo
stack (so the record does not show up in the other browser tests' patients)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.app import create_app as create_sandbox
from sandbox.world import by_tag
from tests.e2e.browser import app_page, chromium
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

MULTI = by_tag("multi-service")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    audit = tmp_path_factory.mktemp("webapp-writes") / "audit.sqlite3"
    sock = listening_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    settings = e2e_settings(port_of(sock), url, f"sqlite:///{audit}")
    with running(demo_app(settings, sandbox=create_sandbox({})), sock):
        yield url


@pytest.fixture
def page(browser: Any, demo: str) -> Iterator[Any]:
    with app_page(browser, f"{demo}/app/") as page:
        yield page


def _open(page: Any, persona: str, nin: str) -> None:
    page.select_option("#persona", persona)
    page.select_option("#patient", nin)
    page.click("#open")
    page.wait_for_selector("#screen[data-view=patient]")


def _consents(demo: str) -> int:
    written = httpx.get(f"{demo}/_sandbox/written").json()
    return int(written.get("0301", {}).get("Consent", 0))


@pytest.mark.parametrize("persona", ["hjemmesykepleier", "helsefagarbeider", "saksbehandler"])
def test_a_persona_the_write_policy_denies_is_not_offered_the_button(page: Any,
                                                                      persona: str) -> None:
    _open(page, persona, MULTI.nin)
    assert page.locator("#record-hlr").count() == 0


def test_the_physician_records_hlr_minus_and_sees_it_first_on_the_open_screen(
        page: Any, demo: str) -> None:
    _open(page, "legevakt-lege", MULTI.nin)
    assert page.locator("[data-testid=hlr-minus]").count() == 0  # none before
    before = _consents(demo)
    page.click("#record-hlr")
    assert page.input_value("#hlr-decided-by") == "Ingrid Vaktmo"  # the signed-in physician
    page.fill("#hlr-reason", "Pasientens eget ønske, drøftet med pårørende.")
    page.click("#hlr-confirm")
    banner = page.locator("[data-testid=hlr-minus]")
    banner.wait_for()
    assert page.locator(".alert").first.get_attribute("data-testid") == "hlr-minus"
    assert "Pasientens eget ønske" in banner.inner_text()
    assert "Kommunal journal" in banner.locator(".src").inner_text()
    assert "registrert" in page.inner_text("#status")
    assert _consents(demo) == before + 1


def test_cancelling_records_nothing(page: Any, demo: str) -> None:
    _open(page, "legevakt-lege", MULTI.nin)
    before = _consents(demo)
    page.click("#record-hlr")
    page.fill("#hlr-reason", "Avbrytes")
    page.click("#hlr-dialog button[value=cancel]")
    page.wait_for_selector("#hlr-dialog:not([open])", state="attached")
    assert _consents(demo) == before

"""GraphiQL with no internet: headless Chromium loads it from Kilde itself, fills the
Authorization header from the demo persona picker and runs the legevakt query, while every
request to anything but this loopback server is refused and recorded (and must not happen)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.app import create_app as create_sandbox
from sandbox.world import by_tag
from tests.e2e.browser import chromium
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

HLR = by_tag("legevakt-hlr")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    audit = tmp_path_factory.mktemp("graphiql") / "audit.sqlite3"
    sock = listening_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    settings = e2e_settings(port_of(sock), url, f"sqlite:///{audit}")
    with running(demo_app(settings, sandbox=create_sandbox({})), sock):
        yield url


def test_graphiql_loads_offline_and_runs_the_legevakt_query(demo: str) -> None:
    elsewhere: list[str] = []
    problems: list[str] = []
    with chromium() as browser:
        context = browser.new_context()

        def only_loopback(route: Any) -> None:
            if route.request.url.startswith(demo):
                route.continue_()
            else:  # a CDN, fonts, telemetry: none of it may be needed
                elsewhere.append(route.request.url)
                route.abort()

        context.route("**/*", only_loopback)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(f"{demo}/graphql")
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_selector(".graphiql-container")
        assert "Legevakt" in page.inner_text(".graphiql-query-editor")
        # signed in as the legevakt physician from the start; choosing again works the same
        assert page.get_attribute("body", "data-token") == "legevakt-lege"
        page.select_option("#kilde-persona", "hjemmesykepleier")
        page.click("#kilde-use")
        page.wait_for_selector("body[data-token=hjemmesykepleier]")
        page.select_option("#kilde-persona", "legevakt-lege")
        page.select_option("#kilde-patient", HLR.nin)
        page.click("#kilde-use")
        page.wait_for_selector("body[data-token=legevakt-lege]")
        assert "Bearer ey" in page.inner_text(".graphiql-editor-tool")
        page.click(".graphiql-execute-button")
        page.wait_for_function(
            "() => (document.querySelector('.result-window') || {}).innerText"
            "?.includes('TREATMENT_LIMITATION')")
        result = page.inner_text(".result-window")
        assert '"source": "municipal"' in result
        assert "UNAUTHENTICATED" not in result
        context.close()
    assert elsewhere == []
    assert problems == []

"""Patient-context handover in Chromium: the legevakt app opened by an EPJ with ?launch=&iss=,
and the official SMART JavaScript client (fhirclient, from its npm lockfile) launching against
Kilde's /.well-known/smart-configuration, with a stand-in for HelseID's endpoints.

The stack is laid out as `kilde demo` lays it out (gateway and sandbox on one server). Every
request to a host other than the gateway is answered by the test (the HelseID stand-in) or
refused, so nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from gateway.demo import mint_token
from gateway.settings import Settings
from sandbox.app import create_app as create_sandbox
from sandbox.world import by_tag
from tests.e2e.browser import chromium, npm_installed
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

HLR = by_tag("legevakt-hlr")
SMART_DIR = Path(__file__).resolve().parent / "smart"
HELSEID = "http://helseid.test"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    audit = tmp_path_factory.mktemp("launch") / "audit.sqlite3"
    sock = listening_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    settings = e2e_settings(port_of(sock), url, f"sqlite:///{audit}")
    settings = replace(settings, launch=replace(
        settings.launch, authorization_endpoint=f"{HELSEID}/connect/authorize",
        token_endpoint=f"{HELSEID}/connect/token"))
    with running(demo_app(settings, sandbox=create_sandbox({})), sock):
        yield url, settings


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _token(settings: Settings, persona: str, patient: str | None) -> str:
    return mint_token(persona, patient, issuer=settings.auth.issuer,
                      audience=settings.auth.audience)


def _launch(url: str, settings: Settings, persona: str = "legevakt-lege") -> dict[str, Any]:
    r = httpx.post(f"{url}/launch", json={"patient": HLR.nin, "encounter": "kontakt-1"},
                   headers={"authorization": f"Bearer {_token(settings, persona, HLR.nin)}"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def page(browser: Any, stack: tuple[str, Settings]) -> Iterator[Any]:
    url, _ = stack
    context = browser.new_context(locale="nb-NO")
    problems: list[str] = []
    elsewhere: list[str] = []

    def guard(route: Any) -> None:  # the gateway, or the test's own stand-ins only
        if route.request.url.startswith(url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    try:
        yield page
    finally:
        context.close()
    assert elsewhere == []
    assert problems == []


def _open_launched(page: Any, link: str) -> None:
    page.goto(link)
    page.wait_for_selector("body[data-ready=true]")


def test_the_legevakt_app_opens_the_patient_the_epj_handed_over(
        page: Any, stack: tuple[str, Settings]) -> None:
    url, settings = stack
    answer = _launch(url, settings)
    _open_launched(page, answer["url"])
    assert page.evaluate("location.search") == ""  # single-use: out of the address at once
    assert "Åpnet fra EPJ" in page.inner_text("#status")
    assert page.locator("#patient").is_disabled()
    page.select_option("#persona", "legevakt-lege")  # signing in as the same user
    page.click("#open")
    page.wait_for_selector("#screen[data-view=patient]")
    assert page.locator("[data-testid=hlr-minus]").count() == 1
    assert page.input_value("#patient") == HLR.nin
    # the same link again: the launch is spent
    _open_launched(page, answer["url"])
    page.select_option("#persona", "legevakt-lege")
    page.click("#open")
    page.wait_for_selector("#screen[data-view=error]")
    assert "already used or expired" in page.inner_text("#screen")


def test_another_user_cannot_open_someone_elses_launch(page: Any,
                                                       stack: tuple[str, Settings]) -> None:
    url, settings = stack
    answer = _launch(url, settings)
    _open_launched(page, answer["url"])
    page.select_option("#persona", "hjemmesykepleier")
    page.click("#open")
    page.wait_for_selector("#screen[data-view=error]")
    assert HLR.nin not in page.inner_text("body")


def test_a_launch_naming_another_kilde_is_not_followed(page: Any,
                                                      stack: tuple[str, Settings]) -> None:
    url, settings = stack
    answer = _launch(url, settings)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/graphql") else None)
    query = urlencode({"launch": answer["launch"], "iss": "https://evil.example"})
    _open_launched(page, f"{url}/app/?{query}")
    assert "annen Kilde" in page.inner_text("#status")
    assert sent == []


SMART_LAUNCH = """<!doctype html><meta charset="utf-8"><script src="fhir-client.js"></script>
<script>
  sessionStorage.setItem("kilde-launch", new URLSearchParams(location.search).get("launch"));
  FHIR.oauth2.authorize({clientId: "kilde-legevakt-app", scope: "openid launch kilde/patient.read",
                         redirectUri: "app.html"});
</script>"""
SMART_APP = """<!doctype html><meta charset="utf-8"><script src="fhir-client.js"></script>
<script>
  FHIR.oauth2.ready().then(async (client) => {
    const r = await fetch(client.state.serverUrl + "/graphql", {method: "POST", headers: {
      "content-type": "application/json",
      authorization: "Bearer " + client.state.tokenResponse.access_token},
      body: JSON.stringify({query: "query($l: String!) { launchContext(launch: $l) { patient } }",
                            variables: {l: sessionStorage.getItem("kilde-launch")}})});
    const body = await r.json();
    document.body.dataset.patient = body.data ? body.data.launchContext.patient : "error";
  }).catch((e) => { document.body.dataset.patient = "failed: " + e; });
</script>"""


def test_the_official_smart_client_launches_with_kildes_configuration(
        browser: Any, stack: tuple[str, Settings]) -> None:
    url, settings = stack
    client_js = npm_installed(SMART_DIR, "fhirclient") / "build" / "fhir-client.js"
    answer = _launch(url, settings)
    authorize: list[dict[str, list[str]]] = []
    token_form: list[dict[str, list[str]]] = []
    context = browser.new_context()
    files = {"/smart-app/launch.html": ("text/html", SMART_LAUNCH),
             "/smart-app/app.html": ("text/html", SMART_APP),
             "/smart-app/fhir-client.js": ("text/javascript", client_js.read_text())}

    def route(r: Any) -> None:
        request_url = r.request.url
        parts = urlsplit(request_url)
        if request_url.startswith(url) and parts.path in files:
            media, text = files[parts.path]
            r.fulfill(status=200, content_type=media, body=text)
        elif request_url.startswith(url):
            r.continue_()
        elif request_url.startswith(f"{HELSEID}/connect/authorize"):  # HelseID's sign-in
            query = parse_qs(parts.query)
            authorize.append(query)
            back = urlencode({"code": "c0de", "state": query["state"][0]})
            # the user signs in, and HelseID sends the browser back with a code (a page that
            # navigates on: Playwright does not route the target of a fulfilled 302)
            r.fulfill(status=200, content_type="text/html", body=(
                f"<script>location.replace({query['redirect_uri'][0] + '?' + back!r})</script>"))
        elif request_url == f"{HELSEID}/connect/token":
            if r.request.method == "OPTIONS":
                r.fulfill(status=204, headers=_cors())
                return
            token_form.append(parse_qs(r.request.post_data or ""))
            r.fulfill(status=200, content_type="application/json", headers=_cors(), json={
                "access_token": _token(settings, "legevakt-lege", None), "token_type": "Bearer",
                "expires_in": 3600, "scope": "openid launch kilde/patient.read"})
        else:
            r.abort()

    context.route("**/*", route)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        query = urlencode({"launch": answer["launch"], "iss": answer["iss"]})
        page.goto(f"{url}/smart-app/launch.html?{query}")
        page.wait_for_selector("body[data-patient]", state="attached")
        assert page.get_attribute("body", "data-patient") == HLR.nin
    finally:
        context.close()
    (query,) = authorize
    assert query["launch"] == [answer["launch"]]  # the client passed the launch on
    assert query["aud"] == [answer["iss"]]
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert token_form[0]["code"] == ["c0de"]
    assert "code_verifier" in token_form[0]


def _cors() -> dict[str, str]:
    return {"access-control-allow-origin": "*", "access-control-allow-headers": "*",
            "access-control-allow-methods": "POST"}

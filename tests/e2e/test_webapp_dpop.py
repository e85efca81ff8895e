"""The legevakt web app speaks DPoP: Chromium against a demo stack with `KILDE_AUTH__DPOP=required`.

The page makes a non-extractable P-256 key with Web Crypto, asks the demo token route for a
token bound to its thumbprint, and sends every GraphQL request with `Authorization: DPoP` and
a fresh proof. The gateway refuses anything else in this mode, so the HLR-minus banner on the
screen is itself the proof that the app's DPoP is right; the test also reads every request
the browser sent and checks each proof against the token, and replays one to see it refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest

from connectors.credentials import jwk_thumbprint
from sandbox.app import create_app as create_sandbox
from sandbox.world import by_tag
from tests.e2e.test_webapp import browser  # noqa: F401 - the shared fixture
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

HLR = by_tag("legevakt-hlr")


def _demo(tmp: Any, **auth: Any) -> Iterator[str]:
    sock = listening_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    settings = e2e_settings(port_of(sock), url, f"sqlite:///{tmp / 'audit.sqlite3'}")
    settings = replace(settings, auth=replace(settings.auth, dpop="required", **auth))
    with running(demo_app(settings, sandbox=create_sandbox({})), sock):
        yield url


@pytest.fixture(scope="module")
def required(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _demo(tmp_path_factory.mktemp("dpop-app"))


@pytest.fixture(scope="module")
def with_nonces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _demo(tmp_path_factory.mktemp("dpop-nonce-app"), dpop_nonce=True)


class Recorder:
    """Every /graphql request the page sends, and every answer it gets."""

    def __init__(self, page: Any) -> None:
        self.requests: list[dict[str, str]] = []
        self.statuses: list[int] = []
        page.on("request", self._request)
        page.on("response", self._response)

    def _request(self, request: Any) -> None:
        if request.url.endswith("/graphql"):
            self.requests.append({**request.headers, "url": request.url,
                                  "method": request.method, "body": request.post_data or ""})

    def _response(self, response: Any) -> None:
        if response.url.endswith("/graphql"):
            self.statuses.append(response.status)


def _page(browser: Any, url: str) -> tuple[Any, Any, Recorder, list[str]]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nb-NO")
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    recorder = Recorder(page)
    page.goto(f"{url}/app/")
    page.wait_for_selector("body[data-ready=true]")
    return context, page, recorder, problems


def _open_hlr_patient(page: Any) -> None:
    page.select_option("#persona", "legevakt-lege")
    page.select_option("#patient", HLR.nin)
    page.click("#open")
    page.wait_for_selector("#screen[data-view=patient]")


def _ath(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def test_the_app_s_requests_carry_dpop_and_the_required_gateway_serves_them(
        browser: Any, required: str) -> None:  # noqa: F811
    context, page, recorder, problems = _page(browser, required)
    try:
        _open_hlr_patient(page)
        assert page.locator("[data-testid=hlr-minus]").count() == 1
        page.click("#open")  # a second request: a new proof, the same token and key
        page.wait_for_selector("#screen[data-view=patient]")
        page.wait_for_function("() => document.getElementById('open').disabled === false")
    finally:
        context.close()
    assert problems == []
    assert len(recorder.requests) >= 2
    assert set(recorder.statuses) == {200}
    thumbprints, jtis = set(), set()
    for sent in recorder.requests:
        scheme, _, token = sent["authorization"].partition(" ")
        assert scheme == "DPoP"
        header = jwt.get_unverified_header(sent["dpop"])
        assert (header["typ"], header["alg"]) == ("dpop+jwt", "ES256")
        assert set(header["jwk"]) == {"kty", "crv", "x", "y"}  # public members only
        key = jwt.PyJWK(header["jwk"], algorithm="ES256")
        claims = jwt.decode(sent["dpop"], key, algorithms=["ES256"])
        assert (claims["htm"], claims["htu"]) == ("POST", f"{required}/graphql")
        assert claims["ath"] == _ath(token)
        bound = jwt.decode(token, options={"verify_signature": False})["cnf"]["jkt"]
        assert bound == jwk_thumbprint(header["jwk"])
        thumbprints.add(bound)
        jtis.add(claims["jti"])
    assert len(thumbprints) == 1  # one key per page session
    assert len(jtis) == len(recorder.requests)  # a fresh proof per request
    # what the browser sent is good once: replayed by someone else, it is refused
    sent = recorder.requests[-1]
    replayed = httpx.post(sent["url"], content=sent["body"], headers={
        "authorization": sent["authorization"], "dpop": sent["dpop"],
        "content-type": "application/json"})
    assert replayed.status_code == 401
    assert "used before" in replayed.json()["errors"][0]["message"]
    as_bearer = httpx.post(sent["url"], content=sent["body"], headers={
        "authorization": "Bearer " + sent["authorization"].partition(" ")[2],
        "content-type": "application/json"})
    assert as_bearer.status_code == 401


def test_the_app_s_key_cannot_be_exported(browser: Any, required: str) -> None:  # noqa: F811
    context, page, _, problems = _page(browser, required)
    try:
        extractable = page.evaluate("""async () => {
            const { createDpopKey } = await import("./dpop.js");
            return (await createDpopKey()).extractable; }""")
    finally:
        context.close()
    assert extractable is False
    assert problems == []


def test_the_app_signs_again_with_the_server_s_nonce(browser: Any,  # noqa: F811
                                                     with_nonces: str) -> None:
    context, page, recorder, problems = _page(browser, with_nonces)
    try:
        _open_hlr_patient(page)
        assert page.locator("[data-testid=hlr-minus]").count() == 1
    finally:
        context.close()
    assert problems == []
    assert recorder.statuses[:2] == [401, 200]  # asked for a nonce once, then served
    first, second = (jwt.decode(r["dpop"], options={"verify_signature": False})
                     for r in recorder.requests[:2])
    assert "nonce" not in first
    assert second["nonce"]
    assert json.loads(recorder.requests[1]["body"]) == json.loads(recorder.requests[0]["body"])

"""The demo's routes: the web app's static files, the personas and the token helper."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import jwt
import pytest

from gateway.app import create_app
from gateway.demo import PERSONAS, demo_routes
from gateway.settings import Settings
from gateway.webapp import ASSETS

HLR_NIN = "14033841389"  # sandbox.world Arne Hvilested


def _client(settings: Settings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings, extra_routes=demo_routes(settings)))
    return httpx.AsyncClient(transport=transport, base_url="http://kilde.test")


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({"KILDE_MODE": "demo"})


async def test_app_page_is_served_with_a_strict_content_security_policy(
    settings: Settings,
) -> None:
    async with _client(settings) as client:
        redirect = await client.get("/app")
        page = await client.get("/app/")
    assert redirect.status_code == 308
    assert redirect.headers["location"] == "/app/"
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert 'src="app.js"' in page.text
    assert 'lang="nb"' in page.text


@pytest.mark.parametrize("name", sorted(ASSETS))
async def test_every_asset_is_served_with_its_media_type(settings: Settings, name: str) -> None:
    async with _client(settings) as client:
        r = await client.get(f"/app/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == ASSETS[name].split(";")[0]
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/app/routes.py", "/app/__init__.py", "/app/..%2fdemo.py",
                                  "/app/%2e%2e/demo.py"])
async def test_only_the_listed_files_are_served(settings: Settings, path: str) -> None:
    async with _client(settings) as client:
        r = await client.get(path)
    assert r.status_code == 404
    assert "import" not in r.text


async def test_demo_token_binds_the_persona_to_the_patient(settings: Settings) -> None:
    async with _client(settings) as client:
        r = await client.post("/_demo/token", json={"persona": "legevakt-lege",
                                                    "patient": HLR_NIN})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    claims = jwt.decode(r.json()["token"], options={"verify_signature": False},
                        audience=settings.auth.audience)
    assert claims["iss"] == settings.auth.issuer
    assert HLR_NIN in json.dumps(claims["authorization_details"])


async def test_demo_token_is_bound_to_the_dpop_key_the_page_sends(settings: Settings) -> None:
    jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    async with _client(settings) as client:
        r = await client.post("/_demo/token", json={"persona": "legevakt-lege",
                                                    "patient": HLR_NIN, "jkt": jkt})
        unbound = await client.post("/_demo/token", json={"persona": "legevakt-lege",
                                                          "patient": HLR_NIN})
    assert r.status_code == 200
    assert r.json()["tokenType"] == "DPoP"
    claims = jwt.decode(r.json()["token"], options={"verify_signature": False},
                        audience=settings.auth.audience)
    assert claims["cnf"] == {"jkt": jkt}
    assert unbound.json()["tokenType"] == "Bearer"
    assert "cnf" not in jwt.decode(unbound.json()["token"], options={"verify_signature": False},
                                   audience=settings.auth.audience)


@pytest.mark.parametrize("jkt", ["short", "x" * 44, 7, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4="])
async def test_demo_token_refuses_a_jkt_that_is_no_thumbprint(settings: Settings,
                                                              jkt: object) -> None:
    async with _client(settings) as client:
        r = await client.post("/_demo/token", json={"persona": "legevakt-lege",
                                                    "patient": HLR_NIN, "jkt": jkt})
    assert r.status_code == 400
    assert "jkt" in r.json()["error"] or "thumbprint" in r.json()["error"]


async def test_demo_personas_lists_every_persona_by_kind(settings: Settings) -> None:
    async with _client(settings) as client:
        r = await client.get("/_demo/personas")
    listed = {p["key"]: p["kind"] for p in r.json()}
    assert listed == {key: p.kind for key, p in PERSONAS.items()}


@pytest.mark.parametrize("body", [
    {"persona": HLR_NIN},                                   # not a persona: not echoed back
    {"persona": "legevakt-lege", "patient": "14033841380"},  # bad control digits
    {"persona": "innbygger"},                               # the citizen needs a patient
    {"patient": HLR_NIN},
    ["legevakt-lege"],
])
async def test_demo_token_refuses_bad_input_without_echoing_identity_numbers(
    settings: Settings, body: object
) -> None:
    async with _client(settings) as client:
        r = await client.post("/_demo/token", json=body)
    assert r.status_code == 400
    assert r.json()["error"]
    assert "1403384138" not in r.text


def test_the_demo_routes_refuse_to_be_built_for_production(settings: Settings) -> None:
    with pytest.raises(ValueError, match="only with KILDE_MODE=demo"):
        demo_routes(replace(settings, mode="production"))

"""The one door function: which URL a proof must name, behind a proxy and without one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connectors.credentials import dpop_proof, generate_key
from gateway.demo import mint_token
from tests.gateway.inprocess import LEGEVAKT_QUERY, gateway, settings_for

KEY = generate_key()
BODY = {"query": LEGEVAKT_QUERY, "variables": {"nin": "14033841389"}}


def _settings(**auth: str) -> object:
    base = settings_for()
    return replace(base, auth=replace(base.auth, **{"dpop": "required", **auth}))


async def test_behind_a_proxy_the_proof_names_the_public_url_not_the_internal_one() -> None:
    async with gateway(_settings(public_url="https://kilde.kommune.example/fkj")) as h:
        token = h.token(jkt=KEY.thumbprint)
        public = dpop_proof(KEY, "POST", "https://kilde.kommune.example/fkj/graphql",
                            access_token=token)
        r = await h.post(BODY, {"authorization": f"DPoP {token}", "dpop": public}, token=False)
        assert r.status_code == 200, r.text[:300]
        internal = dpop_proof(KEY, "POST", "http://kilde.test/graphql", access_token=token)
        r = await h.post(BODY, {"authorization": f"DPoP {token}", "dpop": internal}, token=False)
        assert r.status_code == 401
        assert "htu" in r.json()["errors"][0]["message"]


@pytest.mark.parametrize("header", ["x-forwarded-host", "forwarded"])
async def test_forwarded_host_headers_do_not_move_the_url(header: str) -> None:
    value = "evil.example" if header == "x-forwarded-host" else "host=evil.example;proto=https"
    async with gateway(_settings()) as h:
        token = h.token(jkt=KEY.thumbprint)
        proof = dpop_proof(KEY, "POST", "https://evil.example/graphql", access_token=token)
        r = await h.post(BODY, {"authorization": f"DPoP {token}", "dpop": proof, header: value},
                         token=False)
        assert r.status_code == 401
        proof = dpop_proof(KEY, "POST", "http://kilde.test/graphql", access_token=token)
        r = await h.post(BODY, {"authorization": f"DPoP {token}", "dpop": proof, header: value},
                         token=False)
        assert r.status_code == 200, r.text[:300]


async def test_two_authorization_headers_are_refused() -> None:
    async with gateway(_settings(dpop="allowed")) as h:
        headers = [("authorization", f"Bearer {h.token()}"),
                   ("authorization", f"Bearer {h.token('hjemmesykepleier')}")]
        r = await h.client.post("/graphql", json=BODY, headers=headers)
        assert r.status_code == 401
        assert "more than one Authorization header" in r.json()["errors"][0]["message"]


async def test_production_defaults_to_required() -> None:
    from gateway.settings import Settings
    from tests.gateway.test_production import PROD

    prod = {**PROD, "KILDE_AUTH__JWKS_URL": ""}
    assert Settings.from_env(prod).auth.dpop == "required"
    assert Settings.from_env({**prod, "KILDE_AUTH__DPOP": "allowed"}).auth.dpop == "allowed"
    assert Settings.from_env({"KILDE_MODE": "demo"}).auth.dpop == "allowed"


async def test_the_audit_export_door_takes_dpop_like_graphql() -> None:
    async with gateway(_settings()) as h:
        token = mint_token("personvernombud", None, issuer=h.settings.auth.issuer,
                           audience=h.settings.auth.audience, jkt=KEY.thumbprint)
        proof = dpop_proof(KEY, "GET", "http://kilde.test/audit/export", access_token=token)
        r = await h.client.get("/audit/export", headers={"authorization": f"DPoP {token}",
                                                         "dpop": proof})
        assert r.status_code == 200, r.text[:300]
        r = await h.client.get("/audit/export", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('DPoP realm="kilde", error="invalid_token"')


async def test_the_launch_door_takes_dpop_like_graphql() -> None:
    async with gateway(_settings()) as h:
        token = h.token(patient=None, jkt=KEY.thumbprint)
        body = {"patient": "14033841389"}
        proof = dpop_proof(KEY, "POST", "http://kilde.test/launch", access_token=token)
        r = await h.client.post("/launch", json=body, headers={"authorization": f"DPoP {token}",
                                                               "dpop": proof})
        assert r.status_code in (200, 201), r.text[:300]
        r = await h.client.post("/launch", json=body, headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('DPoP realm="kilde", error="invalid_token"')


async def test_the_cds_hooks_door_takes_dpop_like_graphql() -> None:
    from tests.gateway.test_cds import URL, hook

    async with gateway(_settings()) as h:
        token = h.token(jkt=KEY.thumbprint)
        proof = dpop_proof(KEY, "POST", f"http://kilde.test{URL}", access_token=token)
        r = await h.client.post(URL, json=hook(), headers={"authorization": f"DPoP {token}",
                                                           "dpop": proof})
        assert r.status_code == 200, r.text[:300]
        assert r.json()["cards"]
        r = await h.client.post(URL, json=hook(), headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('DPoP realm="kilde", error="invalid_token"')

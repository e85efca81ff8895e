"""Every fake upstream refuses a call without a valid DPoP-bound token for its own resource:
missing, Bearer, wrong audience, expired, forged, wrong DPoP key, replayed proof, wrong `ath`,
and (when asked) a missing server nonce. Each answer is 401 with `WWW-Authenticate: DPoP`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest

from connectors.credentials import dpop_proof, generate_key, load_private_key
from sandbox.app import SOURCES, create_app
from sandbox.helseid import RESOURCES, HelseId, key_file

BASE = "http://sandbox"
ISSUER = f"{BASE}/helseid"
DPOP_KEY = load_private_key(key_file("kilde-dpop.json"))
PATIENT = "14033841389"
# one harmless request per fake (what it answers does not matter, only that it answers)
CALLS = {
    "municipal": ("GET", "/municipal/0301/Patient?identifier=x"),
    "kjernejournal": ("POST", "/kjernejournal/status"),
    "pll": ("POST", "/pll/Patient/$getMedication"),
    "eresept": ("POST", "/eresept/Patient/$getMedication"),
    "proevesvar": ("POST", "/proevesvar/DiagnosticReport/_search"),
    "persontjenesten": ("POST", "/persontjenesten/api/legal-basis/person/get-by-nin"
                                "?informationParts=Name&api-version=3"),
}


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[httpx.AsyncClient, HelseId]]:
    app = create_app({"KILDE_SANDBOX__REQUIRE_TOKENS": "true"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE) as http:
        yield http, app.state.helseid


def upstream_token(helseid: HelseId, source: str, *, jkt: str | None = None,
                   lifetime: int = 300, audience: str | None = None) -> str:
    """What the token endpoint would issue Kilde for `source` (minted directly)."""
    return helseid.mint({"sub": "kilde", "scope": RESOURCES[source][1]}, issuer=ISSUER,
                        audience=audience or RESOURCES[source][0], client_id="kilde",
                        lifetime=lifetime, jkt=jkt or DPOP_KEY.thumbprint)


def signed(method: str, path: str, token: str, *, key: Any = None, **kw: Any) -> dict[str, str]:
    proof = dpop_proof(key or DPOP_KEY, method, f"{BASE}{path}", access_token=token, **kw)
    return {"authorization": f"DPoP {token}", "dpop": proof}


async def call(http: httpx.AsyncClient, source: str,
               headers: dict[str, str] | None = None) -> httpx.Response:
    method, path = CALLS[source]
    return await http.request(method, path, headers=headers or {},
                              json={} if method == "POST" else None)


def test_every_fake_has_a_call_here() -> None:
    assert set(CALLS) == set(SOURCES)


@pytest.mark.parametrize("source", sorted(CALLS))
async def test_a_call_with_a_valid_token_and_proof_is_served(
        sandbox: tuple[httpx.AsyncClient, HelseId], source: str) -> None:
    http, helseid = sandbox
    token = upstream_token(helseid, source)
    r = await call(http, source, signed(*CALLS[source], token))
    assert r.status_code != 401
    auth = (await http.get("/_sandbox/auth")).json()[source]
    assert auth["accepted"] == 1
    assert auth["audiences_seen"] == {RESOURCES[source][0]: 1}


@pytest.mark.parametrize("source", sorted(CALLS))
async def test_a_call_without_a_token_is_401_with_a_dpop_challenge(
        sandbox: tuple[httpx.AsyncClient, HelseId], source: str) -> None:
    http, _ = sandbox
    r = await call(http, source)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    assert r.json()["resourceType"] == "OperationOutcome"
    assert (await http.get("/_sandbox/requests")).json()[source] == 0


Attack = Callable[[HelseId, str, str], dict[str, str]]


def _bearer(h: HelseId, method: str, path: str) -> dict[str, str]:
    return {"authorization": f"Bearer {upstream_token(h, 'kjernejournal')}"}


def _other_audience(h: HelseId, method: str, path: str) -> dict[str, str]:
    return signed(method, path, upstream_token(h, "pll"))


def _expired(h: HelseId, method: str, path: str) -> dict[str, str]:
    return signed(method, path, upstream_token(h, "kjernejournal", lifetime=-1))


def _forged(h: HelseId, method: str, path: str) -> dict[str, str]:
    claims = jwt.decode(upstream_token(h, "kjernejournal"), options={"verify_signature": False})
    token = jwt.encode(claims, generate_key(alg="RS256").key, algorithm="RS256",
                       headers={"kid": "kilde-demo-1", "typ": "at+jwt"})
    return signed(method, path, token)


def _other_issuer(h: HelseId, method: str, path: str) -> dict[str, str]:
    token = h.mint({"sub": "x"}, issuer="https://elsewhere", client_id="kilde", lifetime=60,
                   audience=RESOURCES["kjernejournal"][0], jkt=DPOP_KEY.thumbprint)
    return signed(method, path, token)


def _wrong_key(h: HelseId, method: str, path: str) -> dict[str, str]:
    return signed(method, path, upstream_token(h, "kjernejournal"), key=generate_key())


def _no_proof(h: HelseId, method: str, path: str) -> dict[str, str]:
    return {"authorization": f"DPoP {upstream_token(h, 'kjernejournal')}"}


def _wrong_ath(h: HelseId, method: str, path: str) -> dict[str, str]:
    token = upstream_token(h, "kjernejournal")
    proof = dpop_proof(DPOP_KEY, method, f"{BASE}{path}", access_token="another-token")
    return {"authorization": f"DPoP {token}", "dpop": proof}


def _other_url(h: HelseId, method: str, path: str) -> dict[str, str]:
    token = upstream_token(h, "kjernejournal")
    proof = dpop_proof(DPOP_KEY, method, f"{BASE}/kjernejournal/other", access_token=token)
    return {"authorization": f"DPoP {token}", "dpop": proof}


def _other_method(h: HelseId, method: str, path: str) -> dict[str, str]:
    token = upstream_token(h, "kjernejournal")
    return {"authorization": f"DPoP {token}",
            "dpop": dpop_proof(DPOP_KEY, "GET", f"{BASE}{path}", access_token=token)}


def _stale_proof(h: HelseId, method: str, path: str) -> dict[str, str]:
    return signed(method, path, upstream_token(h, "kjernejournal"), now=time.time() - 300)


@pytest.mark.parametrize("attack", [_bearer, _other_audience, _expired, _forged, _other_issuer,
                                    _wrong_key, _no_proof, _wrong_ath, _other_url,
                                    _other_method, _stale_proof])
async def test_a_wrong_token_or_proof_is_refused(
        sandbox: tuple[httpx.AsyncClient, HelseId], attack: Attack) -> None:
    http, helseid = sandbox
    r = await call(http, "kjernejournal", attack(helseid, *CALLS["kjernejournal"]))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("DPoP error=")
    assert (await http.get("/_sandbox/requests")).json()["kjernejournal"] == 0


async def test_a_replayed_proof_is_refused(sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, helseid = sandbox
    headers = signed(*CALLS["kjernejournal"], upstream_token(helseid, "kjernejournal"))
    assert (await call(http, "kjernejournal", headers)).status_code != 401
    replay = await call(http, "kjernejournal", headers)
    assert replay.status_code == 401
    assert 'error="invalid_dpop_proof"' in replay.headers["www-authenticate"]


async def test_a_required_nonce_is_announced_and_then_accepted(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, helseid = sandbox
    await http.put("/_sandbox/helseid/settings", json={"resource_nonce": True})
    token = upstream_token(helseid, "kjernejournal")
    first = await call(http, "kjernejournal", signed(*CALLS["kjernejournal"], token))
    assert first.status_code == 401
    assert 'error="use_dpop_nonce"' in first.headers["www-authenticate"]
    nonce = first.headers["dpop-nonce"]
    second = await call(http, "kjernejournal",
                        signed(*CALLS["kjernejournal"], token, nonce=nonce))
    assert second.status_code != 401
    assert (await http.get("/_sandbox/requests")).json()["kjernejournal"] == 1


async def test_the_guard_counts_refusals_by_error(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, helseid = sandbox
    await call(http, "pll")
    await call(http, "pll", _other_audience(helseid, *CALLS["pll"]))  # a pll token: accepted
    await call(http, "pll", signed(*CALLS["pll"], upstream_token(helseid, "eresept")))
    auth = (await http.get("/_sandbox/auth")).json()["pll"]
    assert auth["refused"] == {"invalid_token": 2}
    assert auth["accepted"] == 1
    assert auth["audiences_seen"] == {RESOURCES["pll"][0]: 1, RESOURCES["eresept"][0]: 1}
    await http.delete("/_sandbox/auth")
    assert (await http.get("/_sandbox/auth")).json()["pll"]["accepted"] == 0


async def test_the_guards_are_on_by_default_and_the_switch_turns_them_off() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app({})),
                                 base_url=BASE) as http:
        assert (await call(http, "kjernejournal")).status_code == 401
    app = create_app({"KILDE_SANDBOX__REQUIRE_TOKENS": "false"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        assert (await call(http, "kjernejournal")).status_code != 401
    with pytest.raises(ValueError, match="REQUIRE_TOKENS"):
        create_app({"KILDE_SANDBOX__REQUIRE_TOKENS": "maybe"})

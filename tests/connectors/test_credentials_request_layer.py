"""The request layer sends each upstream its own HelseID token with a DPoP proof, answers a
resource server's nonce challenge, and renews a token the upstream no longer accepts."""

from __future__ import annotations

import httpx
import jwt
import pytest

from connectors import UpstreamRejectedError
from connectors.credentials import (
    NO_CREDENTIALS,
    Audience,
    Credentials,
    HelseIdClient,
    TokenProvider,
    access_token_hash,
    challenge_error,
    generate_key,
    jwk_thumbprint,
)
from connectors.fhir import request_json, request_json_response

KJ = Audience("nhn:kjernejournal", "nhn:kjernejournal/api")
PLL = Audience("nhn:sfm", "nhn:sfm/pll")
TOKEN_URL = "https://helseid.test/connect/token"
DPOP_KEY = generate_key()


class World:
    """A token endpoint issuing `<resource>#<n>` tokens and one upstream at https://up.test."""

    def __init__(self, upstream: object) -> None:
        self.issued: list[str] = []
        self.seen: list[httpx.Request] = []
        self.upstream = upstream

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            token = f"{form['resource'].replace('%3A', ':')}#{len(self.issued)}"
            self.issued.append(token)
            return httpx.Response(200, json={"access_token": token, "token_type": "DPoP",
                                             "expires_in": 300})
        self.seen.append(request)
        return self.upstream(request)  # type: ignore[operator]

    def client(self) -> tuple[httpx.AsyncClient, TokenProvider]:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self))
        helseid = HelseIdClient(http, issuer="https://helseid.test", client_id="kilde",
                                client_key=DPOP_KEY, dpop_key=DPOP_KEY, token_endpoint=TOKEN_URL)
        return http, TokenProvider(helseid)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"resourceType": "Bundle"})


async def test_each_upstream_call_carries_its_audiences_token_and_a_bound_proof() -> None:
    world = World(ok)
    http, provider = world.client()
    credentials = provider.for_caller("caller")
    for audience, path in ((KJ, "/kj/Flag"), (PLL, "/pll/$getMedication"), (KJ, "/kj/Status")):
        await request_json(http, "s", "GET", f"https://up.test{path}?nin=1", timeout=2,
                           auth=credentials.to(audience))
    assert world.issued == ["nhn:kjernejournal#0", "nhn:sfm#1"]
    tokens = [r.headers["authorization"] for r in world.seen]
    assert tokens == ["DPoP nhn:kjernejournal#0", "DPoP nhn:sfm#1", "DPoP nhn:kjernejournal#0"]
    for request in world.seen:
        proof = request.headers["dpop"]
        header = jwt.get_unverified_header(proof)
        claims = jwt.decode(proof, jwt.PyJWK(header["jwk"], "ES256"), algorithms=["ES256"])
        assert jwk_thumbprint(header["jwk"]) == DPOP_KEY.thumbprint
        assert claims["htm"] == "GET"
        assert claims["htu"] == f"https://up.test{request.url.path}"
        assert claims["ath"] == access_token_hash(request.headers["authorization"][5:])
    assert len({jwt.decode(r.headers["dpop"], options={"verify_signature": False})["jti"]
                for r in world.seen}) == 3


async def test_no_credentials_send_no_authorization() -> None:
    world = World(ok)
    http, _ = world.client()
    await request_json(http, "s", "GET", "https://up.test/x", timeout=2,
                       auth=NO_CREDENTIALS.to(KJ))
    assert "authorization" not in world.seen[0].headers
    assert "dpop" not in world.seen[0].headers


async def test_a_resource_server_nonce_challenge_is_answered_and_the_nonce_reused() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        claims = jwt.decode(request.headers["dpop"], options={"verify_signature": False})
        if claims.get("nonce") != "rs-nonce":
            return httpx.Response(401, headers={
                "WWW-Authenticate": 'DPoP error="use_dpop_nonce", error_description="nonce"',
                "DPoP-Nonce": "rs-nonce"})
        return ok(request)

    world = World(upstream)
    http, provider = world.client()
    auth = provider.for_caller("caller").to(KJ)
    body = await request_json(http, "kjernejournal", "GET", "https://up.test/a", timeout=2,
                              auth=auth)
    assert body == {"resourceType": "Bundle"}
    assert len(world.seen) == 2
    await request_json(http, "kjernejournal", "GET", "https://up.test/b", timeout=2, auth=auth)
    assert len(world.seen) == 3  # the nonce was remembered for that server
    assert len(world.issued) == 1


async def test_a_cached_token_the_upstream_rejects_is_renewed_once() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"].endswith("#0"):
            return httpx.Response(401, headers={"WWW-Authenticate": 'DPoP error="invalid_token"'})
        return ok(request)

    world = World(ok)
    http, provider = world.client()
    auth = provider.for_caller("caller").to(KJ)
    await request_json(http, "s", "GET", "https://up.test/a", timeout=2, auth=auth)
    world.upstream = upstream  # the upstream revokes token #0
    await request_json(http, "s", "GET", "https://up.test/b", timeout=2, auth=auth)
    assert world.issued == ["nhn:kjernejournal#0", "nhn:kjernejournal#1"]
    await request_json(http, "s", "GET", "https://up.test/c", timeout=2, auth=auth)
    assert len(world.issued) == 2


async def test_a_fresh_token_the_upstream_rejects_is_an_error_not_a_loop() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'DPoP error="invalid_token"'})

    world = World(upstream)
    http, provider = world.client()
    with pytest.raises(UpstreamRejectedError, match="did not accept Kilde's credentials") as info:
        await request_json_response(http, "kjernejournal", "GET", "https://up.test/a",
                                    timeout=2, auth=provider.for_caller("caller").to(KJ))
    assert info.value.status_code == 401
    assert len(world.issued) == 1
    assert len(world.seen) == 1


async def test_a_call_without_a_user_uses_client_credentials() -> None:
    world = World(ok)
    http, provider = world.client()
    await request_json(http, "s", "POST", "https://up.test/status", timeout=2, json={},
                       auth=Credentials(provider, None).to(KJ, machine=True))
    assert len(world.issued) == 1


def test_a_requests_calls_to_one_audience_share_one_upstream_auth() -> None:
    _, provider = World(ok).client()
    credentials = Credentials(provider, "caller")
    kj = credentials.to(KJ)
    machine = credentials.to(KJ, machine=True)
    assert kj is not None
    assert machine is not None
    assert credentials.to(KJ) is kj
    assert credentials.to(Audience(KJ.resource, KJ.scope)) is kj  # an equal audience
    assert credentials.to(KJ, machine=True) is machine
    assert (kj.audience, machine.audience.grant) == (KJ, "client_credentials")
    assert credentials.to(PLL) is not kj
    assert Credentials(provider, "caller").to(KJ) is not kj  # another request, its own


@pytest.mark.parametrize(("header", "error"), [
    ('DPoP error="use_dpop_nonce", error_description="x"', "use_dpop_nonce"),
    ('Bearer realm="x", DPoP error=invalid_token', "invalid_token"),
    ("DPoP", None),
    ("", None),
])
def test_challenge_error_reads_the_error_parameter(header: str, error: str | None) -> None:
    assert challenge_error(header) == error


def test_audience_comes_from_connector_settings() -> None:
    from connectors import ConnectorSettings

    assert Audience.of(ConnectorSettings("pll")) is None
    audience = Audience.of(ConnectorSettings("pll", audience="nhn:sfm", scope="nhn:sfm/pll"))
    assert audience == Audience("nhn:sfm", "nhn:sfm/pll", "token_exchange")
    with pytest.raises(ValueError, match="Grant"):
        Audience("x", grant="password")

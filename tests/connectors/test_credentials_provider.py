"""The HelseID client and token provider against a scripted token endpoint (httpx.MockTransport):
what Kilde sends (form, client assertion, DPoP proof), how it caches per caller and audience,
single flight, renewal before expiry, nonce retry, and how refusals become connector errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

from connectors import UpstreamRejectedError, UpstreamTimeoutError, UpstreamUnavailableError
from connectors.credentials import (
    ASSERTION_TYPE,
    CLIENT_ASSERTION_TYPE,
    TOKEN_EXCHANGE,
    Audience,
    HelseIdClient,
    PrivateKey,
    TokenProvider,
    generate_key,
    jwk_thumbprint,
)

ISSUER = "https://helseid.test"
TOKEN_URL = f"{ISSUER}/connect/token"
KJ = Audience("nhn:kjernejournal", "nhn:kjernejournal/api")
PLL = Audience("nhn:sfm", "nhn:sfm/pll")
MACHINE = Audience("nhn:persontjenesten", "nhn:persontjenesten/read", "client_credentials")
CLIENT_KEY, DPOP_KEY = generate_key(alg="RS256", kid="kilde-1"), generate_key()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class TokenEndpoint:
    """A scripted HelseID: discovery, and a token endpoint answering with `respond`."""

    def __init__(self, respond: Callable[[dict[str, str], httpx.Request], httpx.Response]
                 | None = None, *, lifetime: int = 300) -> None:
        self.forms: list[dict[str, str]] = []
        self.requests: list[httpx.Request] = []
        self.discoveries = 0
        self.lifetime = lifetime
        self.respond = respond or self.issue
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    def issue(self, form: dict[str, str], request: httpx.Request) -> httpx.Response:
        n = len(self.forms) - 1
        return httpx.Response(200, json={"access_token": f"at-{n}", "token_type": "DPoP",
                                         "expires_in": self.lifetime, "scope": form["scope"]})

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            self.discoveries += 1
            return httpx.Response(200, json={"issuer": ISSUER, "token_endpoint": TOKEN_URL})
        assert request.url == TOKEN_URL
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        self.requests.append(request)
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.respond(form, request)


def _client(endpoint: TokenEndpoint, clock: Clock | None = None,
            client_key: PrivateKey | None = None, dpop_key: PrivateKey | None = None
            ) -> HelseIdClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    return HelseIdClient(http, issuer=ISSUER, client_id="kilde",
                         client_key=client_key or CLIENT_KEY,
                         dpop_key=dpop_key or DPOP_KEY, clock=clock or time.time)


async def test_token_exchange_sends_rfc_8693_form_with_client_assertion_and_dpop() -> None:
    endpoint = TokenEndpoint()
    client_key, dpop_key = CLIENT_KEY, DPOP_KEY
    client = _client(endpoint)
    token = await client.exchange("caller-token", resource=KJ.resource, scope=KJ.scope)
    assert token.dpop
    assert token.access_token == "at-0"
    form = endpoint.forms[0]
    assert form["grant_type"] == TOKEN_EXCHANGE
    assert form["subject_token"] == "caller-token"
    assert form["subject_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert (form["resource"], form["scope"]) == (KJ.resource, KJ.scope)
    assert form["client_id"] == "kilde"
    assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    header = jwt.get_unverified_header(form["client_assertion"])
    assert header == {"alg": "RS256", "typ": ASSERTION_TYPE, "kid": "kilde-1"}
    claims = jwt.decode(form["client_assertion"], client_key.key.public_key(),
                        algorithms=["RS256"], audience=ISSUER)
    assert claims["iss"] == claims["sub"] == "kilde"
    assert 0 < claims["exp"] - claims["iat"] <= 60
    proof = endpoint.requests[0].headers["dpop"]
    proof_header = jwt.get_unverified_header(proof)
    assert jwk_thumbprint(proof_header["jwk"]) == dpop_key.thumbprint
    proof_claims = jwt.decode(proof, jwt.PyJWK(proof_header["jwk"], "ES256"),
                              algorithms=["ES256"])
    assert (proof_claims["htm"], proof_claims["htu"]) == ("POST", TOKEN_URL)
    assert "ath" not in proof_claims


async def test_client_credentials_sends_no_subject_token() -> None:
    endpoint = TokenEndpoint()
    await _client(endpoint).client_credentials(resource=MACHINE.resource, scope=MACHINE.scope)
    form = endpoint.forms[0]
    assert form["grant_type"] == "client_credentials"
    assert "subject_token" not in form
    assert form["resource"] == MACHINE.resource


async def test_every_token_request_has_a_fresh_assertion_and_proof() -> None:
    endpoint = TokenEndpoint()
    client = _client(endpoint)
    for _ in range(3):
        await client.exchange("t", resource=KJ.resource, scope=KJ.scope)
    jtis = {jwt.decode(f["client_assertion"], options={"verify_signature": False})["jti"]
            for f in endpoint.forms}
    proofs = {jwt.decode(r.headers["dpop"], options={"verify_signature": False})["jti"]
              for r in endpoint.requests}
    assert len(jtis) == len(proofs) == 3
    assert endpoint.discoveries == 1


async def test_use_dpop_nonce_is_answered_once_and_remembered() -> None:
    def respond(form: dict[str, str], request: httpx.Request) -> httpx.Response:
        claims = jwt.decode(request.headers["dpop"], options={"verify_signature": False})
        if claims.get("nonce") != "n-1":
            return httpx.Response(400, json={"error": "use_dpop_nonce"},
                                  headers={"DPoP-Nonce": "n-1"})
        return endpoint.issue(form, request)

    endpoint = TokenEndpoint(respond)
    client = _client(endpoint)
    await client.exchange("t", resource=KJ.resource, scope=KJ.scope)
    assert len(endpoint.forms) == 2
    await client.exchange("t2", resource=KJ.resource, scope=KJ.scope)
    assert len(endpoint.forms) == 3  # the remembered nonce needs no second round


async def test_a_nonce_challenge_that_repeats_is_a_refusal_not_a_loop() -> None:
    endpoint = TokenEndpoint(lambda f, r: httpx.Response(
        400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": f"n-{time.time()}"}))
    provider = TokenProvider(_client(endpoint))
    with pytest.raises(UpstreamRejectedError, match="use_dpop_nonce"):
        await provider.token(KJ, "t", source="kjernejournal", timeout=2)
    assert len(endpoint.forms) == 2


async def test_tokens_are_cached_per_caller_and_audience() -> None:
    endpoint = TokenEndpoint()
    provider = TokenProvider(_client(endpoint))
    for _ in range(5):
        for audience in (KJ, PLL):
            for caller in ("alice-token", "bob-token"):
                await provider.token(audience, caller, source="s", timeout=2)
    assert len(endpoint.forms) == 4
    assert {(f["subject_token"], f["resource"]) for f in endpoint.forms} == {
        ("alice-token", KJ.resource), ("bob-token", KJ.resource),
        ("alice-token", PLL.resource), ("bob-token", PLL.resource)}
    first, cached = await provider.token(KJ, "alice-token", source="s", timeout=2)
    assert cached
    assert first.access_token in {"at-0", "at-1", "at-2", "at-3"}


async def test_client_credentials_tokens_are_shared_by_all_callers() -> None:
    endpoint = TokenEndpoint()
    provider = TokenProvider(_client(endpoint))
    for caller in ("a", "b", None):
        await provider.token(MACHINE, caller, source="persontjenesten", timeout=2)
    assert len(endpoint.forms) == 1


async def test_a_burst_of_one_callers_requests_makes_one_exchange() -> None:
    endpoint = TokenEndpoint()
    endpoint.gate = asyncio.Event()
    provider = TokenProvider(_client(endpoint))
    waiting = [asyncio.create_task(provider.token(KJ, "t", source="s", timeout=5))
               for _ in range(20)]
    await endpoint.arrived.wait()
    endpoint.gate.set()
    tokens = {(await w)[0].access_token for w in waiting}
    assert tokens == {"at-0"}
    assert len(endpoint.forms) == 1


async def test_a_token_is_renewed_shortly_before_it_expires_in_the_background() -> None:
    clock = Clock()
    endpoint = TokenEndpoint(lifetime=300)
    provider = TokenProvider(_client(endpoint, clock), renew_before=30, clock=clock)
    first, _ = await provider.token(KJ, "t", source="s", timeout=2)
    clock.now += 269
    assert (await provider.token(KJ, "t", source="s", timeout=2))[0] is first
    clock.now += 2  # 29 s left: inside the renewal margin
    # the request keeps the token it has; the renewal runs beside it
    kept, cached = await provider.token(KJ, "t", source="s", timeout=2)
    assert kept is first
    assert cached
    await asyncio.sleep(0.05)  # the renewal lands
    assert len(endpoint.forms) == 2
    renewed, cached = await provider.token(KJ, "t", source="s", timeout=2)
    assert cached
    assert renewed.access_token != first.access_token


async def test_cached_answers_without_a_wait_what_token_would_answer_from_the_cache() -> None:
    clock = Clock()
    endpoint = TokenEndpoint(lifetime=300)
    provider = TokenProvider(_client(endpoint, clock), renew_before=30, clock=clock)
    assert provider.cached(KJ, "t") is None  # nothing yet: `token` must ask HelseID
    first, _ = await provider.token(KJ, "t", source="s", timeout=2)
    assert provider.cached(KJ, "t") is first
    assert provider.cached(KJ, "other caller") is None
    assert provider.cached(PLL, "t") is None
    clock.now += 271  # inside the renewal margin: still handed out, the renewal starts
    assert provider.cached(KJ, "t") is first
    await asyncio.sleep(0.05)
    assert len(endpoint.forms) == 2
    renewed = provider.cached(KJ, "t")
    assert renewed is not None
    assert renewed.access_token != first.access_token
    clock.now += 295  # nearly gone: not handed out
    assert provider.cached(KJ, "t") is None


async def test_a_token_nearly_gone_is_not_handed_out_the_request_waits_for_the_new_one(
) -> None:
    clock = Clock()
    endpoint = TokenEndpoint(lifetime=300)
    provider = TokenProvider(_client(endpoint, clock), renew_before=30, clock=clock)
    first, _ = await provider.token(MACHINE, None, source="s", timeout=2)
    clock.now += 291  # 9 s left: inside USABLE_MARGIN
    renewed, cached = await provider.token(MACHINE, None, source="s", timeout=2)
    assert not cached
    assert renewed.access_token != first.access_token


async def test_a_failed_renewal_ahead_keeps_the_current_token_and_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    fail = {"on": False}
    endpoint = TokenEndpoint(lifetime=300)
    issue = endpoint.issue

    def respond(form: dict[str, str], request: httpx.Request) -> httpx.Response:
        if fail["on"]:
            return httpx.Response(503, json={"error": "temporarily_unavailable"})
        return issue(form, request)

    endpoint.respond = respond
    provider = TokenProvider(_client(endpoint, clock), renew_before=30, clock=clock)
    first, _ = await provider.token(MACHINE, None, source="s", timeout=2)
    clock.now += 275
    fail["on"] = True
    assert (await provider.token(MACHINE, None, source="s", timeout=2))[0] is first
    await asyncio.sleep(0.05)
    assert "renewing the client_credentials token for nhn:persontjenesten failed" in caplog.text
    assert "at-" not in caplog.text  # never the token
    fail["on"] = False
    assert (await provider.token(MACHINE, None, source="s", timeout=2))[0] is first
    await asyncio.sleep(0.05)
    renewed, _ = await provider.token(MACHINE, None, source="s", timeout=2)
    assert renewed.access_token != first.access_token


async def test_a_short_lived_token_is_kept_for_half_its_life() -> None:
    clock = Clock()
    endpoint = TokenEndpoint(lifetime=20)
    provider = TokenProvider(_client(endpoint, clock), renew_before=30, clock=clock)
    await provider.token(KJ, "t", source="s", timeout=2)
    clock.now += 9
    await provider.token(KJ, "t", source="s", timeout=2)
    assert len(endpoint.forms) == 1
    clock.now += 2
    await provider.token(KJ, "t", source="s", timeout=2)
    await asyncio.sleep(0.05)  # renewed beside the request (background, ahead of expiry)
    assert len(endpoint.forms) == 2


async def test_the_cache_is_bounded() -> None:
    provider = TokenProvider(_client(TokenEndpoint()), max_entries=3)
    for n in range(10):
        await provider.token(KJ, f"caller-{n}", source="s", timeout=2)
    assert len(provider) == 3


@pytest.mark.parametrize(("response", "error", "text"), [
    (httpx.Response(400, json={"error": "invalid_grant", "error_description": "pid 1234"}),
     UpstreamRejectedError, "HTTP 400 (invalid_grant)"),
    (httpx.Response(400, json={"error": "invalid_authorization_details"}),
     UpstreamRejectedError, "invalid_authorization_details"),
    (httpx.Response(401, text="nope"), UpstreamRejectedError, "HTTP 401."),
    (httpx.Response(503, text="down"), UpstreamUnavailableError, "HTTP 503"),
    (httpx.Response(200, text="<html>"), UpstreamRejectedError, "no access token"),
    (httpx.Response(200, json={"access_token": "x", "token_type": "mac", "expires_in": 60}),
     UpstreamRejectedError, "unknown token type"),
    (httpx.Response(200, json={"access_token": "x", "token_type": "DPoP"}),
     UpstreamRejectedError, "expires_in"),
    (httpx.Response(200, json={"access_token": "x y", "token_type": "DPoP", "expires_in": 5}),
     UpstreamRejectedError, "no access token"),
])
async def test_a_token_endpoint_failure_is_a_connector_error_without_its_body(
        response: httpx.Response, error: type[Exception], text: str) -> None:
    provider = TokenProvider(_client(TokenEndpoint(lambda f, r: response)))
    with pytest.raises(error, match="kjernejournal") as info:
        await provider.token(KJ, "caller-token", source="kjernejournal", timeout=2)
    message = str(info.value)
    assert text in message
    assert "pid 1234" not in message
    assert "caller-token" not in message
    assert len(provider) == 0


async def test_an_unreachable_helseid_is_unavailable_and_not_cached() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    client = HelseIdClient(http, issuer=ISSUER, client_id="kilde", client_key=generate_key(),
                           dpop_key=generate_key(), token_endpoint=TOKEN_URL)
    provider = TokenProvider(client)
    with pytest.raises(UpstreamUnavailableError, match="could not be reached"):
        await provider.token(KJ, "t", source="pll", timeout=2)


async def test_a_slow_helseid_times_out_within_the_source_budget() -> None:
    endpoint = TokenEndpoint()
    endpoint.gate = asyncio.Event()
    provider = TokenProvider(_client(endpoint))
    with pytest.raises(UpstreamTimeoutError, match="no HelseID token in time"):
        await provider.token(KJ, "t", source="pll", timeout=0.05)
    endpoint.gate.set()
    # the flight went on: the next request finds its token
    token, _ = await provider.token(KJ, "t", source="pll", timeout=2)
    assert token.access_token == "at-0"
    assert len(endpoint.forms) == 1


async def test_exchange_without_a_caller_token_is_refused_before_asking_helseid() -> None:
    endpoint = TokenEndpoint()
    provider = TokenProvider(_client(endpoint))
    with pytest.raises(UpstreamRejectedError, match="needs a caller's token"):
        await provider.token(KJ, None, source="kjernejournal", timeout=2)
    assert endpoint.forms == []


async def test_discovery_for_another_issuer_is_refused() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"issuer": "https://evil", "token_endpoint": TOKEN_URL})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = HelseIdClient(http, issuer=ISSUER, client_id="kilde", client_key=generate_key(),
                           dpop_key=generate_key())
    with pytest.raises(UpstreamRejectedError, match="another issuer"):
        await TokenProvider(client).token(KJ, "t", source="s", timeout=2)


def test_issued_tokens_and_credentials_never_show_the_token() -> None:
    from connectors.credentials import Credentials, IssuedToken

    token = IssuedToken("secret-token", "DPoP", time.time() + 60)
    credentials = Credentials(TokenProvider(_client(TokenEndpoint())), "caller-secret")
    for text in (repr(token), repr(credentials), repr(credentials.to(KJ))):
        assert "secret" not in text

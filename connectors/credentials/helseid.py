"""Kilde as a HelseID client: discovery, `private_key_jwt`, DPoP, token exchange and client
credentials at the token endpoint.

Sits under `connectors.credentials.provider` (which caches what this returns): one call here is
one POST to HelseID's token endpoint, found by OIDC discovery from the issuer. Kilde proves who
it is with a client assertion (RFC 7523, header `typ` `client-authentication+jwt`, `iss` = `sub`
= the client id, `aud` the issuer, short `exp`, unique `jti`) and binds the token to its DPoP
key with a proof (RFC 9449); when HelseID answers `use_dpop_nonce` it retries once with the
nonce and remembers it. httpx errors and HelseID's refusals become `TokenRequestError` here;
messages carry HelseID's OAuth error code at most, never a token or a response body.

>>> client = HelseIdClient(http, issuer="https://helseid-sts.test.nhn.no", client_id="kilde",
...                        client_key=client_key, dpop_key=dpop_key)   # doctest: +SKIP
>>> token = await client.exchange(caller_token, resource="nhn:kjernejournal",
...                               scope="nhn:kjernejournal/api")     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.credentials.dpop import access_token_hash, dpop_proof
from connectors.credentials.keys import PrivateKey
from connectors.http import error_name, is_timeout

__all__ = ["ASSERTION_TYPE", "CLIENT_ASSERTION_TYPE", "TOKEN_EXCHANGE", "HelseIdClient",
           "IssuedToken", "TokenRequestError"]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_TYPE = "client-authentication+jwt"
ASSERTION_LIFETIME = 60  # seconds; HelseID refuses long-lived assertions
_OAUTH_ERROR = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$")  # RFC 6749 error codes


class TokenRequestError(Exception):
    """HelseID gave no token. `transient` says whether trying again later may help (HelseID
    unreachable, 5xx, timeout) or not (a refusal: `invalid_grant`, `invalid_scope`, ...)."""

    def __init__(self, message: str, *, transient: bool, timeout: bool = False,
                 error: str | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.timeout = timeout
        self.error = error


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token from HelseID; `repr` never shows it. `expires_at` is on `time.time()`'s
    clock; `token_type` is "DPoP" for a DPoP-bound token (then every use needs a proof)."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: float
    scope: str = ""
    # the DPoP `ath` of a DPoP-bound token, hashed once when issued, not in every proof
    ath: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.dpop:
            object.__setattr__(self, "ath", access_token_hash(self.access_token))

    @property
    def dpop(self) -> bool:
        return self.token_type.lower() == "dpop"


class HelseIdClient:
    """Asks HelseID's token endpoint for tokens, as one registered client.

    `token_endpoint` skips discovery (it is read from `{issuer}/.well-known/openid-configuration`
    on first use otherwise). `assertion_audience` defaults to the issuer, as NHN's samples do.
    `requests` counts token-endpoint POSTs (for metrics and tests).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        issuer: str,
        client_id: str,
        client_key: PrivateKey,
        dpop_key: PrivateKey,
        token_endpoint: str = "",
        assertion_audience: str = "",
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer or not client_id:
            raise ValueError("A HelseID client needs an issuer and a client id.")
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.dpop_key = dpop_key
        self._http = http
        self._client_key = client_key
        self._token_endpoint = token_endpoint
        self._assertion_audience = assertion_audience or self.issuer
        self._timeout = timeout
        self._clock = clock
        self._discovery_lock = asyncio.Lock()
        self._nonce: str | None = None
        self.requests = 0

    async def exchange(self, subject_token: str, *, resource: str, scope: str,
                       timeout: float | None = None) -> IssuedToken:
        """RFC 8693: a token for `resource` acting for the caller whose token this is."""
        return await self._request({
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "resource": resource,
            "scope": scope,
        }, timeout)

    async def client_credentials(self, *, resource: str, scope: str,
                                 timeout: float | None = None) -> IssuedToken:
        """A token for `resource` acting as Kilde itself (no user)."""
        return await self._request({
            "grant_type": "client_credentials", "resource": resource, "scope": scope,
        }, timeout)

    def client_assertion(self) -> str:
        """A fresh `private_key_jwt` assertion (one per token request: its `jti` is single-use)."""
        now = int(self._clock())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self._assertion_audience,
                  "iat": now, "nbf": now, "exp": now + ASSERTION_LIFETIME,
                  "jti": secrets.token_urlsafe(24)}
        return self._client_key.compact_jws({"typ": ASSERTION_TYPE, "kid": self._client_key.kid},
                                            claims)

    async def token_endpoint(self, timeout: float | None = None) -> str:
        """The token endpoint, discovered once from the issuer's OIDC configuration."""
        if self._token_endpoint:
            return self._token_endpoint
        async with self._discovery_lock:
            if not self._token_endpoint:
                url = f"{self.issuer}/.well-known/openid-configuration"
                document = await self._get_json(url, timeout)
                endpoint = document.get("token_endpoint") if isinstance(document, dict) else None
                if not isinstance(endpoint, str) or "://" not in endpoint:
                    raise TokenRequestError("HelseID's discovery document names no token "
                                            "endpoint.", transient=True)
                if document.get("issuer") not in (self.issuer, self.issuer + "/"):
                    raise TokenRequestError("HelseID's discovery document is for another "
                                            "issuer.", transient=False)
                self._token_endpoint = endpoint
        return self._token_endpoint

    async def _request(self, form: Mapping[str, str], timeout: float | None) -> IssuedToken:
        endpoint = await self.token_endpoint(timeout)
        for attempt in (1, 2):
            body = {**form, "client_id": self.client_id,
                    "client_assertion_type": CLIENT_ASSERTION_TYPE,
                    "client_assertion": self.client_assertion()}
            proof = dpop_proof(self.dpop_key, "POST", endpoint, nonce=self._nonce,
                               now=self._clock())
            response = await self._post(endpoint, body, proof, timeout)
            nonce = response.headers.get("dpop-nonce")
            if nonce:
                self._nonce = nonce
            error = _error_code(response)
            if error == "use_dpop_nonce" and nonce and attempt == 1:
                continue
            if response.status_code == 200:
                return self._issued(response)
            if response.status_code >= 500:
                raise TokenRequestError(f"HelseID's token endpoint failed with HTTP "
                                        f"{response.status_code}.", transient=True)
            detail = f" ({error})" if error else ""
            raise TokenRequestError(f"HelseID refused the token request with HTTP "
                                    f"{response.status_code}{detail}.", transient=False,
                                    error=error)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _issued(self, response: httpx.Response) -> IssuedToken:
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise TokenRequestError("HelseID's token response has no access token.",
                                    transient=False)
        assert isinstance(body, dict)
        token_type = body.get("token_type")
        expires_in = body.get("expires_in")
        if not isinstance(token_type, str) or token_type.lower() not in ("dpop", "bearer"):
            raise TokenRequestError("HelseID's token response has an unknown token type.",
                                    transient=False)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or \
                expires_in <= 0:
            raise TokenRequestError("HelseID's token response has no valid expires_in.",
                                    transient=False)
        scope = body.get("scope")
        return IssuedToken(token, "DPoP" if token_type.lower() == "dpop" else "Bearer",
                           self._clock() + float(expires_in),
                           scope if isinstance(scope, str) else "")

    async def _post(self, url: str, form: Mapping[str, str], proof: str,
                    timeout: float | None) -> httpx.Response:
        self.requests += 1
        try:
            return await self._http.post(url, data=form, headers={
                "dpop": proof, "accept": "application/json"}, timeout=timeout or self._timeout)
        except httpx.HTTPError as exc:
            if is_timeout(exc):
                raise TokenRequestError("HelseID's token endpoint did not answer in time.",
                                        transient=True, timeout=True) from exc
            raise TokenRequestError(f"HelseID's token endpoint could not be reached "
                                    f"({error_name(exc)}).", transient=True) from exc

    async def _get_json(self, url: str, timeout: float | None) -> Any:
        try:
            response = await self._http.get(url, timeout=timeout or self._timeout)
        except httpx.HTTPError as exc:
            if is_timeout(exc):
                raise TokenRequestError("HelseID's discovery document did not arrive in time.",
                                        transient=True, timeout=True) from exc
            raise TokenRequestError(f"HelseID's discovery document could not be fetched "
                                    f"({error_name(exc)}).", transient=True) from exc
        if response.status_code != 200:
            raise TokenRequestError(f"HelseID answered HTTP {response.status_code} for its "
                                    "discovery document.", transient=True)
        try:
            return response.json()
        except ValueError as exc:
            raise TokenRequestError("HelseID's discovery document is not JSON.",
                                    transient=True) from exc


def _error_code(response: httpx.Response) -> str | None:
    """The OAuth `error` code of a token-endpoint answer, if it is a well-formed one."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) and _OAUTH_ERROR.match(error) else None

"""One request's credentials, narrowed to one upstream: the token and DPoP proof per call.

Sits in the request layer (`connectors.fhir.request_json` takes `auth=`). The gateway makes a
`Credentials` per request from the caller's token; it travels in `FetchRequest.credentials`
(left out of `repr`, equality and cache keys). A connector narrows it to its upstream's
`Audience` (from `KILDE_CONNECTORS__<NAME>__AUDIENCE`/`__SCOPE`/`__GRANT`) and hands the result
to the request helpers, which call `UpstreamAuth.send`: it adds `Authorization: DPoP <token>`
and a fresh `DPoP` proof (with `ath`, and the server's nonce once it has sent one), and sends
once more when the upstream answers 401 with `use_dpop_nonce` or rejects a cached token.

>>> audience = Audience("nhn:kjernejournal", "nhn:kjernejournal/api")
>>> NO_CREDENTIALS.to(audience) is None    # no provider (unit tests): send no credentials
True
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from connectors.credentials.dpop import dpop_proof
from connectors.credentials.helseid import IssuedToken
from connectors.credentials.provider import TokenProvider, caller_key

__all__ = ["GRANTS", "NO_CREDENTIALS", "Audience", "Credentials", "UpstreamAnswer",
           "UpstreamAuth", "challenge_error"]

GRANTS = ("token_exchange", "client_credentials")
_CHALLENGE_ERROR = re.compile(r'\berror\s*=\s*"?([A-Za-z_]+)"?', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Audience:
    """What one upstream's HelseID token is for: the `resource` (RFC 8707: the token's only
    `aud`), the `scope`s asked for, and the `grant`: `token_exchange` (acting for the caller)
    or `client_credentials` (acting as Kilde, no user)."""

    resource: str
    scope: str = ""
    grant: str = "token_exchange"

    def __post_init__(self) -> None:
        if not self.resource:
            raise ValueError("An audience needs a resource.")
        if self.grant not in GRANTS:
            raise ValueError(f"Grant {self.grant!r} is not one of {list(GRANTS)}.")

    @classmethod
    def of(cls, settings: Any) -> Audience | None:
        """The audience in a `ConnectorSettings` (None when it names none)."""
        resource = getattr(settings, "audience", "")
        if not resource:
            return None
        return cls(resource, getattr(settings, "scope", ""),
                   getattr(settings, "grant", "") or "token_exchange")


class UpstreamAnswer(Protocol):
    """What `UpstreamAuth.send` needs to see of a response (read-only: a frozen dataclass
    or an httpx.Response both fit)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


A = TypeVar("A", bound=UpstreamAnswer)


class Credentials:
    """The caller's credentials for the upstream calls of one request; `repr` shows whether
    there is a caller token, never the token.

    >>> Credentials()
    Credentials(provider=no, caller=no)
    """

    __slots__ = ("_auths", "_caller", "_provider", "_subject")

    def __init__(self, provider: TokenProvider | None = None,
                 subject_token: str | None = None) -> None:
        self._provider = provider
        self._subject = subject_token or None
        # hashed once per request, not once per upstream call
        self._caller = caller_key(self._subject) if provider and self._subject else None
        # one UpstreamAuth per (audience, machine) for the request's calls to share
        self._auths: dict[tuple[Audience, bool], UpstreamAuth] = {}

    def to(self, audience: Audience | None, *, machine: bool = False) -> UpstreamAuth | None:
        """These credentials for one upstream; None (send none) without a provider or an
        audience. `machine=True` asks for a client-credentials token whatever the audience's
        grant (a call that acts for no user, such as a status probe)."""
        if self._provider is None or audience is None:
            return None
        auth = self._auths.get((audience, machine))
        if auth is None:
            narrowed = audience
            if machine and audience.grant != "client_credentials":
                narrowed = Audience(audience.resource, audience.scope, "client_credentials")
            auth = self._auths[audience, machine] = UpstreamAuth(
                self._provider, narrowed, self._subject, self._caller)
        return auth

    def __repr__(self) -> str:
        provider = "yes" if self._provider is not None else "no"
        return f"Credentials(provider={provider}, caller={'yes' if self._subject else 'no'})"


NO_CREDENTIALS = Credentials()


class UpstreamAuth:
    """Credentials for one upstream audience; `send` wraps one HTTP exchange with them."""

    __slots__ = ("_audience", "_caller", "_provider", "_subject")

    def __init__(self, provider: TokenProvider, audience: Audience,
                 subject_token: str | None, caller: str | None = None) -> None:
        self._provider = provider
        self._audience = audience
        self._subject = subject_token
        self._caller = caller

    @property
    def audience(self) -> Audience:
        return self._audience

    def __repr__(self) -> str:
        return f"UpstreamAuth({self._audience!r})"

    async def headers(self, source: str, method: str, url: str, *,
                      timeout: float) -> tuple[dict[str, str], IssuedToken, bool]:
        """The `Authorization` (and `DPoP`) headers for one request, the token they carry, and
        whether it came from the cache. Raises `ConnectorError` naming `source`."""
        token = self._provider.cached(self._audience, self._subject, self._caller)
        cached = token is not None
        if token is None:
            token, cached = await self._provider.token(self._audience, self._subject,
                                                       source=source, timeout=timeout,
                                                       caller=self._caller)
        return self._headers(token, method, url), token, cached

    def _headers(self, token: IssuedToken, method: str, url: str) -> dict[str, str]:
        if not token.dpop:
            return {"authorization": f"Bearer {token.access_token}"}
        proof = dpop_proof(self._provider.dpop_key, method, url,
                           access_token=token.access_token, ath=token.ath or None,
                           nonce=self._provider.nonce_for(url))
        return {"authorization": f"DPoP {token.access_token}", "dpop": proof}

    async def send(self, source: str, method: str, url: str,
                   send: Callable[[Mapping[str, str]], Awaitable[A]], *, timeout: float) -> A:
        """`send(auth_headers)` once, and once more when the upstream asks for a DPoP nonce
        or rejects a cached token as invalid (then a new token is obtained first)."""
        # a cached token (nearly every call) needs no await before the request itself
        token = self._provider.cached(self._audience, self._subject, self._caller)
        if token is not None:
            answer = await send(self._headers(token, method, url))
            cached = True
        else:
            headers, token, cached = await self.headers(source, method, url, timeout=timeout)
            answer = await send(headers)
        if self._retry(url, answer, token, cached):
            headers, token, cached = await self.headers(source, method, url, timeout=timeout)
            answer = await send(headers)
            self._retry(url, answer, token, cached=False)
        return answer

    def _retry(self, url: str, answer: UpstreamAnswer, token: IssuedToken,
               cached: bool) -> bool:
        nonce = answer.headers.get("dpop-nonce")
        if nonce:
            self._provider.remember_nonce(url, nonce)
        if answer.status != 401:
            return False
        error = challenge_error(answer.headers.get("www-authenticate", ""))
        if error == "use_dpop_nonce":
            return bool(nonce)
        if error == "invalid_token" and cached:
            self._provider.forget(self._audience, self._subject, token)
            return True
        return False


def challenge_error(www_authenticate: str) -> str | None:
    """The `error` of a `WWW-Authenticate` challenge (`DPoP error="use_dpop_nonce"`)."""
    match = _CHALLENGE_ERROR.search(www_authenticate)
    return match.group(1).lower() if match else None

"""HelseID tokens per caller and audience, cached in this process until shortly before expiry.

Sits between the request layer and `HelseIdClient`: every upstream call asks for a token for
its audience (resource + scope) on behalf of the caller (token exchange) or of Kilde itself
(client credentials). A burst of one caller's requests makes one exchange: the first call
starts it, the others wait for the same flight. Entries are keyed by a SHA-256 of the
caller's token, never the token; they live only in memory (never in Redis, never on disk) and
are dropped `renew_before` seconds before they expire. The provider also keeps the DPoP
nonces resource servers hand out, per origin. `TokenRequestError`s become the fan-out's own
`ConnectorError`s here, naming the source.

>>> provider = TokenProvider(HelseIdClient(http, issuer=..., client_id="kilde", ...))  # doctest: +SKIP
>>> credentials = provider.for_caller(caller_token)                                 # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from connectors.credentials.helseid import HelseIdClient, IssuedToken, TokenRequestError
from connectors.credentials.keys import PrivateKey
from connectors.deadline import Budget, timed_out
from connectors.errors import (
    ConnectorError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)

if TYPE_CHECKING:
    from connectors.credentials.upstream import Audience, Credentials

__all__ = ["TokenProvider"]

log = logging.getLogger("kilde.credentials")
_MAX_NONCES = 1024
# a token this close to its expiry is not handed out: the call it is for (its timeout, the
# upstream's clock) must end before the token does
USABLE_MARGIN = 10.0
_TokenKey = tuple[str, str, str, str]  # (caller token hash or "", grant, resource, scope)


@dataclass(frozen=True, slots=True)
class _Entry:
    token: IssuedToken
    fresh_until: float  # from then on a renewal runs in the background
    usable_until: float  # until then the token is still handed out meanwhile


class TokenProvider:
    """Tokens for upstream audiences, cached per caller token (by hash) and audience.

    `renew_before` seconds before a token expires it is renewed (at most half its lifetime)
    in the background: requests keep the token they have until the new one lands, and wait for
    HelseID only when no token is left that outlives `USABLE_MARGIN` (a renewal is never paid
    by one unlucky request, and a slow HelseID shows only once the old token is nearly gone);
    `max_entries` bounds the cache (expired entries go first, then the oldest).
    `issued` counts tokens obtained from HelseID, per (grant, resource).
    """

    def __init__(self, client: HelseIdClient, *, renew_before: float = 30.0,
                 max_entries: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        if renew_before < 0 or max_entries < 1:
            raise ValueError("renew_before must be >= 0 and max_entries >= 1.")
        self.client = client
        self._renew_before = renew_before
        self._max_entries = max_entries
        self._clock = clock
        self._tokens: OrderedDict[_TokenKey, _Entry] = OrderedDict()
        self._flights: dict[_TokenKey, asyncio.Future[IssuedToken]] = {}
        self._nonces: OrderedDict[str, str] = OrderedDict()
        self.issued: dict[tuple[str, str], int] = {}

    @property
    def dpop_key(self) -> PrivateKey:
        return self.client.dpop_key

    def for_caller(self, subject_token: str | None) -> Credentials:
        """The credentials for one request of the caller presenting `subject_token` (None for
        a caller without a token of its own: then only client-credentials calls work)."""
        from connectors.credentials.upstream import Credentials

        return Credentials(self, subject_token)

    async def token(self, audience: Audience, subject_token: str | None, *, source: str,
                    timeout: float, caller: str | None = None) -> tuple[IssuedToken, bool]:
        """A usable token for `audience` and whether it came from the cache; `ConnectorError`
        (naming `source`) when HelseID gives none within `timeout` seconds. `caller` is
        `caller_key(subject_token)`, when the caller has it already."""
        held = self.cached(audience, subject_token, caller)
        if held is not None:
            return held, True
        key = self._key(audience, subject_token, caller)
        if audience.grant == "token_exchange" and subject_token is None:
            raise UpstreamRejectedError(source, f"Source {source!r} needs a caller's token to "
                                                "exchange, and this request has none.")
        flight = self._flight(key, audience, subject_token)
        try:
            async with Budget(source, timeout).enforce(waiting_for="HelseID token"):
                return await asyncio.shield(flight), False
        except TokenRequestError as exc:
            raise _connector_error(source, exc) from exc

    def cached(self, audience: Audience, subject_token: str | None,
               caller: str | None = None) -> IssuedToken | None:
        """The cached token `token` would answer with at once, without a wait (starting its
        renewal when it is due), or None: then `token` must ask HelseID."""
        key = self._key(audience, subject_token, caller)
        entry = self._tokens.get(key)
        if entry is None:
            return None
        now = self._clock()
        if now < entry.fresh_until:
            return entry.token
        if now < entry.usable_until:
            self._flight(key, audience, subject_token)  # renewal ahead of expiry
            return entry.token
        return None

    def _flight(self, key: _TokenKey, audience: Audience,
                subject_token: str | None) -> asyncio.Future[IssuedToken]:
        """The one token request in flight for `key` (started if none is)."""
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._obtain(key, audience, subject_token))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return flight

    def forget(self, audience: Audience, subject_token: str | None, token: IssuedToken) -> None:
        """Drop `token` from the cache (an upstream said it is no longer valid)."""
        key = self._key(audience, subject_token, None)
        entry = self._tokens.get(key)
        if entry is not None and entry.token is token:
            del self._tokens[key]

    def nonce_for(self, url: str) -> str | None:
        """The last DPoP nonce the server at `url`'s origin gave us, if any."""
        if not self._nonces:  # the usual case: no upstream has asked for one
            return None
        return self._nonces.get(_origin(url))

    def remember_nonce(self, url: str, nonce: str) -> None:
        origin = _origin(url)
        self._nonces[origin] = nonce
        self._nonces.move_to_end(origin)
        while len(self._nonces) > _MAX_NONCES:
            self._nonces.popitem(last=False)

    def __len__(self) -> int:
        return len(self._tokens)

    def _key(self, audience: Audience, subject_token: str | None,
             caller: str | None) -> _TokenKey:
        if audience.grant == "client_credentials" or subject_token is None:
            caller = ""
        elif caller is None:
            caller = caller_key(subject_token)
        return caller, audience.grant, audience.resource, audience.scope

    async def _obtain(self, key: _TokenKey, audience: Audience,
                      subject_token: str | None) -> IssuedToken:
        if audience.grant == "client_credentials":
            token = await self.client.client_credentials(resource=audience.resource,
                                                         scope=audience.scope)
        else:
            assert subject_token is not None
            token = await self.client.exchange(subject_token, resource=audience.resource,
                                               scope=audience.scope)
        counted = (audience.grant, audience.resource)
        self.issued[counted] = self.issued.get(counted, 0) + 1
        now = self._clock()
        lifetime = max(0.0, token.expires_at - now)
        self._store(key, _Entry(token, token.expires_at - min(self._renew_before, lifetime / 2),
                                token.expires_at - min(USABLE_MARGIN, lifetime / 4)))
        return token

    def _store(self, key: _TokenKey, entry: _Entry) -> None:
        self._tokens[key] = entry
        self._tokens.move_to_end(key)
        if len(self._tokens) <= self._max_entries:
            return
        now = self._clock()
        for stale in [k for k, e in self._tokens.items() if e.fresh_until <= now]:
            del self._tokens[stale]
        while len(self._tokens) > self._max_entries:
            self._tokens.popitem(last=False)

    def _landed(self, key: _TokenKey, done: asyncio.Future[IssuedToken]) -> None:
        if self._flights.get(key) is done:
            del self._flights[key]
        if not done.cancelled() and done.exception() is not None:  # retrieved: waiters may be gone
            entry = self._tokens.get(key)
            if entry is not None and self._clock() < entry.usable_until:  # a renewal ahead
                log.warning("renewing the %s token for %s failed (%s); the current one is used "
                            "until it nearly expires", key[1], key[2],
                            type(done.exception()).__name__)


def caller_key(subject_token: str) -> str:
    """What the cache knows of a caller's token: its SHA-256, never the token."""
    return hashlib.sha256(subject_token.encode()).hexdigest()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _connector_error(source: str, exc: TokenRequestError) -> ConnectorError:
    message = f"Source {source!r} could not be called: {exc}"
    if exc.timeout:
        return timed_out(source, cause=str(exc))
    if exc.transient:
        return UpstreamUnavailableError(source, message)
    return UpstreamRejectedError(source, message)

"""Every fake upstream is a HelseID-protected API: no valid DPoP-bound token, no answer.

Sits in front of each fake (outside `sandbox.faults`, so refused calls are not counted as
requests the upstream served). A call needs `Authorization: DPoP <token>` where the token is
the simulator's, unexpired, for exactly this upstream's resource (RFC 8707), and a `DPoP`
proof for this method and URL, signed by the key the token is bound to (`cnf.jkt`), carrying
the token's hash (`ath`), never seen before, and the server nonce when one is required. A
refusal is 401 with `WWW-Authenticate: DPoP error=...` (and `DPoP-Nonce` when the nonce was
missing). Each guard counts what it accepted, what it refused and why, and the audiences of the
tokens it was shown, so tests can prove that each upstream saw exactly its own.
"""

from __future__ import annotations

import time
from collections import Counter

import orjson
from starlette.datastructures import URL, Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.helseid.checks import PROOF_ALGS, RefusedError, ReplayMemory, check_proof, check_token
from sandbox.helseid.issuer import HelseId

_ALGS = " ".join(sorted(PROOF_ALGS))


class TokenGuard:
    """Refuses calls to `app` without a valid token for `audience` (see the module doc)."""

    def __init__(self, app: ASGIApp, helseid: HelseId, source: str, audience: str) -> None:
        self.app = app
        self.helseid = helseid
        self.source = source
        self.audience = audience
        self.accepted = 0
        self.refused: Counter[str] = Counter()
        self.audiences: Counter[str] = Counter()
        self._replay = ReplayMemory()

    def reset(self) -> None:
        self.accepted = 0
        self.refused.clear()
        self.audiences.clear()

    def as_dict(self) -> dict[str, object]:
        return {"audience": self.audience, "accepted": self.accepted,
                "refused": dict(self.refused), "audiences_seen": dict(self.audiences)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check(scope)
        except RefusedError as refused:
            self.refused[refused.error] += 1
            await self._refuse(send, refused)
            return
        self.accepted += 1
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> None:
        headers = Headers(scope=scope)
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "dpop" or not token.strip():
            raise RefusedError("invalid_token", "A DPoP-bound HelseID access token is required.")
        token = token.strip()
        now = time.time()
        claims = check_token(token, self.helseid.ring.verify,
                             issuer=self.helseid.issuer_for(scope), audience=None, now=now)
        aud = claims.get("aud")
        self.audiences[aud if isinstance(aud, str) else repr(aud)] += 1
        if aud != self.audience:
            raise RefusedError("invalid_token", "The token is for another audience.")
        url = str(URL(scope=scope))
        jkt = check_proof(headers.get("dpop"), method=scope["method"], url=url, now=now,
                          replay=self._replay, access_token=token,
                          nonce=self.helseid.nonce if self.helseid.resource_nonce else None)
        cnf = claims.get("cnf")
        if not isinstance(cnf, dict) or cnf.get("jkt") != jkt:
            raise RefusedError("invalid_token", "The token is not bound to the proof's key.")

    async def _refuse(self, send: Send, refused: RefusedError) -> None:
        challenge = f'DPoP error="{refused.error}", algs="{_ALGS}"'
        headers = [(b"www-authenticate", challenge.encode()),
                   (b"content-type", b"application/fhir+json")]
        if refused.error == "use_dpop_nonce":
            headers.append((b"dpop-nonce", self.helseid.nonce.encode()))
        body = orjson.dumps({"resourceType": "OperationOutcome", "issue": [{
            "severity": "error", "code": "login", "diagnostics": refused.description}]})
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})

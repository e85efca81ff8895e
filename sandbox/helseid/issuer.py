"""The HelseID simulator's state and its token endpoint: who is registered, what it issued.

Sits behind `sandbox.helseid.app` (the HTTP routes) and `sandbox.guard` (the fakes' token
check). `/connect/token` takes RFC 8693 token exchange and client credentials from a registered
client that proves itself with a `private_key_jwt` assertion and binds the token to its key
with a DPoP proof; it issues RFC 9068 tokens for exactly one resource (RFC 8707) with
`cnf.jkt`, carrying the caller's user claims and attest (`authorization_details`) and an `act`
claim naming the client. Persona tokens for Kilde itself are minted here too. Every request to
the token endpoint is counted per client, grant, audience and subject.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.datastructures import URL
from starlette.types import Scope

from sandbox.helseid import personas
from sandbox.helseid.checks import (
    RefusedError,
    ReplayMemory,
    check_assertion,
    check_proof,
    check_token,
)
from sandbox.helseid.keys import KeyRing, key_file, load_jwk, public_jwk

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANTS = {TOKEN_EXCHANGE: "token_exchange", "client_credentials": "client_credentials"}
KILDE_AUDIENCE = "kilde"  # Kilde's own API, the audience of the personas' tokens
KILDE_CLIENT_ID = "kilde"
DEMO_CLIENT_ID = "kilde-demo"  # the EPJ/app the personas log in with
# The fakes as HelseID-protected APIs: source -> (resource, scope). A new fake adds its own
# entry (sandbox.app guards every fake with it; Kilde's client `kilde` may ask for each).
RESOURCES: Mapping[str, tuple[str, str]] = {
    "municipal": ("kommune:fkj-hendelseslager", "kommune:fkj-hendelseslager/read"),
    "kjernejournal": ("nhn:kjernejournal", "nhn:kjernejournal/api"),
    "pll": ("nhn:pll", "nhn:pll/read"),
    "eresept": ("nhn:e-resept", "nhn:e-resept/read"),
    "proevesvar": ("nhn:proevesvar", "nhn:proevesvar/read"),
    "persontjenesten": ("nhn:hgd-persontjenesten-api",
                        "nhn:hgd-persontjenesten-api/read-with-legal-basis"),
}
# Claims that describe the token itself, never copied from a subject token into a new one.
_TOKEN_CLAIMS = frozenset({"iss", "aud", "exp", "iat", "nbf", "jti", "cnf", "scope",
                           "client_id", "act"})


@dataclass
class Client:
    """A registered HelseID client: its public keys, grants, and the resources (with scopes)
    it may ask for; `exchange_from` are the audiences of tokens it may exchange."""

    client_id: str
    keys: list[dict[str, Any]]
    resources: dict[str, frozenset[str]]
    grants: frozenset[str] = frozenset(GRANTS.values())
    exchange_from: frozenset[str] = frozenset({KILDE_AUDIENCE})

    @classmethod
    def from_json(cls, client_id: str, data: Mapping[str, Any]) -> Client:
        jwks = data.get("jwks", {})
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        resources = data.get("resources")
        if not isinstance(keys, list) or not keys or not isinstance(resources, dict):
            raise ValueError("A client needs 'jwks' ({'keys': [...]}) and 'resources' "
                             "({resource: [scopes]}).")
        grants = frozenset(data.get("grants", GRANTS.values()))
        if not grants <= set(GRANTS.values()):
            raise ValueError(f"Grants must be among {sorted(GRANTS.values())}.")
        return cls(client_id, [public_jwk(k) for k in keys],
                   {r: frozenset(s) for r, s in resources.items()}, grants,
                   frozenset(data.get("exchange_from", [KILDE_AUDIENCE])))

    def as_json(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "jwks": {"keys": self.keys},
                "resources": {r: sorted(s) for r, s in self.resources.items()},
                "grants": sorted(self.grants), "exchange_from": sorted(self.exchange_from)}


def kilde_client() -> Client:
    """Kilde, registered with the public half of the sandbox's `kilde-client.json`."""
    return Client(KILDE_CLIENT_ID, [public_jwk(load_jwk("kilde-client.json"))],
                  {resource: frozenset({scope}) for resource, scope in RESOURCES.values()})


def kilde_settings(base_url: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """How Kilde uses the sandbox at `base_url` as registered client `kilde`: its HelseID
    settings (`KILDE_HELSEID__*` fields, the sandbox's published keys) and each fake's
    (resource, scope); see `gateway.settings.Settings.with_helseid`."""
    issuer = f"{base_url.rstrip('/')}/helseid"
    return ({"issuer": issuer, "client_id": KILDE_CLIENT_ID,
             "client_key": str(key_file("kilde-client.json")),
             "dpop_key": str(key_file("kilde-dpop.json"))}, dict(RESOURCES))


def jwks_url(issuer: str) -> str:
    return f"{issuer}/.well-known/openid-configuration/jwks"


def kilde_environment(base_url: str) -> dict[str, str]:
    """`kilde_settings` as `KILDE_*` variables, for a `kilde serve` process, and the callers'
    issuer (this simulator) with its JWKS."""
    helseid, audiences = kilde_settings(base_url)
    env = {f"KILDE_HELSEID__{name.upper()}": value for name, value in helseid.items()}
    env["KILDE_AUTH__ISSUER"] = helseid["issuer"]
    env["KILDE_AUTH__JWKS_URL"] = jwks_url(helseid["issuer"])
    for source, (resource, scope) in audiences.items():
        env[f"KILDE_CONNECTORS__{source.upper()}__AUDIENCE"] = resource
        env[f"KILDE_CONNECTORS__{source.upper()}__SCOPE"] = scope
    return env


def sandbox_root(scope: Scope) -> str:
    """The sandbox app's own base URL (scheme, host, the root it is mounted at)."""
    root = dict(scope)
    root["path"] = scope.get("app_root_path", "")
    root["query_string"] = b""
    return str(URL(scope=root)).rstrip("/")


@dataclass
class HelseId:
    """The simulator: keys, registered clients, knobs and counters (one per sandbox app)."""

    fixed_issuer: str = ""
    token_lifetime: int = 300
    require_nonce: bool = False  # the token endpoint demands a DPoP nonce
    resource_nonce: bool = False  # every fake demands one too
    ring: KeyRing = field(default_factory=KeyRing)
    clients: dict[str, Client] = field(default_factory=lambda: {KILDE_CLIENT_ID: kilde_client()})
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    counts: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    _proofs: ReplayMemory = field(default_factory=ReplayMemory)
    _assertions: ReplayMemory = field(default_factory=ReplayMemory)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HelseId:
        env = os.environ if environ is None else environ
        prefix = "KILDE_SANDBOX__HELSEID__"
        helseid = cls(fixed_issuer=env.get(prefix + "ISSUER", "").rstrip("/"))
        if raw := env.get(prefix + "TOKEN_LIFETIME"):
            helseid.update({"token_lifetime": raw})
        if path := env.get(prefix + "CLIENTS"):
            try:
                table = json.loads(Path(path).read_text())
                for client_id, data in table.items():
                    helseid.clients[client_id] = Client.from_json(client_id, data)
            except (OSError, ValueError, AttributeError) as exc:
                raise ValueError(f"{prefix}CLIENTS must name a JSON file mapping client ids to "
                                 f"clients: {exc}") from None
        return helseid

    def issuer_for(self, scope: Scope) -> str:
        return self.fixed_issuer or f"{sandbox_root(scope)}/helseid"

    def update(self, values: Mapping[str, Any]) -> None:
        """Change the knobs (`token_lifetime`, `require_nonce`, `resource_nonce`); turning a
        nonce on issues a new nonce value."""
        for key, value in values.items():
            if key == "token_lifetime":
                seconds = int(value)
                if not 1 <= seconds <= 86400:
                    raise ValueError("token_lifetime must be 1..86400 seconds.")
                self.token_lifetime = seconds
            elif key in ("require_nonce", "resource_nonce"):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false.")
                setattr(self, key, value)
                if value:
                    self.nonce = secrets.token_urlsafe(16)
            else:
                raise ValueError(f"Unknown HelseID setting {key!r}.")

    def settings(self) -> dict[str, Any]:
        return {"token_lifetime": self.token_lifetime, "require_nonce": self.require_nonce,
                "resource_nonce": self.resource_nonce}

    def mint(self, claims: Mapping[str, Any], *, issuer: str, audience: str, client_id: str,
             lifetime: int, jkt: str | None = None, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        body = {**claims, "iss": issuer, "aud": audience, "client_id": client_id,
                "iat": issued, "nbf": issued, "exp": issued + lifetime,
                "jti": secrets.token_urlsafe(16)}
        if jkt:
            body["cnf"] = {"jkt": jkt}
        return self.ring.sign(body)

    def persona_token(self, persona: str, patient: str | None = None, *, issuer: str,
                      audience: str = KILDE_AUDIENCE, jkt: str | None = None,
                      lifetime: int = 3600, attest_age: int = 0, purpose: str | None = None,
                      now: float | None = None) -> str:
        """A token for Kilde, as HelseID would give the persona's app after login."""
        issued = int(time.time() if now is None else now)
        claims = personas.caller_claims(persona, patient, now=issued, attest_age=attest_age,
                                        purpose=purpose)
        client_id = (personas.EVENT_STORE_CLIENT_ID if persona in personas.SERVICE_ACCOUNTS
                     else DEMO_CLIENT_ID)
        return self.mint(claims, issuer=issuer, audience=audience, client_id=client_id,
                         lifetime=lifetime, jkt=jkt, now=issued)

    def token_request(self, form: Mapping[str, str], proof: str | None, *, issuer: str,
                      endpoint: str, now: float) -> dict[str, Any]:
        """Answer one POST to the token endpoint, or raise `RefusedError`."""
        grant = GRANTS.get(form.get("grant_type", ""))
        client = self.clients.get(form.get("client_id", ""))
        if client is None:
            raise RefusedError("invalid_client", "Unknown client.")
        if form.get("client_assertion_type") != JWT_BEARER:
            raise RefusedError("invalid_client", "Use private_key_jwt client authentication.")
        check_assertion(form.get("client_assertion"), client.client_id, client.keys,
                        audiences=(issuer, endpoint), now=now, replay=self._assertions)
        jkt = check_proof(proof, method="POST", url=endpoint, now=now, replay=self._proofs,
                          nonce=self.nonce if self.require_nonce else None)
        if grant is None or grant not in client.grants:
            raise RefusedError("unauthorized_client", "This grant is not allowed for the client.")
        resource = form.get("resource", "")
        allowed = client.resources.get(resource)
        if allowed is None:
            raise RefusedError("invalid_target", "The client may not ask for this resource.")
        scopes = frozenset(form.get("scope", "").split()) or allowed
        if not scopes <= allowed:
            raise RefusedError("invalid_scope", "The client may not ask for these scopes.")
        claims: dict[str, Any] = {"sub": client.client_id}
        subject = ""
        if grant == "token_exchange":
            claims = self._exchanged_claims(form, client, issuer, now)
            subject = str(claims.get("sub", ""))
        self.counts[(client.client_id, grant, resource, subject)] += 1
        claims["scope"] = " ".join(sorted(scopes))
        if grant == "token_exchange":
            claims["act"] = {"sub": client.client_id}  # RFC 8693: who acts for the user
        token = self.mint(claims, issuer=issuer, audience=resource, client_id=client.client_id,
                          lifetime=self.token_lifetime, jkt=jkt, now=now)
        answer = {"access_token": token, "token_type": "DPoP",
                  "expires_in": self.token_lifetime, "scope": " ".join(sorted(scopes))}
        if grant == "token_exchange":
            answer["issued_token_type"] = ACCESS_TOKEN_TYPE
        return answer

    def _exchanged_claims(self, form: Mapping[str, str], client: Client, issuer: str,
                          now: float) -> dict[str, Any]:
        if form.get("subject_token_type") != ACCESS_TOKEN_TYPE or not form.get("subject_token"):
            raise RefusedError("invalid_request", "Token exchange needs an access_token subject.")
        try:
            subject = check_token(form["subject_token"], self.ring.verify, issuer=issuer,
                                  audience=None, now=now)
        except RefusedError as exc:
            raise RefusedError("invalid_grant", f"The subject token is not valid: "
                                           f"{exc.description}") from None
        aud = subject.get("aud")
        if (aud[0] if isinstance(aud, list) and len(aud) == 1 else aud) not in \
                client.exchange_from:
            raise RefusedError("invalid_grant", "The subject token was not issued to this client's API.")
        return {k: v for k, v in subject.items() if k not in _TOKEN_CLAIMS}

    def count_rows(self) -> list[dict[str, Any]]:
        return [{"client_id": c, "grant": g, "audience": a,
                 "subject": hashlib.sha256(s.encode()).hexdigest()[:12] if s else "",
                 "count": n} for (c, g, a, s), n in sorted(self.counts.items())]

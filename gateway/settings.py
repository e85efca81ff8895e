"""Settings: everything Kilde is configured with, read once from `KILDE_*` variables at start.

Sits at the gateway's edge: `Settings.from_env()` runs in the CLI and in `gateway.asgi` before
the app is built. Nesting uses `__` (`KILDE_CONNECTORS__PLL__BASE_URL`); gateway/envsettings.py
reads the variables and raises one `SettingsError` naming *every* missing or invalid setting,
each in plain words.

Production unless told otherwise: without `KILDE_MODE` Kilde runs in production mode and needs
its token issuer, audience and keys, cache key, audit store and tenants from the environment
(gateway/production.py lists what is missing). `KILDE_MODE=demo`, which `kilde demo` sets,
lays the embedded demo defaults (`DEMO_DEFAULTS`) under the environment. `repr()` and `str()`
never show a secret (fields marked `metadata=SECRET`, URL passwords: connectors/redact.py).

>>> s = Settings.from_env({"KILDE_MODE": "demo", "KILDE_DEADLINE_SECONDS": "2.5"})
>>> s.deadline_seconds
2.5
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from connectors.base import ConnectorSettings
from connectors.redact import SECRET, redacted_repr
from connectors.resilience import ResilienceSettings

BUILTIN_CONNECTORS = ("municipal", "kjernejournal", "pll", "eresept", "proevesvar",
                      "persontjenesten")
MODES = ("production", "demo")


class SettingsError(ValueError):
    """Settings are missing or wrong: `problems` holds one plain sentence for each, and the
    message lists them all. `partial` is the best reading of the rest (defaults in place of
    the wrong values), so a caller can check more (the connectors) and report it all at once.
    """

    def __init__(self, problems: Sequence[str] | str, partial: Settings | None = None) -> None:
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        self.partial = partial
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = (f"{len(self.problems)} settings must be fixed:\n"
                       + "\n".join(f"  - {p}" for p in self.problems))
        super().__init__(message)


@redacted_repr
@dataclass(frozen=True)
class AuthSettings:
    issuer: str = ""  # HelseID's issuer in production; the demo issuer under KILDE_MODE=demo
    audience: str = ""
    jwks_url: str = ""  # empty: discovered from the issuer (OIDC discovery)
    leeway_seconds: int = 30
    max_token_bytes: int = 16384
    jwks_min_refresh_seconds: float = 30.0  # unknown kid: at most one refresh per this
    jwks_refresh_seconds: float = 300.0  # keys are fetched again this often (rotation)
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    min_security_level: int = 4  # personnel logins (HelseID security_level)
    citizen_min_security_level: int = 4  # citizen logins (ID-porten high = 4)
    dpop: str = "required"  # required | allowed | off; the demo's is allowed (DEMO_DEFAULTS)
    dpop_max_age_seconds: float = 60.0  # a DPoP proof's iat may be this old
    dpop_nonce: bool = False  # require server nonces in proofs (DPoP-Nonce)
    public_url: str = ""  # the URL callers use (behind a proxy), for the proofs' htu


@redacted_repr
@dataclass(frozen=True)
class HelseIdSettings:
    """Kilde as a HelseID client, for its tokens towards upstreams (docs/operations.md).

    `client_key` and `dpop_key` are paths of private-key files (PEM or JWK, e.g. a mounted
    Kubernetes Secret), not keys; an empty `issuer` (demo only) calls upstreams without
    credentials."""

    issuer: str = ""
    client_id: str = ""
    client_key: str = ""
    dpop_key: str = ""
    token_endpoint: str = ""  # skips discovery when set
    renew_before_seconds: float = 30.0
    timeout_seconds: float = 2.0
    max_cached_tokens: int = 10000


@redacted_repr
@dataclass(frozen=True)
class AuditSettings:
    url: str = ""  # required in production; the demo's is sqlite:///kilde-audit.sqlite3
    retention_days: int = 3650


@redacted_repr
@dataclass(frozen=True)
class CacheSettings:
    url: str = "memory://"
    # secret for HMAC keys and encryption: required in production; per process in the demo
    key: str = field(default="", metadata=SECRET)
    default_ttl_seconds: float = 30.0
    max_ttl_seconds: float = 300.0
    max_stale_seconds: float = 600.0
    enabled: bool = True
    ttls: str = ""  # per source, "kjernejournal=60,pll=30"; each capped by max_ttl_seconds
    op_timeout_seconds: float = 0.25  # a slower Redis call counts as Redis trouble
    retry_seconds: float = 1.0  # after Redis trouble, bypass it this long before probing again
    fresh_per_minute: int = 6  # fresh-data requests per principal per minute; then cache
    namespace: str = ""  # prefix of every key in the store: several installations on one Redis

    def ttl_for(self, source: str) -> float:
        """The TTL of `source`'s entries: its own, else the default, never above the maximum."""
        ttl = parse_ttls(self.ttls).get(source, self.default_ttl_seconds)
        return min(ttl, self.max_ttl_seconds)


@redacted_repr
@dataclass(frozen=True)
class LimitsSettings:
    """Query limits checked before execution (gateway/limits.py); 0 switches one off."""

    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 3000
    max_cost: int = 20000
    max_list_size: int = 100  # `first`/`last` arguments and list values
    max_selections: int = 200  # fields, spreads, inline fragments in the document (as written)
    max_overlaps: int = 300  # same-response-path field pairs validation compares
    default_list_size: int = 20  # what an unbounded list field is assumed to return
    max_body_bytes: int = 262144
    max_header_bytes: int = 65536  # request line + headers; over it: HTTP 431 (gateway/serving.py)


@redacted_repr
@dataclass(frozen=True)
class PersistedSettings:
    """Persisted queries (Apollo APQ) and the allowlist mode (gateway/persisted.py)."""

    apq: bool = True  # clients may register queries by their sha256 hash
    allowlist_file: str = ""  # a manifest; when set, only its operations are accepted
    max_entries: int = 5000  # per process, in memory
    ttl_seconds: int = 86400  # in Redis


@redacted_repr
@dataclass(frozen=True)
class RateLimitSettings:
    requests: int = 0  # per client (token client_id) per window; 0 = off
    window_seconds: float = 60.0


@redacted_repr
@dataclass(frozen=True)
class LiveSettings:
    """GraphQL over WebSocket (graphql-transport-ws, gateway/live/socket.py); 0 switches a
    limit off."""

    init_timeout_seconds: float = 10.0  # connection_init must arrive within this (else 4408)
    max_connections_per_client: int = 20  # open connections per HelseID client, per replica
    max_operations: int = 10  # operations running at once on one connection
    max_message_bytes: int = 65536


@redacted_repr
@dataclass(frozen=True)
class LaunchSettings:
    """Patient-context handover (gateway/launch): `POST /launch`, SMART-style."""

    ttl_seconds: float = 300.0  # a launch id is good for this long, once
    app_url: str = ""  # the legevakt app CDS cards link to (demo: this server's /app/)
    # HelseID's endpoints, published in /.well-known/smart-configuration; empty: the issuer's
    # /connect/authorize and /connect/token (Duende IdentityServer's paths, which HelseID uses)
    authorization_endpoint: str = ""
    token_endpoint: str = ""


@redacted_repr
@dataclass(frozen=True)
class CdsSettings:
    """CDS Hooks (gateway/cds): the EPJs whose signed client JWT is required, as
    `ISS=JWKS URL` pairs, comma separated; empty: the user's token alone authenticates."""

    clients: str = ""


@redacted_repr
@dataclass(frozen=True)
class CorsSettings:
    origins: tuple[str, ...] = ()  # exact origins, or "*"; empty = no cross-origin access
    allow_credentials: bool = False
    max_age: int = 600
    hsts_seconds: int = 0  # Strict-Transport-Security max-age when served over TLS; 0 = off


@dataclass(frozen=True)
class Tenant:
    """A municipality served by this deployment: its number, name and legal-entity orgnr."""

    number: str
    name: str
    orgnr: str


@redacted_repr
@dataclass(frozen=True)
class Settings:
    mode: str = "production"  # production | demo (MODES)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    deadline_seconds: float = 3.0
    auth: AuthSettings = field(default_factory=AuthSettings)
    helseid: HelseIdSettings = field(default_factory=HelseIdSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    connectors: Mapping[str, ConnectorSettings] = field(default_factory=dict)
    enabled_connectors: tuple[str, ...] = BUILTIN_CONNECTORS
    tenants: tuple[Tenant, ...] = ()
    # (provider, consumer) municipality numbers, optionally with a use ("emergency")
    agreements: tuple[tuple[str, ...], ...] = ()
    policy_file: str = ""
    terminology_file: str = ""  # treatment-limitation codes and words added to the built-in ones
    log_level: str = "INFO"
    graphiql: bool = True
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    persisted: PersistedSettings = field(default_factory=PersistedSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    launch: LaunchSettings = field(default_factory=LaunchSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    cds: CdsSettings = field(default_factory=CdsSettings)
    resilience: ResilienceSettings = field(default_factory=ResilienceSettings)
    otlp_endpoint: str = ""  # OpenTelemetry traces go here when set (the `otel` extra)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 serving: bool = True) -> Settings:
        """Read `KILDE_*` variables (and `KILDE_CONFIG_FILE` under them); every unknown,
        missing or invalid one goes into one `SettingsError`. `serving=False` checks the
        values given but not that production has all it needs to serve (for tools such as
        `kilde audit verify` and `kilde connectors list`)."""
        from gateway.envsettings import read_settings

        env = dict(os.environ if environ is None else environ)
        if env.get("KILDE_CONFIG_FILE"):
            from gateway.configfile import ConfigFileError, read_config_file

            try:
                env = {**read_config_file(env["KILDE_CONFIG_FILE"]), **env}
            except ConfigFileError as exc:
                raise SettingsError(str(exc)) from None
        return read_settings(env, serving=serving)

    def with_sandbox(self, base_url: str) -> Settings:
        """These settings with every built-in connector that has no upstream of its own pointed
        at a sandbox at `base_url`: a source URL or a municipal store set in the environment is
        kept, so the demo can front a vendor's own FHIR store (the other tenants' stores and
        sources stay simulated)."""
        base = base_url.rstrip("/")
        stores = {t.number: f"{base}/municipal/{t.number}" for t in self.tenants}
        connectors = dict(self.connectors)
        for name in BUILTIN_CONNECTORS:
            current = connectors.get(name, ConnectorSettings(name=name))
            if name == "municipal":
                connectors[name] = replace(current, stores={**stores, **current.stores})
            elif not current.base_url:
                connectors[name] = replace(current, base_url=f"{base}/{name}")
        return replace(self, connectors=connectors)

    def with_helseid(self, helseid: Mapping[str, str],
                     audiences: Mapping[str, tuple[str, str]]) -> Settings:
        """These settings with Kilde registered at a HelseID (`helseid`: HelseIdSettings
        fields) and the (resource, scope) of each connector here that has no audience yet
        (the sandbox supplies both; names of connectors not configured are skipped)."""
        connectors = dict(self.connectors)
        for name, (resource, scope) in audiences.items():
            if name not in connectors and name not in self.enabled_connectors:
                continue
            current = connectors.get(name, ConnectorSettings(name=name))
            if not current.audience:
                connectors[name] = replace(current, audience=resource, scope=scope)
        return replace(self, helseid=replace(self.helseid, **helseid), connectors=connectors)

    @property
    def production(self) -> bool:
        return self.mode == "production"

    @property
    def demo(self) -> bool:
        return self.mode == "demo"

    def tenant_for_orgnr(self, orgnr: str | None) -> Tenant | None:
        return next((t for t in self.tenants if t.orgnr == orgnr), None)


DEMO_TENANTS = (
    Tenant("0301", "Oslo", "910000004"),
    Tenant("4601", "Bergen", "920000002"),
    Tenant("5001", "Trondheim", "930000000"),
)
DEMO_ISSUER = "http://kilde-demo/helseid"
DEMO_JWKS_URL = "http://127.0.0.1:8000/_demo/jwks.json"  # `kilde demo` points it at its port

# KILDE_MODE=demo: these lie under the environment (a variable that is set wins). Production
# has no such defaults: gateway/production.py names each one that is missing.
DEMO_DEFAULTS: Mapping[str, str] = MappingProxyType({
    "KILDE_AUTH__ISSUER": DEMO_ISSUER,
    "KILDE_AUTH__AUDIENCE": "kilde",
    "KILDE_AUTH__JWKS_URL": DEMO_JWKS_URL,
    "KILDE_AUTH__DPOP": "allowed",  # so the README's curl walk-through works with Bearer
    "KILDE_AUDIT__URL": "sqlite:///kilde-audit.sqlite3",
    "KILDE_TENANTS": ",".join(f"{t.number}:{t.name}:{t.orgnr}" for t in DEMO_TENANTS),
})


MAX_CACHE_TTL_SECONDS = 3600.0  # "seconds to minutes": no setting may keep an entry longer


def parse_ttls(raw: str) -> dict[str, float]:
    ttls = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, value = part.partition("=")
        try:
            ttl = float(value)
        except ValueError:
            ttl = -1.0
        if not sep or not name.strip() or ttl < 0:
            raise SettingsError(f"KILDE_CACHE__TTLS entry {part!r} must look like "
                                "'SOURCE=SECONDS' (e.g. 'kjernejournal=60').")
        ttls[name.strip().lower()] = ttl
    return ttls

"""Settings: everything Kilde is configured with, read once from `KILDE_*` variables at start.

Sits at the gateway's edge: `Settings.from_env()` runs in the CLI before the app is built, and
raises `SettingsError` with one sentence naming the variable when something is wrong. Nesting
uses `__` (`KILDE_CONNECTORS__PLL__BASE_URL`). Defaults are the embedded demo setup; production
sets `KILDE_MODE=production` and real URLs.

>>> s = Settings.from_env({"KILDE_DEADLINE_SECONDS": "2.5"})
>>> s.deadline_seconds
2.5
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from connectors.base import ConnectorSettings
from connectors.resilience import ResilienceSettings

BUILTIN_CONNECTORS = ("municipal", "kjernejournal", "pll", "eresept", "proevesvar")


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""


@dataclass(frozen=True)
class AuthSettings:
    issuer: str = "http://kilde-demo/helseid"  # the demo issuer; production sets its own
    audience: str = "kilde"
    jwks_url: str = "http://127.0.0.1:8000/_demo/jwks.json"
    leeway_seconds: int = 30
    max_token_bytes: int = 16384
    jwks_min_refresh_seconds: float = 30.0
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")


@dataclass(frozen=True)
class AuditSettings:
    url: str = "sqlite:///kilde-audit.sqlite3"
    retention_days: int = 3650


@dataclass(frozen=True)
class CacheSettings:
    url: str = "memory://"
    key: str = ""  # secret for HMAC keys and encryption; generated per process when empty
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
        ttl = _parse_ttls(self.ttls).get(source, self.default_ttl_seconds)
        return min(ttl, self.max_ttl_seconds)


@dataclass(frozen=True)
class LimitsSettings:
    """Query limits checked before execution (gateway/limits.py); 0 switches one off."""

    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 3000
    max_cost: int = 20000
    max_list_size: int = 100  # `first`/`last` arguments and list values
    default_list_size: int = 20  # what an unbounded list field is assumed to return
    max_body_bytes: int = 262144


@dataclass(frozen=True)
class PersistedSettings:
    """Persisted queries (Apollo APQ) and the allowlist mode (gateway/persisted.py)."""

    apq: bool = True  # clients may register queries by their sha256 hash
    allowlist_file: str = ""  # a manifest; when set, only its operations are accepted
    max_entries: int = 5000  # per process, in memory
    ttl_seconds: int = 86400  # in Redis


@dataclass(frozen=True)
class RateLimitSettings:
    requests: int = 0  # per client (token client_id) per window; 0 = off
    window_seconds: float = 60.0


@dataclass(frozen=True)
class LaunchSettings:
    """Patient-context handover (gateway/launch): `POST /launch`, SMART-style."""

    ttl_seconds: float = 300.0  # a launch id is good for this long, once
    app_url: str = ""  # the legevakt app CDS cards link to (demo: this server's /app/)
    # HelseID's endpoints, published in /.well-known/smart-configuration; empty: the issuer's
    # /connect/authorize and /connect/token (Duende IdentityServer's paths, which HelseID uses)
    authorization_endpoint: str = ""
    token_endpoint: str = ""


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


@dataclass(frozen=True)
class Settings:
    mode: str = "demo"  # demo | production
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    deadline_seconds: float = 3.0
    auth: AuthSettings = field(default_factory=AuthSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    connectors: Mapping[str, ConnectorSettings] = field(default_factory=dict)
    enabled_connectors: tuple[str, ...] = BUILTIN_CONNECTORS
    tenants: tuple[Tenant, ...] = ()
    agreements: tuple[tuple[str, str], ...] = ()  # (provider, consumer) municipality numbers
    policy_file: str = ""
    log_level: str = "INFO"
    graphiql: bool = True
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    persisted: PersistedSettings = field(default_factory=PersistedSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    launch: LaunchSettings = field(default_factory=LaunchSettings)
    resilience: ResilienceSettings = field(default_factory=ResilienceSettings)
    otlp_endpoint: str = ""  # OpenTelemetry traces go here when set (the `otel` extra)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `KILDE_*` variables; unknown `KILDE_` names are rejected (typos fail loudly)."""
        env = dict(os.environ if environ is None else environ)
        if env.get("KILDE_CONFIG_FILE"):
            from gateway.configfile import ConfigFileError, read_config_file

            try:
                env = {**read_config_file(env["KILDE_CONFIG_FILE"]), **env}
            except ConfigFileError as exc:
                raise SettingsError(str(exc)) from None
        return _parse(env)

    def with_sandbox(self, base_url: str) -> Settings:
        """These settings with every built-in connector pointed at a sandbox at `base_url`."""
        base = base_url.rstrip("/")
        stores = {t.number: f"{base}/municipal/{t.number}" for t in self.tenants}
        connectors = dict(self.connectors)
        for name in BUILTIN_CONNECTORS:
            current = connectors.get(name, ConnectorSettings(name=name))
            if name == "municipal":
                connectors[name] = replace(current, stores=stores)
            else:
                connectors[name] = replace(current, base_url=f"{base}/{name}")
        return replace(self, connectors=connectors)

    @property
    def production(self) -> bool:
        return self.mode == "production"

    def tenant_for_orgnr(self, orgnr: str | None) -> Tenant | None:
        return next((t for t in self.tenants if t.orgnr == orgnr), None)


DEMO_TENANTS = (
    Tenant("0301", "Oslo", "910000004"),
    Tenant("4601", "Bergen", "920000002"),
    Tenant("5001", "Trondheim", "930000000"),
)

_TOP = {
    "MODE", "HOST", "PORT", "WORKERS", "DEADLINE_SECONDS", "TENANTS", "AGREEMENTS",
    "POLICY_FILE", "LOG_LEVEL", "GRAPHIQL", "ENABLED_CONNECTORS",
    "OTLP_ENDPOINT", "CONFIG_FILE",
}
_SECTIONS = {"AUTH": AuthSettings, "AUDIT": AuditSettings, "CACHE": CacheSettings,
             "RESILIENCE": ResilienceSettings, "LIMITS": LimitsSettings, "PERSISTED": PersistedSettings,
             "RATE_LIMIT": RateLimitSettings, "CORS": CorsSettings, "LAUNCH": LaunchSettings}
# Every connector takes these; any other KILDE_CONNECTORS__<NAME>__<OPTION> is one of its own
# options, checked against what the connector declares when the registry loads it.
_CONNECTOR_FIELDS = {"BASE_URL", "TIMEOUT", "STORES", "ENABLED", "MUNICIPALITIES"}


def _convert(name: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool or kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int or kind == "int":
            return int(raw)
        if kind is float or kind == "float":
            value = float(raw)
            if value < 0:
                raise ValueError
            return value
        if kind == "tuple[str, ...]":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"{name} has an invalid value {raw!r}; expected {kind}.") from None
    return raw


def _section(prefix: str, cls: type, values: dict[str, str]) -> Any:
    fields = cls.__dataclass_fields__
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        fname = key.lower()
        if fname not in fields:
            known = sorted(f"{prefix}__{f.upper()}" for f in fields)
            raise SettingsError(f"Unknown setting {prefix}__{key}; known: {known}.")
        kwargs[fname] = _convert(f"{prefix}__{key}", raw, fields[fname].type)
    return cls(**kwargs)


def _parse_tenants(raw: str) -> tuple[Tenant, ...]:
    tenants = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        bits = part.split(":")
        if len(bits) != 3 or not (len(bits[0]) == 4 and bits[0].isdigit()) or not bits[2].isdigit():
            raise SettingsError(
                f"KILDE_TENANTS entry {part!r} must look like 'NUMBER:NAME:ORGNR' "
                "(e.g. '0301:Oslo:910000004')."
            )
        tenants.append(Tenant(bits[0], bits[1], bits[2]))
    return tuple(tenants)


def _parse_agreements(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        bits = part.split(">")
        if len(bits) != 2 or not all(len(b) == 4 and b.isdigit() for b in bits):
            raise SettingsError(
                f"KILDE_AGREEMENTS entry {part!r} must look like 'PROVIDER>CONSUMER' "
                "(municipality numbers, e.g. '4601>0301')."
            )
        pairs.append((bits[0], bits[1]))
    return tuple(pairs)


def _parse_stores(name: str, raw: str) -> dict[str, str]:
    stores = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        number, sep, url = part.partition("=")
        if not sep or not (len(number) == 4 and number.isdigit()) or "://" not in url:
            raise SettingsError(f"{name} entry {part!r} must look like 'NUMBER=URL'.")
        stores[number] = url
    return stores


def _parse_municipalities(name: str, raw: str, tenants: tuple[Tenant, ...]) -> frozenset[str]:
    """A connector's rollout: the municipality numbers that use it (empty: all of them)."""
    numbers = frozenset(p.strip() for p in raw.split(",") if p.strip())
    known = {t.number for t in tenants}
    for number in sorted(numbers):
        if not (len(number) == 4 and number.isdigit()):
            raise SettingsError(f"{name} entry {number!r} must be a 4-digit municipality number.")
        if number not in known:
            raise SettingsError(f"{name} names municipality {number!r}, which is not in "
                                "KILDE_TENANTS.")
    return numbers


def _parse(env: dict[str, str]) -> Settings:
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, str]] = {s: {} for s in _SECTIONS}
    connector_values: dict[str, dict[str, str]] = {}
    for name, raw in env.items():
        if not name.startswith("KILDE_") or name.startswith("KILDE_SANDBOX__"):
            continue
        rest = name[len("KILDE_"):]
        head, _, tail = rest.partition("__")
        if not tail:
            if head not in _TOP:
                raise SettingsError(f"Unknown setting {name}; known: {sorted(_TOP)}.")
            top[head] = raw
        elif head in _SECTIONS:
            sections[head][tail] = raw
        elif head == "CONNECTORS":
            cname, _, cfield = tail.partition("__")
            if not cname or not cfield or "__" in cfield:
                raise SettingsError(
                    f"Unknown setting {name}; connectors take {sorted(_CONNECTOR_FIELDS)} "
                    "or an option of their own, as KILDE_CONNECTORS__<NAME>__<SETTING>."
                )
            connector_values.setdefault(cname.lower(), {})[cfield] = raw
        elif head == "TEST":
            continue  # test-suite switches (e.g. KILDE_TEST__REQUIRE_SERVICES)
        else:
            raise SettingsError(f"Unknown setting {name}.")

    kwargs: dict[str, Any] = {}
    simple = {"MODE": str, "HOST": str, "PORT": int, "WORKERS": int, "DEADLINE_SECONDS": float,
              "POLICY_FILE": str, "LOG_LEVEL": str, "GRAPHIQL": bool, "OTLP_ENDPOINT": str}
    for key, kind in simple.items():
        if key in top:
            kwargs[key.lower()] = _convert(f"KILDE_{key}", top[key], kind)
    if kwargs.get("mode", "demo") not in ("demo", "production"):
        raise SettingsError("KILDE_MODE must be 'demo' or 'production'.")
    if "workers" in kwargs and kwargs["workers"] < 1:
        raise SettingsError("KILDE_WORKERS must be at least 1.")
    if "deadline_seconds" in kwargs and kwargs["deadline_seconds"] <= 0:
        raise SettingsError("KILDE_DEADLINE_SECONDS must be greater than 0.")
    if "policy_file" in kwargs and kwargs["policy_file"] and not Path(kwargs["policy_file"]).is_file():
        raise SettingsError(f"KILDE_POLICY_FILE {kwargs['policy_file']!r} is not a readable file.")
    kwargs["tenants"] = _parse_tenants(top["TENANTS"]) if "TENANTS" in top else DEMO_TENANTS
    if "AGREEMENTS" in top:
        kwargs["agreements"] = _parse_agreements(top["AGREEMENTS"])
    if "ENABLED_CONNECTORS" in top:
        kwargs["enabled_connectors"] = _convert(
            "KILDE_ENABLED_CONNECTORS", top["ENABLED_CONNECTORS"], "tuple[str, ...]"
        )
    for section, cls in _SECTIONS.items():
        kwargs[section.lower()] = _section(f"KILDE_{section}", cls, sections[section])
    if kwargs["audit"].retention_days < 1:
        raise SettingsError("KILDE_AUDIT__RETENTION_DAYS must be at least 1.")

    connectors: dict[str, ConnectorSettings] = {}
    enabled = list(kwargs.get("enabled_connectors", BUILTIN_CONNECTORS))
    for cname, values in connector_values.items():
        prefix = f"KILDE_CONNECTORS__{cname.upper()}"
        timeout = _convert(f"{prefix}__TIMEOUT", values.get("TIMEOUT", "2.0"), float)
        if timeout <= 0:
            raise SettingsError(f"{prefix}__TIMEOUT must be greater than 0.")
        stores = _parse_stores(f"{prefix}__STORES", values.get("STORES", ""))
        base_url = values.get("BASE_URL", "")
        if base_url and "://" not in base_url:
            raise SettingsError(f"{prefix}__BASE_URL must be an absolute URL.")
        municipalities = _parse_municipalities(f"{prefix}__MUNICIPALITIES",
                                               values.get("MUNICIPALITIES", ""), kwargs["tenants"])
        options = {k.lower(): v for k, v in values.items() if k not in _CONNECTOR_FIELDS}
        connectors[cname] = ConnectorSettings(cname, base_url, timeout, stores, options=options,
                                              municipalities=municipalities)
        if "ENABLED" in values:
            on = _convert(f"{prefix}__ENABLED", values["ENABLED"], bool)
            if on and cname not in enabled:
                enabled.append(cname)
            if not on and cname in enabled:
                enabled.remove(cname)
    kwargs["connectors"] = connectors
    kwargs["enabled_connectors"] = tuple(enabled)
    settings = Settings(**kwargs)
    for number, consumer in settings.agreements:
        known = {t.number for t in settings.tenants}
        for n in (number, consumer):
            if n not in known:
                raise SettingsError(
                    f"KILDE_AGREEMENTS names municipality {n!r}, which is not in KILDE_TENANTS."
                )
    _check_cache(settings.cache)
    _check_launch(settings.launch)
    _check_resilience(settings.resilience)
    from gateway.production import insecure_reasons

    if reasons := insecure_reasons(settings):
        raise SettingsError(reasons[0])
    return settings


def _parse_ttls(raw: str) -> dict[str, float]:
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


MAX_CACHE_TTL_SECONDS = 3600.0  # "seconds to minutes": no setting may keep an entry longer


def _check_cache(cache: CacheSettings) -> None:
    """Cache settings that cannot work, or that would keep entries too long, fail at start."""
    if not cache.url.startswith(("memory://", "redis://", "rediss://")):
        raise SettingsError("KILDE_CACHE__URL must be memory:// or redis://host:port/db.")
    if cache.key and len(cache.key) < 16:
        raise SettingsError("KILDE_CACHE__KEY must be at least 16 characters long.")
    if not 0 < cache.max_ttl_seconds <= MAX_CACHE_TTL_SECONDS:
        raise SettingsError(f"KILDE_CACHE__MAX_TTL_SECONDS must be above 0 and at most "
                            f"{MAX_CACHE_TTL_SECONDS:.0f}.")
    if cache.max_stale_seconds > MAX_CACHE_TTL_SECONDS:
        raise SettingsError(f"KILDE_CACHE__MAX_STALE_SECONDS must be at most "
                            f"{MAX_CACHE_TTL_SECONDS:.0f}.")
    if cache.default_ttl_seconds > cache.max_ttl_seconds:
        raise SettingsError("KILDE_CACHE__DEFAULT_TTL_SECONDS must not exceed "
                            "KILDE_CACHE__MAX_TTL_SECONDS.")
    for source, ttl in _parse_ttls(cache.ttls).items():
        if ttl > cache.max_ttl_seconds:
            raise SettingsError(f"KILDE_CACHE__TTLS gives {source!r} {ttl:g} s, above "
                                f"KILDE_CACHE__MAX_TTL_SECONDS ({cache.max_ttl_seconds:g} s).")
    if cache.op_timeout_seconds <= 0:
        raise SettingsError("KILDE_CACHE__OP_TIMEOUT_SECONDS must be greater than 0.")
    if cache.fresh_per_minute < 0:
        raise SettingsError("KILDE_CACHE__FRESH_PER_MINUTE must be 0 or more.")


MAX_LAUNCH_TTL_SECONDS = 3600.0  # "expiring in minutes", never past the attest's hour


def _check_launch(launch: LaunchSettings) -> None:
    if not 0 < launch.ttl_seconds <= MAX_LAUNCH_TTL_SECONDS:
        raise SettingsError(f"KILDE_LAUNCH__TTL_SECONDS must be above 0 and at most "
                            f"{MAX_LAUNCH_TTL_SECONDS:.0f}.")
    for name in ("app_url", "authorization_endpoint", "token_endpoint"):
        value = getattr(launch, name)
        if value and not value.startswith(("https://", "http://")):
            raise SettingsError(f"KILDE_LAUNCH__{name.upper()} must be an absolute http(s) URL.")


def _check_resilience(r: ResilienceSettings) -> None:
    if r.attempts < 1:
        raise SettingsError("KILDE_RESILIENCE__ATTEMPTS must be at least 1 (1 = no retry).")
    if r.failure_threshold < 1:
        raise SettingsError("KILDE_RESILIENCE__FAILURE_THRESHOLD must be at least 1.")
    if r.max_concurrency < 1:
        raise SettingsError("KILDE_RESILIENCE__MAX_CONCURRENCY must be at least 1.")

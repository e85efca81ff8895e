"""Checks across settings that each read well on their own: ranges, limits, cross-references.

Sits inside `Settings.from_env()`, after every variable has been read (gateway/envsettings.py)
and before the production requirements (gateway/production.py). `problems(settings)` returns
one plain sentence per problem and never raises, so all of them reach the operator at once.
"""

from __future__ import annotations

import dataclasses

from gateway.settings import MAX_CACHE_TTL_SECONDS, Settings, SettingsError, parse_ttls


def problems(settings: Settings) -> list[str]:
    """Every range and cross-reference problem in `settings` (empty: none)."""
    found: list[str] = []
    if not 1 <= settings.port <= 65535:
        found.append(f"KILDE_PORT must be from 1 to 65535, not {settings.port}.")
    if settings.workers < 1:
        found.append(f"KILDE_WORKERS must be 1 or more, not {settings.workers}.")
    if settings.deadline_seconds <= 0:
        found.append("KILDE_DEADLINE_SECONDS must be a number of seconds above 0, e.g. 3.0.")
    if settings.audit.retention_days < 1:
        found.append("KILDE_AUDIT__RETENTION_DAYS must be at least 1 (days), e.g. 3650.")
    known = {t.number for t in settings.tenants}
    seen: set[str] = set()
    for tenant in settings.tenants:
        if tenant.number in seen:
            found.append(f"KILDE_TENANTS lists municipality {tenant.number!r} twice.")
        seen.add(tenant.number)
    for pair in settings.agreements:
        for number in pair[:2]:
            if number not in known:
                found.append(f"KILDE_AGREEMENTS names municipality {number!r}, which is not "
                             "in KILDE_TENANTS.")
    found += _helseid(settings)
    found += _cache(settings)
    found += _non_negative("KILDE_LIMITS", settings.limits)
    found += _non_negative("KILDE_RATE_LIMIT", settings.rate_limit)
    found += _non_negative("KILDE_PERSISTED", settings.persisted)
    found += _resilience(settings)
    found += _launch(settings)
    found += _cds(settings)
    found += _auth(settings)
    return found


def _auth(settings: Settings) -> list[str]:
    auth = settings.auth
    found = []
    for name, level in (("MIN_SECURITY_LEVEL", auth.min_security_level),
                        ("CITIZEN_MIN_SECURITY_LEVEL", auth.citizen_min_security_level)):
        if not 1 <= level <= 4:
            found.append(f"KILDE_AUTH__{name} must be a security level from 1 to 4, e.g. 4.")
    if auth.jwks_refresh_seconds <= 0:
        found.append("KILDE_AUTH__JWKS_REFRESH_SECONDS must be a number of seconds above 0, "
                     "e.g. 300.")
    elif auth.jwks_min_refresh_seconds > auth.jwks_refresh_seconds:
        found.append("KILDE_AUTH__JWKS_MIN_REFRESH_SECONDS must not exceed "
                     "KILDE_AUTH__JWKS_REFRESH_SECONDS.")
    if auth.dpop not in ("required", "allowed", "off"):
        found.append("KILDE_AUTH__DPOP must be 'required' (production's default), 'allowed' "
                     "or 'off'.")
    if not 0 < auth.dpop_max_age_seconds <= 300:
        found.append("KILDE_AUTH__DPOP_MAX_AGE_SECONDS must be above 0 and at most 300, "
                     "e.g. 60.")
    url = auth.public_url
    if url and (not url.startswith(("https://", "http://")) or "?" in url or "#" in url):
        found.append("KILDE_AUTH__PUBLIC_URL must be an absolute http(s) URL without query or "
                     "fragment, e.g. https://kilde.kommune.no.")
    return found


MAX_LAUNCH_TTL_SECONDS = 3600.0  # "expiring in minutes", never past the attest's hour


def _launch(settings: Settings) -> list[str]:
    launch = settings.launch
    found = []
    if not 0 < launch.ttl_seconds <= MAX_LAUNCH_TTL_SECONDS:
        found.append(f"KILDE_LAUNCH__TTL_SECONDS must be above 0 and at most "
                     f"{MAX_LAUNCH_TTL_SECONDS:.0f}.")
    for name in ("app_url", "authorization_endpoint", "token_endpoint"):
        value = getattr(launch, name)
        if value and not value.startswith(("https://", "http://")):
            found.append(f"KILDE_LAUNCH__{name.upper()} must be an absolute http(s) URL.")
    return found


def _non_negative(prefix: str, section: object) -> list[str]:
    found = []
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        value = getattr(section, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            found.append(f"{prefix}__{f.name.upper()} must be 0 or more, not {value}.")
    return found


def _cache(settings: Settings) -> list[str]:
    """Cache settings that cannot work, or that would keep entries too long."""
    cache = settings.cache
    found = []
    if not cache.url.startswith(("memory://", "redis://", "rediss://")):
        found.append("KILDE_CACHE__URL must be memory:// or redis://host:port/db "
                     "(rediss:// for TLS).")
    if cache.key and len(cache.key) < 16:
        found.append("KILDE_CACHE__KEY must be at least 16 characters long.")
    if not 0 < cache.max_ttl_seconds <= MAX_CACHE_TTL_SECONDS:
        found.append(f"KILDE_CACHE__MAX_TTL_SECONDS must be above 0 and at most "
                     f"{MAX_CACHE_TTL_SECONDS:.0f}.")
    if cache.max_stale_seconds > MAX_CACHE_TTL_SECONDS:
        found.append(f"KILDE_CACHE__MAX_STALE_SECONDS must be at most "
                     f"{MAX_CACHE_TTL_SECONDS:.0f}.")
    if cache.default_ttl_seconds > cache.max_ttl_seconds:
        found.append("KILDE_CACHE__DEFAULT_TTL_SECONDS must not exceed "
                     "KILDE_CACHE__MAX_TTL_SECONDS.")
    try:
        for source, ttl in parse_ttls(cache.ttls).items():
            if ttl > cache.max_ttl_seconds:
                found.append(f"KILDE_CACHE__TTLS gives {source!r} {ttl:g} s, above "
                             f"KILDE_CACHE__MAX_TTL_SECONDS ({cache.max_ttl_seconds:g} s).")
    except SettingsError as exc:
        found.extend(exc.problems)
    if cache.op_timeout_seconds <= 0:
        found.append("KILDE_CACHE__OP_TIMEOUT_SECONDS must be a number of seconds above 0, "
                     "e.g. 0.25.")
    if cache.fresh_per_minute < 0:
        found.append("KILDE_CACHE__FRESH_PER_MINUTE must be 0 or more.")
    return found


def _resilience(settings: Settings) -> list[str]:
    r = settings.resilience
    found = []
    if r.attempts < 1:
        found.append("KILDE_RESILIENCE__ATTEMPTS must be at least 1 (1 = no retry).")
    if r.failure_threshold < 1:
        found.append("KILDE_RESILIENCE__FAILURE_THRESHOLD must be at least 1.")
    if r.max_concurrency < 1:
        found.append("KILDE_RESILIENCE__MAX_CONCURRENCY must be at least 1.")
    return found


def _cds(settings: Settings) -> list[str]:
    from gateway.cds.clientjwt import ClientJwtVerifier

    try:
        ClientJwtVerifier.parse_clients(settings.cds.clients)
    except ValueError as exc:
        return [str(exc)]
    return []


def _helseid(settings: Settings) -> list[str]:
    h = settings.helseid
    found = [f"KILDE_HELSEID__{name.upper()} must be an absolute URL, e.g. "
             "https://helseid-sts.nhn.no." for name in ("issuer", "token_endpoint")
             if getattr(h, name) and not getattr(h, name).startswith(("https://", "http://"))]
    if h.issuer and not (h.client_id and h.client_key and h.dpop_key) and not settings.production:
        found.append("KILDE_HELSEID__ISSUER needs KILDE_HELSEID__CLIENT_ID, "
                     "KILDE_HELSEID__CLIENT_KEY and KILDE_HELSEID__DPOP_KEY as well.")
    if h.timeout_seconds <= 0:
        found.append("KILDE_HELSEID__TIMEOUT_SECONDS must be a number of seconds above 0, "
                     "e.g. 2.0.")
    if h.max_cached_tokens < 1:
        found.append("KILDE_HELSEID__MAX_CACHED_TOKENS must be 1 or more, e.g. 10000.")
    return found

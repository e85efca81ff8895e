"""Refuse insecure production settings at start, each with one sentence naming the variable.

Sits at the end of `Settings.from_env()`: with `KILDE_MODE=production` the demo issuer and
its public signing key, a Redis cache without an encryption key, a missing audit store, and a
SQLite audit file shared by several worker processes are refused. Open CORS with credentials
is refused in every mode (browsers would refuse it too, silently).

SQLite in production is allowed for one worker process: a single-replica pilot in one
municipality is a legitimate deployment, and the audit trail's hash chain is safe with one
writer. Several workers or replicas need PostgreSQL (docs/operations.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.settings import Settings

DEMO_ISSUER = "http://kilde-demo/helseid"


def insecure_reasons(settings: Settings) -> list[str]:
    """Every reason these settings must not serve; empty when they may."""
    reasons: list[str] = []
    cors = settings.cors
    if "*" in cors.origins and cors.allow_credentials:
        reasons.append("KILDE_CORS__ORIGINS='*' cannot be combined with "
                       "KILDE_CORS__ALLOW_CREDENTIALS=true; list the exact origins instead.")
    if not settings.production:
        return reasons
    auth = settings.auth
    if auth.issuer == DEMO_ISSUER or "/_demo/" in auth.jwks_url:
        reasons.append("KILDE_MODE=production refuses the demo token issuer and its public "
                       "signing key; set KILDE_AUTH__ISSUER and KILDE_AUTH__JWKS_URL to HelseID.")
    if settings.cache.url.startswith(("redis://", "rediss://")) and not settings.cache.key:
        reasons.append("KILDE_CACHE__KEY must be set when KILDE_CACHE__URL is Redis in "
                       "production, so cache entries are encrypted with a key every replica "
                       "shares.")
    audit = settings.audit.url.strip()
    if not audit or audit.endswith(":memory:"):
        reasons.append("KILDE_AUDIT__URL must name a durable audit store in production "
                       "(a postgresql:// URL, or a sqlite:/// file for a single worker).")
    elif audit.startswith("sqlite") and settings.workers > 1:
        reasons.append("KILDE_AUDIT__URL is a SQLite file, which only one worker may write; "
                       "use a postgresql:// URL with KILDE_WORKERS > 1.")
    return reasons

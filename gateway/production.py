"""What a serving process needs, and what it must refuse: production unless told otherwise.

Sits at the end of `Settings.from_env()` (gateway/envsettings.py), for a process that will
serve. In production mode (the default: `KILDE_MODE` unset) every setting without which Kilde
cannot safely serve is named when it is missing: the token issuer, audience and signing keys,
the cache key, the audit store, the tenants. The demo issuer and its public signing key, an
in-memory audit trail, and a SQLite audit file shared by several worker processes are refused.
Open CORS with credentials is refused in every mode (browsers would refuse it too, silently).

SQLite in production is allowed for one worker process: a single-replica pilot in one
municipality is a legitimate deployment, and the audit trail's hash chain is safe with one
writer. Several workers or replicas need PostgreSQL (docs/operations.md).

Add a requirement here as one plain sentence that names the variable and gives an example;
`production_problems` returns them all and `SettingsError` shows them in one message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.settings import DEMO_ISSUER

if TYPE_CHECKING:
    from gateway.settings import AuthSettings, Settings


def production_problems(settings: Settings) -> list[str]:
    """Every reason these settings must not serve; empty when they may."""
    problems: list[str] = []
    cors = settings.cors
    if "*" in cors.origins and cors.allow_credentials:
        problems.append("KILDE_CORS__ORIGINS='*' cannot be combined with "
                        "KILDE_CORS__ALLOW_CREDENTIALS=true; list the exact origins instead.")
    if not settings.production:
        return problems
    problems += _auth_problems(settings.auth)
    if settings.cache.enabled and not settings.cache.key:
        problems.append("KILDE_CACHE__KEY is not set: a random secret of at least 16 "
                        "characters (e.g. from `openssl rand -base64 32`), the same in every "
                        "replica, that keys and encrypts the cache (or KILDE_CACHE__ENABLED=false).")
    audit = settings.audit.url.strip()
    if not audit:
        problems.append("KILDE_AUDIT__URL is not set: the durable audit store, e.g. "
                        "postgresql://kilde@db:5432/kilde (or sqlite:////var/lib/kilde/"
                        "audit.sqlite3 for a single worker).")
    elif audit.endswith(":memory:"):
        problems.append("KILDE_AUDIT__URL must name a durable audit store in production "
                        "(a postgresql:// URL, or a sqlite:/// file for a single worker), "
                        "not :memory:.")
    elif audit.startswith("sqlite") and settings.workers > 1:
        problems.append("KILDE_AUDIT__URL is a SQLite file, which only one worker may write; "
                        "use a postgresql:// URL with KILDE_WORKERS > 1.")
    if not settings.tenants:
        problems.append("KILDE_TENANTS is not set: the municipalities this deployment serves, "
                        "as NUMBER:NAME:ORGNR separated by commas (e.g. '4601:Bergen:123456785'"
                        "), ORGNR being the municipality's organisation number in its tokens.")
    from gateway.upstream import helseid_problems

    problems += helseid_problems(settings)
    return problems


def _auth_problems(auth: AuthSettings) -> list[str]:
    problems = []
    if not auth.issuer:
        problems.append("KILDE_AUTH__ISSUER is not set: the HelseID issuer whose access tokens "
                        "Kilde accepts, e.g. https://helseid-sts.nhn.no.")
    if not auth.audience:
        problems.append("KILDE_AUTH__AUDIENCE is not set: the audience Kilde's access tokens "
                        "are issued for (its API resource in HelseID), e.g. kommune:kilde.")
    # an empty KILDE_AUTH__JWKS_URL is fine: the keys are found through the issuer's
    # discovery document (gateway/auth/discovery.py)
    if auth.issuer == DEMO_ISSUER or "/_demo/" in auth.jwks_url:
        problems.append("Production mode refuses the demo token issuer and its public "
                        "signing key; set KILDE_AUTH__ISSUER and KILDE_AUTH__JWKS_URL to "
                        "HelseID's.")
    return problems

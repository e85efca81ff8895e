"""Kilde's credentials towards upstreams, built once at start from `KILDE_HELSEID__*`.

Sits in the composition root: the lifespan calls `open_token_provider` (None when no HelseID
issuer is configured: demo only, upstreams are then called without credentials), and the
GraphQL view gives each request `provider.for_caller(token)`. `helseid_problems` lists what
production refuses (missing client id or key files, a source without an audience, the
sandbox's published keys); `load_keys` turns an unreadable key file into a `SettingsError`
naming the variable, so `kilde serve` stops before it listens.

>>> open_token_provider(Settings(), http) is None     # doctest: +SKIP
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from connectors.credentials import (
    HelseIdClient,
    KeyFileError,
    PrivateKey,
    TokenProvider,
    load_private_key,
)

if TYPE_CHECKING:
    from gateway.settings import HelseIdSettings, Settings

# RFC 7638 thumbprints of the keys in sandbox/helseid/keys/: they are in the repository, so
# anyone could sign with them. Written out here because production must not import sandbox.
SANDBOX_KEY_THUMBPRINTS = frozenset({
    "XFjsK5Zo6Q6sda3tauHfqObogRHOyAUEEKrcW8sq09k",  # kilde-client.json
    "f5Yigx6p1sGMSyC3LzatDv1ixYmwEx_2D2CZstvLwM0",  # kilde-dpop.json
    "vBigFDEIi6kxng67QZtTTfwJxtY3_03gSkvBqudFkI0",  # issuer.json (the demo issuer key)
})


_HELSEID_NEEDS = {
    "issuer": "the HelseID that gives Kilde its upstream tokens, e.g. https://helseid-sts.nhn.no",
    "client_id": "Kilde's client id in HelseID selvbetjening, e.g. kilde-bergen",
    "client_key": "the path of the private key Kilde signs its client assertions with (PEM "
                  "or JWK), e.g. /var/run/secrets/kilde/helseid/client.pem",
    "dpop_key": "the path of Kilde's private DPoP key (PEM or JWK), e.g. "
                "/var/run/secrets/kilde/helseid/dpop.pem",
}


def helseid_problems(settings: Settings) -> list[str]:
    """What production refuses about the upstream credentials, one sentence each (presence
    only: the key files are read by `load_keys` when the app starts)."""
    problems = [f"KILDE_HELSEID__{name.upper()} is not set: {need} (docs/operations.md, "
                "'Kilde as a HelseID client')."
                for name, need in _HELSEID_NEEDS.items() if not getattr(settings.helseid, name)]
    for name in settings.enabled_connectors:
        connector = settings.connectors.get(name)
        if connector is None or not connector.audience:
            problems.append(f"KILDE_CONNECTORS__{name.upper()}__AUDIENCE is not set: the "
                            f"HelseID resource of the {name!r} API that Kilde asks a token "
                            "for (e.g. nhn:kjernejournal is Kjernejournal's).")
    return problems


def load_keys(helseid: HelseIdSettings, *, production: bool) -> tuple[PrivateKey, PrivateKey]:
    """The client-assertion key and the DPoP key; `SettingsError` naming the variable when a
    file is unusable (or, in production, one of the sandbox's published keys)."""

    return (_load("client_key", helseid.client_key, production=production),
            _load("dpop_key", helseid.dpop_key, production=production))


def _load(name: str, path: str, *, production: bool) -> PrivateKey:
    from gateway.settings import SettingsError

    setting = f"KILDE_HELSEID__{name.upper()}"
    try:
        key = load_private_key(path, setting=setting)
    except KeyFileError as exc:
        raise SettingsError(str(exc)) from None
    if production and key.thumbprint in SANDBOX_KEY_THUMBPRINTS:
        raise SettingsError(f"{setting} is one of the sandbox's published keys, which anyone "
                            "can sign with; production needs a key of its own.")
    return key


def key_problems(settings: Settings) -> list[str]:
    """The key files' problems, read as the app will read them (for `kilde serve` to report
    with the other settings before it listens)."""
    from gateway.settings import SettingsError

    if not settings.helseid.issuer:
        return []
    problems = []
    for name, path in (("client_key", settings.helseid.client_key),
                       ("dpop_key", settings.helseid.dpop_key)):
        if not path:
            continue  # reported as not set
        try:
            _load(name, path, production=settings.production)
        except SettingsError as exc:
            problems.append(str(exc))
    return problems


def open_token_provider(settings: Settings, http: httpx.AsyncClient) -> TokenProvider | None:
    """The process's token provider, or None when `KILDE_HELSEID__ISSUER` is empty."""
    helseid = settings.helseid
    if not helseid.issuer:
        return None
    client_key, dpop_key = load_keys(helseid, production=settings.production)
    client = HelseIdClient(http, issuer=helseid.issuer, client_id=helseid.client_id,
                           client_key=client_key, dpop_key=dpop_key,
                           token_endpoint=helseid.token_endpoint,
                           timeout=helseid.timeout_seconds)
    return TokenProvider(client, renew_before=helseid.renew_before_seconds,
                         max_entries=helseid.max_cached_tokens)

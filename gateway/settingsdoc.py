"""Every setting Kilde reads, from the settings definitions, as the README's table and as the
Helm chart's values schema.

Sits beside gateway/settings.py and gateway/envsettings.py, which define what is read: the
top-level `KILDE_<NAME>` variables (`envsettings.TOP`, defaults from `Settings`), every field of
every `KILDE_<SECTION>__*` dataclass (`envsettings.SECTIONS`: name, type, default, secret or
not), the connector fields every connector takes (`envsettings.CONNECTOR_FIELDS`) and the
sandbox's own knobs (read by sandbox/, listed here). What the definitions cannot say is the
meaning, so `MEANINGS` holds one plain sentence per variable; a setting without one fails
tests/gateway/test_settings_doc.py, as does a README table that differs from `markdown()` or a
`KILDE_*` name in the code that no row describes.

    .venv/bin/python -m gateway.settingsdoc           # rewrite the README table and the chart schema
    .venv/bin/python -m gateway.settingsdoc --check   # exit 1 if either is out of date

>>> any(s.name == "KILDE_MODE" and s.default == "production" for s in settings())
True
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CHART_SCHEMA = ROOT / "charts" / "kilde" / "values.schema.json"
BEGIN = ("<!-- settings table: generated from the settings definitions by "
         "`.venv/bin/python -m gateway.settingsdoc`; do not edit by hand -->")
END = "<!-- end of the settings table -->"

# One plain sentence per variable: what it does, in an operator's words. The type and default
# come from the definitions; a sentence here may add the unit, the form and the demo's value.
MEANINGS: Mapping[str, str] = {
    "KILDE_MODE": "`production`, or `demo` (embedded demo defaults, demo key and routes; "
                  "`kilde demo` sets it).",
    "KILDE_HOST": "Address `kilde serve` listens on.",
    "KILDE_PORT": "Port `kilde serve` listens on.",
    "KILDE_WORKERS": "Worker processes of `kilde serve`.",
    "KILDE_DEADLINE_SECONDS": "The whole request's deadline; every source answers within it or "
                              "is reported as `TIMEOUT`.",
    "KILDE_TENANTS": "`0301:Oslo:910000004,…`: municipality number, name and legal-entity orgnr "
                     "of each municipality served (required in production).",
    "KILDE_AGREEMENTS": ("`4601>0301`: Oslo's personnel may see Bergen's store (provider>consumer); "
                         "`0301>5001:emergency`: Trondheim's may ask Oslo's store for an Oslo "
                         "patient only in an emergency with a reason, where the policy sets "
                         "`[border] emergency_agreements = true`."),
    "KILDE_POLICY_FILE": "A TOML file replacing `policies/defaults.toml`.",
    "KILDE_TERMINOLOGY_FILE": "A TOML file adding treatment-limitation codes and words to "
                              "`schema/shape/limitations.toml`.",
    "KILDE_LOG_LEVEL": "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`.",
    "KILDE_GRAPHIQL": "GraphiQL at `/graphql` in a browser (never in production).",
    "KILDE_ENABLED_CONNECTORS": "The sources asked, comma separated (see also "
                                "`KILDE_CONNECTORS__<NAME>__ENABLED`).",
    "KILDE_OTLP_ENDPOINT": "OpenTelemetry traces go here over OTLP/HTTP (the `otel` extra).",
    "KILDE_CONFIG_FILE": "A TOML or `KILDE_NAME=value` file read under the environment (a "
                         "variable that is set wins).",
    "KILDE_AUTH__ISSUER": "The token issuer (HelseID) whose access tokens Kilde accepts "
                          "(required in production).",
    "KILDE_AUTH__AUDIENCE": "The audience Kilde's access tokens must carry (required in "
                            "production).",
    "KILDE_AUTH__JWKS_URL": "The issuer's signing keys; empty: discovered from the issuer "
                            "(OpenID discovery).",
    "KILDE_AUTH__LEEWAY_SECONDS": "Clock skew allowed on `exp`, `nbf` and `iat`.",
    "KILDE_AUTH__MAX_TOKEN_BYTES": "A longer token is refused before it is parsed.",
    "KILDE_AUTH__JWKS_MIN_REFRESH_SECONDS": "An unknown `kid` fetches the keys again at most "
                                            "this often.",
    "KILDE_AUTH__JWKS_REFRESH_SECONDS": "The keys are fetched again this often (rotation).",
    "KILDE_AUTH__ALGORITHMS": "Signature algorithms accepted, comma separated.",
    "KILDE_AUTH__MIN_SECURITY_LEVEL": "Minimum HelseID `security_level` of a personnel login.",
    "KILDE_AUTH__CITIZEN_MIN_SECURITY_LEVEL": "Minimum login level of a citizen (ID-porten "
                                              "high = 4).",
    "KILDE_AUTH__DPOP": "`required` (production), `allowed` (the demo's) or `off`: DPoP-bound "
                        "tokens and a proof per request ([docs/authentication.md]"
                        "(docs/authentication.md)).",
    "KILDE_AUTH__DPOP_MAX_AGE_SECONDS": "How old a DPoP proof's `iat` may be.",
    "KILDE_AUTH__DPOP_NONCE": "Require server nonces in DPoP proofs (`DPoP-Nonce`).",
    "KILDE_AUTH__PUBLIC_URL": "The URL callers use (behind a proxy), for the proofs' `htu`.",
    "KILDE_HELSEID__ISSUER": "The HelseID Kilde is a client of, for its own tokens towards "
                             "upstreams (empty: the demo calls upstreams without any).",
    "KILDE_HELSEID__CLIENT_ID": "Kilde's client id at HelseID.",
    "KILDE_HELSEID__CLIENT_KEY": "Path of Kilde's client private key (PEM or JWK), e.g. a "
                                 "mounted Secret.",
    "KILDE_HELSEID__DPOP_KEY": "Path of the private key Kilde's upstream tokens are bound to "
                               "(DPoP).",
    "KILDE_HELSEID__TOKEN_ENDPOINT": "HelseID's token endpoint; set, discovery is skipped.",
    "KILDE_HELSEID__RENEW_BEFORE_SECONDS": "An upstream token is renewed this long before it "
                                           "expires.",
    "KILDE_HELSEID__TIMEOUT_SECONDS": "Timeout of one call to HelseID.",
    "KILDE_HELSEID__MAX_CACHED_TOKENS": "Upstream tokens kept per process.",
    "KILDE_AUDIT__URL": "`postgresql://…` or a `sqlite:///` file (required in production; the "
                        "demo's is `sqlite:///kilde-audit.sqlite3`); a password belongs in a "
                        "Secret.",
    "KILDE_AUDIT__RETENTION_DAYS": "Audit events older than this are purged at start and daily.",
    "KILDE_CACHE__URL": "`memory://` or `redis://host:6379/0` (shared by replicas).",
    "KILDE_CACHE__KEY": "The secret for the cache's HMAC keys and AES-GCM (required in "
                        "production; random per process in the demo).",
    "KILDE_CACHE__DEFAULT_TTL_SECONDS": "A source's entries live this long unless "
                                        "`KILDE_CACHE__TTLS` says otherwise.",
    "KILDE_CACHE__MAX_TTL_SECONDS": "No entry lives longer than this.",
    "KILDE_CACHE__MAX_STALE_SECONDS": "How long a failing source's last answer may still be "
                                      "served as `STALE`.",
    "KILDE_CACHE__ENABLED": "`false` switches the cache off.",
    "KILDE_CACHE__TTLS": "Per-source TTLs, `kjernejournal=60,pll=30`.",
    "KILDE_CACHE__OP_TIMEOUT_SECONDS": "A slower Redis call counts as Redis trouble (the "
                                       "cache is bypassed).",
    "KILDE_CACHE__RETRY_SECONDS": "After Redis trouble, Redis is bypassed this long before one "
                                  "call probes it.",
    "KILDE_CACHE__FRESH_PER_MINUTE": "Fresh-data requests per principal per minute (`fresh: "
                                     "true`, `cache-control: no-cache`); over it: cache.",
    "KILDE_CACHE__NAMESPACE": "Prefix of every key in Redis (several installations on one "
                              "Redis).",
    "KILDE_RESILIENCE__ATTEMPTS": "Attempts per source call (2: one retry, transient errors "
                                  "only).",
    "KILDE_RESILIENCE__BACKOFF_INITIAL": "First retry's backoff, in seconds.",
    "KILDE_RESILIENCE__BACKOFF_MAX": "Longest backoff, in seconds.",
    "KILDE_RESILIENCE__JITTER": "Random jitter added to a backoff, in seconds.",
    "KILDE_RESILIENCE__FAILURE_THRESHOLD": "Consecutive failures that open a source's circuit "
                                           "breaker.",
    "KILDE_RESILIENCE__RESET_SECONDS": "An open breaker lets one probe through after this long.",
    "KILDE_RESILIENCE__MAX_CONCURRENCY": "Calls in flight per source (bulkhead).",
    "KILDE_RESILIENCE__ENABLED": "`false` switches retries, breaker and bulkhead off.",
    "KILDE_LIMITS__MAX_DEPTH": "Deepest selection in a query (0: no limit, as for every limit "
                               "here).",
    "KILDE_LIMITS__MAX_ALIASES": "Aliases in a query.",
    "KILDE_LIMITS__MAX_TOKENS": "Lexical tokens in a query.",
    "KILDE_LIMITS__MAX_COST": "Estimated cost of a query (list sizes multiply).",
    "KILDE_LIMITS__MAX_LIST_SIZE": "Largest `first`/`last` argument and list value.",
    "KILDE_LIMITS__MAX_SELECTIONS": "Fields, spreads and inline fragments as written.",
    "KILDE_LIMITS__MAX_OVERLAPS": "Same-response-path field pairs validation compares.",
    "KILDE_LIMITS__DEFAULT_LIST_SIZE": "What an unbounded list field is assumed to return when "
                                       "costing.",
    "KILDE_LIMITS__MAX_BODY_BYTES": "Largest request body.",
    "KILDE_LIMITS__MAX_HEADER_BYTES": "Request line and headers; over it: HTTP 431.",
    "KILDE_PERSISTED__APQ": "Clients may register queries by their sha256 hash (Apollo APQ).",
    "KILDE_PERSISTED__ALLOWLIST_FILE": "A manifest of operations; when set, only these are "
                                       "accepted.",
    "KILDE_PERSISTED__MAX_ENTRIES": "Persisted queries kept per process.",
    "KILDE_PERSISTED__TTL_SECONDS": "How long a persisted query lives in Redis.",
    "KILDE_RATE_LIMIT__REQUESTS": "Requests per client (token `client_id`) in any window of "
                                  "`WINDOW_SECONDS` (a moving window); 0 switches it off.",
    "KILDE_RATE_LIMIT__WINDOW_SECONDS": "The rate limit's window.",
    "KILDE_CORS__ORIGINS": "Origins allowed cross-origin access, comma separated, or `*`.",
    "KILDE_CORS__ALLOW_CREDENTIALS": "Cross-origin requests may carry credentials.",
    "KILDE_CORS__MAX_AGE": "How long a browser may cache a preflight answer, in seconds.",
    "KILDE_CORS__HSTS_SECONDS": "`Strict-Transport-Security` max-age over TLS; 0: not sent.",
    "KILDE_LAUNCH__TTL_SECONDS": "A patient-context launch id is good for this long, once.",
    "KILDE_LAUNCH__APP_URL": "The legevakt app CDS cards link to (the demo: its own `/app/`).",
    "KILDE_LAUNCH__AUTHORIZATION_ENDPOINT": "HelseID's authorize endpoint in the SMART "
                                            "configuration (empty: the issuer's).",
    "KILDE_LAUNCH__TOKEN_ENDPOINT": "HelseID's token endpoint in the SMART configuration "
                                    "(empty: the issuer's).",
    "KILDE_LIVE__INIT_TIMEOUT_SECONDS": "A WebSocket's `connection_init` must arrive within "
                                        "this, else close 4408 ([§6](docs/app-builders.md)).",
    "KILDE_LIVE__MAX_CONNECTIONS_PER_CLIENT": "Open GraphQL WebSocket connections per HelseID "
                                              "client and replica, then close 1013; 0: no "
                                              "limit.",
    "KILDE_LIVE__MAX_OPERATIONS": "Operations running at once on one WebSocket connection.",
    "KILDE_LIVE__MAX_MESSAGE_BYTES": "A longer WebSocket message closes the connection (4400).",
    "KILDE_CDS__CLIENTS": "The EPJs whose signed CDS client JWT is required, "
                          "`ISS=JWKS URL,…`; empty: the user's token alone.",
    "KILDE_CONNECTORS__<NAME>__BASE_URL": "Base URL of a source (`KJERNEJOURNAL`, `PLL`, "
                                          "`ERESEPT`, `PROEVESVAR`, a plugin's).",
    "KILDE_CONNECTORS__<NAME>__STORES": "`0301=https://…,4601=https://…`: one FHIR store per "
                                        "municipality ([what a store must support]"
                                        "(docs/connectors.md#8-municipal-stores-the-fhir-"
                                        "servers-kilde-accepts)).",
    "KILDE_CONNECTORS__<NAME>__TIMEOUT": "Per-source timeout, in seconds.",
    "KILDE_CONNECTORS__<NAME>__ENABLED": "`false` switches a source off; `true` switches an "
                                         "installed plugin on.",
    "KILDE_CONNECTORS__<NAME>__MUNICIPALITIES": "`0301,4601`: gradual rollout, the source is "
                                                "asked only for these municipalities' personnel.",
    "KILDE_CONNECTORS__<NAME>__AUDIENCE": "The HelseID resource of the source's API (empty: no "
                                          "token is sent).",
    "KILDE_CONNECTORS__<NAME>__SCOPE": "The scopes Kilde asks HelseID for, for this source.",
    "KILDE_CONNECTORS__<NAME>__GRANT": "`token_exchange` (acting for the caller) or "
                                       "`client_credentials` (acting as Kilde).",
    "KILDE_CONNECTORS__<NAME>__<OPTION>": "A connector's own option (e.g. "
                                          "`PROEVESVAR__PAGE_SIZE`); undeclared ones fail the "
                                          "start.",
    "KILDE_SANDBOX__SCENARIOS": "A folder of FHIR transaction Bundles, one per patient, added "
                                "to the sandbox's patients.",
    "KILDE_SANDBOX__REQUIRE_TOKENS": "`false`: the fake upstreams take calls without their "
                                     "own HelseID token.",
    "KILDE_SANDBOX__MUNICIPAL__PROFILE": "The FHIR server the sandbox's stores play: `full`, "
                                         "`batch`, `plain`, `paged` or `lenient`.",
    "KILDE_SANDBOX__<SOURCE>__FAULT": "A fault knob at start: `none`, `hang`, `error` or "
                                      "`garbage` (`PUT /_sandbox/faults/<source>` at run "
                                      "time).",
    "KILDE_SANDBOX__<SOURCE>__LATENCY_MS": "Added latency of every call to a fake upstream.",
    "KILDE_SANDBOX__<SOURCE>__JITTER_MS": "Random latency added on top.",
    "KILDE_SANDBOX__<SOURCE>__ERROR_RATE": "Share of calls (0-1) that fail.",
    "KILDE_SANDBOX__<SOURCE>__ITEMS": "Synthetic records added per patient (bulk).",
    "KILDE_SANDBOX__HELSEID__ISSUER": "The simulated HelseID's issuer (default: the sandbox's "
                                      "own `/helseid`).",
    "KILDE_SANDBOX__HELSEID__TOKEN_LIFETIME": "Lifetime of the simulator's tokens, in seconds.",
    "KILDE_SANDBOX__HELSEID__CLIENTS": "A JSON file of further clients the simulator knows.",
    "KILDE_SANDBOX__EVENTS_URL": "Kilde's `POST /events`: the sandbox's event store posts its "
                                 "data changes there (`kilde demo` sets its own; empty: none).",
}


# The sandbox's knobs (sandbox/): not Settings, read where the sandbox starts. Type, default.
# The gateway does not import the sandbox (tests/test_import_direction.py), so they are listed
# here; tests/gateway/test_settings_doc.py checks them against sandbox.faults.Fault and the
# HelseID simulator's fields.
SANDBOX: Mapping[str, tuple[str, str]] = {
    "KILDE_SANDBOX__SCENARIOS": ("str", ""),
    "KILDE_SANDBOX__REQUIRE_TOKENS": ("bool", "true"),
    "KILDE_SANDBOX__MUNICIPAL__PROFILE": ("str", "full"),
    "KILDE_SANDBOX__<SOURCE>__FAULT": ("str", "none"),
    "KILDE_SANDBOX__<SOURCE>__LATENCY_MS": ("float", "0.0"),
    "KILDE_SANDBOX__<SOURCE>__JITTER_MS": ("float", "0.0"),
    "KILDE_SANDBOX__<SOURCE>__ERROR_RATE": ("float", "0.0"),
    "KILDE_SANDBOX__<SOURCE>__ITEMS": ("int", "0"),
    "KILDE_SANDBOX__HELSEID__ISSUER": ("str", ""),
    "KILDE_SANDBOX__HELSEID__TOKEN_LIFETIME": ("int", "300"),
    "KILDE_SANDBOX__HELSEID__CLIENTS": ("str", ""),
    "KILDE_SANDBOX__EVENTS_URL": ("str", ""),
}

CONNECTOR_ORDER = ("BASE_URL", "STORES", "TIMEOUT", "ENABLED", "MUNICIPALITIES", "AUDIENCE",
                   "SCOPE", "GRANT")


@dataclass(frozen=True)
class Setting:
    name: str  # KILDE_..., with <NAME>/<SOURCE>/<OPTION> placeholders where it is a family
    kind: str  # str | int | float | bool | list
    default: str  # as an operator writes it; "" when there is none
    meaning: str
    secret: bool = False  # `metadata=SECRET`: only from a Secret, never printed
    group: str = "gateway"  # gateway | connectors | sandbox


def _kind(type_name: str) -> str:
    return "list" if type_name.startswith("tuple") else type_name


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def settings() -> tuple[Setting, ...]:
    """Every setting, in the order a reader meets them (top level, sections, connectors,
    sandbox)."""
    from gateway.envsettings import CONNECTOR_FIELDS, SECTIONS, TOP
    from gateway.settings import Settings

    defaults = Settings()
    rows: list[Setting] = []

    def add(name: str, kind: str, default: str, secret: bool = False,
            group: str = "gateway") -> None:
        rows.append(Setting(name, kind, default, MEANINGS.get(name, ""),
                            secret, group))

    for key, kind in TOP.items():
        value = getattr(defaults, key.lower(), "")
        add(f"KILDE_{key}", _kind(kind), "" if value in ("", ()) and key != "ENABLED_CONNECTORS"
            else _shown(value))
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            add(f"KILDE_{section}__{f.name.upper()}", _kind(str(f.type)), _shown(value),
                secret=bool(f.metadata.get("secret")))
    from connectors.base import ConnectorSettings

    connector_defaults = {f.name.upper(): f.default for f in dataclasses.fields(ConnectorSettings)
                          if f.default is not dataclasses.MISSING}
    kinds = {"TIMEOUT": "float", "ENABLED": "bool", "MUNICIPALITIES": "list"}
    assert set(CONNECTOR_ORDER) == set(CONNECTOR_FIELDS), "CONNECTOR_ORDER is out of date"
    for key in CONNECTOR_ORDER:
        default = "true" if key == "ENABLED" else _shown(connector_defaults.get(key, ""))
        add(f"KILDE_CONNECTORS__<NAME>__{key}", kinds.get(key, "str"), default,
            group="connectors")
    add("KILDE_CONNECTORS__<NAME>__<OPTION>", "str", "", group="connectors")
    for name, (kind, default) in SANDBOX.items():
        add(name, kind, default, group="sandbox")
    return tuple(rows)


def markdown() -> str:
    """The README's settings table (between `BEGIN` and `END`)."""
    lines = [BEGIN, "", "| variable | type | default | meaning |", "| --- | --- | --- | --- |"]
    for s in settings():
        default = f"`{s.default}`" if s.default else ""
        if s.secret:
            default = "(from a Secret)" if not s.default else default
        lines.append(f"| `{s.name}` | {s.kind} | {default} | {s.meaning} |")
    lines += ["", END]
    return "\n".join(lines)


def readme_with_table(text: str) -> str:
    """`text` (the README) with its settings table replaced by `markdown()`."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + markdown() + text[end:]


# ---- the Helm chart's `config` block -------------------------------------------------------

_SCALAR = {
    "int": {"type": ["string", "integer"], "pattern": "^[0-9]+$"},
    "float": {"type": ["string", "number"], "pattern": "^[0-9]+(\\.[0-9]+)?$"},
    "bool": {"type": ["string", "boolean"], "pattern": "^(true|false|1|0|yes|no|on|off)$"},
    "str": {"type": "string"},
    "list": {"type": "string"},
}
# no user:password@ in a URL the ConfigMap would show
_NO_PASSWORD = {"not": {"type": "string", "pattern": "://[^/@]*:[^/@]*@"}}


def config_schema() -> dict[str, Any]:
    """JSON Schema of the chart's `config` block: one property per gateway setting (without
    the `KILDE_` prefix; secrets absent, so giving one there fails; no URL with a password),
    per-connector settings by pattern, and nothing else (a typo such as `AUTH__ISUER` fails
    `helm install` and lint)."""
    from gateway.settings import MODES

    properties: dict[str, Any] = {}
    for s in settings():
        if s.group != "gateway" or s.secret:
            continue
        prop = dict(_SCALAR[s.kind])
        if s.name == "KILDE_MODE":
            prop = {"enum": list(MODES)}
        if s.name.endswith(("_URL", "_ENDPOINT")):
            prop = {**prop, **_NO_PASSWORD}
        prop["description"] = _plain(s.meaning)
        properties[s.name[len("KILDE_"):]] = prop
    connector = {"type": ["string", "number", "boolean"], **_NO_PASSWORD}
    return {
        "type": "object",
        "description": "KILDE_<NAME> settings without the prefix (README.md, the settings "
                       "table); secrets come from secretEnv. Generated by "
                       "`python -m gateway.settingsdoc`.",
        "additionalProperties": False,
        "properties": properties,
        "patternProperties": {"^CONNECTORS__[A-Z][A-Z0-9_]*__[A-Z][A-Z0-9_]*$": connector},
    }


def _plain(text: str) -> str:
    return text.replace("`", "")


def chart_schema_with_config(text: str) -> str:
    """The chart's values.schema.json with its `config` property from `config_schema()`."""
    schema = json.loads(text)
    schema["properties"]["config"] = config_schema()
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    stale = []
    for path, update in ((README, readme_with_table), (CHART_SCHEMA, chart_schema_with_config)):
        text = path.read_text(encoding="utf-8")
        new = update(text)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.write_text(new, encoding="utf-8")
    if check and stale:
        print(f"out of date: {', '.join(map(str, stale))}; run "
              "`.venv/bin/python -m gateway.settingsdoc`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Reading `KILDE_*` variables into `Settings`: every value converted and checked, every
problem collected, then one `SettingsError` that names them all.

Sits inside `Settings.from_env()`. The mode comes first (production unless `KILDE_MODE=demo`,
which lays `DEMO_DEFAULTS` under the environment); then each variable is read into its
section, a wrong value is noted in plain words ("KILDE_DEADLINE_SECONDS must be a number of
seconds, e.g. 3.0, not 'soon'") and its default kept, so the reading goes on and the next
problem is found too. Cross-field checks (gateway/settingchecks.py) and, for a serving
process, the production requirements (gateway/production.py) add theirs.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connectors.base import ConnectorSettings
from connectors.credentials import GRANTS
from connectors.redact import redact_url
from connectors.resilience import ResilienceSettings
from gateway.settings import (
    BUILTIN_CONNECTORS,
    DEMO_DEFAULTS,
    MODES,
    AuditSettings,
    AuthSettings,
    CacheSettings,
    CdsSettings,
    CorsSettings,
    HelseIdSettings,
    LaunchSettings,
    LimitsSettings,
    LiveSettings,
    PersistedSettings,
    RateLimitSettings,
    Settings,
    SettingsError,
    Tenant,
)

TOP: Mapping[str, str] = {  # KILDE_<NAME> -> the type it is read as
    "MODE": "str", "HOST": "str", "PORT": "int", "WORKERS": "int", "DEADLINE_SECONDS": "float",
    "TENANTS": "str", "AGREEMENTS": "str", "POLICY_FILE": "str", "TERMINOLOGY_FILE": "str",
    "LOG_LEVEL": "str",
    "GRAPHIQL": "bool", "ENABLED_CONNECTORS": "tuple[str, ...]", "OTLP_ENDPOINT": "str",
    "CONFIG_FILE": "str",
}
SECTIONS: Mapping[str, type] = {
    "AUTH": AuthSettings, "HELSEID": HelseIdSettings, "AUDIT": AuditSettings, "CACHE": CacheSettings,
    "RESILIENCE": ResilienceSettings, "LIMITS": LimitsSettings, "PERSISTED": PersistedSettings,
    "RATE_LIMIT": RateLimitSettings, "CORS": CorsSettings, "LAUNCH": LaunchSettings,
    "LIVE": LiveSettings,
    "CDS": CdsSettings,
}
# Every connector takes these; any other KILDE_CONNECTORS__<NAME>__<OPTION> is one of its own
# options, checked against what the connector declares when the registry loads it.
CONNECTOR_FIELDS = {"BASE_URL", "TIMEOUT", "STORES", "ENABLED", "MUNICIPALITIES", "AUDIENCE",
                    "SCOPE", "GRANT"}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TIME_WORDS = ("SECONDS", "TIMEOUT", "BACKOFF", "JITTER")
INVALID = object()  # a value that could not be read; the default stays in its place


class Problems(list[str]):
    """The problems found so far, in the order a reader meets the settings."""


def _shown(raw: str, secret: bool) -> str:
    if secret:
        return ""
    text = redact_url(raw.strip())
    return f", not {text[:40] + '...' if len(text) > 40 else text!r}"


def convert(name: str, raw: str, kind: str, default: Any, problems: Problems, *,
            secret: bool = False, choices: tuple[str, ...] = ()) -> Any:
    """`raw` as `kind` ('bool', 'int', 'float', 'str', 'tuple[str, ...]'); on a bad value a
    plain sentence goes to `problems` and INVALID comes back."""
    text = raw.strip()
    if kind == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        problems.append(f"{name} must be true or false{_shown(raw, secret)}.")
        return INVALID
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            example = f", e.g. {default}" if isinstance(default, int) else ""
            problems.append(f"{name} must be a whole number{example}{_shown(raw, secret)}.")
            return INVALID
    if kind == "float":
        unit = "a number of seconds" if any(w in name for w in _TIME_WORDS) else "a number"
        example = f", e.g. {float(default)!r}" if isinstance(default, int | float) else ""
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if value != value or value in (float("inf"), float("-inf")):
            problems.append(f"{name} must be {unit}{example}{_shown(raw, secret)}.")
            return INVALID
        if value < 0:
            problems.append(f"{name} must be {unit} (0 or more){example}{_shown(raw, secret)}.")
            return INVALID
        return value
    if kind == "tuple[str, ...]":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if choices and text not in choices:
        listed = " or ".join(repr(c) for c in choices)
        problems.append(f"{name} must be {listed}{_shown(raw, secret)}.")
        return INVALID
    return raw


def _unknown(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    if close:
        return f"Unknown setting {name}; did you mean {close[0]}?"
    return f"Unknown setting {name}; known: {sorted(known)}."


def read_section(prefix: str, cls: type, values: Mapping[str, str], problems: Problems) -> Any:
    """One `KILDE_<SECTION>__*` group as its settings dataclass, defaults for bad values."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        f = fields.get(key.lower())
        if f is None:
            problems.append(_unknown(f"{prefix}__{key}",
                                     [f"{prefix}__{n.upper()}" for n in fields]))
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        value = convert(f"{prefix}__{key}", raw, str(f.type), default, problems,
                        secret=bool(f.metadata.get("secret")),
                        choices=tuple(f.metadata.get("choices", ())))
        if value is not INVALID:
            kwargs[f.name] = value
    return cls(**kwargs)


def _tenants(raw: str, problems: Problems) -> tuple[Tenant, ...]:
    tenants = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        bits = part.split(":")
        if len(bits) != 3 or not (len(bits[0]) == 4 and bits[0].isdigit()) or not bits[2].isdigit():
            problems.append(f"KILDE_TENANTS entry {part!r} must look like 'NUMBER:NAME:ORGNR' "
                            "(e.g. '0301:Oslo:910000004').")
            continue
        tenants.append(Tenant(bits[0], bits[1], bits[2]))
    return tuple(tenants)


def _agreements(raw: str, problems: Problems) -> tuple[tuple[str, ...], ...]:
    pairs: list[tuple[str, ...]] = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        pair, _, use = part.partition(":")
        bits = pair.split(">")
        if (len(bits) != 2 or not all(len(b) == 4 and b.isdigit() for b in bits)
                or use not in ("", "normal", "emergency")):
            problems.append(f"KILDE_AGREEMENTS entry {part!r} must look like 'PROVIDER>CONSUMER' "
                            "or 'PROVIDER>CONSUMER:emergency' (municipality numbers, e.g. "
                            "'4601>0301').")
            continue
        pairs.append((bits[0], bits[1], use) if use else (bits[0], bits[1]))
    return tuple(pairs)


def _stores(name: str, raw: str, problems: Problems) -> dict[str, str]:
    stores = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        number, sep, url = part.partition("=")
        if not sep or not (len(number) == 4 and number.isdigit()) or "://" not in url:
            problems.append(f"{name} entry {redact_url(part)!r} must look like 'NUMBER=URL' "
                            "(e.g. '0301=https://epj.oslo.example/fhir').")
            continue
        stores[number] = url
    return stores


def _municipalities(name: str, raw: str, tenants: tuple[Tenant, ...],
                    problems: Problems) -> frozenset[str]:
    """A connector's rollout: the municipality numbers that use it (empty: all of them)."""
    numbers = frozenset(p.strip() for p in raw.split(",") if p.strip())
    known = {t.number for t in tenants}
    for number in sorted(numbers):
        if not (len(number) == 4 and number.isdigit()):
            problems.append(f"{name} entry {number!r} must be a 4-digit municipality number.")
        elif number not in known:
            problems.append(f"{name} names municipality {number!r}, which is not in "
                            "KILDE_TENANTS.")
    return numbers


def _connector(cname: str, values: Mapping[str, str], tenants: tuple[Tenant, ...],
               problems: Problems) -> ConnectorSettings:
    prefix = f"KILDE_CONNECTORS__{cname.upper()}"
    timeout = convert(f"{prefix}__TIMEOUT", values.get("TIMEOUT", "2.0"), "float", 2.0, problems)
    if timeout is not INVALID and timeout <= 0:
        problems.append(f"{prefix}__TIMEOUT must be a number of seconds above 0, e.g. 2.0.")
    base_url = values.get("BASE_URL", "")
    if base_url and "://" not in base_url:
        problems.append(f"{prefix}__BASE_URL must be an absolute URL "
                        f"(e.g. 'https://{cname}.example/api').")
    options = {k.lower(): v for k, v in values.items() if k not in CONNECTOR_FIELDS}
    grant = values.get("GRANT", "token_exchange").strip()
    if grant not in GRANTS:
        problems.append(f"{prefix}__GRANT must be 'token_exchange' (acting for the caller) or "
                        f"'client_credentials' (acting as Kilde), not {grant!r}.")
        grant = "token_exchange"
    return ConnectorSettings(
        cname, base_url, 2.0 if timeout is INVALID else timeout,
        _stores(f"{prefix}__STORES", values.get("STORES", ""), problems), options=options,
        municipalities=_municipalities(f"{prefix}__MUNICIPALITIES",
                                       values.get("MUNICIPALITIES", ""), tenants, problems),
        audience=values.get("AUDIENCE", "").strip(),
        scope=" ".join(values.get("SCOPE", "").split()), grant=grant)


def read_settings(env: Mapping[str, str], *, serving: bool) -> Settings:
    """`env` as Settings, or one SettingsError with every problem (see the module docstring)."""
    from gateway import settingchecks
    from gateway.production import production_problems

    problems = Problems()
    mode = env.get("KILDE_MODE", "production").strip()
    if mode not in MODES:
        problems.append(f"KILDE_MODE must be 'production' (the default) or 'demo'"
                        f"{_shown(mode, False)}.")
        mode = "production"  # the strict reading, so nothing demo-only slips through
    if mode == "demo":
        env = {**DEMO_DEFAULTS, **env}
    top: dict[str, str] = {}
    sections: dict[str, dict[str, str]] = {s: {} for s in SECTIONS}
    connector_values: dict[str, dict[str, str]] = {}
    for name, raw in env.items():
        if not name.startswith("KILDE_") or name.startswith(("KILDE_SANDBOX__", "KILDE_TEST__")):
            continue  # the sandbox's own knobs; test-suite switches (KILDE_TEST__*)
        head, _, tail = name[len("KILDE_"):].partition("__")
        if not tail and head in TOP:
            top[head] = raw
        elif head in SECTIONS and tail:
            sections[head][tail] = raw
        elif head == "CONNECTORS" and tail.count("__") == 1 and all(tail.split("__")):
            cname, cfield = tail.split("__")
            connector_values.setdefault(cname.lower(), {})[cfield] = raw
        elif head == "CONNECTORS":
            problems.append(f"Unknown setting {name}; connectors take "
                            f"{sorted(CONNECTOR_FIELDS)} or an option of their own, as "
                            "KILDE_CONNECTORS__<NAME>__<SETTING>.")
        else:
            known = [f"KILDE_{t}" for t in TOP] + [f"KILDE_{s}__{f.name.upper()}"
                                                   for s, c in SECTIONS.items()
                                                   for f in dataclasses.fields(c)]
            problems.append(_unknown(name, known))

    defaults = Settings()
    kwargs: dict[str, Any] = {"mode": mode}
    for key in ("HOST", "PORT", "WORKERS", "DEADLINE_SECONDS", "POLICY_FILE",
                "TERMINOLOGY_FILE", "LOG_LEVEL", "GRAPHIQL", "OTLP_ENDPOINT",
                "ENABLED_CONNECTORS"):
        if key in top:
            value = convert(f"KILDE_{key}", top[key], TOP[key], getattr(defaults, key.lower()),
                            problems)
            if value is not INVALID:
                kwargs[key.lower()] = value
    if "log_level" in kwargs:
        kwargs["log_level"] = kwargs["log_level"].strip().upper()
        if kwargs["log_level"] not in _LOG_LEVELS:
            problems.append(f"KILDE_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}"
                            f"{_shown(top['LOG_LEVEL'], False)}.")
            del kwargs["log_level"]
    for key in ("policy_file", "terminology_file"):
        path = kwargs.get(key, "")
        if path and not Path(path).is_file():
            problems.append(f"KILDE_{key.upper()} {path!r} is not a readable file.")
    kwargs["tenants"] = _tenants(top.get("TENANTS", ""), problems)
    kwargs["agreements"] = _agreements(top.get("AGREEMENTS", ""), problems)
    for section, cls in SECTIONS.items():
        kwargs[section.lower()] = read_section(f"KILDE_{section}", cls, sections[section],
                                               problems)

    enabled = list(kwargs.get("enabled_connectors", BUILTIN_CONNECTORS))
    connectors: dict[str, ConnectorSettings] = {}
    for cname, values in connector_values.items():
        connectors[cname] = _connector(cname, values, kwargs["tenants"], problems)
        if "ENABLED" in values:
            on = convert(f"KILDE_CONNECTORS__{cname.upper()}__ENABLED", values["ENABLED"],
                         "bool", None, problems)
            if on is True and cname not in enabled:
                enabled.append(cname)
            if on is False and cname in enabled:
                enabled.remove(cname)
    kwargs["connectors"] = connectors
    kwargs["enabled_connectors"] = tuple(enabled)
    settings = Settings(**kwargs)
    problems.extend(settingchecks.problems(settings))
    if serving:
        problems.extend(production_problems(settings))
    if problems:
        raise SettingsError(problems, partial=settings)
    return settings

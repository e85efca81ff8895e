"""Loads the policy as data at start: defaults.toml, a custom file laid over it, agreements.

The gateway calls `load_rules` once in its app factory and passes the frozen `Rules` to every
decision. A bad file fails the start with one `ValueError` naming the file and the key.

    rules = load_rules(settings.policy_file, agreements=settings.agreements)
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from policies.model import AGREEMENT_USES, Agreement, Rules

# The string values of connectors.model.Category; policies keep their own copy (no imports).
BUILTIN_CATEGORIES: tuple[str, ...] = (
    "treatment_limitations",
    "critical_information",
    "medications",
    "lab_results",
    "municipal_services",
    "conditions",
    "documents",
    "demographics",
)
PURPOSES: tuple[str, ...] = ("TREAT", "ETREAT", "COC", "BTG")

_DEFAULTS = "defaults.toml"
_TOP_KEYS = frozenset({"attest_max_age_seconds", "scopes", "labels", "categories", "purposes",
                       "agreements", "blocks", "write", "border"})
_SCOPE_KEYS = ("clinical", "citizen", "privacy_officer", "events")
_LABEL_KEYS = ("restricted", "denied")
_CATEGORY_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PROFESSION = re.compile(r"[A-Z0-9]{1,8}")
_MUNICIPALITY = re.compile(r"\d{4}")
_SOURCE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_MAX_ATTEST_AGE = 3600  # ATT-58: an attest is valid for at most 60 minutes


@dataclass
class _Layer:
    """One file's settings, validated, before it is laid over the previous ones."""

    file: str
    values: dict[str, Any] = field(default_factory=dict)
    categories: dict[str, tuple[frozenset[str], bool]] = field(default_factory=dict)
    purposes: dict[str, tuple[frozenset[str] | None, frozenset[str]]] = field(default_factory=dict)
    agreements: set[Agreement] = field(default_factory=set)
    writes: dict[str, tuple[frozenset[str], frozenset[str]]] = field(default_factory=dict)


def load_rules(path: str | None = None, *, agreements: Iterable[tuple[str, ...]] = ()) -> Rules:
    """Build the Rules from defaults.toml, then `path` on top (if given), plus `agreements`.

    `agreements` are (provider, consumer) municipality numbers: principals of the consumer may
    see the provider's store; a third item "emergency" makes it an emergency-only agreement.

        >>> rules = load_rules(agreements=[("4601", "0301")])
        >>> sorted(rules.categories_by_profession["HF"])[:2]
        ['critical_information', 'medications']
    """
    default_text = resources.files("policies").joinpath(_DEFAULTS).read_text(encoding="utf-8")
    layers = [_parse_layer(_decode(default_text, f"policies/{_DEFAULTS}"), f"policies/{_DEFAULTS}")]
    if path:
        layers.append(_parse_layer(_read(path), path))
    extra = {_agreement(pair) for pair in agreements}
    return _build(layers, extra)


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"Policy file {path!r} cannot be read ({reason}).") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"Policy file {path!r} is not UTF-8 text.") from exc
    return _decode(text, path)


def _decode(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"Policy file {file!r} is not valid TOML: {exc}.") from exc


def _fail(file: str, key: str, expected: str) -> ValueError:
    return ValueError(f"Policy file {file!r} has an invalid {key!r}: expected {expected}.")


def _table(value: Any, key: str, file: str, allowed: Iterable[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(file, key, "a table")
    if allowed is not None:
        for name in value:
            if name not in allowed:
                raise ValueError(f"Policy file {file!r} has an unknown key {f'{key}.{name}'!r}.")
    return value


def _codes(value: Any, key: str, file: str, pattern: re.Pattern[str], what: str
           ) -> frozenset[str]:
    if not isinstance(value, list) or not all(
        isinstance(item, str) and pattern.fullmatch(item) for item in value
    ):
        raise _fail(file, key, f"a list of {what}")
    return frozenset(value)


def _parse_layer(doc: dict[str, Any], file: str) -> _Layer:
    layer = _Layer(file)
    for name in doc:
        if name not in _TOP_KEYS:
            raise ValueError(f"Policy file {file!r} has an unknown key {name!r}.")
    if "attest_max_age_seconds" in doc:
        age = doc["attest_max_age_seconds"]
        if isinstance(age, bool) or not isinstance(age, int) or not 0 < age <= _MAX_ATTEST_AGE:
            raise _fail(file, "attest_max_age_seconds", f"whole seconds from 1 to {_MAX_ATTEST_AGE}")
        layer.values["attest_max_age_seconds"] = age
    for key, value in _table(doc.get("scopes", {}), "scopes", file, _SCOPE_KEYS).items():
        if not isinstance(value, str) or not value.strip() or " " in value:
            raise _fail(file, f"scopes.{key}", "one scope name")
        layer.values[f"{key}_scope"] = value
    for key, value in _table(doc.get("labels", {}), "labels", file, _LABEL_KEYS).items():
        labels = _codes(value, f"labels.{key}", file, re.compile(r"\S+"), "security label codes")
        layer.values[f"{key}_labels"] = labels
    for name, entry in _table(doc.get("categories", {}), "categories", file, None).items():
        key = f"categories.{name}"
        if not _CATEGORY_NAME.fullmatch(name):
            raise _fail(file, key, "a snake_case category name")
        entry = _table(entry, key, file, ("professions", "citizen"))
        professions = _codes(entry.get("professions", []), f"{key}.professions", file,
                             _PROFESSION, "kodeverk 9060 profession codes")
        citizen = entry.get("citizen", False)
        if not isinstance(citizen, bool):
            raise _fail(file, f"{key}.citizen", "true or false")
        layer.categories[name] = (professions, citizen)
    for code, entry in _table(doc.get("purposes", {}), "purposes", file, PURPOSES).items():
        key = f"purposes.{code}"
        entry = _table(entry, key, file, ("only", "grants"))
        only = entry.get("only")
        narrowed = None if only is None else _codes(only, f"{key}.only", file, _CATEGORY_NAME,
                                                    "category names")
        grants = _codes(entry.get("grants", []), f"{key}.grants", file, _CATEGORY_NAME,
                        "category names")
        layer.purposes[code] = (narrowed, grants)
    blocks = _table(doc.get("blocks", {}), "blocks", file, ("everywhere", "sources"))
    if "everywhere" in blocks:
        if not isinstance(blocks["everywhere"], bool):
            raise _fail(file, "blocks.everywhere", "true or false")
        layer.values["block_everywhere"] = blocks["everywhere"]
    if "sources" in blocks:
        layer.values["block_sources"] = _codes(blocks["sources"], "blocks.sources", file,
                                               _SOURCE_NAME, "source (connector) names")
    for name, entry in _table(doc.get("write", {}), "write", file, None).items():
        key = f"write.{name}"
        if not _CATEGORY_NAME.fullmatch(name):
            raise _fail(file, key, "a snake_case category name")
        entry = _table(entry, key, file, ("professions", "purposes"))
        professions = _codes(entry.get("professions", []), f"{key}.professions", file,
                             _PROFESSION, "kodeverk 9060 profession codes")
        purposes = _codes(entry.get("purposes", ["TREAT", "ETREAT"]), f"{key}.purposes", file,
                          re.compile("|".join(PURPOSES)), "purposes of use (TREAT, ETREAT, ...)")
        layer.writes[name] = (professions, purposes)
    border = _table(doc.get("border", {}), "border", file, ("emergency_agreements",))
    if "emergency_agreements" in border:
        if not isinstance(border["emergency_agreements"], bool):
            raise _fail(file, "border.emergency_agreements", "true or false")
        layer.values["emergency_agreements"] = border["emergency_agreements"]
    raw_agreements = doc.get("agreements", [])
    if not isinstance(raw_agreements, list):
        raise _fail(file, "agreements", "an array of [[agreements]] tables")
    for entry in raw_agreements:
        if (not isinstance(entry, dict) or not {"provider", "consumer"} <= set(entry)
                or not set(entry) <= {"provider", "consumer", "write", "use"}
                or not all(isinstance(entry[k], str) and _MUNICIPALITY.fullmatch(entry[k])
                           for k in ("provider", "consumer"))
                or not isinstance(entry.get("write", False), bool)
                or entry.get("use", "normal") not in AGREEMENT_USES):
            raise _fail(file, "agreements", "tables with a four-digit 'provider' and 'consumer' "
                        "(and 'write' true or false, 'use' normal or emergency)")
        layer.agreements.add(Agreement(entry["provider"], entry["consumer"],
                                       entry.get("write", False), entry.get("use", "normal")))
    return layer


def _agreement(pair: tuple[str, ...]) -> Agreement:
    if (not isinstance(pair, tuple | list) or len(pair) not in (2, 3)
            or not all(isinstance(v, str) and _MUNICIPALITY.fullmatch(v) for v in pair[:2])
            or (len(pair) == 3 and pair[2] not in AGREEMENT_USES)):
        raise ValueError(
            f"Agreement {pair!r} must be a (provider, consumer) pair, optionally with a use "
            f"({' or '.join(AGREEMENT_USES)}), of four-digit municipality numbers."
        )
    return Agreement(pair[0], pair[1], use=pair[2] if len(pair) == 3 else "normal")


def _build(layers: list[_Layer], extra_agreements: set[Agreement]) -> Rules:
    values: dict[str, Any] = {}
    categories: dict[str, tuple[frozenset[str], bool]] = {}
    purposes: dict[str, tuple[frozenset[str] | None, frozenset[str], str]] = {}
    agreements = set(extra_agreements)
    writes: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for layer in layers:
        values.update(layer.values)
        writes.update(layer.writes)
        categories.update(layer.categories)
        purposes.update({code: (*entry, layer.file) for code, entry in layer.purposes.items()})
        agreements |= layer.agreements
    for code, (only, grants, file) in purposes.items():
        unknown = sorted(((only or frozenset()) | grants) - categories.keys())
        if unknown:
            raise _fail(file, f"purposes.{code}", f"configured categories, not {unknown[0]!r}")
    for name in writes:
        if name not in categories:
            raise _fail(layers[-1].file, f"write.{name}", "a configured category")
    scopes = {key: values.get(f"{key}_scope") for key in _SCOPE_KEYS}
    named = [v for v in scopes.values() if v is not None]
    if len(set(named)) != len(named):
        raise _fail(layers[-1].file, "scopes", "a different scope name for each kind of caller")
    by_profession: dict[str, set[str]] = {}
    for name, (professions, _citizen) in categories.items():
        for profession in professions:
            by_profession.setdefault(profession, set()).add(name)
    return Rules(
        categories_by_profession={p: frozenset(c) for p, c in sorted(by_profession.items())},
        categories_by_purpose={p: e[0] for p, e in purposes.items() if e[0] is not None},
        categories_granted_by_purpose={p: e[1] for p, e in purposes.items() if e[1]},
        agreements=frozenset(agreements),
        citizen_categories=frozenset(n for n, (_p, citizen) in categories.items() if citizen),
        categories=frozenset(categories),
        write_professions={c: p for c, (p, _) in writes.items()},
        write_purposes={c: u for c, (_, u) in writes.items()},
        **values,
    )

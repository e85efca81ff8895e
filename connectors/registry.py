"""The connector registry: which sources exist, built once at start from entry points.

Sits under the schema: the gateway's lifespan calls `load_connectors()` with the enabled names
and their settings; resolvers ask the frozen `Registry` which connectors serve a category.
Built-ins register under the same `kilde.connectors` entry-point group third parties use; an
entry point names a factory or a `ConnectorPlugin`. Everything a connector brings is checked
here, at start, with one sentence naming the connector: installed, its options declared, the
protocol implemented, its categories valid (a plugin's new `CategorySpec`s included).

>>> registry = load_connectors(["pll"], {}, http)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import httpx

from connectors.base import Connector, ConnectorSettings
from connectors.boundary import CheckedConnector
from connectors.errors import ConnectorConfigError
from connectors.model import AnyCategory, Category, CategorySpec
from connectors.plugin import as_plugin, check_options

ENTRY_POINT_GROUP = "kilde.connectors"


@dataclass(frozen=True)
class Registered:
    """One enabled connector with its settings and the version of the package providing it."""

    connector: Connector
    settings: ConnectorSettings
    version: str = ""
    standard: str = ""
    description: str = ""


class Registry:
    """Read-only after start: the enabled connectors by name, in a stable order."""

    def __init__(self, entries: Iterable[Registered]) -> None:
        self._entries = MappingProxyType({e.connector.name: e for e in entries})
        specs = {c.value: c for e in self._entries.values() for c in e.connector.categories
                 if isinstance(c, CategorySpec)}
        self._plugin_categories = tuple(specs[value] for value in sorted(specs))

    def __iter__(self) -> Iterator[Registered]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Registered | None:
        return self._entries.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def serving(self, category: AnyCategory) -> list[Registered]:
        return [e for e in self._entries.values() if category in e.connector.categories]

    @property
    def categories(self) -> frozenset[AnyCategory]:
        return frozenset(c for e in self._entries.values() for c in e.connector.categories)

    @property
    def plugin_categories(self) -> tuple[CategorySpec, ...]:
        """The new categories enabled connectors bring, by value (the schema adds a field each)."""
        return self._plugin_categories  # asked on every patient query; the registry is frozen

    async def aclose(self) -> None:
        for entry in self._entries.values():
            await entry.connector.aclose()


def installed_factories() -> dict[str, tuple[Callable[..., Connector], str]]:
    """Every connector factory installed under the entry-point group, with its dist version."""
    found: dict[str, tuple[Callable[..., Connector], str]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        version = ep.dist.version if ep.dist is not None else ""
        found[ep.name] = (ep.load, version)  # loaded lazily: a broken plugin fails only if enabled
    return found


def load_connectors(
    enabled: Sequence[str],
    settings: Mapping[str, ConnectorSettings],
    http: httpx.AsyncClient,
    *,
    factories: Mapping[str, tuple[Callable[..., Connector], str]] | None = None,
) -> Registry:
    """Create every enabled connector; fail at start with a message naming the connector."""
    available = installed_factories() if factories is None else dict(factories)
    problems: list[str] = [
        f"KILDE_CONNECTORS__{name.upper()}__* configures connector {name!r}, which is not "
        f"installed. Installed: {sorted(available)}."
        for name in settings if name not in available
    ]
    entries = []
    for name in enabled:
        if name not in available:
            problems.append(f"Connector {name!r} is enabled but not installed. "
                            f"Installed: {sorted(available)}.")
            continue
        try:
            entries.append(_load_one(name, available[name], settings, http))
        except ConnectorConfigError as exc:  # go on: every connector's problem in one message
            problems.extend(exc.problems)
    if problems:
        raise ConnectorConfigError(problems)
    _check_plugin_categories(entries)
    return Registry(entries)


def _load_one(name: str, available: tuple[Callable[..., Connector], str],
              settings: Mapping[str, ConnectorSettings], http: httpx.AsyncClient) -> Registered:
    loader, version = available
    conf = settings.get(name, ConnectorSettings(name=name))
    try:
        plugin = as_plugin(name, loader())
        check_options(name, plugin, conf)
        connector = plugin(conf, http)
    except ConnectorConfigError:
        raise
    except Exception as exc:
        raise ConnectorConfigError(
            f"Connector {name!r} failed to start ({type(exc).__name__}): {exc}"
        ) from exc
    if not isinstance(connector, Connector):
        raise ConnectorConfigError(
            f"Connector {name!r} does not implement the Connector protocol "
            "(name, categories, fetch, aclose)."
        )
    if connector.name != name:
        raise ConnectorConfigError(
            f"Connector registered as {name!r} calls itself {connector.name!r}."
        )
    _check_categories(name, connector)
    standard = plugin.standard or str(getattr(connector, "standard", ""))
    # every answer is checked at the boundary: a wrong shape is UpstreamInvalidError
    return Registered(CheckedConnector(connector), conf, version, standard, plugin.description)


def _check_categories(name: str, connector: Connector) -> None:
    categories = connector.categories
    if not isinstance(categories, frozenset | set) or not categories:
        raise ConnectorConfigError(
            f"Connector {name!r} must serve a non-empty frozenset of categories."
        )
    for category in categories:
        if not isinstance(category, Category | CategorySpec):
            raise ConnectorConfigError(
                f"Connector {name!r} serves {category!r}, which is neither a Category nor a "
                "CategorySpec."
            )


def _check_plugin_categories(entries: Sequence[Registered]) -> None:
    """Two connectors may serve one new category only if they declare it identically."""
    seen: dict[str, tuple[CategorySpec, str]] = {}
    fields: dict[str, str] = {}
    for entry in entries:
        for spec in entry.connector.categories:
            if not isinstance(spec, CategorySpec):
                continue
            name = entry.connector.name
            if spec.value in seen:
                first, owner = seen[spec.value]
                if (first.item_type, first.graphql_type, first.field_name) != (
                        spec.item_type, spec.graphql_type, spec.field_name):
                    raise ConnectorConfigError(
                        f"Connectors {owner!r} and {name!r} declare category {spec.value!r} "
                        "differently; share one CategorySpec."
                    )
                continue
            if fields.get(spec.field_name, spec.value) != spec.value:
                raise ConnectorConfigError(
                    f"Connector {name!r} adds Patient field {spec.field_name!r}, which category "
                    f"{fields[spec.field_name]!r} already uses."
                )
            seen[spec.value] = (spec, name)
            fields[spec.field_name] = spec.value

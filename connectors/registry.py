"""The connector registry: which sources exist, built once at start from entry points.

Sits under the schema: the gateway's lifespan calls `load_connectors()` with the enabled names
and their settings; resolvers ask the frozen `Registry` which connectors serve a category.
Built-ins register under the same `kilde.connectors` entry-point group third parties use.

>>> registry = load_connectors(["pll"], {}, http)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import httpx

from connectors.base import Connector, ConnectorSettings
from connectors.errors import ConnectorConfigError
from connectors.model import Category

ENTRY_POINT_GROUP = "kilde.connectors"


@dataclass(frozen=True)
class Registered:
    """One enabled connector with its settings and the version of the package providing it."""

    connector: Connector
    settings: ConnectorSettings
    version: str = ""
    standard: str = ""


class Registry:
    """Read-only after start: the enabled connectors by name, in a stable order."""

    def __init__(self, entries: Iterable[Registered]) -> None:
        self._entries = MappingProxyType({e.connector.name: e for e in entries})

    def __iter__(self) -> Iterable[Registered]:  # type: ignore[override]
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Registered | None:
        return self._entries.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def serving(self, category: Category) -> list[Registered]:
        return [e for e in self._entries.values() if category in e.connector.categories]

    @property
    def categories(self) -> frozenset[Category]:
        return frozenset(c for e in self._entries.values() for c in e.connector.categories)

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
    entries = []
    for name in enabled:
        if name not in available:
            raise ConnectorConfigError(
                f"Connector {name!r} is enabled but not installed. Installed: {sorted(available)}."
            )
        loader, version = available[name]
        conf = settings.get(name, ConnectorSettings(name=name))
        try:
            factory = loader()
            connector = factory(conf, http)
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
        standard = str(getattr(connector, "standard", ""))
        entries.append(Registered(connector, conf, version, standard))
    return Registry(entries)

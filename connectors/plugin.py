"""What a connector package's entry point names: a plain factory, or a `ConnectorPlugin`.

Sits between the registry and a connector package. A factory `create(settings, http)` is
enough for a connector that takes only the common settings (`BASE_URL`, `TIMEOUT`, `STORES`,
`MUNICIPALITIES`, `ENABLED`); a `ConnectorPlugin` also declares its own options, the wire
standard it speaks, and the fake upstream the contract kit and demos run it against. New
categories need no declaration here: a connector that serves a `CategorySpec` adds it.

    [project.entry-points."kilde.connectors"]
    hub = "kilde_hub:plugin"

The built-in connectors are built the same way: each package's entry point (`create` in
`connectors/<name>/__init__.py`) is a `ConnectorPlugin` around a plain factory, with the
standard and description the catalogue shows (tests/connectors/test_factory_shape.py). A
bare factory still loads, for packages written before `ConnectorPlugin`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.base import Connector, ConnectorFactory, ConnectorSettings
from connectors.errors import ConnectorConfigError

# Settings every connector takes (`KILDE_CONNECTORS__<NAME>__<SETTING>`); the rest are options.
COMMON_SETTINGS = ("BASE_URL", "ENABLED", "MUNICIPALITIES", "STORES", "TIMEOUT")


@dataclass(frozen=True)
class ConnectorPlugin:
    """A connector factory plus what the gateway should know before it calls it.

    `options` maps each extra setting the connector reads from `settings.options` (lower
    case, from `KILDE_CONNECTORS__<NAME>__<OPTION>`) to a one-line description; any other
    option fails the start. `standard` is the wire standard shown in the catalogue.
    `sandbox` builds the package's fake upstream (an ASGI app).

    >>> plugin = ConnectorPlugin(create, options={"page_size": "reports per page, 1-100"},
    ...                          standard="FHIR R4")  # doctest: +SKIP
    >>> connector = plugin(settings, http)  # called like the factory it wraps  # doctest: +SKIP
    """

    create: ConnectorFactory
    options: Mapping[str, str] = field(default_factory=dict)
    standard: str = ""
    description: str = ""
    sandbox: Callable[[], Any] | None = None

    def __call__(self, settings: ConnectorSettings, http: httpx.AsyncClient) -> Connector:
        return self.create(settings, http)


def as_plugin(name: str, obj: object) -> ConnectorPlugin:
    """The `ConnectorPlugin` an entry point's object stands for (a factory is wrapped)."""
    if isinstance(obj, ConnectorPlugin):
        return obj
    if callable(obj):
        return ConnectorPlugin(create=obj)
    raise ConnectorConfigError(
        f"Connector {name!r} has an entry point that is neither a factory nor a "
        "ConnectorPlugin."
    )


def check_options(name: str, plugin: ConnectorPlugin, settings: ConnectorSettings) -> None:
    """Fail with one sentence naming the variable when `settings` has an undeclared option."""
    for option in sorted(settings.options):
        if option not in plugin.options:
            prefix = f"KILDE_CONNECTORS__{name.upper()}__"
            known = [*COMMON_SETTINGS, *(o.upper() for o in sorted(plugin.options))]
            raise ConnectorConfigError(
                f"Connector {name!r} has no setting {prefix}{option.upper()}; it takes "
                f"{', '.join(known)}."
            )

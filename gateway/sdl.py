"""The published schema: the SDL of the GraphQL schema the gateway serves, without a server.

Sits beside the app factory: `kilde schema` prints `builtin_sdl()` (what `schema.graphql` at
the repository root holds, the schema of the built-in connectors), or `configured_sdl(settings)`
(the schema of this deployment, with the categories its enabled plugin connectors add). Neither
needs introspection, so it works where production refuses introspection queries. A test
compares the committed file with the schema of the running app.

>>> "type Query {" in builtin_sdl()
True
"""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.http import create_http_client
from connectors.registry import load_connectors
from gateway.settings import Settings
from schema.query import build_schema

REGENERATE = "./dev kilde schema > schema.graphql"


def schema_sdl(schema: Any) -> str:
    """The SDL of a built Strawberry schema, types sorted by name, ending in one newline."""
    return str(schema.as_str()).rstrip("\n") + "\n"


def builtin_sdl() -> str:
    """The schema of the built-in connectors: the published `schema.graphql`."""
    return schema_sdl(build_schema())


def configured_sdl(settings: Settings) -> str:
    """The schema a gateway with `settings` serves, plugin categories included. Connectors are
    created (to learn their categories) but never called, so no upstream is needed."""

    async def categories() -> tuple[Any, ...]:
        http = create_http_client()
        try:
            registry = load_connectors(settings.enabled_connectors, settings.connectors, http)
            try:
                return registry.plugin_categories
            finally:
                await registry.aclose()
        finally:
            await http.aclose()

    return schema_sdl(build_schema(categories=asyncio.run(categories())))

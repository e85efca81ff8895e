"""The source catalogue for the command line: `kilde connectors list`.

Sits beside the CLI. Offline it reads the configuration and the installed entry points (every
enabled connector is built, so a bad setting fails here as it would at start); with
`--gateway URL` it asks a running gateway's `Query.sources`, the one place that knows each
source's health and when it last answered. Rows are plain dicts, printed as a table or JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from connectors.base import ConnectorSettings
from connectors.http import create_http_client
from connectors.plugin import as_plugin
from connectors.registry import installed_factories, load_connectors
from gateway.settings import BUILTIN_CONNECTORS, Settings

SOURCES_QUERY = """{ sources { name version standard categories municipalities timeoutSeconds
  health lastSuccess lastFailure lastError description } }"""
COLUMNS = (("name", 14), ("state", 9), ("version", 8), ("health", 11), ("last success", 20),
           ("municipalities", 16), ("categories", 0))


class CatalogueError(ValueError):
    """The gateway could not be asked; one sentence without the token."""


def check_connectors(settings: Settings) -> None:
    """Build every enabled connector once and close it again: a missing, misconfigured or
    broken connector fails here, with its one sentence, before the server starts."""
    offline_rows(settings)


def offline_rows(settings: Settings) -> list[dict[str, Any]]:
    """Every installed connector; the enabled ones built from `settings` (fails like a start)."""

    async def build() -> list[dict[str, Any]]:
        http = create_http_client()
        try:
            registry = load_connectors(settings.enabled_connectors, settings.connectors, http)
            try:
                tenants = [t.number for t in settings.tenants]
                return [_row(e, tenants) for e in registry]
            finally:
                await registry.aclose()
        finally:
            await http.aclose()

    rows = asyncio.run(build())
    enabled = {r["name"] for r in rows}
    for name, (_, version) in sorted(installed_factories().items()):
        if name not in enabled:
            rows.append({"name": name, "version": version, "enabled": False})
    return rows


def _row(entry: Any, tenants: Sequence[str]) -> dict[str, Any]:
    conf = entry.settings
    used_by = conf.municipalities or frozenset(conf.stores)
    return {
        "name": entry.connector.name, "version": entry.version, "standard": entry.standard,
        "categories": sorted(c.value for c in entry.connector.categories),
        "municipalities": sorted(used_by) or list(tenants),
        "timeout_seconds": conf.timeout, "enabled": True, "health": None,
        "last_success": None, "description": entry.description or None,
    }


def plugin_sandboxes(settings: Settings, base: str) -> tuple[Settings, dict[str, Any]]:
    """For the demo: every enabled plugin without an upstream URL, pointed at its own fake
    (`ConnectorPlugin.sandbox`), which the demo mounts at `/<name>` beside the built-in ones."""
    factories = installed_factories()
    connectors = dict(settings.connectors)
    fakes: dict[str, Any] = {}
    for name in settings.enabled_connectors:
        conf = connectors.get(name, ConnectorSettings(name))
        if name in BUILTIN_CONNECTORS or name not in factories or conf.base_url or conf.stores:
            continue
        try:
            plugin = as_plugin(name, factories[name][0]())
        except Exception:  # a broken plugin: the start check reports it
            continue
        if plugin.sandbox is not None:
            fakes[name] = plugin.sandbox()
            connectors[name] = replace(conf, base_url=f"{base.rstrip('/')}/{name}")
    return replace(settings, connectors=connectors), fakes


def gateway_rows(url: str, token: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The catalogue as a running gateway at `url` sees it (health and last success included)."""
    try:
        response = httpx.post(f"{url.rstrip('/')}/graphql", json={"query": SOURCES_QUERY},
                              headers={"authorization": f"Bearer {token}"}, timeout=timeout)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise CatalogueError(f"The gateway could not be asked ({type(exc).__name__}).") from exc
    if response.status_code != 200 or not isinstance(body, dict) or body.get("errors"):
        errors = body.get("errors") if isinstance(body, dict) else None
        code = errors[0].get("extensions", {}).get("code") if errors else None
        raise CatalogueError(f"The gateway refused the catalogue query (HTTP "
                             f"{response.status_code}, {code or 'no code'}).")
    return [{
        "name": s["name"], "version": s["version"], "standard": s["standard"],
        "categories": [c.lower() for c in s["categories"]],
        "municipalities": s["municipalities"], "timeout_seconds": s["timeoutSeconds"],
        "enabled": True, "health": s["health"], "last_success": s["lastSuccess"],
        "last_failure": s["lastFailure"], "last_error": s["lastError"],
        "description": s["description"],
    } for s in body["data"]["sources"]]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per source, then the standard each enabled one speaks."""
    lines = ["  ".join(f"{title.upper():{width}s}" for title, width in COLUMNS).rstrip()]
    for row in rows:
        cells = {
            "name": row["name"], "state": "enabled" if row["enabled"] else "disabled",
            "version": row.get("version") or "-", "health": row.get("health") or "-",
            "last success": (row.get("last_success") or "-")[:19],
            "municipalities": ",".join(row.get("municipalities", [])) or "-",
            "categories": ", ".join(row.get("categories", [])) or "-",
        }
        lines.append("  ".join(f"{cells[t]:{w}s}" for t, w in COLUMNS).rstrip())
    standards = [f"  {r['name']}: {r['standard']}" for r in rows if r.get("standard")]
    if standards:
        lines += ["", "Wire standards:", *standards]
    return "\n".join(lines)

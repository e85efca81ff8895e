"""Pasientens prøvesvar (PPS): lab results, the `proevesvar` connector's entry point.

"Prøvesvar" is Norwegian for test results; PPS is the national service (formerly NILAR) that
collects laboratory, pathology and radiology reports. The gateway's registry calls `create`
through the `kilde.connectors` entry point at start-up.

>>> connector = create(ConnectorSettings("proevesvar", "http://127.0.0.1:8000/proevesvar"), http)
... # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from connectors import ConnectorConfigError, ConnectorPlugin, ConnectorSettings
from connectors.credentials import Audience
from connectors.proevesvar.connector import (
    DEFAULT_MAX_PAGES,
    DEFAULT_PAGE_SIZE,
    ProevesvarConnector,
)

__all__ = ["ProevesvarConnector", "create"]


def _create(settings: ConnectorSettings, http: httpx.AsyncClient) -> ProevesvarConnector:
    """Build the connector; bad settings fail here, at start, naming the variable."""
    if not settings.base_url:
        raise ConnectorConfigError(
            "Connector 'proevesvar' needs KILDE_CONNECTORS__PROEVESVAR__BASE_URL."
        )
    return ProevesvarConnector(
        http,
        settings.base_url,
        page_size=_int_option(settings.options, "page_size", DEFAULT_PAGE_SIZE, 1, 100),
        max_pages=_int_option(settings.options, "max_pages", DEFAULT_MAX_PAGES, 1, 50),
        audience=Audience.of(settings),
    )


# The entry point (`kilde.connectors` group, name `proevesvar`).
create = ConnectorPlugin(
    _create,
    options={"page_size": "reports per page, 1-100 (default 50)",
             "max_pages": "pages followed per request, 1-50 (default 5)"},
    standard=ProevesvarConnector.standard,
    description="Pasientens prøvesvar: laboratory, pathology and radiology reports.",
)


def _int_option(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    raw = options.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = low - 1
    if not low <= value <= high:
        raise ConnectorConfigError(
            f"KILDE_CONNECTORS__PROEVESVAR__{key.upper()} must be a whole number from {low} "
            f"to {high}, not {raw!r}."
        )
    return value

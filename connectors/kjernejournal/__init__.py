"""The `kjernejournal` source: Kjernejournal, the national summary care record (critical info).

Sits under the fan-out; the gateway's registry calls `create(settings, http)` through the
`kilde.connectors` entry point. Settings: `KILDE_CONNECTORS__KJERNEJOURNAL__BASE_URL` (the
critical-information API root) and the option `source_system` (the `nhn-source-system` header).
"""

from __future__ import annotations

import httpx

from connectors.base import ConnectorSettings
from connectors.kjernejournal.connector import KjernejournalConnector

__all__ = ["KjernejournalConnector", "create"]


def create(settings: ConnectorSettings, http: httpx.AsyncClient) -> KjernejournalConnector:
    """The entry point: one connector sharing the gateway's HTTP client."""
    return KjernejournalConnector(settings, http)

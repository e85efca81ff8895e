"""The `kjernejournal` source: Kjernejournal, the national summary care record (critical info).

Sits under the fan-out; the gateway's registry calls `create(settings, http)` through the
`kilde.connectors` entry point. Settings: `KILDE_CONNECTORS__KJERNEJOURNAL__BASE_URL` (the
critical-information API root) and the option `source_system` (the `nhn-source-system` header).
"""

from __future__ import annotations

import httpx

from connectors import ConnectorPlugin, ConnectorSettings
from connectors.kjernejournal.connector import KjernejournalConnector

__all__ = ["KjernejournalConnector", "create"]


def _create(settings: ConnectorSettings, http: httpx.AsyncClient) -> KjernejournalConnector:
    return KjernejournalConnector(settings, http)


# The entry point: one connector sharing the gateway's HTTP client.
create = ConnectorPlugin(
    _create,
    options={"source_system": "the nhn-source-system header value (default 'kilde')"},
    standard=KjernejournalConnector.standard,
    description="Kjernejournal, the national summary care record: critical information.",
)

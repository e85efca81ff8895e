"""The `persontjenesten` source: NHN's Persontjenesten, the population registry for health care.

Sits under the fan-out; the gateway's registry calls `create(settings, http)` through the
`kilde.connectors` entry point. It gives `Patient.demographics` (name, birth date, gender,
home municipality, deceased) and tells the planner the patient's home municipality (whose
store may hold records). Settings: `KILDE_CONNECTORS__PERSONTJENESTEN__BASE_URL` (the Person
API root) and the HelseID resource and scope (`__AUDIENCE`, `__SCOPE`).
"""

from __future__ import annotations

import httpx

from connectors import ConnectorPlugin, ConnectorSettings
from connectors.persontjenesten.connector import PersontjenestenConnector

__all__ = ["PersontjenestenConnector", "create"]


def _create(settings: ConnectorSettings, http: httpx.AsyncClient) -> PersontjenestenConnector:
    return PersontjenestenConnector(settings, http)


# The entry point: one connector sharing the gateway's HTTP client.
create = ConnectorPlugin(
    _create,
    standard=PersontjenestenConnector.standard,
    description="Persontjenesten, the population registry (Folkeregisteret): demographics and "
                "the home municipality.",
)

"""The `municipal` source: each municipality's own store (kommunens hendelseslager / EPJ).

Sits under the fan-out as one connector for all configured stores; the gateway's registry calls
`create(settings, http)` through the `kilde.connectors` entry point. `settings.stores` maps
municipality numbers (kommunenummer) to FHIR R4 base URLs:

    KILDE_CONNECTORS__MUNICIPAL__STORES=0301=https://fhir.oslo.example/r4,4601=...
"""

from __future__ import annotations

from connectors import ConnectorPlugin
from connectors.municipal.connector import MunicipalConnector, build

__all__ = ["MunicipalConnector", "create"]

# The entry point (`kilde.connectors` group, name `municipal`): the ConnectorPlugin shape every
# connector package uses.
create = ConnectorPlugin(
    build,
    standard=MunicipalConnector.standard,
    description="The municipalities' own stores (EPJ / hendelseslager): services, conditions, "
                "treatment limitations, allergies, documents.",
)

"""The `pll` connector: Pasientens legemiddelliste (the patient's shared medication list).

Sits under the fan-out. PLL is not a system of its own but a message in the e-resept chain,
read here through SFM's `$getMedication`: only the statements in the Composition's "PLL info"
section are served (`in_pll=True`, `pll_id` set). A patient without a PLL gets an empty
section, which is EMPTY, not an error.
"""

from __future__ import annotations

from datetime import datetime

import httpx

from connectors import Category, ConnectorPlugin, ConnectorSettings, SourceResult
from connectors.medication.connector import SfmConnector, with_unreadable
from connectors.medication.sfm import MedicationDocument


class PllConnector(SfmConnector):
    """Serves MEDICATIONS from the PLL section of `$getMedication`."""

    name = "pll"
    part = "pll"

    def select(self, document: MedicationDocument, fetched_at: datetime) -> SourceResult:
        result = SourceResult.of(self.name, {Category.MEDICATIONS: document.pll},
                                 fetched_at=fetched_at)
        return with_unreadable(result, document.pll, document.unreadable_pll)


def _create(settings: ConnectorSettings, http: httpx.AsyncClient) -> PllConnector:
    """Build the connector; no base URL fails the start, naming the variable."""
    return PllConnector(settings, http)


# The entry point (`kilde.connectors` group, name `pll`): the ConnectorPlugin shape every
# connector package uses.
create = ConnectorPlugin(
    _create,
    standard=PllConnector.standard,
    description="Pasientens legemiddelliste: the patient's shared medication list.",
)

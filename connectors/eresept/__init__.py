"""The `eresept` connector: valid e-prescriptions in Reseptformidleren (RF).

Sits under the fan-out and reads SFM's `$getMedication`, serving the prescription statements
(`prescription_id` set). SFM omits `RFHentetTidspunkt` when it did not look RF up ("absence
shall be interpreted as no lookup performed"): the answer is then PARTIAL, never a silent EMPTY.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from connectors import (
    AnyCategory,
    Category,
    ConnectorPlugin,
    ConnectorSettings,
    SourceResult,
    Status,
)
from connectors.medication.connector import SfmConnector, with_unreadable
from connectors.medication.sfm import MedicationDocument

RF_NOT_CONSULTED = "Reseptformidleren was not consulted; prescriptions may be missing."


class EreseptConnector(SfmConnector):
    """Serves MEDICATIONS (prescriptions) from `$getMedication`; PARTIAL without an RF lookup."""

    name = "eresept"
    part = "prescriptions"

    def select(self, document: MedicationDocument, fetched_at: datetime) -> SourceResult:
        items: dict[AnyCategory, Sequence[Any]] = {Category.MEDICATIONS: document.prescriptions}
        if document.rf_fetched_at is None:
            result = SourceResult(source=self.name, status=Status.PARTIAL, items=items,
                                  fetched_at=fetched_at, detail=RF_NOT_CONSULTED)
        else:
            result = SourceResult.of(self.name, items, fetched_at=fetched_at)
        return with_unreadable(result, document.prescriptions,
                               document.unreadable_prescriptions)


def _create(settings: ConnectorSettings, http: httpx.AsyncClient) -> EreseptConnector:
    """Build the connector; no base URL fails the start, naming the variable."""
    return EreseptConnector(settings, http)


# The entry point (`kilde.connectors` group, name `eresept`): the ConnectorPlugin shape every
# connector package uses.
create = ConnectorPlugin(
    _create,
    standard=EreseptConnector.standard,
    description="Reseptformidleren: valid e-prescriptions.",
)

"""The public connector API: everything a source package needs, built-in or external.

Sits under the fan-out. A connector package imports from here (and from the public
submodules `connectors.fhir`, helpers for FHIR-over-HTTP sources, and `connectors.testing`,
the contract kit), never from the private modules behind them; the built-ins do the same, and
`tests/connectors/test_public_api.py` keeps both this list and that rule honest.

    from connectors import Category, ConnectorSettings, FetchRequest, SourceResult

    class Hello:
        name = "hello"
        categories = frozenset({Category.DOCUMENTS})
        async def fetch(self, request: FetchRequest) -> SourceResult:
            return SourceResult.empty(self.name, request.categories)
        async def aclose(self) -> None: ...

A connector that makes several calls shares its budget between them: `Budget.of(request)`
(`left()` for each call's timeout, `async with ....enforce():` around them all).

    def create(settings: ConnectorSettings, http: httpx.AsyncClient) -> Hello:
        return Hello()          # pyproject: [project.entry-points."kilde.connectors"]

A connector that can also record to its upstream adds `writes` and `write(WriteRequest)`
(`connectors.writing`, the `Writer` protocol; docs/connectors.md).
"""

from __future__ import annotations

from connectors.base import (
    AccessBasis,
    Connector,
    ConnectorFactory,
    ConnectorSettings,
    FetchRequest,
    Reason,
    Requester,
    SourceResult,
)
from connectors.deadline import Budget, timed_out
from connectors.errors import (
    ConnectorConfigError,
    ConnectorError,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from connectors.identifiers import (
    DNR_SYSTEM,
    FHN_SYSTEM,
    FNR_SYSTEM,
    HPR_SYSTEM,
    ORGNR_SYSTEM,
    is_valid_nin,
    nin_system,
)
from connectors.model import (
    AnyCategory,
    Category,
    CategorySpec,
    Coding,
    Condition,
    CriticalInformation,
    CriticalType,
    Demographics,
    DocumentReference,
    Dosage,
    Item,
    LabReport,
    LabResult,
    Medication,
    MunicipalService,
    PrivacyState,
    Provenance,
    Status,
    TreatmentLimitation,
)
from connectors.plugin import COMMON_SETTINGS, ConnectorPlugin
from connectors.registry import ENTRY_POINT_GROUP
from connectors.writing import (
    ClinicalNoteDraft,
    Draft,
    MedicationAdministrationDraft,
    TreatmentLimitationDraft,
    Writer,
    WriteRequest,
    WriteResult,
    Written,
    writer_of,
)

__all__ = [
    "COMMON_SETTINGS",
    "DNR_SYSTEM",
    "ENTRY_POINT_GROUP",
    "FHN_SYSTEM",
    "FNR_SYSTEM",
    "HPR_SYSTEM",
    "ORGNR_SYSTEM",
    "AccessBasis",
    "AnyCategory",
    "Budget",
    "Category",
    "CategorySpec",
    "ClinicalNoteDraft",
    "Coding",
    "Condition",
    "Connector",
    "ConnectorConfigError",
    "ConnectorError",
    "ConnectorFactory",
    "ConnectorPlugin",
    "ConnectorSettings",
    "CriticalInformation",
    "CriticalType",
    "Demographics",
    "DocumentReference",
    "Dosage",
    "Draft",
    "FetchRequest",
    "Item",
    "LabReport",
    "LabResult",
    "Medication",
    "MedicationAdministrationDraft",
    "MunicipalService",
    "PrivacyState",
    "Provenance",
    "Reason",
    "Requester",
    "SourceResult",
    "Status",
    "TreatmentLimitation",
    "TreatmentLimitationDraft",
    "UpstreamInvalidError",
    "UpstreamRejectedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "WriteRequest",
    "WriteResult",
    "Writer",
    "Written",
    "is_valid_nin",
    "nin_system",
    "timed_out",
    "writer_of",
]

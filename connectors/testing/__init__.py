"""The connector contract kit: one suite every connector runs, built-in or external.

Public, like `connectors` itself. `ConnectorContract` is the pytest class to inherit (three
lines in a connector package's tests); `checks` holds the same checks as coroutines for other
runners; `FaultTransport` breaks the HTTP between a connector and its fake upstream.

    from connectors.testing import ConnectorContract

    class TestContract(ConnectorContract):
        name, plugin, patient = "hub", kilde_hub.plugin, "14033841389"

Checks: declared name and categories; items of the right type, each with this source's
provenance and security labels; only the requested categories, and no upstream call when none
it serves is requested; its timeout honoured; upstream failures mapped to the right
`ConnectorError`; no identity number in errors, details or log lines; unknown fields ignored;
cancellation safe; `aclose()` leaves the shared HTTP client open; every upstream call carries
the upstream's own DPoP-bound HelseID token (`auth=request.credentials.to(audience)`), never
the caller's.
"""

from __future__ import annotations

from connectors.testing.checks import ERROR_CODES, ContractSetup
from connectors.testing.contract import ConnectorContract
from connectors.testing.faults import MODES, FaultTransport

__all__ = ["ERROR_CODES", "MODES", "ConnectorContract", "ContractSetup", "FaultTransport"]

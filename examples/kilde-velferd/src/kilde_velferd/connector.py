"""The `velferd` connector: one FHIR search on the welfare-technology hub per patient.

Sits under Kilde's fan-out. `fetch` posts `Device/_search` with `_revinclude` of the alarm
`Observation`s (one round trip), the patient's identifier only in the form body, never in the
URL, and the municipalities the caller may see, so the hub can filter too (Kilde's policy
checks each device's municipality again). HTTP failures are translated by
`connectors.fhir.request_json`; the mapping is pure (`kilde_velferd.mapping`).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
from connectors import ConnectorSettings, FetchRequest, SourceResult, Status, nin_system
from connectors.credentials import Audience
from connectors.fhir import now, request_json

from kilde_velferd.mapping import SOURCE, read_devices
from kilde_velferd.model import WELFARE_TECHNOLOGY

PROFESSION = "urn:oid:2.16.578.1.12.4.1.1.9060"  # kodeverk 9060


class VelferdConnector:
    """Welfare technology in use for a patient, from the hub at `settings.base_url`.

    >>> settings = ConnectorSettings("velferd", "http://hub")  # doctest: +SKIP
    >>> result = await VelferdConnector(settings, http).fetch(request)  # doctest: +SKIP
    """

    name = SOURCE
    categories = frozenset({WELFARE_TECHNOLOGY})
    standard = "FHIR R4 (Device, Observation), welfare-technology hub (VKP pattern)"

    def __init__(self, settings: ConnectorSettings, http: httpx.AsyncClient, *,
                 max_alarms: int = 5) -> None:
        self.url = settings.base_url.rstrip("/") + "/Device/_search"
        self.http = http
        self.max_alarms = max_alarms
        # the hub's HelseID resource (KILDE_CONNECTORS__VELFERD__AUDIENCE); None: no token
        self.audience = Audience.of(settings)

    async def fetch(self, request: FetchRequest) -> SourceResult:
        if WELFARE_TECHNOLOGY not in request.categories:
            return SourceResult.empty(self.name)
        form = {
            "patient.identifier": f"{nin_system(request.patient_nin)}|{request.patient_nin}",
            "_revinclude": "Observation:device",
        }
        if request.municipalities:
            form["municipality"] = ",".join(sorted(request.municipalities))
        body = await request_json(self.http, self.name, "POST", self.url,
                                  timeout=request.timeout, headers=_headers(request), data=form,
                                  auth=request.credentials.to(self.audience))
        fetched_at = now()
        found = read_devices(body, fetched_at, max_alarms=self.max_alarms)
        result = SourceResult.of(self.name, {WELFARE_TECHNOLOGY: found.devices},
                                 fetched_at=fetched_at)
        if not found.unreadable:
            return result
        return SourceResult(source=self.name, status=Status.PARTIAL, items=result.items,
                            fetched_at=fetched_at,
                            detail=f"{found.unreadable} record(s) from the hub could not be read.")

    async def aclose(self) -> None:
        """Nothing to close: the HTTP client is Kilde's, shared by every connector."""


def _headers(request: FetchRequest) -> dict[str, str]:
    """Correlation and the requester's role, so the hub can enforce too; no identity number."""
    headers = {"x-request-id": request.request_id} if request.request_id else {}
    if request.requester.role_code:
        role = {"system": PROFESSION, "code": request.requester.role_code}
        headers["nhn-user-role"] = quote(json.dumps(role, separators=(",", ":")), safe="")
    return headers

"""A fake welfare-technology hub: `POST /Device/_search` over synthetic patients.

Stands in for the hub in the contract kit, the tests and a demo (`python -m
kilde_velferd.sandbox --port 8002`). It answers like a FHIR R4 server: a searchset Bundle of
the patient's `Device`s, their alarm `Observation`s included, filtered by the `municipality`
form parameter. The patients are Kilde's sandbox patients (same synthetic identity numbers);
devices, alarms and phone numbers are invented.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kilde_velferd.mapping import INSTALLED, MUNICIPALITY
from kilde_velferd.model import ALARM_TYPES, DEVICE_TYPES, SENSOR_TYPES

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
FHIR_JSON = "application/fhir+json"
RESPONSE_CENTRES = {
    "0301": ("Trygghetssentralen Oslo (synthetic)", "+47 21 00 00 01"),
    "4601": ("Responssenter Bergen (synthetic)", "+47 55 00 00 02"),
}
# nin -> devices: (id, municipality, type code, display, installed, sensors, alarms, labels)
DEVICES: dict[str, list[dict[str, Any]]] = {
    "09014412759": [  # multi-service: home care in Oslo
        {"id": "vt-1", "municipality": "0301", "type": ("trygghetsalarm", "Trygghetsalarm"),
         "installed": "2025-02-10", "sensors": [("fall", "Fallsensor")],
         "alarms": [("a-1", "fall-detected", "Fall oppdaget", "2026-11-20T03:12:00+01:00",
                     "Hjemmebesøk; hjulpet opp, ingen skade"),
                    ("a-2", "button-pressed", "Alarmknapp trykket", "2026-11-02T18:40:00+01:00",
                     "Samtale; falsk alarm")]},
        {"id": "vt-2", "municipality": "0301", "type": ("medisindispenser",
                                                       "Elektronisk medisindispenser"),
         "installed": "2025-06-01", "sensors": [],
         "alarms": [("a-3", "dose-missed", "Dose ikke tatt", "2026-11-18T09:30:00+01:00",
                     "Hjemmesykepleien varslet")]},
    ],
    "14033841389": [  # legevakt-hlr: nursing home resident in Oslo
        {"id": "vt-3", "municipality": "0301", "type": ("digitalt-tilsyn", "Digitalt tilsyn"),
         "installed": "2026-01-15", "sensors": [("bed", "Sengesensor"), ("door", "Dørsensor")],
         "alarms": [("a-4", "door-opened-night", "Dør åpnet om natten",
                     "2026-11-21T02:05:00+01:00", "Nattevakt tilsyn")]},
        {"id": "vt-4", "municipality": "0301", "type": ("gps", "GPS-lokalisering"),
         "installed": "2026-03-01", "sensors": [], "alarms": [], "labels": ["R"]},
    ],
    "23116731894": [  # other-municipality: Bergen
        {"id": "vt-5", "municipality": "4601", "type": ("trygghetsalarm", "Trygghetsalarm"),
         "installed": "2024-09-09", "sensors": [], "alarms": []},
    ],
}


def device_resource(device: dict[str, Any]) -> dict[str, Any]:
    code, display = device["type"]
    centre, phone = RESPONSE_CENTRES[device["municipality"]]
    meta: dict[str, Any] = {"lastUpdated": "2026-11-21T08:00:00+01:00"}
    if device.get("labels"):
        meta["security"] = [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                             "code": label} for label in device["labels"]]
    resource: dict[str, Any] = {
        "resourceType": "Device", "id": device["id"], "meta": meta, "status": "active",
        "extension": [{"url": MUNICIPALITY, "valueString": device["municipality"]},
                      {"url": INSTALLED, "valueDate": device["installed"]}],
        "type": {"coding": [{"system": DEVICE_TYPES, "code": code, "display": display}]},
        "owner": {"display": centre}, "contact": [{"system": "phone", "value": phone}],
    }
    if device["sensors"]:
        resource["property"] = [{"type": {"text": "sensor"}, "valueCode": [
            {"coding": [{"system": SENSOR_TYPES, "code": c, "display": d}]}
            for c, d in device["sensors"]]}]
    return resource


def alarm_resource(device_id: str, alarm: tuple[str, str, str, str, str]) -> dict[str, Any]:
    alarm_id, code, display, at, outcome = alarm
    return {"resourceType": "Observation", "id": alarm_id, "status": "final",
            "code": {"coding": [{"system": ALARM_TYPES, "code": code, "display": display}]},
            "device": {"reference": f"Device/{device_id}"}, "effectiveDateTime": at,
            "valueString": outcome}


def _outcome(status: int, text: str) -> JSONResponse:
    issue = {"severity": "error", "code": "invalid", "diagnostics": text}
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [issue]},
                        status_code=status, media_type=FHIR_JSON)


def create_app() -> Starlette:
    """The fake hub as an ASGI app (`ConnectorPlugin.sandbox` for the contract kit)."""

    async def search(request: Request) -> JSONResponse:
        form = parse_qs((await request.body()).decode())
        identifier = (form.get("patient.identifier") or [""])[0]
        system, _, nin = identifier.partition("|")
        if system not in (FNR, "urn:oid:2.16.578.1.12.4.1.4.2") or not nin:
            return _outcome(400, "patient.identifier is required")
        allowed = set(",".join(form.get("municipality", [])).split(",")) - {""}
        entries = []
        for device in DEVICES.get(nin, []):
            if allowed and device["municipality"] not in allowed:
                continue
            entries.append({"resource": device_resource(device), "search": {"mode": "match"}})
            if "Observation:device" in form.get("_revinclude", []):
                entries += [{"resource": alarm_resource(device["id"], a),
                             "search": {"mode": "include"}} for a in device["alarms"]]
        return JSONResponse({"resourceType": "Bundle", "type": "searchset",
                             "total": sum(e["search"]["mode"] == "match" for e in entries),
                             "entry": entries}, media_type=FHIR_JSON)

    return Starlette(routes=[Route("/Device/_search", search, methods=["POST"])])


def main() -> None:  # pragma: no cover - a convenience for demos
    import uvicorn

    parser = argparse.ArgumentParser(description="A fake welfare-technology hub (synthetic).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

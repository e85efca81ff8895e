"""FHIR R4 `Device` and alarm `Observation` resources to `WelfareDevice`s: pure, table-tested.

Sits between the connector's one HTTP call and the unified model. Tolerant like every Kilde
reader: unknown fields are ignored, missing optional ones give None; a resource that cannot be
read is skipped and counted (the connector answers PARTIAL); a Bundle of the wrong shape is
`UpstreamInvalidError` (raised by `connectors.fhir.bundle_resources`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from connectors import Coding, Provenance
from connectors.fhir import (
    bundle_resources,
    coding_of,
    extension_value,
    parse_date,
    parse_datetime,
    security_of,
)

from kilde_velferd.model import WelfareAlarm, WelfareDevice

SOURCE = "velferd"
MUNICIPALITY = "http://kilde.example/fhir/StructureDefinition/velferd-municipality"
INSTALLED = "http://kilde.example/fhir/StructureDefinition/velferd-installed"
UNREADABLE = (TypeError, AttributeError, KeyError, ValueError)


@dataclass(frozen=True)
class Devices:
    """What one answer held: the devices, and how many resources could not be read."""

    devices: tuple[WelfareDevice, ...]
    unreadable: int = 0


def read_devices(bundle: Any, fetched_at: datetime, *, max_alarms: int = 5) -> Devices:
    """The devices in a searchset Bundle, each with its newest `max_alarms` alarms."""
    resources = bundle_resources(bundle, SOURCE)
    alarms: dict[str, list[WelfareAlarm]] = {}
    unreadable = 0
    for resource in resources:
        if resource.get("resourceType") != "Observation":
            continue
        try:
            device_id, alarm = read_alarm(resource)
        except UNREADABLE:
            unreadable += 1
            continue
        alarms.setdefault(device_id, []).append(alarm)
    devices = []
    for resource in resources:
        if resource.get("resourceType") != "Device" or resource.get("status") == "entered-in-error":
            continue
        try:
            device = read_device(resource, fetched_at)
        except UNREADABLE:
            unreadable += 1
            continue
        recent = sorted(alarms.get(device.id, ()), key=lambda a: a.raised_at, reverse=True)
        devices.append(replace(device, recent_alarms=tuple(recent[:max_alarms])))
    return Devices(tuple(devices), unreadable)


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def read_device(resource: Mapping[str, Any], fetched_at: datetime) -> WelfareDevice:
    """One `Device`; raises ValueError (or a lookup error) when it cannot be read."""
    device_id = resource["id"]
    kind = coding_of(resource.get("type"))
    if not isinstance(device_id, str) or not device_id or kind is None:
        raise ValueError("a Device needs an id and a type")
    meta = _object(resource.get("meta"))
    municipality = extension_value(resource, MUNICIPALITY)
    owner = _object(resource.get("owner"))
    return WelfareDevice(
        id=device_id,
        kind=kind,
        status=str(resource.get("status") or "unknown"),
        provenance=Provenance(
            source=SOURCE, record_id=device_id, fetched_at=fetched_at,
            recorded_at=parse_datetime(meta.get("lastUpdated")),
            municipality=municipality if isinstance(municipality, str) else None,
        ),
        installed=parse_date(extension_value(resource, INSTALLED)),
        response_centre=owner.get("display") if isinstance(owner.get("display"), str) else None,
        response_phone=_phone(resource.get("contact")),
        sensors=_sensors(resource.get("property")),
        security=security_of(resource),
    )


def read_alarm(resource: Mapping[str, Any]) -> tuple[str, WelfareAlarm]:
    """One alarm `Observation` and the id of the `Device` that raised it."""
    reference = resource["device"]["reference"]
    raised_at = parse_datetime(resource.get("effectiveDateTime"))
    code = coding_of(resource.get("code"))
    if not isinstance(reference, str) or not reference.startswith("Device/"):
        raise ValueError("an alarm must reference its Device")
    if raised_at is None or code is None:
        raise ValueError("an alarm needs a code and a time")
    outcome = resource.get("valueString")
    return reference.removeprefix("Device/"), WelfareAlarm(
        id=str(resource["id"]), code=code, raised_at=raised_at,
        outcome=outcome if isinstance(outcome, str) else None,
    )


def _phone(contacts: Any) -> str | None:
    for contact in contacts if isinstance(contacts, list) else []:
        if isinstance(contact, dict) and contact.get("system") == "phone" and contact.get("value"):
            return str(contact["value"])
    return None


def _sensors(properties: Any) -> tuple[Coding, ...]:
    found = []
    for prop in properties if isinstance(properties, list) else []:
        if not isinstance(prop, dict) or (prop.get("type") or {}).get("text") != "sensor":
            continue
        for concept in prop.get("valueCode") or []:
            coding = coding_of(concept)
            if coding is not None:
                found.append(coding)
    return tuple(found)

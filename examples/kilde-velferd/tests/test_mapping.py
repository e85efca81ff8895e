"""The hub's FHIR resources map to WelfareDevices: a table of resources and what they become."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from connectors import Coding, UpstreamInvalidError

from kilde_velferd.mapping import read_devices
from kilde_velferd.model import DEVICE_TYPES
from kilde_velferd.sandbox import DEVICES, alarm_resource, device_resource

FETCHED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def bundle(*resources: dict[str, object]) -> dict[str, object]:
    return {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": r} for r in resources]}


def test_a_device_carries_its_type_centre_sensors_municipality_and_provenance() -> None:
    device = read_devices(bundle(device_resource(DEVICES["14033841389"][0])), FETCHED).devices[0]
    assert device.kind == Coding(DEVICE_TYPES, "digitalt-tilsyn", "Digitalt tilsyn")
    assert device.installed == date(2026, 1, 15)
    assert device.response_centre == "Trygghetssentralen Oslo (synthetic)"
    assert device.response_phone == "+47 21 00 00 01"
    assert [s.code for s in device.sensors] == ["bed", "door"]
    assert device.provenance.source == "velferd"
    assert device.provenance.record_id == "vt-3"
    assert device.provenance.municipality == "0301"
    assert device.provenance.fetched_at == FETCHED


def test_alarms_attach_to_their_device_newest_first_and_are_capped() -> None:
    spec = DEVICES["09014412759"][0]
    resources = [device_resource(spec), *(alarm_resource(spec["id"], a) for a in spec["alarms"])]
    device = read_devices(bundle(*resources), FETCHED, max_alarms=1).devices[0]
    assert [a.id for a in device.recent_alarms] == ["a-1"]
    assert device.recent_alarms[0].outcome == "Hjemmebesøk; hjulpet opp, ingen skade"


def test_security_labels_are_kept_for_the_policy() -> None:
    device = read_devices(bundle(device_resource(DEVICES["14033841389"][1])), FETCHED).devices[0]
    assert [s.code for s in device.security] == ["R"]


@pytest.mark.parametrize(("broken", "why"), [
    ({"resourceType": "Device", "id": "x"}, "no type"),
    ({"resourceType": "Device", "type": {"text": "Trygghetsalarm"}}, "no id"),
    ({"resourceType": "Observation", "id": "o", "device": "Device/x"}, "device not a reference"),
    ({"resourceType": "Observation", "id": "o", "device": {"reference": "Device/x"}},
     "no code, no time"),
])
def test_an_unreadable_resource_is_skipped_and_counted(broken: dict[str, object], why: str) -> None:
    found = read_devices(bundle(device_resource(DEVICES["23116731894"][0]), broken), FETCHED)
    assert [d.id for d in found.devices] == ["vt-5"], why
    assert found.unreadable == 1, why


def test_entered_in_error_devices_are_left_out() -> None:
    resource = {**device_resource(DEVICES["23116731894"][0]), "status": "entered-in-error"}
    assert read_devices(bundle(resource), FETCHED).devices == ()


@pytest.mark.parametrize("body", [[], {"resourceType": "OperationOutcome"}, "text"])
def test_a_body_that_is_not_a_bundle_is_invalid(body: object) -> None:
    with pytest.raises(UpstreamInvalidError, match="did not send a Bundle"):
        read_devices(body, FETCHED)

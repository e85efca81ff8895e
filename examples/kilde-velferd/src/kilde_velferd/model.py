"""The welfare-technology category: its items and the `CategorySpec` that adds it to Kilde.

Items are frozen dataclasses built from Kilde's public building blocks (`Coding`,
`Provenance`); Kilde derives the GraphQL types `WelfareDevice` and `WelfareAlarm` from them,
so this package needs no GraphQL code. `security` carries the labels Kilde's policy reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from connectors import CategorySpec, Coding, Provenance

DEVICE_TYPES = "urn:kilde:example:velferd:device-type"  # this example's own code systems
SENSOR_TYPES = "urn:kilde:example:velferd:sensor-type"
ALARM_TYPES = "urn:kilde:example:velferd:alarm-type"


@dataclass(frozen=True, slots=True)
class WelfareAlarm:
    """One alarm a device raised: a pressed safety alarm, a fall, a door opened at night."""

    id: str
    code: Coding
    raised_at: datetime
    outcome: str | None = None  # what the response centre did


@dataclass(frozen=True, slots=True)
class WelfareDevice:
    """A welfare-technology device in use for the patient, and who answers its alarms."""

    id: str
    kind: Coding
    status: str  # active | inactive
    provenance: Provenance
    installed: date | None = None
    response_centre: str | None = None  # responssenter
    response_phone: str | None = None
    sensors: tuple[Coding, ...] = ()
    recent_alarms: tuple[WelfareAlarm, ...] = ()  # newest first
    security: tuple[Coding, ...] = ()


WELFARE_TECHNOLOGY = CategorySpec(
    "welfare_technology",
    item_type=WelfareDevice,
    description="Safety alarms, sensors and medicine dispensers in use, with their recent "
    "alarms and the response centre (from the welfare-technology hub).",
)

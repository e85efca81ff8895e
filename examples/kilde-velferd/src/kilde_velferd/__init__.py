"""kilde-velferd: a Kilde connector for a welfare-technology hub (an example package).

Kilde loads `plugin` through the `kilde.connectors` entry point at start. The connector serves
a category of its own, `welfare_technology` (`kilde_velferd.model.WELFARE_TECHNOLOGY`), which
becomes `Patient.welfareTechnology` in Kilde's schema and stays denied until a policy file
enables it. Settings (`KILDE_CONNECTORS__VELFERD__*`): `BASE_URL` (required), `TIMEOUT`,
`MUNICIPALITIES` (rollout) and this package's own option `MAX_ALARMS`.
"""

from __future__ import annotations

import httpx
from connectors import ConnectorConfigError, ConnectorPlugin, ConnectorSettings

from kilde_velferd.connector import VelferdConnector
from kilde_velferd.model import WELFARE_TECHNOLOGY, WelfareAlarm, WelfareDevice
from kilde_velferd.sandbox import create_app as create_sandbox

__all__ = ["WELFARE_TECHNOLOGY", "VelferdConnector", "WelfareAlarm", "WelfareDevice", "plugin"]


def create(settings: ConnectorSettings, http: httpx.AsyncClient) -> VelferdConnector:
    """Build the connector; a bad setting fails Kilde's start with a sentence naming it."""
    if not settings.base_url:
        raise ConnectorConfigError(
            "Connector 'velferd' needs the hub's FHIR base URL: set "
            "KILDE_CONNECTORS__VELFERD__BASE_URL."
        )
    raw = settings.options.get("max_alarms", "5")
    if not str(raw).isdigit() or not 1 <= int(raw) <= 50:
        raise ConnectorConfigError(
            f"KILDE_CONNECTORS__VELFERD__MAX_ALARMS must be a whole number from 1 to 50, "
            f"not {raw!r}."
        )
    return VelferdConnector(settings, http, max_alarms=int(raw))


plugin = ConnectorPlugin(
    create,
    options={"max_alarms": "alarms shown per device, newest first, 1-50 (default 5)"},
    standard=VelferdConnector.standard,
    description="Welfare-technology hub: safety alarms, sensors and dispensers (example).",
    sandbox=create_sandbox,
)

"""kilde-velferd keeps Kilde's connector contract: the kit's whole suite, in three lines."""

from __future__ import annotations

from connectors.testing import ConnectorContract

import kilde_velferd


class TestVelferdContract(ConnectorContract):
    name, plugin, patient = "velferd", kilde_velferd.plugin, "09014412759"

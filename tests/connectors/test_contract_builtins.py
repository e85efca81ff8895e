"""The built-in connectors run the same contract kit an external connector package runs."""

from __future__ import annotations

import pytest

from connectors import (
    ConnectorSettings,
    eresept,
    kjernejournal,
    municipal,
    persontjenesten,
    pll,
    proevesvar,
)
from connectors.testing import ConnectorContract
from sandbox.app import create_app as create_sandbox
from sandbox.world import by_tag

LEGEVAKT_PATIENT = by_tag("legevakt-hlr").nin  # has data in every source


def sandbox() -> object:
    # The kit checks the connector contract with FetchRequests of its own (no caller, so no
    # credentials); HelseID is the guard's and the e2e suite's business (tests/sandbox).
    return create_sandbox({"KILDE_SANDBOX__REQUIRE_TOKENS": "false"})


class BuiltinContract(ConnectorContract):
    patient = LEGEVAKT_PATIENT
    timeout = 0.3
    upstream = staticmethod(sandbox)

    def connector_settings(self, base_url: str) -> ConnectorSettings:
        return ConnectorSettings(self.name, base_url=f"{base_url}/{self.name}",
                                 timeout=self.timeout)


class TestMunicipalContract(BuiltinContract):
    name, plugin = "municipal", municipal.create
    municipalities = frozenset({"0301"})

    def connector_settings(self, base_url: str) -> ConnectorSettings:
        stores = {n: f"{base_url}/municipal/{n}" for n in ("0301", "4601")}
        return ConnectorSettings("municipal", stores=stores, timeout=self.timeout)


class TestKjernejournalContract(BuiltinContract):
    name, plugin = "kjernejournal", kjernejournal.create


class TestPllContract(BuiltinContract):
    name, plugin = "pll", pll.create


class TestEreseptContract(BuiltinContract):
    name, plugin = "eresept", eresept.create


class TestProevesvarContract(BuiltinContract):
    name, plugin = "proevesvar", proevesvar.create


class TestPersontjenestenContract(BuiltinContract):
    name, plugin = "persontjenesten", persontjenesten.create


def test_contract_needs_name_plugin_and_patient() -> None:
    class Incomplete(ConnectorContract):
        name = "x"

    with pytest.raises(TypeError, match="must set name, plugin and patient"):
        Incomplete().contract_setup()

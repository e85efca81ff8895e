"""`ConnectorContract`: the contract checks as a pytest class any connector package inherits.

Sits in the contract kit over `checks`. Subclass it in a test module, say which connector,
which patient the fake upstream has data for, and pytest runs every check; the built-ins run
it too (`tests/connectors/test_contract_builtins.py`). The checks are plain functions using
`asyncio.run`, so no async pytest plugin is needed.

    from connectors.testing import ConnectorContract
    import kilde_hub

    class TestHubContract(ConnectorContract):
        name, plugin, patient = "hub", kilde_hub.plugin, "14033841389"
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from connectors.base import ConnectorSettings
from connectors.plugin import as_plugin
from connectors.testing import checks
from connectors.testing.credentials import check_upstream_credentials


def _static(owner: object, attribute: str) -> Any:
    """A class attribute as written: a plain function stays a function, not a bound method."""
    value = inspect.getattr_static(owner, attribute)
    return value.__func__ if isinstance(value, staticmethod) else value


class ConnectorContract:
    """Every check of the connector contract, run against one connector and its fake upstream.

    Set `name` (the entry-point name), `plugin` (the entry point's object: a factory or a
    `ConnectorPlugin`) and `patient` (a synthetic patient the fake has data for). `upstream`
    builds the fake upstream (an ASGI app); it defaults to the plugin's `sandbox`. Override
    `connector_settings` when the connector needs more than a base URL (stores, options).
    """

    name: str = ""
    plugin: Any = None
    patient: str = ""
    upstream: Callable[[], Any] | None = None
    municipalities: frozenset[str] = frozenset()
    timeout: float = 0.5

    def connector_settings(self, base_url: str) -> ConnectorSettings:
        """The settings the contract builds the connector with; `base_url` reaches the fake."""
        return ConnectorSettings(self.name, base_url=base_url, timeout=self.timeout)

    def contract_setup(self) -> checks.ContractSetup:
        plugin = _static(self, "plugin")
        if not self.name or plugin is None or not self.patient:
            raise TypeError(f"{type(self).__name__} must set name, plugin and patient.")
        connector_plugin = as_plugin(self.name, plugin)
        upstream = _static(self, "upstream") or connector_plugin.sandbox
        if upstream is None:
            raise TypeError(f"{type(self).__name__} must set upstream (a fake upstream app "
                            "factory) or use a ConnectorPlugin with a sandbox.")
        return checks.ContractSetup(
            name=self.name, plugin=connector_plugin, upstream=upstream, patient=self.patient,
            settings=self.connector_settings, municipalities=frozenset(self.municipalities),
            timeout=self.timeout,
        )

    def _run(self, check: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        asyncio.run(check(self.contract_setup(), *args))

    def test_declares_name_and_categories(self) -> None:
        self._run(checks.check_declaration)

    def test_serves_items_with_provenance(self) -> None:
        self._run(checks.check_items_and_provenance)

    def test_returns_only_requested_categories(self) -> None:
        self._run(checks.check_requested_categories_only)

    def test_honours_its_timeout(self) -> None:
        self._run(checks.check_error, "hang")

    @pytest.mark.parametrize("fault", ["refuse", "error", "rejected", "garbage", "wrong_shape"])
    def test_maps_upstream_errors(self, fault: str) -> None:
        self._run(checks.check_error, fault)

    @pytest.mark.parametrize("fault", ["none", "hang", "error", "rejected", "garbage"])
    def test_keeps_identity_number_out_of_errors_and_logs(self, fault: str) -> None:
        self._run(checks.check_no_identity_number, fault)

    def test_ignores_unknown_fields(self) -> None:
        self._run(checks.check_unknown_fields)

    def test_is_cancellation_safe(self) -> None:
        self._run(checks.check_cancellation)

    def test_calls_the_upstream_with_its_own_helseid_token(self) -> None:
        self._run(check_upstream_credentials)

    def test_aclose_leaves_the_shared_client_open(self) -> None:
        self._run(checks.check_aclose)

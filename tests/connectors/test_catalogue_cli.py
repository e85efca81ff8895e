"""`kilde connectors list`: every installed source with version, categories, rollout and wire
standard; a misconfigured connector fails it like it fails the start."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway.catalogue import format_table, plugin_sandboxes
from gateway.cli import main
from gateway.settings import Settings
from tests.plugins import example_installed


def listing(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["connectors", "list", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_installed_plugin_is_listed_disabled_until_enabled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.startswith("KILDE_")]:
        monkeypatch.delenv(name)
    with example_installed(tmp_path):
        code, out, _ = listing(capsys, "--json")
        assert code == 0
        assert {"name": "velferd", "version": "0.1.0", "enabled": False} in json.loads(out)
        monkeypatch.setenv("KILDE_MODE", "demo")  # the demo's tenants, for the rollout
        monkeypatch.setenv("KILDE_CONNECTORS__VELFERD__ENABLED", "true")
        monkeypatch.setenv("KILDE_CONNECTORS__VELFERD__BASE_URL", "http://hub.test")
        monkeypatch.setenv("KILDE_CONNECTORS__VELFERD__MUNICIPALITIES", "0301")
        code, out, _ = listing(capsys, "--json")
        rows = {r["name"]: r for r in json.loads(out)}
        assert rows["velferd"]["categories"] == ["welfare_technology"]
        assert rows["velferd"]["municipalities"] == ["0301"]
        assert rows["velferd"]["standard"].startswith("FHIR R4")
        assert rows["municipal"]["municipalities"] == ["0301", "4601", "5001"]
        code, out, _ = listing(capsys)
        assert out.splitlines()[0].split() == ["NAME", "STATE", "VERSION", "HEALTH", "LAST",
                                               "SUCCESS", "MUNICIPALITIES", "CATEGORIES"]
        assert any(line.split()[:3] == ["velferd", "enabled", "0.1.0"] for line in
                   out.splitlines())
        monkeypatch.setenv("KILDE_CONNECTORS__VELFERD__MAX_ALARMS", "many")
        code, out, err = listing(capsys)
        assert (code, out) == (2, "")
        assert err == ("kilde: KILDE_CONNECTORS__VELFERD__MAX_ALARMS must be a whole number "
                       "from 1 to 50, not 'many'.\n")


def test_the_table_shows_health_and_last_success_when_a_gateway_reports_them() -> None:
    rows = [{"name": "pll", "enabled": True, "version": "0.1.0", "health": "OK",
             "last_success": "2026-11-23T10:00:00.123+00:00", "municipalities": ["0301"],
             "categories": ["medications"], "standard": "FHIR R4, SFM"},
            {"name": "hub", "enabled": False, "version": "1.0"}]
    lines = format_table(rows).splitlines()
    assert lines[1].split() == ["pll", "enabled", "0.1.0", "OK", "2026-11-23T10:00:00", "0301",
                                "medications"]
    assert lines[2].split() == ["hub", "disabled", "1.0", "-", "-", "-", "-"]
    assert lines[-1] == "  pll: FHIR R4, SFM"


def test_the_demo_points_an_enabled_plugin_without_a_url_at_its_own_fake(tmp_path: Path) -> None:
    settings = Settings.from_env({"KILDE_MODE": "demo",
                                  "KILDE_CONNECTORS__VELFERD__ENABLED": "true"})
    with example_installed(tmp_path):
        demo, fakes = plugin_sandboxes(settings, "http://127.0.0.1:8000/")
        assert list(fakes) == ["velferd"]
        assert demo.connectors["velferd"].base_url == "http://127.0.0.1:8000/velferd"
        configured = Settings.from_env({"KILDE_MODE": "demo",
                                        "KILDE_CONNECTORS__VELFERD__ENABLED": "true",
                                        "KILDE_CONNECTORS__VELFERD__BASE_URL": "http://hub"})
        assert plugin_sandboxes(configured, "http://127.0.0.1:8000")[1] == {}
    assert plugin_sandboxes(settings, "http://127.0.0.1:8000")[1] == {}  # not installed

"""One way to build a connector: every built-in's entry point is a `ConnectorPlugin` wrapping a
plain factory, the shape the scaffold and the example package give external connectors."""

from __future__ import annotations

import importlib
import inspect
import tomllib
from pathlib import Path

import pytest

from connectors import ConnectorPlugin
from connectors.scaffold import create_package

ROOT = Path(__file__).resolve().parents[2]


def entry_points(pyproject: Path) -> dict[str, str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return dict(project["entry-points"]["kilde.connectors"])


BUILTINS = entry_points(ROOT / "pyproject.toml")


def test_every_builtin_is_declared() -> None:
    packages = {p.parent.name for p in (ROOT / "connectors").glob("*/__init__.py")}
    helpers = {"credentials", "medication", "scaffold", "testing"}  # no connector of their own
    assert set(BUILTINS) == packages - helpers


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_a_builtin_entry_point_is_a_plugin_around_a_plain_factory(name: str) -> None:
    module, _, attribute = BUILTINS[name].partition(":")
    plugin = getattr(importlib.import_module(module), attribute)
    assert isinstance(plugin, ConnectorPlugin)
    assert plugin.standard
    assert plugin.description
    factory = plugin.create
    assert inspect.isfunction(factory)
    assert list(inspect.signature(factory).parameters) == ["settings", "http"]


@pytest.mark.parametrize("pyproject", [
    ROOT / "examples" / "kilde-velferd" / "pyproject.toml",
    None,  # a freshly scaffolded package
])
def test_an_external_package_has_the_same_shape(pyproject: Path | None, tmp_path: Path) -> None:
    if pyproject is None:
        pyproject = create_package("shape", tmp_path) / "pyproject.toml"
    [(_, target)] = entry_points(pyproject).items()
    module, _, attribute = target.partition(":")
    init = pyproject.parent / "src" / module / "__init__.py"
    source = init.read_text()
    assert f"{attribute} = ConnectorPlugin(" in source
    assert "def create(settings: ConnectorSettings, http: httpx.AsyncClient)" in source

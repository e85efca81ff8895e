"""The published schema: `schema.graphql` is the SDL the running gateway serves, and `kilde
schema` prints it without a server, settings or introspection."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorSettings
from gateway import cli
from gateway.app import create_app
from gateway.sdl import REGENERATE, builtin_sdl, configured_sdl, schema_sdl
from gateway.settings import Settings
from tests.gateway.inprocess import settings_for
from tests.plugins import example_installed

PUBLISHED = Path(__file__).resolve().parents[2] / "schema.graphql"


async def _running_sdl(settings: Settings) -> str:
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        return schema_sdl(state["kilde"].endpoint.schema)


def _diff(expected: str, actual: str) -> str:
    return "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                        "schema.graphql", "running schema"))


@pytest.mark.parametrize("mode", ["demo", "production"])
async def test_published_schema_is_the_schema_the_gateway_serves(mode: str) -> None:
    settings = settings_for()
    if mode == "production":  # same SDL, only the error wording (suggestions) differs
        from dataclasses import replace

        from gateway.settings import HelseIdSettings

        # no upstream credentials: the sandbox's keys are refused in production, and the
        # schema does not depend on them
        settings = replace(settings, mode="production", helseid=HelseIdSettings())
    running = await _running_sdl(settings)
    published = PUBLISHED.read_text(encoding="utf-8")
    assert running == published, (
        f"schema.graphql differs from the running schema; regenerate it with `{REGENERATE}` "
        f"and commit it.\n{_diff(published, running)}")


def test_kilde_schema_prints_the_published_file_without_any_settings(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # a production environment with nothing configured: the published schema needs none of it
    monkeypatch.setenv("KILDE_MODE", "production")
    assert cli.main(["schema"]) == 0
    assert capsys.readouterr().out == PUBLISHED.read_text(encoding="utf-8")


def test_configured_schema_adds_the_categories_of_enabled_plugins(tmp_path: Path) -> None:
    from dataclasses import replace

    with example_installed(tmp_path / "site") as name:
        settings = replace(settings_for(), enabled_connectors=("municipal", name))
        settings = replace(settings, connectors={
            **settings.connectors, name: ConnectorSettings(name, base_url="http://hub.test")})
        sdl = configured_sdl(settings)
    assert "welfareTechnology" in sdl
    assert "WELFARE_TECHNOLOGY" in sdl
    assert "welfareTechnology" not in builtin_sdl()


def test_configured_schema_names_a_connector_that_is_not_installed(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"KILDE_MODE": "demo", "KILDE_ENABLED_CONNECTORS": "nosuch"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exited:
        cli.main(["schema", "--configured"])
    assert exited.value.code == 2
    assert "'nosuch'" in capsys.readouterr().err


def test_schema_sdl_ends_in_exactly_one_newline() -> None:
    class Fake:
        def as_str(self) -> Any:
            return "type Query {\n  a: Int\n}\n\n"

    assert schema_sdl(Fake()) == "type Query {\n  a: Int\n}\n"

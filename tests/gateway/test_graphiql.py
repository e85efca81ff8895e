"""GraphiQL's page and files come from the package, as the lockfile says, under a strict CSP;
production serves none of it."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.graphiql.page import ASSETS
from tests.gateway.inprocess import gateway, settings_for

ROOT = Path(__file__).resolve().parents[2]
VENDORED = ROOT / "gateway" / "graphiql" / "assets"
LOCK = ROOT / "vendor" / "graphiql" / "package-lock.json"


async def test_the_page_loads_everything_from_this_server() -> None:
    async with gateway() as h:
        r = await h.client.get("/graphql", headers={"accept": "text/html"})
        assert r.status_code == 200
        assert "script-src 'self'" in r.headers["content-security-policy"]
        sources = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert sources
        assert all(s.startswith(("/graphiql/", "data:")) for s in sources), sources
        for src in sources:
            if src.startswith("/graphiql/"):
                asset = await h.client.get(src)
                assert asset.status_code == 200, src
                assert asset.headers["x-content-type-options"] == "nosniff"
        config = json.loads(re.search(r'id="kilde-config">(.*?)</script>', r.text, re.S)[1])
        assert config["query"].startswith("query Legevakt")


@pytest.mark.parametrize("name", ["../app.py", "page.py", "__init__.py", "versions.json",
                                  "graphiql.min.js.map"])
async def test_only_the_listed_files_are_served(name: str) -> None:
    async with gateway() as h:
        assert (await h.client.get(f"/graphiql/{name}")).status_code == 404


async def test_production_serves_no_graphiql() -> None:
    async with gateway(replace(settings_for(), mode="production")) as h:
        assert (await h.client.get("/graphiql/graphiql.min.js")).status_code == 404
        page = await h.client.get("/graphql", headers={"accept": "text/html"})
        assert "graphiql" not in page.text.lower()


def test_vendored_files_are_the_lockfiles_versions_with_their_licences() -> None:
    lock = json.loads(LOCK.read_text())["packages"]
    versions = json.loads((VENDORED / "versions.json").read_text())
    licences = (VENDORED / "LICENSES.txt").read_text()
    for package, version in versions.items():
        assert lock[f"node_modules/{package}"]["version"] == version
        assert f"==== {package} {version} (MIT)" in licences
    for name, (package, _) in ASSETS.items():
        if package.endswith("assets"):
            assert (VENDORED / name).stat().st_size > 0, name

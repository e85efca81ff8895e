"""A misconfigured or broken connector stops the gateway's start with one sentence naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from connectors import ConnectorConfigError
from gateway.app import create_app
from gateway.settings import Settings
from tests.plugins import ROOT, write_distribution

BROKEN = '''
def create(settings, http):
    raise RuntimeError("cannot reach the licence server")
'''


async def test_the_app_does_not_start_with_a_connector_that_is_not_installed(
        tmp_path: Path) -> None:
    settings = Settings.from_env({"KILDE_MODE": "demo", "KILDE_AUDIT__URL": f"sqlite:///{tmp_path / 'a.sqlite3'}"})
    app = create_app(replace(settings.with_sandbox("http://sandbox.test"),
                             enabled_connectors=("pll", "nope")))
    with pytest.raises(ConnectorConfigError, match="Connector 'nope' is enabled but not "
                       "installed"):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.slow
@pytest.mark.parametrize(("env", "message"), [
    ({"KILDE_CONNECTORS__BROKEN__ENABLED": "true"},
     "kilde: Connector 'broken' failed to start (RuntimeError): cannot reach the licence "
     "server\n"),
    ({"KILDE_CONNECTORS__PROEVESVAR__MAX_PAGES": "500"},
     "kilde: KILDE_CONNECTORS__PROEVESVAR__MAX_PAGES must be a whole number from 1 to 50, "
     "not '500'.\n"),
    ({"KILDE_CONNECTORS__PLL__PAGE_SIZE": "5"},
     "kilde: Connector 'pll' has no setting KILDE_CONNECTORS__PLL__PAGE_SIZE; it takes "
     "BASE_URL, ENABLED, MUNICIPALITIES, STORES, TIMEOUT.\n"),
])
def test_kilde_serve_refuses_to_start_naming_the_connector(
        tmp_path: Path, env: dict[str, str], message: str) -> None:
    (tmp_path / "kilde_broken.py").write_text(BROKEN)
    write_distribution(tmp_path, "kilde-broken", "0.0.1", {"broken": "kilde_broken:create"})
    base = {k: v for k, v in os.environ.items() if not k.startswith("KILDE_")}
    stores = ",".join(f"{n}=http://127.0.0.1:9/municipal/{n}" for n in ("0301", "4601", "5001"))
    configured = {f"KILDE_CONNECTORS__{n}__BASE_URL": f"http://127.0.0.1:9/{n.lower()}"
                  for n in ("KJERNEJOURNAL", "PLL", "ERESEPT", "PROEVESVAR", "PERSONTJENESTEN")}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", "9"],
        env={**base, **configured, "KILDE_MODE": "demo",
             "KILDE_CONNECTORS__MUNICIPAL__STORES": stores, **env,
             "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])},
        capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (2, message)

"""GraphQL over HTTP conformance, checked by an independent implementation: graphql-http's
`auditServer` (tests/interop/graphql-http, installed with `npm ci` from its lockfile) against
the running gateway (demo mode: the audit's own queries introspect, which production refuses),
with a valid token. Every MUST, SHOULD and MAY item must pass."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack

AUDIT = Path(__file__).resolve().parents[1] / "interop" / "graphql-http"
PATIENT = "14033841389"


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("KILDE_TEST__REQUIRE_SERVICES") == "1":
            pytest.fail("node and npm are needed for the graphql-http audit, and "
                        "KILDE_TEST__REQUIRE_SERVICES=1 requires it.")
        pytest.skip("node and npm are needed for the graphql-http audit.")
    return node, npm


def _install(npm: str) -> None:
    installed = AUDIT / "node_modules" / ".package-lock.json"
    lock = AUDIT / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=AUDIT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"npm ci failed in {AUDIT}: {done.stderr[-1000:]}"


def test_graphql_http_audit_passes_every_must_should_and_may(stack: Stack) -> None:
    node, npm = _tools()
    _install(npm)
    env = {**os.environ, "KILDE_TOKEN": stack.token("legevakt-lege", PATIENT)}
    done = subprocess.run([node, "audit.mjs", f"{stack.gateway.url}/graphql"], cwd=AUDIT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) >= 60, f"the audit ran {len(results)} checks: {done.stderr[-500:]}"
    failed = [r for r in results if r["status"] != "ok"]
    assert not failed, "\n".join(f"{r['id']} {r['name']}: {r.get('reason')} "
                                 f"(HTTP {r.get('httpStatus')}: {r.get('body')})"
                                 for r in failed)
    assert {r["name"].split()[0] for r in results} == {"MUST", "SHOULD", "MAY"}
    assert done.returncode == 0

"""The independent FHIR server for the interop tests: Medplum's fhir-router on Node.

`npm ci` installs it from the committed lockfile on first use (node_modules is not committed);
one host runs for the whole session. On a machine without Node.js the tests skip with the
reason; CI sets KILDE_TEST__REQUIRE_SERVICES=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

HOST_DIR = Path(__file__).parent


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("KILDE_TEST__REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and KILDE_TEST__REQUIRE_SERVICES=1 requires the FHIR host.")
    pytest.skip(f"{reason}; install Node.js 20 and npm to run the FHIR interop tests.")


def _install() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are not on PATH")
    if not (HOST_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=HOST_DIR, capture_output=True, text=True, check=False,
                              timeout=600)
        if done.returncode != 0:
            _unavailable(f"npm ci failed in tests/interop/fhir: {done.stderr.strip()[-300:]}")
    return node


@pytest.fixture(scope="session")
def fhir_host() -> Iterator[str]:
    """The base URL of a running Medplum host (empty repository at the start of the session)."""
    node = _install()
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen([node, str(HOST_DIR / "server.mjs")], cwd=HOST_DIR,
                                stdout=subprocess.PIPE, stderr=log, text=True,
                                env={**os.environ, "PORT": "0"})
        assert proc.stdout is not None
        with proc.stdout:
            try:
                line = proc.stdout.readline()  # blocks until the host listens, or exits
                if not line.startswith("listening "):
                    log.seek(0)
                    pytest.fail(f"The FHIR host did not start: {line!r} {log.read()[-500:]}")
                base = f"http://127.0.0.1:{int(line.split()[1])}"
                assert httpx.get(f"{base}/_health", timeout=10).status_code == 200
                yield base
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

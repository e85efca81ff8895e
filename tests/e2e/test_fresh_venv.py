"""The example connector package, pip-installed in a fresh virtualenv next to Kilde, works.

The issue's "done when": it shows up in `sources`, serves data through GraphQL under policy,
passes the contract kit, and the core has no mention of it. The scaffold's output, installed
the same way, passes its own tests and appears in the catalogue. To stay fast and offline the
new virtualenv reuses this one's dependencies through a .pth file; Kilde and the packages
themselves are installed with pip (`--no-deps -e`), so their entry points are pip's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.demo import mint_token
from sandbox.world import by_tag
from tests.plugins import EXAMPLE, ROOT, on_path
from tests.servers import inherited, listening_socket, port_of, running

pytestmark = pytest.mark.slow

HOME_CARE = by_tag("multi-service").nin
CORE = ("connectors", "gateway", "schema", "policies", "sandbox", "pyproject.toml")
QUERY = """query($nin: String!) {
  patient(nin: $nin) { welfareTechnology { id kind { code } provenance { source } }
                       sources { source category status } }
  sources { name version categories } }"""


def _run(args: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=240,
                          **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with Kilde and the example package installed by pip (editable)."""
    root = tmp_path_factory.mktemp("fresh") / "venv"
    _run([sys.executable, "-m", "venv", root])
    python = root / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    deps = sysconfig.get_paths()["purelib"]  # this environment's dependencies, not Kilde
    (Path(purelib.stdout.strip()) / "kilde-deps.pth").write_text(deps + "\n")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "-e", ROOT, "-e", EXAMPLE])
    return root


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILDE_", "PYTHON"))}
    return {**env, "KILDE_AUDIT__URL": f"sqlite:///{tmp / 'audit.sqlite3'}", **extra}


@contextmanager
def _serving(args: Sequence[str | Path], env: dict[str, str], url: str,
             log: Path, **popen: Any) -> Iterator[None]:
    with log.open("w") as output:
        process = subprocess.Popen([str(a) for a in args], env=env, stdout=output,
                                   stderr=subprocess.STDOUT, **popen)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"{args} did not start: {log.read_text()}") from None
                    time.sleep(0.1)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_installed_example_passes_the_contract_kit(venv: Path) -> None:
    done = _run([venv / "bin" / "python", "-m", "pytest", "-q"], cwd=EXAMPLE,
                env=_env(EXAMPLE))
    assert " passed" in done.stdout


def test_the_installed_example_serves_data_under_policy_and_is_in_the_catalogue(
        venv: Path, tmp_path: Path) -> None:
    with on_path(EXAMPLE / "src"):
        from kilde_velferd.sandbox import create_app as create_hub

        hub_app = create_hub()
    with running(hub_app) as hub:
        _ask_the_installed_example(venv, tmp_path, hub.url)


def _ask_the_installed_example(venv: Path, tmp_path: Path, hub_url: str) -> None:
    env = _env(tmp_path, KILDE_MODE="demo", KILDE_CONNECTORS__VELFERD__ENABLED="true",
               KILDE_CONNECTORS__VELFERD__BASE_URL=hub_url,
               KILDE_CONNECTORS__VELFERD__MUNICIPALITIES="0301",
               KILDE_POLICY_FILE=str(EXAMPLE / "policy.toml"))
    listing = json.loads(_run([venv / "bin" / "kilde", "connectors", "list", "--json"],
                              env=env).stdout)
    velferd = next(row for row in listing if row["name"] == "velferd")
    assert (velferd["version"], velferd["categories"]) == ("0.1.0", ["welfare_technology"])
    sock = listening_socket()
    base = f"http://127.0.0.1:{port_of(sock)}"
    with inherited(sock) as (fd_args, popen), \
            _serving([venv / "bin" / "kilde", "demo", *fd_args], env, f"{base}/healthz",
                     tmp_path / "gateway.log", **popen):
        # the demo's callers' tokens are its HelseID simulator's (kilde token asks it)
        token = mint_token("hjemmesykepleier", HOME_CARE, issuer=f"{base}/helseid",
                           audience="kilde")
        body = httpx.post(f"{base}/graphql", json={"query": QUERY, "variables": {"nin": HOME_CARE}},
                          headers={"authorization": f"Bearer {token}"}, timeout=10).json()
    patient = body["data"]["patient"]
    assert sorted(d["id"] for d in patient["welfareTechnology"]) == ["vt-1", "vt-2"]
    assert {"source": "velferd", "category": "WELFARE_TECHNOLOGY", "status": "OK"} in (
        patient["sources"])
    assert {"name": "velferd", "version": "0.1.0", "categories": ["WELFARE_TECHNOLOGY"]} in (
        body["data"]["sources"])


def test_the_scaffold_installed_next_to_kilde_passes_its_own_tests(venv: Path,
                                                                    tmp_path: Path) -> None:
    _run([venv / "bin" / "kilde", "connectors", "new", "hub", "--directory", tmp_path])
    package = tmp_path / "kilde-hub"
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "-e", package])
    done = _run([venv / "bin" / "python", "-m", "pytest", "-q"], cwd=package,
                env=_env(tmp_path))
    assert " passed" in done.stdout
    listing = json.loads(_run([venv / "bin" / "kilde", "connectors", "list", "--json"],
                              env=_env(tmp_path)).stdout)
    assert {"name": "hub", "version": "0.1.0", "enabled": False} in listing


def test_the_core_never_mentions_the_example_package() -> None:
    mentions = []
    for top in CORE:
        path = ROOT / top
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()
                                                and p.suffix in (".py", ".toml", ".tmpl")]
        for file in files:
            text = file.read_text(encoding="utf-8").lower()
            mentions += [f"{file.relative_to(ROOT)}: {word}" for word in
                         ("velferd", "welfare", "kilde_velferd") if word in text]
    assert mentions == []

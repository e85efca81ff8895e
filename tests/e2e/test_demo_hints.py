"""What the demo banner and the README tell a newcomer to paste works, pasted as printed.

`kilde demo` runs as `./dev demo` runs it (the checkout's `.venv/bin/kilde`, from the checkout),
and each hint goes into a plain `bash -c` in the checkout: no virtualenv on PATH, no KILDE_*
variables of the test run. The README's blocks are written for port 8000; the test's demo has
a port of its own, so only `localhost:8000` in them is replaced and `kilde token` learns the
port from KILDE_PORT, as it would from a shell that exported it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.cli import kilde_command, token_hint
from gateway.serving import SHUTDOWN_GRACE_SECONDS
from tests.servers import inherited, listening_socket, port_of

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STORY = "14033841389"


def _plain_env(**extra: str) -> dict[str, str]:
    """A login shell's environment: the test run's virtualenv and KILDE_* settings gone."""
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KILDE_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and p != bin_dir)
    return {**env, **extra}


def _bash(script: str, **env: str) -> str:
    done = subprocess.run(["bash", "-c", f"set -euo pipefail\n{script}"], cwd=ROOT,
                          env=_plain_env(**env), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{script}\n-> {done.returncode}: {done.stdout}{done.stderr}"
    return done.stdout


@dataclass
class Demo:
    base: str
    banner: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`kilde demo` started from the checkout as `./dev demo` starts it."""
    tmp = tmp_path_factory.mktemp("demo")
    log = tmp / "demo.log"
    sock = listening_socket()
    base = f"http://127.0.0.1:{port_of(sock)}"
    program = Path(sys.executable).parent / "kilde"
    argv0 = os.path.relpath(program, ROOT)  # `.venv/bin/kilde` when the venv is the checkout's
    env = _plain_env(KILDE_AUDIT__URL=f"sqlite:///{tmp / 'audit.sqlite3'}")
    with log.open("w") as out, inherited(sock) as (fd_args, popen):
        process = subprocess.Popen([argv0, "demo", *fd_args], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, **popen)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"kilde demo did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield Demo(base, log.read_text(), process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _block_after(banner: str, heading: str) -> str:
    """The indented command lines under `heading` in the banner, as one script."""
    lines = banner.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading)) + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return "\n".join(block)


def test_the_banners_token_line_pasted_into_a_plain_shell_prints_a_token(
        demo: Demo) -> None:
    base, banner = demo.base, demo.banner
    line = next(x.strip() for x in banner.splitlines() if x.strip().startswith("TOKEN=$("))
    token = _bash(f'{line}\nprintf %s "$TOKEN"')
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token), token
    claims = httpx.post(f"{base}/graphql", json={"query": "{ me { kind } }"},
                        headers={"authorization": f"Bearer {token}"}, timeout=10).json()
    assert claims["data"]["me"]["kind"] == "CLINICIAN"


def test_the_banners_legevakt_query_shows_the_hlr_minus_first(demo: Demo) -> None:
    banner = demo.banner
    answer = json.loads(_bash(_block_after(banner, "Try the legevakt query")))
    assert answer["data"]["patient"]["alerts"][0]["title"] == "Ikke-gjenoppliving (HLR-minus)"


def test_the_banners_fault_knob_and_its_undo_work(demo: Demo) -> None:
    banner = demo.banner
    lines = [line.strip() for line in banner.splitlines()]
    hang = next(x for x in lines if x.startswith("Fault knobs: ")).removeprefix("Fault knobs: ")
    undo = next(x for x in lines if x.startswith("undo: ")).removeprefix("undo: ")
    assert json.loads(_bash(hang))["mode"] == "hang"
    assert json.loads(_bash(undo))["mode"] == "none"


def test_the_banners_event_store_call_is_accepted(demo: Demo) -> None:
    banner = demo.banner
    answer = json.loads(_bash(_block_after(banner, "Systems")))
    assert answer == {"source": "municipal", "evicted": True}


def _readme_blocks(*needles: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if any(n in b for n in needles)]


def test_the_readmes_token_fault_and_event_blocks_work_as_written(
        demo: Demo) -> None:
    base = demo.base
    port = base.rsplit(":", 1)[1]
    blocks = _readme_blocks("kilde token", "_sandbox/faults", "/events")
    assert len(blocks) >= 3  # the legevakt query, the fault walk-through, the event
    script = "\n".join(blocks)
    for host in ("http://127.0.0.1:8000", "localhost:8000"):
        script = script.replace(host, base if host.startswith("http") else f"127.0.0.1:{port}")
    out = _bash(script, KILDE_PORT=port)
    assert '"evicted":true' in out.replace(" ", "")
    assert "Ikke-gjenoppliving (HLR-minus)" in out


def test_the_demo_stops_on_sigterm_while_a_fault_knob_keeps_an_upstream_call_hanging(
        demo: Demo) -> None:
    """Last in this module: it stops the demo. A "hang" keeps the sandbox's handler waiting
    after Kilde gave up on it; Ctrl+C must still end the demo (a bounded graceful shutdown)."""
    base = demo.base
    httpx.put(f"{base}/_sandbox/faults/pll", json={"mode": "hang"}).raise_for_status()
    token = _bash(token_hint(kilde_command(".venv/bin/kilde", ROOT), base, "legevakt-lege", STORY))
    answer = httpx.post(f"{base}/graphql", timeout=30, headers={
        "authorization": f"Bearer {token.strip()}", "cache-control": "no-cache"}, json={
        "query": f'{{ patient(nin: "{STORY}") {{ medications {{ name }} sources {{ status }} }} }}'})
    assert "TIMEOUT" in answer.text  # Kilde answered; the fake's handler still hangs
    demo.process.send_signal(signal.SIGINT)  # Ctrl+C; uvicorn exits by the same signal
    assert demo.process.wait(timeout=SHUTDOWN_GRACE_SECONDS + 20) in (0, -signal.SIGINT)


@pytest.mark.parametrize(("argv0", "expected"), [
    (".venv/bin/kilde", "./dev kilde"),  # ./dev demo, from the checkout
    ("/opt/elsewhere/bin/kilde", "/opt/elsewhere/bin/kilde"),  # not on PATH, not a checkout
])
def test_the_banner_names_a_kilde_that_runs_from_where_the_demo_started(
        argv0: str, expected: str, tmp_path: Path) -> None:
    (tmp_path / "dev").write_text("#!/bin/sh\n")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    assert kilde_command(argv0, tmp_path) == expected


def test_the_token_hint_names_the_demo_only_off_the_default_port() -> None:
    assert token_hint("kilde", "http://127.0.0.1:8000", "innbygger", STORY) == (
        f"kilde token --persona innbygger --patient {STORY}")
    assert token_hint("./dev kilde", "http://127.0.0.1:8719", "legevakt-lege") == (
        "./dev kilde token --persona legevakt-lege --sandbox http://127.0.0.1:8719")

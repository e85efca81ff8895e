"""`serve()` ends the process within its bound of the first stop signal even when the app's
shutdown never returns (it awaits something that ignores every timeout): one worker ends
itself from a watchdog thread, the supervisor of several kills what is still running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from gateway.serving import EXIT_DEADLINE_SECONDS, FORCED_EXIT_BASE

# an app whose lifespan shutdown hangs for good: not even cancellation ends it
HANGING_APP = textwrap.dedent("""
    import asyncio

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    while True:
                        try:
                            await asyncio.sleep(3600)
                        except asyncio.CancelledError:
                            pass
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
""")
RUN = textwrap.dedent("""
    import sys
    from gateway.serving import address, listen, serve
    sock = listen("127.0.0.1", 0)
    print(address(sock)[1], flush=True)
    serve("hanging:app", sock, workers=int(sys.argv[1]), lifespan="on")
""")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_shutdown_that_never_returns_is_ended_at_the_bound(tmp_path: Path,
                                                             workers: int) -> None:
    (tmp_path / "hanging.py").write_text(HANGING_APP)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(workers)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        deadline = time.monotonic() + 60
        while True:  # serving: every worker's startup is done once one answers twice
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        time.sleep(1.0 if workers > 1 else 0)  # the other worker's startup too
        proc.send_signal(signal.SIGTERM)
        # slack for a machine whose other core is busy; without the bound it never exits
        rc = proc.wait(timeout=EXIT_DEADLINE_SECONDS + 10)
        stderr = proc.communicate()[1]
        assert ("exiting now" if workers == 1 else "killed") in stderr, stderr[-2000:]
        # one worker ends itself: 128 + SIGTERM; the supervisor of several returns normally
        assert rc == (FORCED_EXIT_BASE + signal.SIGTERM if workers == 1 else 0), stderr[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

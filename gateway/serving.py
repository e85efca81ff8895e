"""Run uvicorn for the CLI: on a socket bound here (or inherited), one or several workers.

The outermost layer, below `gateway.cli`: `listen()` binds the address before anything else is
built, so a port in use fails at once in plain words, and `--port 0` or an inherited `--fd`
(systemd socket activation, a supervisor, a test harness) name their real port before the app
is configured. `serve()` hands that socket to uvicorn, which then never binds on its own.

>>> sock = listen("127.0.0.1", 0)             # doctest: +SKIP
>>> serve("gateway.asgi:app", sock, workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.headlimit import MAX_HEADER_BYTES, uvicorn_options

STARTUP_FAILURE = 3  # uvicorn's exit status when the app's lifespan failed to start
# After SIGTERM or one Ctrl+C: in-flight requests get this long to finish (a patient request is
# bounded by its deadline, 3 s by default); one still running is then cancelled and answered
# 503 UPSTREAM_UNAVAILABLE, source "kilde", reason SHUTTING_DOWN (gateway/logs.py), and the
# app's shutdown (audit commit, pools) takes at most ~1 s more (gateway/audit), so the process
# is gone within 5 s of the signal.
SHUTDOWN_GRACE_SECONDS = 2.5
# The bound itself, whatever hangs: a process still running this long after the first signal
# (its shutdown waited on something that ignored its timeouts, or the machine is starved) is
# ended then, as gunicorn's graceful timeout ends a worker. Nothing acknowledged is lost by that:
# an audit record is committed before the data it records is sent.
EXIT_DEADLINE_SECONDS = 4.5
FORCED_EXIT_BASE = 128  # a process ended at the bound exits 128 + the signal (143 for SIGTERM)

log = logging.getLogger("kilde")


class ListenError(ValueError):
    """The address cannot be listened on; the message says why in plain words."""


def listen(host: str, port: int, fd: int | None = None) -> socket.socket:
    """A bound TCP socket on `host:port`, or the inherited listening socket `fd`."""
    if fd is not None:
        try:
            sock = socket.socket(fileno=fd)  # family and type are read from the descriptor
        except OSError:
            raise ListenError(f"--fd {fd} is not an open socket of this process.") from None
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET,
                                                                  socket.AF_INET6):
            sock.detach()
            raise ListenError(f"--fd {fd} is not a TCP socket.")
        return sock
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (socket.gaierror, UnicodeError):
        sock.close()
        raise ListenError(f"Cannot listen on {host!r}: it is not an address or host name "
                          "of this machine.") from None
    except OSError as exc:
        sock.close()
        raise ListenError(f"Cannot listen on {host}:{port}: {_why(exc)}.") from None
    sock.set_inheritable(True)
    return sock


def _why(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "another process already uses that port"
    if exc.errno == errno.EACCES:
        return "this user may not use that port (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "that address is not one of this machine's"
    return exc.strerror or "the operating system refused"


def address(sock: socket.socket) -> tuple[str, int]:
    """The host and port `sock` is bound to (the real port when 0 was asked for)."""
    host, port = sock.getsockname()[:2]
    return str(host), int(port)


def serve(app: Any, sock: socket.socket, *, workers: int = 1,
          max_header_bytes: int = MAX_HEADER_BYTES,
          timeout_graceful_shutdown: float = SHUTDOWN_GRACE_SECONDS, **config: Any) -> int:
    """Serve `app` (an ASGI app, or an import string for several workers) on `sock` until a
    signal stops it; returns the exit status. Request heads over `max_header_bytes` get 431
    (gateway/headlimit.py); after a signal in-flight requests get `timeout_graceful_shutdown`
    seconds (see SHUTDOWN_GRACE_SECONDS); `config` goes to `uvicorn.Config`."""
    host, port = address(sock)
    conf = uvicorn.Config(app, host=host, port=port, workers=workers,
                          timeout_graceful_shutdown=timeout_graceful_shutdown,
                          **uvicorn_options(max_header_bytes), **config)
    if workers > 1:
        _BoundedSupervisor(conf, sockets=[sock]).run()
        return 0
    server = _BoundedServer(conf)
    server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


class _BoundedServer(uvicorn.Server):
    """uvicorn's server, ended `EXIT_DEADLINE_SECONDS` after the first stop signal if its own
    shutdown has not ended it by then (a watchdog thread: the event loop may be the one stuck)."""

    _watchdog: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Timer(EXIT_DEADLINE_SECONDS, _end_now, args=(sig,))
            self._watchdog.daemon = True
            self._watchdog.start()
        super().handle_exit(sig, frame)


def _end_now(sig: int) -> None:
    log.error("still stopping %.1f s after the signal; exiting now", EXIT_DEADLINE_SECONDS)
    for handler in logging.getLogger().handlers + log.handlers:
        handler.flush()
    # no cleanup can be trusted now; the status says "ended after signal `sig`", as a shell would
    os._exit(FORCED_EXIT_BASE + sig)


class _BoundedSupervisor(Multiprocess):
    """uvicorn's supervisor of several workers: a worker still running when the bound is up
    (the supervisor sees the signal within its 0.5 s poll) is killed."""

    def join_all(self) -> None:
        deadline = time.monotonic() + EXIT_DEADLINE_SECONDS - 0.5
        for worker in self.processes:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self.processes:
            if worker.process.is_alive():
                log.error("worker %s still stopping at the bound; killed", worker.process.pid)
                worker.kill()
                worker.process.join()

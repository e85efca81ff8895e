"""Fault knobs for the simulated upstreams: latency, jitter, error rate, hang, garbage, bulk.

Sits in front of every fake source as ASGI middleware. Knobs are set at start from
`KILDE_SANDBOX__<SOURCE>__{LATENCY_MS,JITTER_MS,ERROR_RATE,FAULT,ITEMS}` and at run time with
`PUT /_sandbox/faults/<source>` (see `sandbox.app`); `items` adds that many synthetic records
to the multi-service patient in that source's answers (`sandbox.bulk`, for load tests). Each
source also counts the requests it received, in total and per first path segment (a municipal
store's number, a Kjernejournal resource), so tests can prove that a request never reached an
upstream or one of its parts.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.bulk import items_scope

MODES = ("none", "hang", "error", "garbage")


@dataclass
class Fault:
    """The current fault setting of one source. `mode` applies to every request;
    `error_rate` (0..1) makes that share of requests fail with 503 at random."""

    mode: str = "none"
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    items: int = 0

    def update(self, values: Mapping[str, object]) -> None:
        for key, value in values.items():
            if key not in {"mode", "latency_ms", "jitter_ms", "error_rate", "items"}:
                raise ValueError(f"Unknown fault setting {key!r}.")
            if key == "mode":
                if value not in MODES:
                    raise ValueError(f"Fault mode must be one of {list(MODES)}, not {value!r}.")
                self.mode = str(value)
            elif key == "items":
                count = float(value)  # type: ignore[arg-type]
                if count < 0 or count != int(count):
                    raise ValueError(f"Fault setting 'items' must be a whole number >= 0: {value!r}.")
                self.items = int(count)
            else:
                number = float(value)  # type: ignore[arg-type]
                if number < 0 or (key == "error_rate" and number > 1):
                    raise ValueError(f"Fault setting {key!r} is out of range: {number!r}.")
                setattr(self, key, number)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def fault_from_env(source: str, environ: Mapping[str, str] | None = None) -> Fault:
    env = os.environ if environ is None else environ
    prefix = f"KILDE_SANDBOX__{source.upper()}__"
    fault = Fault()
    values: dict[str, object] = {}
    if (mode := env.get(prefix + "FAULT")) is not None:
        values["mode"] = mode
    for name in ("latency_ms", "jitter_ms", "error_rate", "items"):
        if (raw := env.get(prefix + name.upper())) is not None:
            try:
                values[name] = float(raw)
            except ValueError:
                raise ValueError(f"{prefix + name.upper()} must be a number, not {raw!r}.") from None
    try:
        fault.update(values)
    except ValueError as exc:
        raise ValueError(f"Bad sandbox fault setting for {source!r}: {exc}") from None
    return fault


GARBAGE = b'{"resourceType": "Bundle", "entry": [ {"resource": <<<not json at all>>> ]'


def first_segment(scope: Scope) -> str:
    """The first path segment below the mount point: `/municipal/0301/x` -> "0301"."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path.lstrip("/").split("/", 1)[0]


class FaultMiddleware:
    """Applies a source's `Fault` to each request and counts requests (and per segment)."""

    def __init__(self, app: ASGIApp, fault: Fault) -> None:
        self.app = app
        self.fault = fault
        self.requests = 0
        self.segments: Counter[str] = Counter()

    def reset(self) -> None:
        self.requests = 0
        self.segments.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.requests += 1
        self.segments[first_segment(scope)] += 1
        fault = self.fault
        delay = fault.latency_ms + (random.uniform(0, fault.jitter_ms) if fault.jitter_ms else 0)
        if delay:
            await asyncio.sleep(delay / 1000)
        if fault.mode == "hang":
            await asyncio.sleep(3600)
            return
        if fault.mode == "error" or (fault.error_rate and random.random() < fault.error_rate):
            await _respond(send, 503, b'{"resourceType":"OperationOutcome","issue":[{"severity":'
                           b'"error","code":"transient","diagnostics":"Service unavailable"}]}')
            return
        if fault.mode == "garbage":
            await _respond(send, 200, GARBAGE)
            return
        if fault.items:
            with items_scope(fault.items):
                await self.app(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/fhir+json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})

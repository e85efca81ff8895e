"""Operational logging and the request's edge: request ids, one log line per request, no
personal data.

Sits innermost among the app's middlewares (gateway/app.py), so CORS and the security headers
wrap everything it sends. `RequestEdgeMiddleware` gives every request an id (the caller's
`x-request-id` only when it is a UUID that cannot carry an identity number, else a new one),
echoes it on every response, turns an unhandled exception into a JSON GraphQL error with that
id, and writes one access-log line with the *route template* (`/cds-services/{id}`), never the
path itself. Our request log replaces uvicorn's access log, which prints paths and query
strings. Log records carry a `request_id` extra where one exists; nothing logs names, identity
numbers or tokens, and exceptions are logged by type and stack, never by message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
import traceback
from typing import Any

import orjson
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.errors import INTERNAL_MESSAGE, KildeError, StoppingError, error_dict

access = logging.getLogger("kilde.access")
log = logging.getLogger("kilde.edge")
_DIGITS = re.compile(r"\d{11}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_ROUTE = "other"  # a path no route matched: logged as this, never as itself
INTERNAL = {"errors": [error_dict(KildeError(INTERNAL_MESSAGE))]}  # the masked root
# A request still running when the server's shutdown grace ends is cancelled (uvicorn): it is
# answered, not dropped. No data was delivered (data leaves only after its audit write).
# UPSTREAM_UNAVAILABLE, source "kilde", reason SHUTTING_DOWN (schema.errors.StoppingError).
STOPPING = {"errors": [error_dict(StoppingError())]}


def new_request_id() -> str:
    """A random UUID (version 4) in which no 11 digits stand together.

    Formatted from 16 random bytes here rather than through `uuid.UUID` (whose checks and
    int conversions were a visible part of the edge's own time per request, py-spy of
    `bench.profile --warm`); the same RFC 4122 version-4 layout as `str(uuid.uuid4())`."""
    while True:
        raw = bytearray(os.urandom(16))
        raw[6] = raw[6] & 0x0F | 0x40  # version 4
        raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
        h = raw.hex()
        rid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        if not _DIGITS.search(rid):
            return rid


def accept_request_id(offered: str) -> str:
    """The caller's request id when it is a UUID (8-4-4-4-12 hex digits) with no run of 11
    digits, else a new one: an id goes into logs and the audit trail, so it must not be able
    to carry an identity number or free text."""
    if _UUID.fullmatch(offered) and not _DIGITS.search(offered):
        return offered
    return new_request_id()


def redact(text: str) -> str:
    """Mask anything shaped like an identity number (11 digits) in free text."""
    return _DIGITS.sub("***********", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info and record.exc_info[0] is not None:
            # the type and the stack, never the exception's message: it may hold input values
            entry["exception"] = record.exc_info[0].__name__
            entry["stack"] = redact("".join(traceback.format_tb(record.exc_info[2])))
        return orjson.dumps(entry).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
    # httpx/httpcore log every upstream URL at INFO/DEBUG; a path or query can carry an
    # identity number, so they speak only from WARNING up, whatever KILDE_LOG_LEVEL says.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def route_template(scope: Scope) -> str:
    """The template of the route that served `scope` (set by Starlette's router), or `other`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return OTHER_ROUTE
    return f"{path}/{{path}}" if isinstance(route, Mount) else path or "/"


def request_id_of(scope: Scope) -> str:
    """The id `RequestEdgeMiddleware` gave this request (a new one outside the middleware)."""
    state = scope.get("state")
    rid = state.get("request_id") if isinstance(state, dict) else None
    if isinstance(rid, str) and rid:
        return rid
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            return accept_request_id(value.decode("latin-1"))
    return new_request_id()


class RequestEdgeMiddleware:
    """Request id, crash guard and one access-log line per HTTP request (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        responded = False

        async def sending(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            # the shutdown grace is over (uvicorn cancels the requests still running; nothing
            # else cancels a request task): answer 503 and close, rather than a 500 and a stack
            if responded:
                raise  # a response half sent cannot be answered: the connection is cut
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # handled here: the task ends with this answer
            log.warning("request cancelled: the server is stopping", extra={
                "request_id": request_id})
            body = orjson.dumps(STOPPING)
            await sending({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
        except Exception:
            log.error("unhandled error serving %s", route_template(scope), exc_info=True,
                      extra={"request_id": request_id})
            if responded:
                raise
            body = orjson.dumps(INTERNAL)
            await sending({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        finally:
            if access.isEnabledFor(logging.INFO):  # at WARNING (production) nothing is built
                access.info("request", extra={
                    "method": scope["method"] if scope["method"] in _METHODS else "OTHER",
                    "path": route_template(scope),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "request_id": request_id,
                })

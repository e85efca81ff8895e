"""Operational logging: structured JSON lines with request ids and no personal data.

Sits beside everything in the gateway. Our own request log replaces uvicorn's access log,
which prints query strings (a GraphQL GET can carry an identity number there). Log records
carry a `request_id` extra where one exists; nothing logs names, identity numbers or tokens.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access = logging.getLogger("kilde.access")
_DIGITS = re.compile(r"\d{11}")


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


class AccessLogMiddleware:
    """One log line per request: method, path without query, status, duration, request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = ""

        async def sending(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", []):
                    if key == b"x-request-id":
                        request_id = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            access.info("request", extra={
                "method": scope["method"],
                "path": redact(scope["path"]),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "request_id": request_id,
            })

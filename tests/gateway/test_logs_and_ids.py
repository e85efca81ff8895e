"""Operational logs and request ids carry no identity numbers, even when a client tries."""

from __future__ import annotations

import asyncio
import logging
import re
import sys

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from gateway.logs import (
    JsonFormatter,
    RequestEdgeMiddleware,
    accept_request_id,
    new_request_id,
    redact,
)
from gateway.settings import Settings, SettingsError
from schema.errors import CONTRACT


@pytest.mark.parametrize(("offered", "kept"), [
    ("0b6b5c3e-8f1a-4c2e-9d7a-1f2e3d4c5b6a", True),
    ("0B6B5C3E-8F1A-4C2E-9D7A-1F2E3D4C5B6A", True),
    ("", False),
    ("abc-123_x.y", False),  # a plain token could spell a name: only UUIDs are kept
    ("14033841389", False),
    ("0b6b5c3e-8f1a-4c2e-9d7a-014033841389", False),  # a UUID carrying an identity number
    ("0b6b5c3e8f1a4c2e9d7a1f2e3d4c5b6a", False),  # 32 hex digits can hold 11 digits in a row
    ("Kari-Nordmann", False),
    ("0b6b5c3e-8f1a-4c2e-9d7a-1f2e3d4c5b6a\n", False),
    ("x" * 65, False),
    ('{"nin":1}', False),
])
def test_a_client_request_id_is_kept_only_when_it_is_a_uuid_that_cannot_carry_a_number(
        offered: str, kept: bool) -> None:
    rid = accept_request_id(offered)
    assert (rid == offered) is kept
    assert len(rid) == 36
    assert "14033841389" not in rid


def test_our_own_request_ids_never_hold_eleven_digits_in_a_row() -> None:
    ids = {new_request_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert not [rid for rid in ids if re.search(r"\d{11}", rid)]


def test_an_exception_is_logged_by_type_and_stack_without_its_message() -> None:
    record = logging.LogRecord("kilde.test", logging.ERROR, __file__, 1, "failed", None, None)
    secret = "14033841389 Arne Hvilested"
    try:
        raise KeyError(secret)
    except KeyError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert '"exception":"KeyError"' in line
    assert "14033841389" not in line
    assert "Hvilested" not in line


def test_redact_masks_anything_shaped_like_an_identity_number() -> None:
    assert redact("/graphql/14033841389/x") == "/graphql/***********/x"


def test_retention_below_one_day_fails_at_start() -> None:
    with pytest.raises(SettingsError, match="KILDE_AUDIT__RETENTION_DAYS"):
        Settings.from_env({"KILDE_AUDIT__RETENTION_DAYS": "0"}, serving=False)


async def test_a_request_cancelled_by_the_stop_is_answered_with_a_contract_code() -> None:
    """The shutdown grace is over and uvicorn cancels the request: the edge answers 503 with
    Retry-After and UPSTREAM_UNAVAILABLE (source 'kilde', reason SHUTTING_DOWN), a code of
    DESIGN.md's list, and the task ends normally."""
    async def hanging(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(60)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope: Scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": [],
                    "query_string": b""}
    task = asyncio.ensure_future(RequestEdgeMiddleware(hanging)(scope, receive, send))
    await asyncio.sleep(0.01)
    task.cancel()
    await task  # handled: not cancelled
    assert not task.cancelled()
    start, body = sent
    headers = dict(start["headers"])
    assert (start["status"], headers[b"retry-after"], headers[b"connection"]) == (
        503, b"1", b"close")
    (error,) = orjson.loads(body["body"])["errors"]
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "source": "kilde",
                                   "reason": "SHUTTING_DOWN"}
    assert error["extensions"]["code"] in CONTRACT
    assert "nothing was delivered" in error["message"]

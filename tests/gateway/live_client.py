"""A graphql-transport-ws client over a real socket (the `websockets` library), for tests.

Every wait is bounded by HUNG, which only a hung test reaches: the tests wait for a message or a
close, never for a time to pass."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

PROTOCOL = "graphql-transport-ws"
HUNG = 30.0

UPDATES = """subscription Updates($nin: String!) {
  patientUpdates(nin: $nin) { source categories changedAt origin } }"""


class Live:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        """The next message that is not a ping (pings are answered)."""
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), HUNG))
            if message.get("type") == "ping":
                await self.send({"type": "pong"})
                continue
            return message  # type: ignore[no-any-return]

    async def init(self, payload: Any) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload})
        return await self.recv()

    async def subscribe(self, op_id: str, query: str, variables: Any = None) -> None:
        await self.send({"type": "subscribe", "id": op_id,
                         "payload": {"query": query, "variables": variables}})

    async def closed(self) -> tuple[int | None, str]:
        """Wait until the server closes; (code, reason)."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), HUNG)
        except ConnectionClosed as closed:
            frame = closed.rcvd
            return (frame.code, frame.reason) if frame is not None else (None, "")


@contextlib.asynccontextmanager
async def socket(url: str, *, subprotocols: tuple[str, ...] = (PROTOCOL,),
                 headers: dict[str, str] | None = None) -> AsyncIterator[Live]:
    """A WebSocket to `url` (http(s):// is turned into ws(s)://)."""
    ws_url = "ws" + url.removeprefix("http") if url.startswith("http") else url
    async with connect(ws_url, subprotocols=list(subprotocols) or None,  # type: ignore[arg-type]
                       proxy=None, open_timeout=HUNG, additional_headers=headers) as ws:
        yield Live(ws)

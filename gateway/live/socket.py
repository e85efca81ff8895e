"""The WebSocket door: GraphQL over `graphql-transport-ws` at /graphql (Apollo Client, urql).

Sits beside the HTTP GraphQL endpoint and ends in the same places: `run_operation` for a query
or mutation, `schema.subscribe` for `patientUpdates`, with the same admission (rate limit,
persisted queries, limits) and the same audit extension inside the execution
(gateway/auditing.py). The protocol (github.com/enisdenjo/graphql-ws, PROTOCOL.md):

    client: connection_init {payload: {authorization: "DPoP <token>", dpop: "<proof>"}}
    server: connection_ack                 (or close 4403: the token is refused)
    client: subscribe {id, payload: {query, variables, operationName, extensions}}
    server: next {id, payload} ...  complete {id}   (or error {id, payload: [errors]})
    either: ping / pong;  client: complete {id} stops one operation

Authentication is a query's: the token (`authorization`, "Bearer ..." or "DPoP ...") comes in
the connection_init payload, because browsers cannot set headers on a WebSocket; with DPoP the
proof (`dpop`) signs the handshake: `htm` "GET" and `htu` the /graphql URL with http(s) for
ws(s) (`KILDE_AUTH__PUBLIC_URL` + /graphql when set), one proof per connection. The connection
is closed with 4403 when the token expires (a client reconnects with a fresh one), and with the
protocol's codes otherwise: 4400 a malformed message, 4401 subscribe before connection_ack, 4406
no graphql-transport-ws subprotocol, 4408 no connection_init in time, 4409 an id already in use,
4429 a second connection_init, 1013 too many connections for this client (try again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import orjson
from graphql import OperationType
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gateway.admission import RefusedError
from gateway.auth import AuthError
from gateway.auth.errors import DpopNonceError
from gateway.graphql import Endpoint, caller_credentials, run_operation
from gateway.limits import selected_operation
from gateway.params import RequestError, check_params
from gateway.settings import LiveSettings
from policies.model import Principal
from schema.context import Context
from schema.errors import BadUserInputError, KildeError, RateLimitedError, error_dict, format_error

log = logging.getLogger("kilde.live")

PROTOCOL = "graphql-transport-ws"
# close codes (graphql-transport-ws), and WebSocket's own "try again later"
BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_ACCEPTABLE = 4400, 4401, 4403, 4406
INIT_TIMEOUT, DUPLICATE_ID, TOO_MANY_INITS, TRY_LATER = 4408, 4409, 4429, 1013


class Connections:
    """Open, authenticated connections per client (HelseID client id), in this replica."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.open.values())

    def take(self, client: str, limit: int) -> bool:
        if limit and self.open[client] >= limit:
            return False
        self.open[client] += 1
        return True

    def give_back(self, client: str) -> None:
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]


class CloseError(Exception):
    """The connection is to be closed with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close reason is at most 123 bytes (ASCII here)


def handshake_url(websocket: WebSocket, public_url: str) -> str:
    """The URL a DPoP proof for this handshake names: the HTTP URL of the same resource."""
    if public_url:
        return public_url.rstrip("/") + websocket.url.path
    url = str(websocket.url.replace(query=""))
    return "https" + url[3:] if url.startswith("wss") else "http" + url[2:]


def token_expiry(authorization: str) -> float | None:
    """The `exp` of a token the authenticator already verified (Unix seconds), if any."""
    token = authorization.strip().partition(" ")[2].strip()
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) else None


def _message(text: str | bytes, limit: int) -> dict[str, Any]:
    if len(text) > limit:
        raise CloseError(BAD_REQUEST, f"A message is at most {limit} bytes.")
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise CloseError(BAD_REQUEST, "A message must be a JSON object.") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise CloseError(BAD_REQUEST, "A message must be a JSON object with a 'type'.")
    return message


class Session:
    """One WebSocket connection, from handshake to close."""

    def __init__(self, websocket: WebSocket, endpoint: Endpoint, limits: LiveSettings,
                 connections: Connections) -> None:
        self.ws = websocket
        self.endpoint = endpoint
        self.limits = limits
        self.connections = connections
        self.principal: Principal | None = None
        self.authorization = ""
        self.operations: dict[str, asyncio.Task[None]] = {}

    async def send(self, message: dict[str, Any]) -> None:
        if self.ws.application_state is WebSocketState.CONNECTED:
            await self.ws.send_text(orjson.dumps(message).decode())

    async def receive(self) -> dict[str, Any] | None:
        """The next message, None when the client went away."""
        try:
            data = await self.ws.receive()
        except WebSocketDisconnect:
            return None
        if data["type"] == "websocket.disconnect":
            return None
        text = data.get("text")
        if text is None:
            raise CloseError(BAD_REQUEST, "Messages are text frames.")
        return _message(text, self.limits.max_message_bytes)

    async def serve(self) -> None:
        offered = self.ws.scope.get("subprotocols") or []
        if PROTOCOL not in offered:
            await self.ws.accept()
            await self.ws.close(NOT_ACCEPTABLE, "Subprotocol not acceptable")
            return
        await self.ws.accept(subprotocol=PROTOCOL)
        client = None
        try:
            self.principal = await self.initialise()
            client = self.principal.client_id or ""
            if not self.connections.take(client, self.limits.max_connections_per_client):
                client = None
                raise CloseError(TRY_LATER, "Too many connections for this client; try again "
                             "later.")
            await self.send({"type": "connection_ack"})
            expiry = token_expiry(self.authorization)
            await self.run(expiry)
        except CloseError as closed:
            await self.close(closed.code, closed.reason)
        finally:
            for task in self.operations.values():
                task.cancel()
            for task in list(self.operations.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if client is not None:
                self.connections.give_back(client)

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.ws.close(code, reason)

    async def initialise(self) -> Principal:
        """Wait for connection_init and authenticate its payload."""
        try:
            async with asyncio.timeout(self.limits.init_timeout_seconds):
                while True:
                    message = await self.receive()
                    if message is None:
                        raise CloseError(1000, "")
                    kind = message["type"]
                    if kind == "ping":
                        await self.send({"type": "pong"})
                        continue
                    if kind == "connection_init":
                        break
                    if kind == "subscribe":
                        raise CloseError(UNAUTHORIZED, "Unauthorized")
                    if kind != "pong":
                        raise CloseError(BAD_REQUEST, f"Unexpected message {kind[:40]!r} before "
                                     "connection_init.")
        except TimeoutError:
            raise CloseError(INIT_TIMEOUT, "Connection initialisation timeout") from None
        payload = message.get("payload") or {}
        if not isinstance(payload, dict):
            raise CloseError(BAD_REQUEST, "The connection_init payload must be a JSON object.")
        authorization = payload.get("authorization", payload.get("Authorization"))
        proof = payload.get("dpop", payload.get("DPoP"))
        if not isinstance(authorization, str | None) or not isinstance(proof, str | None):
            raise CloseError(BAD_REQUEST, "'authorization' and 'dpop' must be strings.")
        authenticator = self.endpoint.authenticator
        try:
            principal = await authenticator.authenticate(
                authorization, proofs=[proof] if proof else [], method="GET",
                url=handshake_url(self.ws, authenticator.public_url))
        except AuthError as exc:
            if isinstance(exc, DpopNonceError):  # sign a new proof with this nonce
                raise CloseError(FORBIDDEN, f"use_dpop_nonce {exc.nonce}") from None
            if exc.transient:
                raise CloseError(TRY_LATER, "Authentication is unavailable; try again shortly.") \
                    from None
            raise CloseError(FORBIDDEN, f"Forbidden: {exc}") from None
        self.authorization = authorization or ""
        return principal

    async def run(self, expiry: float | None) -> None:
        """Serve messages until the client leaves or the token expires."""
        receiving = asyncio.ensure_future(self._messages())
        try:
            timeout = None if expiry is None else max(0.0, expiry - time.time())
            done, _ = await asyncio.wait({receiving}, timeout=timeout)
            if not done:
                raise CloseError(FORBIDDEN, "Token expired")
            receiving.result()  # a CloseError from the message loop
        finally:
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiving

    async def _messages(self) -> None:
        while True:
            message = await self.receive()
            if message is None:
                return
            kind = message["type"]
            if kind == "ping":
                await self.send({"type": "pong", **({"payload": message["payload"]}
                                                    if "payload" in message else {})})
            elif kind == "pong":
                continue
            elif kind == "connection_init":
                raise CloseError(TOO_MANY_INITS, "Too many initialisation requests")
            elif kind == "subscribe":
                self.start(message)
            elif kind == "complete":
                task = self.operations.pop(str(message.get("id")), None)
                if task is not None:
                    task.cancel()
            else:
                raise CloseError(BAD_REQUEST, f"Unknown message type {kind[:40]!r}.")

    def start(self, message: dict[str, Any]) -> None:
        op_id, payload = message.get("id"), message.get("payload")
        if not isinstance(op_id, str) or not op_id or len(op_id) > 128:
            raise CloseError(BAD_REQUEST, "A subscribe message needs an 'id' string.")
        if not isinstance(payload, dict):
            raise CloseError(BAD_REQUEST, "A subscribe message needs a 'payload' object.")
        if op_id in self.operations:
            raise CloseError(DUPLICATE_ID, f"Subscriber for {op_id[:60]} already exists")
        try:
            params = check_params(payload)
        except RequestError as exc:
            raise CloseError(BAD_REQUEST, exc.message) from None
        task = asyncio.ensure_future(self._operation(op_id, params))
        self.operations[op_id] = task
        task.add_done_callback(lambda t, i=op_id: self._finished(i, t))

    def _finished(self, op_id: str, task: asyncio.Task[None]) -> None:
        if self.operations.get(op_id) is task:
            del self.operations[op_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("WebSocket operation failed: %s", type(task.exception()).__name__)

    async def _operation(self, op_id: str, params: Any) -> None:
        async def error(errors: list[dict[str, Any]]) -> None:
            await self.send({"type": "error", "id": op_id, "payload": errors})

        try:
            await self._run(op_id, params, error)
        except (asyncio.CancelledError, WebSocketDisconnect):
            raise
        except Exception as exc:  # logged by type only: its message may hold input values
            log.error("WebSocket operation failed: %s", type(exc).__name__)
            await error([error_dict(KildeError("Internal error."))])  # the masked root

    async def _run(self, op_id: str, params: Any,
                   error: Callable[[list[dict[str, Any]]], Awaitable[None]]) -> None:

        if len(self.operations) > self.limits.max_operations:
            await error([error_dict(RateLimitedError(
                f"At most {self.limits.max_operations} operations run at once on one "
                "connection; complete one first."))])
            return
        endpoint, principal = self.endpoint, self.principal
        assert principal is not None  # operations start only after connection_ack
        query, document, admitted = params.query or "", None, None
        if not query.strip() and not params.persisted:
            await error([error_dict(BadUserInputError("The request has no GraphQL query."))])
            return
        if endpoint.admission is not None:
            try:
                admitted = await endpoint.admission.admit("POST", principal.client_id or "",
                                                          params)
            except RefusedError as refused:
                await error([{"message": refused.error.message, "extensions": {
                    "code": refused.error.code, **refused.error.extensions}}])
                return
            query, document = admitted.query, admitted.document
        credentials = caller_credentials(endpoint.tokens, self.authorization)
        request_id = str(uuid.uuid4())
        operation = selected_operation(document, params.operation_name) if document else None
        if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
            outcome = await run_operation(
                endpoint, principal, query, params.variables, request_id=request_id,
                operation_name=params.operation_name, document=document,
                credentials=credentials)
            if outcome.request_error:
                await error(outcome.payload.get("errors", []))
                return
            if admitted is not None:
                await endpoint.admission.register(admitted)  # type: ignore[union-attr]
            await self.send({"type": "next", "id": op_id, "payload": outcome.payload})
            await self.send({"type": "complete", "id": op_id})
            return
        await self._subscribe(op_id, query, params, document, request_id, credentials, error)

    async def _subscribe(self, op_id: str, query: str, params: Any, document: Any,
                         request_id: str, credentials: Any,
                         error: Callable[[list[dict[str, Any]]], Awaitable[None]]) -> None:
        endpoint, principal = self.endpoint, self.principal
        assert principal is not None
        ctx = Context(services=endpoint.services, principal=principal, request_id=request_id,
                      credentials=credentials)
        ctx.document = document
        stream = await endpoint.schema.subscribe(
            query, variable_values=params.variables, context_value=ctx,
            operation_name=params.operation_name)
        if not hasattr(stream, "__aiter__"):  # refused before it started (validation)
            await error([format_error(e) for e in stream.errors or ()])
            return
        async with contextlib.aclosing(stream):
            async for result in stream:
                if result.data is None and result.errors and not ctx.watching.is_set():
                    # it failed before it started (validation, a refused start): an error
                    await error([format_error(e) for e in result.errors])
                    return
                payload: dict[str, Any] = {"data": result.data}
                if result.errors:
                    payload["errors"] = [format_error(e) for e in result.errors]
                await self.send({"type": "next", "id": op_id, "payload": payload})
        await self.send({"type": "complete", "id": op_id})


async def serve_websocket(websocket: WebSocket, endpoint: Endpoint, limits: LiveSettings,
                          connections: Connections) -> None:
    """Serve one graphql-transport-ws connection (the route's handler)."""
    await Session(websocket, endpoint, limits, connections).serve()

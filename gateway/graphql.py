"""The GraphQL endpoint: parse, authenticate, execute, audit, and only then respond.

Sits at the HTTP edge in front of the schema. Order matters and is the point of this module:
no token -> 401 before anything runs; the schema's resolvers decide and fetch; every access is
written to the audit store; if that write fails, patient data is withheld (AUDIT_UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import ExecutionResult
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html

from gateway.audit import AuditSink, AuditUnavailableError
from gateway.auth import Authenticator, AuthError
from gateway.recording import events_for
from schema.context import Context, Services
from schema.errors import format_error

log = logging.getLogger("kilde.graphql")

MAX_BODY_BYTES = 256 * 1024
JSON = "application/json"
GRAPHQL_JSON = "application/graphql-response+json"


@dataclass(frozen=True)
class Endpoint:
    """Everything the endpoint needs, built once in the lifespan."""

    schema: Any
    services: Services
    authenticator: Authenticator
    audit: AuditSink
    graphiql: bool = True


def _json(payload: Any, status: int = 200, request_id: str = "", media: str = JSON) -> Response:
    headers = {"x-request-id": request_id} if request_id else None
    return Response(orjson.dumps(payload), status_code=status, media_type=media, headers=headers)


def _error(code: str, message: str, status: int, request_id: str, **ext: Any) -> Response:
    return _json({"errors": [{"message": message, "extensions": {"code": code, **ext}}]},
                 status, request_id)


async def _read_params(request: Request) -> dict[str, Any]:
    if request.method == "GET":
        params: dict[str, Any] = dict(request.query_params)
        for key in ("variables", "extensions"):
            if key in params and params[key]:
                params[key] = orjson.loads(params[key])
        return params
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type == "application/graphql":
        return {"query": body.decode()}
    if content_type not in (JSON, ""):
        raise ValueError(f"Unsupported content type {content_type!r}; send {JSON}.")
    params = orjson.loads(body)
    if not isinstance(params, dict):
        raise ValueError("The request body must be one JSON object (batching is not supported).")
    return params


async def handle_graphql(request: Request, endpoint: Endpoint) -> Response:
    request_id = request.headers.get("x-request-id", "")[:64] or uuid.uuid4().hex
    if (request.method == "GET" and endpoint.graphiql
            and "text/html" in request.headers.get("accept", "")
            and "query" not in request.query_params):
        return HTMLResponse(get_graphql_ide_html("graphiql"))
    try:
        params = await _read_params(request)
    except (ValueError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        message = str(exc) if isinstance(exc, ValueError) and not isinstance(
            exc, orjson.JSONDecodeError) else "The request body is not valid JSON."
        return _error("BAD_USER_INPUT", message, 400, request_id)
    query = params.get("query")
    variables = params.get("variables") or None
    if not isinstance(query, str) or not query.strip():
        return _error("BAD_USER_INPUT", "The request has no GraphQL query.", 400, request_id)
    if variables is not None and not isinstance(variables, dict):
        return _error("BAD_USER_INPUT", "'variables' must be a JSON object.", 400, request_id)

    try:
        principal = await endpoint.authenticator.authenticate(request.headers.get("authorization"))
    except AuthError as exc:
        response = _error("UNAUTHENTICATED", str(exc), 401, request_id)
        response.headers["www-authenticate"] = 'Bearer error="invalid_token"'
        return response

    ctx = Context(services=endpoint.services, principal=principal, request_id=request_id,
                  fresh=request.headers.get("cache-control", "") == "no-cache")
    try:
        result: ExecutionResult = await endpoint.schema.execute(
            query, variable_values=variables, context_value=ctx,
            operation_name=params.get("operationName"),
        )
    finally:
        for view in ctx.views:
            view.cancel()

    try:
        events = events_for(ctx)
        if events:
            await asyncio.gather(*(endpoint.audit.write(e) for e in events))
    except AuditUnavailableError:
        log.error("audit write failed; withholding patient data",
                  extra={"request_id": request_id})
        return _error("AUDIT_UNAVAILABLE", "The access could not be recorded, so no patient "
                      "data is delivered; try again shortly.", 503, request_id)

    payload: dict[str, Any] = {}
    errors = [format_error(e) for e in result.errors or []] + ctx.errors
    if errors:
        payload["errors"] = errors
    payload["data"] = result.data
    media = GRAPHQL_JSON if GRAPHQL_JSON in request.headers.get("accept", "") else JSON
    status = 200
    if result.data is None and media == GRAPHQL_JSON:
        status = 400
    return _json(payload, status, request_id, media)

"""The GraphQL endpoint: parse, authenticate, execute, audit, and only then respond.

Sits at the HTTP edge in front of the schema. Order matters and is the point of this module:
no token -> 401 before anything runs; the schema's resolvers decide and fetch; every access is
written to the audit store; if that write fails, patient data is withheld (AUDIT_UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import ExecutionResult
from starlette.requests import Request
from starlette.responses import Response

from connectors.credentials import NO_CREDENTIALS, Credentials, TokenProvider
from gateway.admission import Admission, RefusedError
from gateway.audit import AuditSink, AuditUnavailableError
from gateway.auth import Authenticator, AuthError
from gateway.graphiql import page as graphiql_page
from gateway.logs import request_id_of
from gateway.metrics import Metrics
from gateway.recording import events_for
from gateway.telemetry import RequestMetrics
from policies.model import Principal
from schema.context import Context, Services
from schema.errors import format_error
from schema.pipeline.ledger import completeness

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
    metrics: Metrics | None = None
    admission: Admission | None = None  # rate limit, persisted queries, limits (one parse)
    max_body_bytes: int = MAX_BODY_BYTES
    telemetry: RequestMetrics | None = None  # request and per-source metrics
    tokens: TokenProvider | None = None  # HelseID tokens towards upstreams (gateway/upstream.py)

    async def authenticate(self, request: Request) -> Principal:
        """The caller of `request`, exactly as /graphql authenticates it (the other doors,
        /cds-services, /launch and /audit/export, use this too); AuthError otherwise."""
        return await self.authenticator.authenticate(request.headers.get("authorization"))


def caller_credentials(tokens: TokenProvider | None, authorization: str | None) -> Credentials:
    """The caller's token (already authenticated) as credentials for this request's upstream
    calls: exchanged per upstream, never forwarded, never logged."""
    if tokens is None:
        return NO_CREDENTIALS
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() not in ("bearer", "dpop"):
        return tokens.for_caller(None)
    return tokens.for_caller(token.strip() or None)


def _json(payload: Any, status: int = 200, request_id: str = "", media: str = JSON) -> Response:
    headers = {"x-request-id": request_id} if request_id else None
    return Response(orjson.dumps(payload), status_code=status, media_type=media, headers=headers)


def _error(code: str, message: str, status: int, request_id: str, **ext: Any) -> Response:
    return _json({"errors": [{"message": message, "extensions": {"code": code, **ext}}]},
                 status, request_id)


class BodyTooLargeError(ValueError):
    """The request body is over the limit (HTTP 413)."""


class UnsupportedMediaTypeError(ValueError):
    """The request body is neither JSON nor application/graphql (HTTP 415)."""


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"The request body is larger than {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():  # never buffer more than the limit
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _media(request: Request) -> str | None:
    """The response type the client accepts (GraphQL over HTTP), None if it accepts neither."""
    accept = request.headers.get("accept", "")
    if not accept or GRAPHQL_JSON in accept:
        return GRAPHQL_JSON if accept else JSON
    if JSON in accept or "*/*" in accept or "application/*" in accept:
        return JSON
    return None


def _refuse(refused: RefusedError, request_id: str, media: str) -> Response:
    """A request refused before execution: HTTP's own status where it has one, else a GraphQL
    request error (400 with graphql-response+json, 200 with legacy application/json)."""
    error = refused.error
    status = refused.status or (400 if media == GRAPHQL_JSON else 200)
    payload = {"errors": [{"message": error.message,
                           "extensions": {"code": error.code, **error.extensions}}]}
    response = _json(payload, status, request_id, media)
    response.headers.update(refused.headers)
    return response


async def _read_params(request: Request, max_body: int = MAX_BODY_BYTES) -> dict[str, Any]:
    if request.method == "GET":
        params: dict[str, Any] = dict(request.query_params)
        for key in ("variables", "extensions"):
            if params.get(key):
                params[key] = orjson.loads(params[key])
        return params
    body = await _read_body(request, max_body)
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type == "application/graphql":
        return {"query": body.decode()}
    if content_type not in (JSON, ""):
        raise UnsupportedMediaTypeError(
            f"Unsupported content type {content_type!r}; send {JSON}.")
    params = orjson.loads(body)
    if not isinstance(params, dict):
        raise ValueError("The request body must be one JSON object (batching is not supported).")
    return params


async def handle_graphql(request: Request, endpoint: Endpoint) -> Response:
    request_id = request_id_of(request.scope)
    if (request.method == "GET" and endpoint.graphiql
            and "text/html" in request.headers.get("accept", "")
            and "query" not in request.query_params):
        return graphiql_page()  # served from this package: no CDN
    media = _media(request)
    if media is None:
        return _error("BAD_USER_INPUT", f"Accept {GRAPHQL_JSON} or {JSON}.", 406, request_id)
    try:
        params = await _read_params(request, endpoint.max_body_bytes)
    except BodyTooLargeError as exc:
        return _error("QUERY_TOO_COMPLEX", str(exc), 413, request_id, limit="bodyBytes",
                      maximum=endpoint.max_body_bytes)
    except UnsupportedMediaTypeError as exc:
        return _error("BAD_USER_INPUT", str(exc), 415, request_id)
    except (ValueError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        message = str(exc) if isinstance(exc, ValueError) and not isinstance(
            exc, orjson.JSONDecodeError) else "The request body is not valid JSON."
        return _error("BAD_USER_INPUT", message, 400, request_id)
    query = params.get("query")
    variables = params.get("variables") or None
    persisted = isinstance(params.get("extensions"), dict) and "persistedQuery" in params[
        "extensions"]
    if (not isinstance(query, str) or not query.strip()) and not persisted:
        return _error("BAD_USER_INPUT", "The request has no GraphQL query.", 400, request_id)
    if variables is not None and not isinstance(variables, dict):
        return _error("BAD_USER_INPUT", "'variables' must be a JSON object.", 400, request_id)

    try:
        principal = await endpoint.authenticate(request)
    except AuthError as exc:
        response = _error("UNAUTHENTICATED", str(exc), 401, request_id)
        response.headers["www-authenticate"] = 'Bearer error="invalid_token"'
        return response

    document = admitted = None
    if endpoint.admission is not None:
        try:
            admitted = await endpoint.admission.admit(request.method, principal.client_id or "",
                                                      params)
        except RefusedError as refused:
            return _refuse(refused, request_id, media)
        query, document = admitted.query, admitted.document
        request.state.operation = admitted.operation  # the metrics label (gateway/app.py)

    outcome = await run_operation(
        endpoint, principal, query, variables, request_id=request_id,
        operation_name=params.get("operationName"), document=document,
        fresh=request.headers.get("cache-control", "") == "no-cache",
        credentials=caller_credentials(endpoint.tokens, request.headers.get("authorization")))
    if admitted is not None and not outcome.request_error:
        await endpoint.admission.register(admitted)  # it validated: APQ may keep it
    media = (GRAPHQL_JSON if GRAPHQL_JSON in request.headers.get("accept", "")
             and not outcome.audit_unavailable else JSON)
    return _json(outcome.payload, outcome.status(media), request_id, media)


@dataclass(frozen=True)
class Outcome:
    """What one executed operation gives its transport: the JSON payload, whether the request
    itself was wrong (nothing executed), and whether patient data was withheld because the
    audit could not be written."""

    payload: dict[str, Any]
    request_error: bool
    audit_unavailable: bool = False

    def status(self, media: str) -> int:
        """The HTTP status (GraphQL over HTTP): 503 when the audit failed, 400 for a request
        error answered as graphql-response+json, else 200."""
        if self.audit_unavailable:
            return 503
        return 400 if self.request_error and media == GRAPHQL_JSON else 200


async def run_operation(
    endpoint: Endpoint,
    principal: Principal,
    query: str | None,
    variables: dict[str, Any] | None,
    *,
    request_id: str,
    operation_name: str | None = None,
    document: Any = None,
    fresh: bool = False,
    credentials: Credentials = NO_CREDENTIALS,
) -> Outcome:
    """Execute one operation for `principal` and audit it before anything is answered: the
    one place execute, ledger, audit and metrics happen, for /graphql and every other door
    that answers from the schema (CDS Hooks). `credentials` are the caller's towards the
    upstreams (`caller_credentials(endpoint.tokens, authorization_header)`)."""
    ctx = Context(services=endpoint.services, principal=principal, request_id=request_id,
                  fresh=fresh, credentials=credentials)
    ctx.document = document  # parsed once, in admission; the schema reuses it
    try:
        result: ExecutionResult = await endpoint.schema.execute(
            query, variable_values=variables, context_value=ctx, operation_name=operation_name)
    finally:
        ledger = ctx.finish()  # what was delivered; the fetches nobody awaited are stopped
    if endpoint.telemetry is not None:
        endpoint.telemetry.sources(ledger)

    try:
        events = events_for(ledger)
        if events:
            await asyncio.gather(*(endpoint.audit.write(e) for e in events))
    except AuditUnavailableError:
        log.error("audit write failed; withholding patient data",
                  extra={"request_id": request_id})
        message = ("The access could not be recorded, so no patient data is delivered; "
                   "try again shortly.")
        return Outcome({"errors": [{"message": message, "extensions": {
            "code": "AUDIT_UNAVAILABLE"}}], "data": None}, False, True)
    if endpoint.metrics is not None:
        endpoint.metrics.record(events)  # only what the audit trail holds is counted

    payload: dict[str, Any] = {}
    errors = [format_error(e) for e in result.errors or []] + ctx.errors
    if errors:
        payload["errors"] = errors
    payload["data"] = result.data
    summary = completeness(ledger)  # which sources and categories did not answer completely
    if summary is not None:
        payload["extensions"] = {"completeness": summary}
    return Outcome(payload, result.data is None)  # nothing ran: parse or validation failed

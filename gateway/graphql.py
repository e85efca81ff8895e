"""The GraphQL endpoint: read, authenticate, admit, execute, audit, and only then respond.

Sits at the HTTP edge in front of the schema. Order matters and is the point of this module:
a malformed request -> 4xx before anything runs (gateway/params.py); no token -> 401; a refused
query (rate limit, persisted queries, limits: gateway/admission.py) runs nothing; the schema's
resolvers decide and fetch; every access is written to the audit store (by the audit extension
inside the execution, gateway/auditing.py, so the WebSocket door gets it too); if that write
fails, patient data is withheld (AUDIT_UNAVAILABLE, HTTP 503). `run_operation` is that last
part on its own, for other doors (CDS Hooks, queries over the WebSocket) that run an operation
exactly as /graphql does.

Status codes follow GraphQL over HTTP: with `application/graphql-response+json` a request
that fails before execution (parse, validation, variable coercion) is 400 and has no `data`
entry; with legacy `application/json` it is 200.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationType,
    get_operation_ast,
    parse,
)
from starlette.requests import Request
from starlette.responses import Response
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType as StrawberryOperation

from connectors.credentials import NO_CREDENTIALS, Credentials, TokenProvider
from gateway.admission import Admission, Admitted, RefusedError
from gateway.audit import AuditSink
from gateway.auditing import WITHHELD
from gateway.auth import Authenticator, AuthError
from gateway.auth.door import authenticate_request, challenge
from gateway.graphiql import page as graphiql_page
from gateway.logs import request_id_of
from gateway.metrics import Metrics
from gateway.params import BodyTooLargeError, RequestError, read_params
from gateway.recording import events_for
from gateway.telemetry import RequestMetrics
from policies.model import Principal
from schema.context import Context, Services
from schema.errors import (
    AuditUnavailableError,
    BadUserInputError,
    KildeError,
    error_dict,
    format_error,
)
from schema.pipeline.ledger import completeness
from schema.write.record import idempotency_key

log = logging.getLogger("kilde.graphql")

MAX_BODY_BYTES = 256 * 1024
JSON = "application/json"
GRAPHQL_JSON = "application/graphql-response+json"
# a subscription streams: it is served over the WebSocket
ONE_RESULT = (StrawberryOperation.QUERY, StrawberryOperation.MUTATION)
SUBSCRIPTION_OVER_HTTP = ("Subscriptions are served over WebSocket (graphql-transport-ws) at "
                          "/graphql, not over HTTP; see docs/app-builders.md.")


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
        /cds-services, /launch and /audit/export, use this too); AuthError otherwise, whose
        challenge headers `gateway.auth.challenge(response, error)` adds."""
        return await authenticate_request(request, self.authenticator)


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
    return Response(_dumps(payload), status_code=status, media_type=media, headers=headers)


def _dumps(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:  # a lone surrogate from a stored or upstream value
        return orjson.dumps(_scrub(payload))


def _scrub(value: Any) -> Any:
    """`value` with every lone UTF-16 surrogate in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _error(error: KildeError, status: int, request_id: str) -> Response:
    return _json({"errors": [error_dict(error)]}, status, request_id)


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
    payload = {"errors": [error_dict(error)]}
    response = _json(payload, status, request_id, media)
    response.headers.update(refused.headers)
    return response


@dataclass(frozen=True)
class Outcome:
    """What running one operation gave: the response body and how it ended.

    `request_error`: it failed before execution (parse, validation, variable coercion), so the
    body has no `data` entry; `audit_unavailable`: the audit write failed and the data was
    withheld (HTTP 503).
    """

    payload: dict[str, Any]
    request_error: bool = False
    audit_unavailable: bool = False

    def status(self, media: str = JSON) -> int:
        """The HTTP status for this outcome in the response media type."""
        if self.audit_unavailable:
            return 503
        if media == GRAPHQL_JSON and self.payload.get("data") is None:
            return 400
        return 200


async def run_operation(endpoint: Endpoint, principal: Principal, query: str,
                        variables: dict[str, Any] | None, *, request_id: str,
                        operation_name: str | None = None, document: Any = None,
                        fresh: bool = False,
                        credentials: Credentials = NO_CREDENTIALS,
                        idempotency_key: str | None = None) -> Outcome:
    """Execute one operation for an authenticated `principal`, audit every access it made,
    and give the response body; patient data leaves only once its audit events are committed.

    `document` is the query already parsed (and measured) by admission, if it was;
    `credentials` are the caller's towards the upstreams
    (`caller_credentials(endpoint.tokens, authorization_header)`); `idempotency_key` is the
    request's `Idempotency-Key` header (a repeated mutation returns its first result).

    >>> outcome = await run_operation(endpoint, principal, QUERY, {"nin": nin},
    ...                               request_id=rid)  # doctest: +SKIP
    >>> outcome.status(), outcome.payload["data"]  # doctest: +SKIP
    """
    ctx = Context(services=endpoint.services, principal=principal, request_id=request_id,
                  fresh=fresh, credentials=credentials, idempotency_key=idempotency_key)
    ctx.document = document  # parsed once, in admission; the schema reuses it
    try:
        # the audit extension inside (gateway/auditing.py) writes what it delivered
        result: ExecutionResult = await endpoint.schema.execute(
            query, variable_values=variables, context_value=ctx, operation_name=operation_name,
            allowed_operation_types=ONE_RESULT)
    except InvalidOperationTypeError:
        return Outcome({"errors": [error_dict(BadUserInputError(SUBSCRIPTION_OVER_HTTP))]},
                       request_error=True)
    finally:
        ledger = ctx.finish()  # the fetches nobody awaited are stopped
    if ctx.audit_unavailable:
        return Outcome({"errors": [error_dict(AuditUnavailableError(WITHHELD))], "data": None},
                       audit_unavailable=True)
    if not ctx.audited and events_for(ledger):  # a schema without the extension: fail closed
        log.error("the schema has no audit extension; withholding patient data",
                  extra={"request_id": request_id})
        return Outcome({"errors": [error_dict(AuditUnavailableError(WITHHELD))], "data": None},
                       audit_unavailable=True)
    payload: dict[str, Any] = {}
    errors = [format_error(e) for e in result.errors or []] + ctx.errors
    if errors:
        payload["errors"] = errors
    request_error = result.data is None and any(e.path is None for e in result.errors or ())
    if not request_error:
        payload["data"] = result.data
    summary = completeness(ledger)  # which sources and categories did not answer completely
    if summary is not None:
        payload["extensions"] = {"completeness": summary}
    return Outcome(payload, request_error=request_error)


async def handle_graphql(request: Request, endpoint: Endpoint) -> Response:
    request_id = request_id_of(request.scope)
    if request.method not in ("GET", "POST"):
        response = _error(BadUserInputError("Send GraphQL requests with GET or POST."), 405,
                          request_id)
        response.headers["allow"] = "GET, POST"
        return response
    if (request.method == "GET" and endpoint.graphiql
            and "text/html" in request.headers.get("accept", "")
            and "query" not in request.query_params):
        return graphiql_page()  # served from this package: no CDN
    media = _media(request)
    if media is None:
        return _error(BadUserInputError(f"Accept {GRAPHQL_JSON} or {JSON}."), 406, request_id)
    try:
        params = await read_params(request, endpoint.max_body_bytes)
    except (RequestError, BodyTooLargeError) as exc:
        return _error(exc, exc.status, request_id)
    if not (params.query or "").strip() and not params.persisted:
        return _error(BadUserInputError("The request has no GraphQL query."), 400, request_id)

    try:
        principal = await endpoint.authenticate(request)
    except AuthError as exc:
        return challenge(_error(exc, exc.status, request_id), exc,
                         endpoint.authenticator)

    try:
        key = idempotency_key(request.headers.get("idempotency-key"))
    except BadUserInputError as exc:
        return _error(exc, 400, request_id)
    query, document, admitted = params.query or "", None, None
    if endpoint.admission is not None:
        try:
            admitted = await endpoint.admission.admit(request.method,
                                                      principal.client_id or "", params)
        except RefusedError as refused:
            return _refuse(refused, request_id, media)
        query, document = admitted.query, admitted.document
        request.state.operation = admitted.operation  # the metrics label (gateway/app.py)
    if request.method == "GET" and _is_mutation(document or query, params.operation_name):
        # GraphQL over HTTP: a GET must not change anything (a link, a prefetch, a proxy)
        response = _error(BadUserInputError("Send mutations with POST."), 405, request_id)
        response.headers["allow"] = "POST"
        return response

    outcome = await run_operation(
        endpoint, principal, query, params.variables, request_id=request_id,
        operation_name=params.operation_name, document=document,
        fresh=request.headers.get("cache-control", "") == "no-cache",
        credentials=caller_credentials(endpoint.tokens, request.headers.get("authorization")),
        idempotency_key=key)
    if admitted is not None and not outcome.request_error:
        await _register(endpoint.admission, admitted)  # it validated: APQ may keep it
    return _json(outcome.payload, outcome.status(media), request_id, media)


def _is_mutation(document: DocumentNode | str, operation_name: str | None) -> bool:
    """True when the operation to run is a mutation (False for one that does not parse: it
    fails as a request error before anything runs)."""
    if isinstance(document, str):
        try:
            document = parse(document)
        except GraphQLError:
            return False
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation == OperationType.MUTATION


async def _register(admission: Admission | None, admitted: Admitted) -> None:
    if admission is not None:
        await admission.register(admitted)

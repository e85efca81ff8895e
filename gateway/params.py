"""GraphQL-over-HTTP request parameters: read the body or the query string and check each type.

Sits in the GraphQL endpoint (gateway/graphql.py) before authentication, so a malformed
request costs nothing and gets HTTP's word for what is wrong: 413 for a body over the limit,
415 for a POST without (or with another) media type, 400 for a body that is not one UTF-8 JSON
object, and 400 for a parameter of the wrong type (`query` and `operationName` are strings,
`variables` and `extensions` are objects; each may be null or absent). The same rules apply to
GET query parameters, where `variables` and `extensions` are URL-encoded JSON and a parameter
given twice is ambiguous. Every refusal is a `RequestError` (BAD_USER_INPUT) or, for a body
over the limit, a `BodyTooLargeError` (QUERY_TOO_COMPLEX); both say their HTTP `status`;
nothing here logs a value.

>>> params = await read_params(request, max_body=262144)  # doctest: +SKIP
>>> params.operation_name is None or isinstance(params.operation_name, str)  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from schema.errors import BadUserInputError, QueryTooComplexError

JSON = "application/json"
GRAPHQL = "application/graphql"
PARAMETERS = ("query", "operationName", "variables", "extensions")


@dataclass(frozen=True, slots=True)
class GraphQLParams:
    """The four GraphQL-over-HTTP parameters, each checked for its type (None when absent)."""

    query: str | None = None
    operation_name: str | None = None
    variables: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None

    @property
    def persisted(self) -> bool:
        """The request names an APQ hash (`extensions.persistedQuery`)."""
        return self.extensions is not None and "persistedQuery" in self.extensions


class RequestError(BadUserInputError):
    """A request that is not a well-formed GraphQL-over-HTTP request; `status` is its HTTP
    status and `extensions` go into the error's `extensions` next to `code`."""

    def __init__(self, message: str, status: int = 400, **extensions: Any) -> None:
        super().__init__(message, **extensions)
        self.status = status


class BodyTooLargeError(QueryTooComplexError):
    """The body is over the limit (`extensions.limit` "bodyBytes", `maximum`)."""

    status = 413


async def read_params(request: Request, max_body: int) -> GraphQLParams:
    """The request's GraphQL parameters from a GET query string or a POST body."""
    if request.method == "GET":
        return _from_query_string(request)
    media, charset = _content_type(request.headers.get("content-type", ""))
    if not media:
        raise RequestError(f"A POST needs a content-type header: send {JSON}.", 415)
    if media not in (JSON, GRAPHQL):
        raise RequestError(f"Unsupported content type; send {JSON}.", 415)
    if charset not in ("", "utf-8", "utf8"):
        raise RequestError("The request body must be UTF-8 encoded.", 415)
    body = await _read_body(request, max_body)
    if media == GRAPHQL:
        try:
            return GraphQLParams(query=body.decode("utf-8"))
        except UnicodeDecodeError:
            raise RequestError("The request body is not valid UTF-8.") from None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:  # also a body that is not UTF-8, or holds lone surrogates
        raise RequestError("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise RequestError("The request body must be one JSON object (batching is not "
                           "supported).")
    return check_params(data)


def _from_query_string(request: Request) -> GraphQLParams:
    items = request.query_params.multi_items()
    data: dict[str, Any] = {}
    for key, value in items:
        if key not in PARAMETERS:
            continue
        if key in data:
            raise RequestError(f"The parameter {key!r} is given more than once.")
        data[key] = value
    for key in ("variables", "extensions"):
        if key in data:
            try:
                data[key] = orjson.loads(data[key]) if data[key] else None
            except orjson.JSONDecodeError:
                raise RequestError(f"The {key!r} parameter is not valid JSON.") from None
    return check_params(data)


def check_params(data: dict[str, Any]) -> GraphQLParams:
    """The four parameters of a JSON object (a POST body, a WebSocket subscribe payload),
    each checked for its type; RequestError naming the first that is wrong."""
    for key, kind, word in (("query", str, "a string"), ("operationName", str, "a string"),
                            ("variables", dict, "a JSON object"),
                            ("extensions", dict, "a JSON object")):
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            raise RequestError(f"The {key!r} parameter must be {word} (or null).",
                               parameter=key)
    return GraphQLParams(data.get("query"), data.get("operationName"), data.get("variables"),
                         data.get("extensions"))


def _content_type(header: str) -> tuple[str, str]:
    """(media type, charset), both lower case; charset is '' when not given."""
    media, _, rest = header.partition(";")
    charset = ""
    for part in rest.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():  # never buffer more than the limit
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> BodyTooLargeError:
    # built only when it is raised: an error's construction was most of a body read's time
    return BodyTooLargeError(f"The request body is larger than {limit} bytes.",
                             limit="bodyBytes", maximum=limit)

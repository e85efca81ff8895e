"""Errors the schema raises, and how every error becomes a GraphQL `extensions.code`.

    KildeError                         extensions.code
     ├── UnauthenticatedError          UNAUTHENTICATED        no or bad token (HTTP 401)
     ├── ForbiddenError                FORBIDDEN              policy said no; `reason` says why
     ├── BadUserInputError             BAD_USER_INPUT         e.g. a national identity number
     │                                                        that fails mod-11
     ├── AuditUnavailableError         AUDIT_UNAVAILABLE      data not delivered: audit failed
     ├── QueryTooComplexError          QUERY_TOO_COMPLEX      a limit was hit; names the limit
     ├── RateLimitedError              RATE_LIMITED
     ├── LaunchUnavailableError        UPSTREAM_UNAVAILABLE   the launch store did not answer
     │                                                        (extensions.source "launch")
     ├── RegistryUnavailableError      UPSTREAM_UNAVAILABLE   the population registry did not
     │                                                        answer (source "persontjenesten")
     └── PersistedQueryNotFoundError   PERSISTED_QUERY_NOT_FOUND
    connectors.errors.ConnectorError   UPSTREAM_TIMEOUT | UPSTREAM_UNAVAILABLE | UPSTREAM_INVALID
                                       | UPSTREAM_REJECTED, with extensions.source

Parse and validation errors, and variables that cannot be coerced to their type, are the
client's mistake: BAD_USER_INPUT (a coercion error names the variable and its type, never the
value sent). Anything else is masked as INTERNAL_SERVER_ERROR: its message never reaches the
client. Messages never carry a national identity number, a name, a token or a URL path; an
11-digit run a graphql-core message quotes from the query is masked.
"""

from __future__ import annotations

import re
from typing import Any

from graphql import GraphQLError, VariableDefinitionNode, print_ast

from connectors.errors import ConnectorError


class KildeError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class UnauthenticatedError(KildeError):
    code = "UNAUTHENTICATED"


class ForbiddenError(KildeError):
    code = "FORBIDDEN"


class BadUserInputError(KildeError):
    code = "BAD_USER_INPUT"


class AuditUnavailableError(KildeError):
    code = "AUDIT_UNAVAILABLE"


class QueryTooComplexError(KildeError):
    code = "QUERY_TOO_COMPLEX"


class RateLimitedError(KildeError):
    code = "RATE_LIMITED"


class LaunchUnavailableError(KildeError):
    """Kilde's own launch-context store (Redis) did not answer: whether a launch exists is
    unknown, so it is neither given out nor called unknown."""

    code = "UPSTREAM_UNAVAILABLE"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message, source="launch", **extensions)


class RegistryUnavailableError(KildeError):
    """The population registry could not say where a patient lives, so whether a privacy
    officer's municipality oversees them is unknown: nothing is shown (never an unfiltered
    log), and the client may try again."""

    code = "UPSTREAM_UNAVAILABLE"

    def __init__(self, message: str = "The population registry did not answer, so the "
                 "patient's home municipality is unknown; try again shortly.",
                 **extensions: Any) -> None:
        extensions.setdefault("reason", "HOME_MUNICIPALITY_UNKNOWN")
        super().__init__(message, source="persontjenesten", **extensions)


class PersistedQueryNotFoundError(KildeError):
    code = "PERSISTED_QUERY_NOT_FOUND"


_DIGITS = re.compile(r"\d{11}")


def coerced_variable(error: GraphQLError) -> VariableDefinitionNode | None:
    """The variable whose value graphql-core could not coerce, when that is the error."""
    node = error.nodes[0] if error.nodes else None
    return node if error.path is None and isinstance(node, VariableDefinitionNode) else None


def is_input_error(error: GraphQLError) -> bool:
    """True for a client's mistake found before execution: a parse or validation error, or a
    variable value that does not fit its type (never a resolver's or our own failure)."""
    if error.path is not None:
        return False
    return error.original_error is None or coerced_variable(error) is not None


def format_error(error: GraphQLError) -> dict[str, Any]:
    """One GraphQL error as JSON, with `extensions.code`; unknown failures are masked."""
    original = error.original_error
    out: dict[str, Any] = {"message": _DIGITS.sub("***********", error.message)}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    variable = coerced_variable(error)
    if isinstance(original, KildeError):
        out["extensions"] = {"code": original.code, **original.extensions}
    elif isinstance(original, ConnectorError):
        out["extensions"] = {"code": original.code, "source": original.source}
    elif variable is not None:  # a value that does not fit the variable's type
        name = variable.variable.name.value
        out["message"] = (f"Variable '${name}' has a value that is not a valid "
                          f"{print_ast(variable.type)}.")
        out["extensions"] = {"code": "BAD_USER_INPUT", "variable": name}
    elif original is None:
        # parse and validation errors: the query itself is wrong
        out["extensions"] = {"code": "BAD_USER_INPUT"}
    else:
        out["message"] = "Internal error; the request id in the response headers identifies it."
        out["extensions"] = {"code": "INTERNAL_SERVER_ERROR"}
    return out


def error_dict(error: KildeError | ConnectorError, **extra: Any) -> dict[str, Any]:
    """A response error built outside graphql-core (source failures, audit failures)."""
    if isinstance(error, ConnectorError):
        ext: dict[str, Any] = {"code": error.code, "source": error.source}
    else:
        ext = {"code": error.code, **error.extensions}
    ext.update(extra)
    return {"message": error.message, "extensions": ext}

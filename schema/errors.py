"""Kilde's one error tree, and how every error becomes a GraphQL `extensions.code`.

One root, `KildeError` (from `connectors.errors`, the lowest layer, so that connectors' errors
descend from it too). Each code of the contract (DESIGN.md, "Errors") has exactly one class
here, `CONTRACT[code]`; every other error class descends from the class of the code it gives:

    KildeError                           INTERNAL_SERVER_ERROR  masked: the message never
     │                                                          reaches the client
     ├── UnauthenticatedError            UNAUTHENTICATED        no or bad token (HTTP 401)
     │    └── gateway.auth.AuthError     (the doors' 401 challenges)
     ├── ForbiddenError                  FORBIDDEN              policy said no; `reason` says why
     │    └── gateway.auth.NotAllowedHereError   a valid token a door does not serve (403)
     ├── BadUserInputError               BAD_USER_INPUT         the client's mistake: a parse
     │    │                                                     or validation error, a value
     │    │                                                     that fits no variable type, an
     │    │                                                     identity number failing mod-11
     │    ├── gateway.params.RequestError not a well-formed GraphQL-over-HTTP request
     │    └── InvalidValueError           a value sent to an HTTP door that cannot be used
     │         │                          (also a ValueError, for the CLI's same values)
     │         └── gateway.audit.AuditCursorError  an `after` cursor this trail did not issue
     ├── AuditUnavailableError           AUDIT_UNAVAILABLE      data not delivered: audit failed
     │    └── gateway.audit.AuditUnavailableError   the sink's, raised where it fails
     ├── QueryTooComplexError            QUERY_TOO_COMPLEX      a limit was hit; names the limit
     │    └── gateway.params.BodyTooLargeError   the body is over its limit (413)
     ├── RateLimitedError                RATE_LIMITED
     ├── PersistedQueryNotFoundError     PERSISTED_QUERY_NOT_FOUND
     └── ConnectorError                  (a bare one: UPSTREAM_UNAVAILABLE), with `source`
          ├── UpstreamTimeoutError       UPSTREAM_TIMEOUT       made only by connectors.deadline
          ├── UpstreamUnavailableError   UPSTREAM_UNAVAILABLE
          │    ├── LaunchUnavailableError   the launch store did not answer (source "launch")
          │    ├── StoppingError            Kilde itself is stopping (source "kilde", reason
          │    │                            SHUTTING_DOWN; HTTP 503 with Retry-After)
          │    └── schema.write.NoWriterError   no enabled source records that category
          ├── UpstreamInvalidError       UPSTREAM_INVALID
          └── UpstreamRejectedError      UPSTREAM_REJECTED
               └── schema.write.WriteRejectedError   the store refused a write
    (schema.write.WriteUnknownError and WriteNotSentError carry the UPSTREAM_* code of the
    failure they wrap)

`format_error` has one way to answer: `classify()` turns a GraphQL error into one of these
(a KildeError as it is; a parse or validation error, or a variable value that cannot be
coerced to its type, into a BadUserInputError naming the variable and its type, never the value
sent; anything else into the masked root), and its `code` and `extensions` are the answer.
Nothing is matched by the exception's Python type beyond that (no `except ValueError` turning
somebody else's error into BAD_USER_INPUT). Messages never carry a national identity number, a
name, a token or a URL path; an 11-digit run a graphql-core message quotes from the query is
masked. tests/schema/test_errors.py holds the tree to the contract.
"""

from __future__ import annotations

import re
from typing import Any

from graphql import GraphQLError, VariableDefinitionNode, print_ast

from connectors.errors import (
    ConnectorError,
    KildeError,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = [
    "CONTRACT",
    "INTERNAL_MESSAGE",
    "AuditUnavailableError",
    "BadUserInputError",
    "ConnectorError",
    "ForbiddenError",
    "InvalidValueError",
    "KildeError",
    "LaunchUnavailableError",
    "PersistedQueryNotFoundError",
    "QueryTooComplexError",
    "RateLimitedError",
    "RegistryUnavailableError",
    "UnauthenticatedError",
    "classify",
    "coerced_variable",
    "error_dict",
    "format_error",
    "is_input_error",
]


class UnauthenticatedError(KildeError):
    code = "UNAUTHENTICATED"


class ForbiddenError(KildeError):
    code = "FORBIDDEN"


class BadUserInputError(KildeError):
    code = "BAD_USER_INPUT"


class InvalidValueError(BadUserInputError, ValueError):
    """A value the client sent cannot be used (an export bound, a body field): BAD_USER_INPUT,
    and a ValueError too for the CLI, which takes the same values from its command line. A
    door catches this, never a bare ValueError (which would turn a bug into the client's
    mistake and show its message)."""


class AuditUnavailableError(KildeError):
    code = "AUDIT_UNAVAILABLE"


class QueryTooComplexError(KildeError):
    code = "QUERY_TOO_COMPLEX"


class RateLimitedError(KildeError):
    code = "RATE_LIMITED"


class PersistedQueryNotFoundError(KildeError):
    code = "PERSISTED_QUERY_NOT_FOUND"


class LaunchUnavailableError(UpstreamUnavailableError):
    """Kilde's own launch-context store (Redis) did not answer: whether a launch exists is
    unknown, so it is neither given out nor called unknown."""

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__("launch", message)
        self.extensions.update(extensions)


class StoppingError(UpstreamUnavailableError):
    """Kilde itself is stopping and cancelled a request still running when the shutdown grace
    ended (gateway.logs): nothing was delivered, and the same request, sent again, is served by
    another instance or by this one once it is back. The contract has no code of its own for
    that; UPSTREAM_UNAVAILABLE is the one a client already treats as "not now, try again",
    with `source` "kilde" (no upstream is at fault) and `reason` SHUTTING_DOWN."""

    def __init__(self, message: str = "Kilde is stopping and did not finish this request; "
                 "nothing was delivered. Try again.", **extensions: Any) -> None:
        extensions.setdefault("reason", "SHUTTING_DOWN")
        super().__init__("kilde", message)
        self.extensions.update(extensions)


class RegistryUnavailableError(UpstreamUnavailableError):
    """The population registry could not say where a patient lives, so whether a privacy
    officer's municipality oversees them is unknown: nothing is shown (never an unfiltered
    log), and the client may try again."""

    def __init__(self, message: str = "The population registry did not answer, so the "
                 "patient's home municipality is unknown; try again shortly.",
                 **extensions: Any) -> None:
        extensions.setdefault("reason", "HOME_MUNICIPALITY_UNKNOWN")
        super().__init__("persontjenesten", message)
        self.extensions.update(extensions)


# The contract's codes (DESIGN.md), each with the one class that gives it.
CONTRACT: dict[str, type[KildeError]] = {cls.code: cls for cls in (
    UnauthenticatedError, ForbiddenError, BadUserInputError, UpstreamTimeoutError,
    UpstreamUnavailableError, UpstreamInvalidError, UpstreamRejectedError,
    AuditUnavailableError, QueryTooComplexError, RateLimitedError, PersistedQueryNotFoundError,
)}
INTERNAL_MESSAGE = "Internal error; the request id in the response headers identifies it."


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


def classify(error: GraphQLError) -> KildeError:
    """The error of the tree a GraphQL error stands for (see the module docstring)."""
    original = error.original_error
    if isinstance(original, KildeError):
        return original
    variable = coerced_variable(error)
    if variable is not None:  # a value that does not fit the variable's type
        name = variable.variable.name.value
        return BadUserInputError(f"Variable '${name}' has a value that is not a valid "
                                 f"{print_ast(variable.type)}.", variable=name)
    if original is None:  # parse and validation errors: the query itself is wrong
        return BadUserInputError(error.message)
    return KildeError(INTERNAL_MESSAGE)


def format_error(error: GraphQLError) -> dict[str, Any]:
    """One GraphQL error as JSON, with `extensions.code`; unknown failures are masked."""
    kilde = classify(error)
    out: dict[str, Any] = {"message": _DIGITS.sub("***********", kilde.message)}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    out["extensions"] = {"code": kilde.code, **kilde.extensions}
    return out


def error_dict(error: KildeError, **extra: Any) -> dict[str, Any]:
    """A response error built outside graphql-core (source failures, audit failures)."""
    return {"message": error.message,
            "extensions": {"code": error.code, **error.extensions, **extra}}

"""The root of every error a client can see, and the errors a connector raises.

`KildeError` is the one root: every error that becomes a GraphQL `extensions.code` descends
from it (the whole tree, and the map to codes, is drawn in `schema/errors.py`). It lives here,
in the lowest layer, so that connectors' errors can descend from it too. The fan-out turns a
connector's error into a `SourceStatus` and a GraphQL error:

    KildeError                        INTERNAL_SERVER_ERROR (masked) unless a subclass says
     └── ConnectorError               any failure of one source; never hides the others
          ├── UpstreamTimeoutError    TIMEOUT     transient: retry later, serve stale
          │                           (made only by `connectors.deadline`)
          ├── UpstreamUnavailableError UNAVAILABLE transient: connection refused, 5xx, breaker open
          ├── UpstreamInvalidError    INVALID     the upstream answered garbage: alert, don't retry
          └── UpstreamRejectedError   (REJECTED)  the upstream refused us (4xx): don't retry
    ConnectorConfigError              bad settings for a connector, raised at start: an
                                      operator's error (a ValueError), never a client's

Messages name the source and what failed in one sentence. They never carry a national identity
number, a name, a token, a URL path or a response body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class KildeError(Exception):
    """An error a client may see: `code` is its `extensions.code`, `extensions` the rest of
    its `extensions`, `message` one sentence without personal data."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class ConnectorError(KildeError):
    """A failure of one source; `source` names it (`extensions.source`)."""

    code = "UPSTREAM_UNAVAILABLE"
    transient = True
    # a write (connectors.writing): False when it failed before the record left Kilde, so
    # nothing can have been written; otherwise whether the upstream recorded it is not known
    sent: bool | None = None

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message, source=source)
        self.source = source


class UpstreamTimeoutError(ConnectorError):
    code = "UPSTREAM_TIMEOUT"


class UpstreamUnavailableError(ConnectorError):
    code = "UPSTREAM_UNAVAILABLE"


class UpstreamInvalidError(ConnectorError):
    code = "UPSTREAM_INVALID"
    transient = False


class UpstreamRejectedError(ConnectorError):
    code = "UPSTREAM_REJECTED"
    transient = False

    def __init__(self, source: str, message: str, status_code: int | None = None, *,
                 issues: Sequence[str] = ()) -> None:
        super().__init__(source, message)
        self.status_code = status_code
        # an OperationOutcome's issue codes ("invalid", "required", ...), never its text
        self.issues = tuple(issues)


class ConnectorConfigError(ValueError):
    """A connector's configuration is wrong; raised at start, names the connector and setting.

    Loading the registry gathers every connector's problem into one error: `problems` holds
    one sentence each, and the message lists them all.
    """

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__(self.problems[0] if len(self.problems) == 1 else
                         "\n".join(f"  - {p}" for p in self.problems))

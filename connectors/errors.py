"""Errors a connector raises; the fan-out turns them into a `SourceStatus` and a GraphQL error.

    ConnectorError                    any failure of one source; never hides the others
     ├── UpstreamTimeoutError         TIMEOUT     transient: retry later, serve stale
     ├── UpstreamUnavailableError     UNAVAILABLE transient: connection refused, 5xx, breaker open
     ├── UpstreamInvalidError         INVALID     the upstream answered garbage: alert, don't retry
     └── UpstreamRejectedError        (REJECTED)  the upstream refused us (4xx): don't retry
    ConnectorConfigError              bad settings for a connector, raised at start

Messages name the source and what failed in one sentence. They never carry a national identity
number, a name, a token, a URL path or a response body.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConnectorError(Exception):
    """A failure of one source; `source` names it, `code` is the GraphQL `extensions.code`."""

    code = "UPSTREAM_UNAVAILABLE"
    transient = True
    # a write (connectors.writing): False when it failed before the record left Kilde, so
    # nothing can have been written; otherwise whether the upstream recorded it is not known
    sent: bool | None = None

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source
        self.message = message


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

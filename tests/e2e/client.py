"""A keep-alive HTTP client for e2e tests that send many queries to one gateway and sandbox.

`Stack.query` opens a new connection (and TLS context) per call; tables of dozens of queries
use this instead, and reset only the sandbox's request counters between rows.
"""

from __future__ import annotations

from typing import Any

import httpx

from gateway.demo import mint_token
from gateway.settings import Settings


class Client:
    def __init__(self, gateway_url: str, sandbox_url: str, settings: Settings) -> None:
        self.gateway_url = gateway_url
        self.sandbox_url = sandbox_url
        self.settings = settings
        self.http = httpx.Client(timeout=10.0)

    def token(self, persona: str, patient: str | None = None, **options: Any) -> str:
        return mint_token(persona, patient, issuer=self.settings.auth.issuer,
                          audience=self.settings.auth.audience, **options)

    def post(self, query: str, authorization: str | None,
             variables: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"authorization": authorization} if authorization else {}
        return self.http.post(f"{self.gateway_url}/graphql", headers=headers,
                              json={"query": query, "variables": variables or {}})

    def query(self, query: str, token: str, variables: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        r = self.post(query, f"Bearer {token}", variables)
        assert r.status_code == 200, r.text[:500]
        return r.json()  # type: ignore[no-any-return]

    def reset_counts(self) -> None:
        self.http.delete(f"{self.sandbox_url}/_sandbox/requests").raise_for_status()

    def requests(self) -> dict[str, int]:
        """Requests per source since the last reset."""
        return self.http.get(f"{self.sandbox_url}/_sandbox/requests").json()  # type: ignore[no-any-return]

    def requests_below(self, source: str) -> dict[str, int]:
        """Requests per first path segment of `source` (per store for `municipal`)."""
        r = self.http.get(f"{self.sandbox_url}/_sandbox/requests/{source}")
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.http.close()

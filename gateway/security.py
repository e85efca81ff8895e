"""CORS and security headers for every response, configured with `KILDE_CORS__*`.

Sits outermost in the app's middleware stack (gateway/app.py): Starlette's CORS middleware
answers preflights for the configured origins only, and `SecurityHeadersMiddleware` adds the
headers a JSON API with health data should always send: no sniffing, no framing, no referrer,
no caching of GraphQL answers by browsers or proxies, a locked-down CSP on non-HTML responses,
and HSTS when `KILDE_CORS__HSTS_SECONDS` is set (behind TLS).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.settings import CorsSettings

ALWAYS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
_API_CSP = API_CSP.encode("latin-1")


class SecurityHeadersMiddleware:
    """Adds security headers to every HTTP response that does not set its own."""

    def __init__(self, app: ASGIApp, hsts_seconds: int = 0) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds > 0 else ""
        # the raw (name, value) pairs, encoded once: MutableHeaders.setdefault scanned and
        # lower-cased the whole header list once per header, per response
        self._always = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in ALWAYS.items()]
        self._hsts = [(b"strict-transport-security", self.hsts.encode("latin-1"))] if (
            self.hsts) else []

    def secured(self, raw: Iterable[tuple[bytes, bytes]], graphql: bool,
                ) -> list[tuple[bytes, bytes]]:
        """`raw` response headers with each security header the response does not set itself
        appended, in a fixed order (the same as one `setdefault` per header)."""
        headers = list(raw)
        present = {name for name, _ in headers}
        content_type = next((v for n, v in headers if n == b"content-type"), b"")
        wanted = [*self._always]
        if not content_type.startswith(b"text/html"):
            wanted.append((b"content-security-policy", _API_CSP))
        if graphql:
            wanted.append((b"cache-control", b"no-store"))
        wanted += self._hsts
        headers.extend(pair for pair in wanted if pair[0] not in present)
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        graphql = scope["path"].rstrip("/").endswith("/graphql")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.secured(message.get("headers", ()), graphql)
            await send(message)

        await self.app(scope, receive, sending)


def add_security(app: Starlette, cors: CorsSettings) -> None:
    """Install CORS (when origins are configured) and the security headers on `app`."""
    if cors.origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors.origins),
            allow_credentials=cors.allow_credentials,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "dpop", "content-type", "accept", "x-request-id",
                           "cache-control", "apollographql-client-name",
                           "apollographql-client-version"],
            # a browser app needs the DPoP challenge and nonce to sign its retry (RFC 9449 §8)
            expose_headers=["x-request-id", "retry-after", "www-authenticate", "dpop-nonce"],
            max_age=cors.max_age,
        )
    app.add_middleware(SecurityHeadersMiddleware, hsts_seconds=cors.hsts_seconds)

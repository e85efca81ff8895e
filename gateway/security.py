"""CORS and security headers for every response, configured with `KILDE_CORS__*`.

Sits outermost in the app's middleware stack (gateway/app.py): Starlette's CORS middleware
answers preflights for the configured origins only, and `SecurityHeadersMiddleware` adds the
headers a JSON API with health data should always send: no sniffing, no framing, no referrer,
no caching of GraphQL answers by browsers or proxies, a locked-down CSP on non-HTML responses,
and HSTS when `KILDE_CORS__HSTS_SECONDS` is set (behind TLS).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
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


class SecurityHeadersMiddleware:
    """Adds security headers to every HTTP response that does not set its own."""

    def __init__(self, app: ASGIApp, hsts_seconds: int = 0) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds > 0 else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        graphql = scope["path"].rstrip("/").endswith("/graphql")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                if not headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("content-security-policy", API_CSP)
                if graphql:
                    headers.setdefault("cache-control", "no-store")
                if self.hsts:
                    headers.setdefault("strict-transport-security", self.hsts)
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

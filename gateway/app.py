"""The app factory: build everything once in the lifespan, then serve.

The top of the request flow. `create_app(settings)` returns a Starlette app whose lifespan
creates the one shared HTTP client, the connector registry, the policy rules, the audit sink,
the authenticator and the schema, and closes them in reverse order. Nothing is a module global.

>>> app = create_app(Settings.from_env())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from connectors.http import create_http_client
from connectors.registry import Registry, load_connectors
from gateway import demo
from gateway.audit import AuditSink, open_audit_sink
from gateway.auth import Authenticator
from gateway.graphql import Endpoint, handle_graphql
from gateway.logs import AccessLogMiddleware
from gateway.settings import Settings
from policies import load_rules
from schema.context import Services
from schema.query import build_schema

log = logging.getLogger("kilde.app")


@dataclass(frozen=True)
class State:
    settings: Settings
    http: httpx.AsyncClient
    registry: Registry
    audit: AuditSink
    endpoint: Endpoint


class _Health:
    def __init__(self) -> None:
        self.state: dict[str, str] = {}

    def source_health(self, name: str) -> str:
        return self.state.get(name, "UNKNOWN")


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sandbox: ASGIApp | None = None,
) -> Starlette:
    """Build the gateway. `transport` replaces the upstream HTTP transport (tests);
    `sandbox` mounts the simulated upstreams on the same server (the demo)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            http = create_http_client(transport=transport)
            stack.push_async_callback(http.aclose)
            registry = load_connectors(settings.enabled_connectors, settings.connectors, http)
            stack.push_async_callback(registry.aclose)
            rules = load_rules(settings.policy_file or None, agreements=settings.agreements)
            audit = await open_audit_sink(settings.audit.url,
                                          retention_days=settings.audit.retention_days)
            stack.push_async_callback(audit.aclose)
            services = Services(
                registry=registry,
                rules=rules,
                tenants=tuple(t.number for t in settings.tenants),
                access_log=audit,
                deadline_seconds=settings.deadline_seconds,
                health=_Health(),
            )
            endpoint = Endpoint(
                schema=build_schema(),
                services=services,
                authenticator=Authenticator(settings.auth, http, settings.tenants),
                audit=audit,
                graphiql=settings.graphiql and not settings.production,
            )
            log.info("kilde started", extra={})
            yield {"kilde": State(settings, http, registry, audit, endpoint)}

    async def graphql(request: Request) -> Response:
        return await handle_graphql(request, request.state.kilde.endpoint)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        state: State = request.state.kilde
        audit_ok = await state.audit.ping()
        body = {
            "status": "ok" if audit_ok else "unavailable",
            "audit": "ok" if audit_ok else "unavailable",
            "sources": {name: "configured" for name in state.registry.names},
        }
        return JSONResponse(body, status_code=200 if audit_ok else 503)

    async def jwks(request: Request) -> Response:
        return JSONResponse(demo.demo_jwks())

    routes: list[Route | Mount] = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    if not settings.production:
        routes.append(Route("/_demo/jwks.json", jwks))
    if sandbox is not None:
        routes.append(Mount("", app=sandbox))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(AccessLogMiddleware)
    return app

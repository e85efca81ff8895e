"""The app factory: build everything once in the lifespan, then serve.

The top of the request flow. `create_app(settings)` returns a Starlette app whose lifespan
creates the one shared HTTP client, the connector registry, the policy rules, the audit sink,
the authenticator and the schema, and closes them in reverse order. Nothing is a module global.

>>> app = create_app(Settings.from_env())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from connectors.activity import SourceActivity
from connectors.crypto import CacheKeys, ephemeral_secret
from connectors.http import create_http_client
from connectors.registry import Registry, load_connectors
from gateway import gctune, tracing
from gateway.admission import build_admission
from gateway.audit import AuditSink, open_audit_sink
from gateway.audit.retention import retention
from gateway.audit.routes import handle_export
from gateway.auditing import AuditAccess
from gateway.auth import Authenticator
from gateway.auth.dpop import ProofRules
from gateway.auth.replay import open_replay_store
from gateway.cds import ClientJwtVerifier, PatientViewService, discovery
from gateway.events import handle_event, handle_fhir_notification
from gateway.graphiql import graphiql_routes
from gateway.graphql import Endpoint, caller_credentials, handle_graphql
from gateway.launch import LaunchStore, handle_launch, smart_configuration
from gateway.launch.routes import public_base
from gateway.limits import HideSuggestions, UseParsedDocument
from gateway.live import ChangeBus
from gateway.live.relay import open_relay
from gateway.live.socket import Connections, serve_websocket
from gateway.logs import RequestEdgeMiddleware
from gateway.metrics import Metrics, ResponseMetrics
from gateway.recording import write_event
from gateway.security import add_security
from gateway.settings import Settings
from gateway.sources import Sources, wrap_sources
from gateway.telemetry import RequestMetrics
from gateway.upstream import open_token_provider
from policies import load_rules
from schema.context import Services
from schema.query import build_schema
from schema.shape.terminology import load_terminology
from schema.write.idempotency import IdempotencyStore
from schema.write.record import WriteEntry, writers_of

log = logging.getLogger("kilde.app")


@dataclass(frozen=True)
class State:
    settings: Settings
    http: httpx.AsyncClient
    registry: Registry
    audit: AuditSink
    endpoint: Endpoint
    metrics: Metrics  # the one Prometheus registry: register further gateway metrics here
    sources: Sources | None = None  # cache, breakers, fresh-data limiter (gateway/sources.py)
    launches: LaunchStore | None = None  # patient-context handover (gateway/launch)
    cds: PatientViewService | None = None  # CDS Hooks (gateway/cds)
    live: ChangeBus | None = None  # change events for patientUpdates (gateway/live)
    connections: Connections | None = None  # open WebSocket connections per client


class GraphqlRoute:
    """/graphql as an ASGI endpoint: Starlette would wrap a `request -> response` function in
    an exception-handler layer per request (two closures and a send wrapper), and this app
    registers no exception handlers. Errors reach `RequestEdgeMiddleware` as before."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive, send)
        endpoint: Endpoint = request.state.kilde.endpoint
        response = await handle_graphql(request, endpoint)
        if endpoint.telemetry is not None:
            endpoint.telemetry.request(getattr(request.state, "operation", "unknown"),
                                       response.status_code, time.perf_counter() - started)
        await response(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sandbox: ASGIApp | None = None,
    tracer_provider: Any = None,
    extra_routes: Sequence[BaseRoute] = (),
    tune_gc: bool = False,
) -> Starlette:
    """Build the gateway. `transport` replaces the upstream HTTP transport (tests);
    `sandbox` mounts the simulated upstreams on the same server (the demo);
    `tracer_provider` (OpenTelemetry) replaces the one `KILDE_OTLP_ENDPOINT` would make;
    `extra_routes` are served beside the gateway's own (the demo's, from
    `gateway.demo.demo_routes`: this module never imports the demo); `tune_gc` freezes the
    start-up heap and collects less often once started (`kilde serve`: gateway/gctune.py)."""
    provider = tracer_provider or tracing.tracer_provider(settings.otlp_endpoint)
    tracer = provider.get_tracer("kilde") if provider is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        connections = Connections()
        async with contextlib.AsyncExitStack() as stack:
            http = create_http_client(transport=transport)
            stack.push_async_callback(http.aclose)
            tokens = open_token_provider(settings, http)  # None: no HelseID (demo without one)
            registry = load_connectors(settings.enabled_connectors, settings.connectors, http)
            stack.push_async_callback(registry.aclose)
            # cache -> resilience -> connector around every entry; fan-out cannot tell
            sources = wrap_sources(registry, settings)
            registry = sources.registry
            stack.push_async_callback(sources.aclose)
            if tracer is not None:  # a span per source fetch, the trace passed upstream
                registry = tracing.traced_registry(registry, tracer)
                tracing.inject_trace_headers(http)
                if tracer_provider is None:
                    stack.callback(provider.shutdown)
            rules = load_rules(settings.policy_file or None, agreements=settings.agreements)
            terminology = load_terminology(settings.terminology_file or None)
            audit = await open_audit_sink(settings.audit.url,
                                          retention_days=settings.audit.retention_days)
            stack.push_async_callback(audit.aclose)
            # purge beyond KILDE_AUDIT__RETENTION_DAYS now, then daily; stopped before aclose
            await stack.enter_async_context(
                retention(audit, retention_days=settings.audit.retention_days))
            metrics = Metrics()
            telemetry = RequestMetrics(metrics.registry, sources.health.breakers)
            # every execution's accesses are audited inside it, whatever the transport
            schema = build_schema(lambda: AuditAccess(audit, metrics, telemetry),
                                  *([HideSuggestions] if settings.production else []),
                                  parsed=UseParsedDocument, suggestions=not settings.production,
                                  categories=registry.plugin_categories)
            keys = sources.keys or CacheKeys.from_secret(ephemeral_secret())
            launches = LaunchStore(keys, sources.store, ttl_seconds=settings.launch.ttl_seconds)

            async def write_audit(entry: WriteEntry) -> None:  # a write's attempt and outcome
                await audit.write(write_event(entry))

            # changes reach this replica's subscribers at once, the others' through Redis
            live = ChangeBus(keys, open_relay(
                settings.cache.url, keys, namespace=settings.cache.namespace,
                op_timeout=settings.cache.op_timeout_seconds,
                retry_seconds=settings.cache.retry_seconds))
            await live.start()
            stack.push_async_callback(live.aclose)
            metrics.gauge("kilde_live_watchers", "Live subscriptions watching a patient in "
                          "this replica.", lambda: live.watchers)
            metrics.gauge("kilde_live_connections", "Open GraphQL WebSocket connections in "
                          "this replica.", lambda: connections.total)
            services = Services(
                launches=launches,
                registry=registry,
                rules=rules,
                tenants=tuple(t.number for t in settings.tenants),
                access_log=audit,
                deadline_seconds=settings.deadline_seconds,
                health=sources.health,
                fresh_limiter=sources.fresh,
                activity=SourceActivity(),
                terminology=terminology,
                writers=writers_of(registry),
                write_audit=write_audit,
                idempotency=IdempotencyStore(sources.store, keys) if sources.store else None,
                evict=sources.cache.evict if sources.cache is not None else None,
                changes=live,
            )
            # DPoP proofs seen (jti), shared by replicas through the cache's Redis
            replay = open_replay_store(
                settings.cache.url,
                ProofRules(settings.auth.dpop_max_age_seconds,
                           settings.auth.leeway_seconds).replay_window,
                op_timeout=settings.cache.op_timeout_seconds,
                retry_seconds=settings.cache.retry_seconds, namespace=settings.cache.namespace)
            stack.push_async_callback(replay.aclose)
            endpoint = Endpoint(
                schema=schema,
                services=services,
                authenticator=Authenticator(settings.auth, http, settings.tenants,
                                            rules=rules, replay=replay,
                                            nonce_key=settings.cache.key),
                audit=audit,
                graphiql=settings.graphiql and not settings.production,
                metrics=metrics,
                # APQ and rate limits share the cache's guarded store (Redis: every replica)
                admission=build_admission(settings, schema._schema, sources.store, sources.keys),
                max_body_bytes=settings.limits.max_body_bytes,
                telemetry=telemetry,
                tokens=tokens,
            )
            log.info("kilde started", extra={})
            cds = PatientViewService(
                endpoint, launches,
                ClientJwtVerifier(ClientJwtVerifier.parse_clients(settings.cds.clients), http,
                                  sources.store, keys, leeway=settings.auth.leeway_seconds),
                app_url=settings.launch.app_url, demo=not settings.production,
                municipalities={t.number: t.name for t in settings.tenants})
            if tune_gc:
                gctune.after_start()
            yield {"kilde": State(settings, http, registry, audit, endpoint, metrics, sources,
                                  launches, cds, live, connections)}

    async def graphql_socket(websocket: WebSocket) -> None:
        state: State = websocket.state.kilde
        assert state.connections is not None  # built in the lifespan above
        await serve_websocket(websocket, state.endpoint, settings.live, state.connections)

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
        if state.sources is not None:  # Redis trouble is "degraded", never a 503
            body["cache"] = await state.sources.readiness()
            body["breakers"] = state.sources.health.breakers()
        if state.live is not None:  # the change relay between replicas: degraded, never a 503
            body["live"] = state.live.relay_status
        return JSONResponse(body, status_code=200 if audit_ok else 503)

    async def events(request: Request) -> Response:
        state: State = request.state.kilde
        return await handle_event(request, state.endpoint.authenticator, state.registry,
                                  state.sources.cache if state.sources else None, state.live)

    async def fhir_notification(request: Request) -> Response:
        state: State = request.state.kilde
        return await handle_fhir_notification(
            request, state.endpoint.authenticator, state.registry,
            state.sources.cache if state.sources else None, state.live,
            request.path_params["source"])

    async def audit_export(request: Request) -> Response:
        state: State = request.state.kilde
        endpoint = state.endpoint
        return await handle_export(
            request, endpoint.authenticate, state.audit, endpoint.services,
            credentials=lambda r: caller_credentials(endpoint.tokens,
                                                     r.headers.get("authorization")))

    async def launch(request: Request) -> Response:
        state: State = request.state.kilde
        assert state.launches is not None  # built in the lifespan above
        return await handle_launch(request, state.endpoint.authenticate, state.launches,
                                   settings, state.endpoint.authenticator.trust)

    async def cds_discovery(request: Request) -> Response:
        return discovery()

    async def cds_call(request: Request) -> Response:
        state: State = request.state.kilde
        assert state.cds is not None  # built in the lifespan above
        return await state.cds.handle(request, request.path_params["service_id"],
                                      public_base(request))

    async def smart_config(request: Request) -> Response:
        state: State = request.state.kilde
        return smart_configuration(request, settings, state.endpoint.authenticator.trust)

    async def metrics_text(request: Request) -> Response:
        body, media = request.state.kilde.metrics.render(request.headers.get("accept", ""))
        return Response(body, media_type=media)

    routes: list[BaseRoute] = [
        # every method reaches the endpoint: a 405 there is a JSON GraphQL error like the rest
        Route("/graphql", GraphqlRoute(),
              methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
        WebSocketRoute("/graphql", graphql_socket),  # graphql-transport-ws (gateway/live)
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/events", events, methods=["POST"]),
        Route("/events/fhir/{source}", fhir_notification, methods=["POST"]),
        Route("/audit/export", audit_export, methods=["GET", "POST"]),
        Route("/launch", launch, methods=["POST"]),
        Route("/cds-services", cds_discovery),
        Route("/cds-services/{service_id}", cds_call, methods=["POST"]),
        Route("/.well-known/smart-configuration", smart_config),
        Route("/metrics", metrics_text),
        *extra_routes,
    ]
    if settings.graphiql and not settings.production:
        routes.extend(graphiql_routes())
    if sandbox is not None:
        routes.append(Mount("", app=sandbox))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(RequestEdgeMiddleware)  # innermost: request id, crash guard, log
    app.add_middleware(ResponseMetrics)  # every answer by route and status, the edge's 500 too
    add_security(app, settings.cors)
    if tracer is not None:
        app.add_middleware(tracing.TracingMiddleware, tracer=tracer)
    return app

"""The sandbox (the FKJ "sandkasse"): all simulated upstreams in one Starlette app.

    /municipal/{kommunenummer}/...   municipal stores, FHIR R4 (sandbox.municipal; capability
                                     profile from KILDE_SANDBOX__MUNICIPAL__PROFILE)
    /kjernejournal/...               Kjernejournal critical-information API (sandbox.kjernejournal)
    /pll/Patient/$getMedication      SFM $getMedication, PLL section (sandbox.medication)
    /eresept/Patient/$getMedication  SFM $getMedication, prescriptions (sandbox.medication)
    /proevesvar/...                  Pasientens prøvesvar, NILAR (sandbox.proevesvar)
    /persontjenesten/...             Persontjenesten, the population registry's Person API v3
                                     (sandbox.persontjenesten)
    /_sandbox/patients               scenario patients (nin, name, municipality, tags), with
                                     those of KILDE_SANDBOX__SCENARIOS (a folder of FHIR
                                     transaction Bundles, sandbox.scenarios)
    /_sandbox/faults[/<source>]      GET the fault knobs, PUT one source's knobs
    /_sandbox/requests               GET request counts per source, DELETE to reset them
    /_sandbox/requests/<source>      GET that source's counts per first path segment
                                     (per store for `municipal`: {"0301": 2, "4601": 0, ...})
    /helseid/...                     the HelseID simulator (sandbox.helseid): discovery, JWKS,
                                     /connect/token; its knobs under /_sandbox/helseid/...
    /_sandbox/auth                   GET per source: tokens accepted, refused (by error), and
                                     the audiences presented; DELETE resets
    /_sandbox/written                GET the records posted to the municipal stores, counted
                                     per store and type ({"0301": {"Consent": 1}})

With `KILDE_SANDBOX__EVENTS_URL` (Kilde's `POST /events`; `kilde demo` sets its own), the
municipal event store (sandbox.events) tells Kilde whenever the sandbox's data changes.

Every fake sits behind `sandbox.guard.TokenGuard`: a call needs a DPoP-bound token from the
simulator for that fake's own resource (`sandbox.helseid.RESOURCES`), else 401.
`KILDE_SANDBOX__REQUIRE_TOKENS=false` switches the guards off (a vendor's first steps).

Imports nothing from the gateway: it stands in for independent upstreams.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import (
    events,
    kjernejournal,
    medication,
    municipal,
    persontjenesten,
    proevesvar,
    scenarios,
    world,
)
from sandbox import helseid as simulator
from sandbox.faults import FaultMiddleware, fault_from_env
from sandbox.guard import TokenGuard
from sandbox.helseid import app as simulator_app
from sandbox.helseid.issuer import sandbox_root
from sandbox.world import MUNICIPALITIES

SOURCES = ("municipal", "kjernejournal", "pll", "eresept", "proevesvar", "persontjenesten")


def _fake(source: str, environ: Mapping[str, str] | None,
          sender: events.EventSender | None = None) -> ASGIApp:
    if source == "municipal":  # records posted to it: app.state.written; each one an event
        return municipal.create_app(municipal.profile_from_env(environ),
                                    on_change=sender.store_changed if sender else None)
    if source == "kjernejournal":
        return kjernejournal.create_app()
    if source in ("pll", "eresept"):
        return medication.create_app(source)
    if source == "persontjenesten":
        return persontjenesten.create_app()
    return proevesvar.create_app()


def create_app(environ: Mapping[str, str] | None = None) -> Starlette:
    """Build the sandbox. Fault knobs start from `environ` (default `os.environ`); the
    simulator is `app.state.helseid` (tests mint persona tokens with it in-process)."""
    env = os.environ if environ is None else environ
    helseid = simulator.HelseId.from_env(env)
    url = events.events_url_from_env(env)
    sender = events.EventSender(url, helseid) if url else None
    fakes = {s: _fake(s, environ, sender) for s in SOURCES}
    guards = {s: FaultMiddleware(fakes[s], fault_from_env(s, environ)) for s in SOURCES}
    tokens = {s: TokenGuard(guards[s], helseid, s, simulator.RESOURCES[s][0]) for s in SOURCES}
    enforce = _flag(env, "KILDE_SANDBOX__REQUIRE_TOKENS", default=True)

    async def patients(request: Request) -> Response:
        return JSONResponse([
            {"nin": p.nin, "name": p.name, "municipality": p.municipality,
             "tags": list(p.tags)}
            for p in world.patients()
        ])

    async def municipalities(request: Request) -> Response:
        return JSONResponse([{"number": m.number, "name": m.name} for m in MUNICIPALITIES])

    async def faults(request: Request) -> Response:
        return JSONResponse({s: g.fault.as_dict() for s, g in guards.items()})

    async def fault(request: Request) -> Response:
        source = request.path_params["source"]
        if source not in guards:
            return JSONResponse({"error": f"Unknown source {source!r}; one of {list(SOURCES)}."},
                                status_code=404)
        if request.method == "PUT":
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("Expected a JSON object.")
                guards[source].fault.update(body)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(guards[source].fault.as_dict())

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            for guard in guards.values():
                guard.reset()
        return JSONResponse({s: g.requests for s, g in guards.items()})

    async def source_requests(request: Request) -> Response:
        source = request.path_params["source"]
        if source not in guards:
            return JSONResponse({"error": f"Unknown source {source!r}; one of {list(SOURCES)}."},
                                status_code=404)
        counts = dict(guards[source].segments)
        if source == "municipal":  # every store, so a store never asked reads 0
            counts = {m.number: 0 for m in MUNICIPALITIES} | counts
        return JSONResponse(counts)

    async def written(request: Request) -> Response:
        held = fakes["municipal"].state.written  # type: ignore[attr-defined]
        counts: dict[str, dict[str, int]] = {}
        for number, resources in held.items():
            for resource in resources:
                kinds = counts.setdefault(number, {})
                kinds[resource["resourceType"]] = kinds.get(resource["resourceType"], 0) + 1
        return JSONResponse(counts)

    async def auth(request: Request) -> Response:
        if request.method == "DELETE":
            for guard in tokens.values():
                guard.reset()
        return JSONResponse({s: g.as_dict() for s, g in tokens.items()})

    routes = [
        Route("/_sandbox/patients", patients),
        Route("/_sandbox/municipalities", municipalities),
        Route("/_sandbox/faults", faults),
        Route("/_sandbox/faults/{source}", fault, methods=["GET", "PUT"]),
        Route("/_sandbox/requests", requests, methods=["GET", "DELETE"]),
        Route("/_sandbox/requests/{source}", source_requests),
        Route("/_sandbox/auth", auth, methods=["GET", "DELETE"]),
        Route("/_sandbox/written", written),
        *simulator_app.control_routes(helseid),
        Mount("/helseid", app=simulator_app.create_app(helseid)),
        *(Mount(f"/{s}", app=tokens[s] if enforce else g) for s, g in guards.items()),
    ]
    folder = env.get("KILDE_SANDBOX__SCENARIOS", "").strip()
    middleware = []
    if folder:  # a vendor's own scenario patients, validated now: a bad file stops the start
        key, added = scenarios.load_folder(folder)
        middleware.append(Middleware(scenarios.ScenarioScope, key=key, added=added))
    if sender is not None:  # the event store's token names this sandbox's issuer
        middleware.append(Middleware(_RootScope))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.helseid = helseid
    app.state.events = sender  # None: KILDE_SANDBOX__EVENTS_URL is not set
    return app


class _RootScope:
    """Notes the sandbox root of each request, for the event store's token (sandbox.events)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            events.current_root.set(sandbox_root(scope))
        await self.app(scope, receive, send)


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if raw.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {raw!r}.")

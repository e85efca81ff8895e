"""The routes only a demo serves: the demo issuer's JWKS, personas, tokens and the web app.

Sits at the HTTP edge beside `/graphql`, handed to `create_app(settings, extra_routes=...)` by
`kilde demo` (and by `gateway.asgi` under `KILDE_MODE=demo`). `/_demo/jwks.json` is the demo
issuer's public key set; `/_demo/personas` and `POST /_demo/token` stand in for HelseID, from
which a real vendor's app gets its token; `/app` is the legevakt web app that uses them.

>>> routes = demo_routes(Settings.from_env({"KILDE_MODE": "demo"}))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import webapp
from gateway.demo import tokens
from gateway.settings import Settings

_MAX_BODY_BYTES = 4096


def _persona_json(p: tokens.Persona) -> dict[str, Any]:
    return {
        "key": p.key,
        "kind": p.kind,
        "description": p.description,
        "name": p.name,
        "profession": p.profession.text if p.profession else None,
        "pointOfCare": p.point_of_care.name if p.point_of_care else None,
        "purposeOfUse": p.purpose.value if p.purpose else None,
    }


def _error(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def demo_routes(settings: Settings) -> list[BaseRoute]:
    """`GET /_demo/jwks.json`, `GET /_demo/personas`, `POST /_demo/token` {persona, patient,
    jkt} -> {token, tokenType}, and the web app at `/app`.

    `jkt` (optional) is the RFC 7638 thumbprint of the caller's DPoP key: the token is bound
    to it (`cnf.jkt`) and `tokenType` is "DPoP", as HelseID issues them.

    Refused in production: the demo signing key is public.
    """
    if not settings.demo:
        raise ValueError("The demo routes are served only with KILDE_MODE=demo "
                         "(the demo signing key is public).")

    async def jwks(request: Request) -> Response:
        return JSONResponse(tokens.demo_jwks())

    async def personas(request: Request) -> Response:
        return JSONResponse([_persona_json(p) for p in tokens.PERSONAS.values()])

    async def token(request: Request) -> Response:
        body = await request.body()
        if len(body) > _MAX_BODY_BYTES:
            return _error("The request body is too large.")
        try:
            params = await request.json()
        except ValueError:
            return _error("The request body must be JSON: {\"persona\": ..., \"patient\": ...}.")
        if not isinstance(params, dict) or not isinstance(params.get("persona"), str):
            return _error("Send {\"persona\": NAME, \"patient\": NIN}; 'persona' is required.")
        if params["persona"] not in tokens.PERSONAS:  # not echoed: it might be anything
            return _error(f"Unknown persona; one of {sorted(tokens.PERSONAS)}.")
        patient = params.get("patient")
        if patient is not None and not isinstance(patient, str):
            return _error("'patient' must be a string.")
        jkt = params.get("jkt")
        if jkt is not None and not isinstance(jkt, str):
            return _error("'jkt' must be a string (the DPoP key's RFC 7638 thumbprint).")
        try:
            minted = tokens.mint_token(params["persona"], patient or None,
                                       issuer=settings.auth.issuer,
                                       audience=settings.auth.audience, jkt=jkt or None)
        except ValueError as exc:  # a bad NIN, a missing patient, a bad jkt; none echoed
            return _error(str(exc))
        return JSONResponse({"token": minted, "tokenType": "DPoP" if jkt else "Bearer"},
                            headers={"cache-control": "no-store"})

    return [
        Route("/_demo/jwks.json", jwks),
        Route("/_demo/personas", personas),
        Route("/_demo/token", token, methods=["POST"]),
        *webapp.app_routes(),
    ]

"""Routes for the legevakt web app: its static files, and demo-only personas and tokens.

Sits at the HTTP edge next to `/graphql`. The files are a fixed allow-list read from this
package (no directory listing, no path from the request reaches the file system) and go out
with a strict Content-Security-Policy. `/_demo/personas` and `/_demo/token` exist only in demo
mode: they stand in for HelseID, from which a real vendor's app gets its token.

>>> sorted(ASSETS)
['app.css', 'app.js', 'index.html', 'render.js']
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway import demo
from gateway.settings import Settings

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "render.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
_HEADERS = {
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
_MAX_BODY_BYTES = 4096


def _read(name: str) -> bytes:
    return files(__package__).joinpath(name).read_bytes()


async def _asset(request: Request) -> Response:
    name = request.path_params.get("name", "index.html")
    media = ASSETS.get(name)
    if media is None:
        return Response("Not found.", status_code=404, media_type="text/plain")
    return Response(_read(name), media_type=media, headers=_HEADERS)


async def _to_index(request: Request) -> Response:
    return RedirectResponse("/app/", status_code=308)


def app_routes() -> list[Route]:
    """`/app/` serves the page; `/app/<file>` its scripts and stylesheet."""
    return [
        Route("/app", _to_index),
        Route("/app/", _asset),
        Route("/app/{name}", _asset),
    ]


def _persona_json(p: demo.Persona) -> dict[str, Any]:
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


def demo_routes(settings: Settings) -> list[Route]:
    """`GET /_demo/personas` and `POST /_demo/token` {persona, patient} -> {token}.

    Never mount these in production: the demo signing key is public.
    """
    if settings.production:
        raise ValueError("The demo token routes must not be mounted in production.")

    async def personas(request: Request) -> Response:
        return JSONResponse([_persona_json(p) for p in demo.PERSONAS.values()])

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
        if params["persona"] not in demo.PERSONAS:  # not echoed: it might be anything
            return _error(f"Unknown persona; one of {sorted(demo.PERSONAS)}.")
        patient = params.get("patient")
        if patient is not None and not isinstance(patient, str):
            return _error("'patient' must be a string.")
        try:
            minted = demo.mint_token(params["persona"], patient or None,
                                     issuer=settings.auth.issuer, audience=settings.auth.audience)
        except ValueError as exc:  # a bad NIN or a missing patient; no input is echoed
            return _error(str(exc))
        return JSONResponse({"token": minted, "tokenType": "Bearer"},
                            headers={"cache-control": "no-store"})

    return [
        Route("/_demo/personas", personas),
        Route("/_demo/token", token, methods=["POST"]),
    ]

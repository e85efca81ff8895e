"""Routes for the legevakt web app: its static files.

Sits at the HTTP edge next to `/graphql`. The files are a fixed allow-list read from this
package (no directory listing, no path from the request reaches the file system) and go out
with a strict Content-Security-Policy. The demo serves them (gateway/demo/routes.py), beside
the `/_demo/personas` and `/_demo/token` routes that stand in for HelseID.

>>> sorted(ASSETS)
['app.css', 'app.js', 'dpop.js', 'index.html', 'live.js', 'render.js']
"""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "render.js": "text/javascript; charset=utf-8",
    "dpop.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
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

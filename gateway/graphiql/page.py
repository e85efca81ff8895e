"""The GraphiQL page and its files: a fixed allow-list from this package, a strict CSP.

>>> "graphiql.min.js" in ASSETS
True
"""

from __future__ import annotations

from importlib.resources import files

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

EXAMPLE_QUERY = """query Legevakt($nin: String!) {
  patient(nin: $nin) {
    alerts { kind title detail provenance { source municipality } }
    treatmentLimitations { code { code display } description decidedAt provenance { source recordId } }
    criticalInformation { type description severity provenance { source } }
    medications { name dosage { text } conflicts provenances { source } }
    labResults(first: 3) { code { display } issuedAt results { code { display } value unit abnormal } }
    municipalServices { code { display } status unit phone }
    conditions { code { system code display } }
    sources { source category status latencyMs detail }
  }
}"""
EXAMPLE_PATIENT = "14033841389"  # legevakt-hlr in the sandbox: synthetic

# name -> (package, media type); nothing outside this table is ever served
ASSETS = {
    "graphiql.min.js": ("gateway.graphiql.assets", "text/javascript; charset=utf-8"),
    "graphiql.min.css": ("gateway.graphiql.assets", "text/css; charset=utf-8"),
    "react.production.min.js": ("gateway.graphiql.assets", "text/javascript; charset=utf-8"),
    "react-dom.production.min.js": ("gateway.graphiql.assets", "text/javascript; charset=utf-8"),
    "LICENSES.txt": ("gateway.graphiql.assets", "text/plain; charset=utf-8"),
    "kilde-graphiql.js": ("gateway.graphiql", "text/javascript; charset=utf-8"),
    "kilde-graphiql.css": ("gateway.graphiql", "text/css; charset=utf-8"),
}
# GraphiQL sets style attributes and data: fonts/images itself; scripts only from here
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
       "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def page() -> HTMLResponse:
    """The IDE, with the legevakt query and its variables ready to run."""
    config = orjson.dumps({"query": EXAMPLE_QUERY, "variables": {"nin": EXAMPLE_PATIENT}})
    # inside <script> nothing is unescaped: keep "</script>" out with JSON's own escape
    body = _read("gateway.graphiql", "page.html").decode().replace(
        "{{config}}", config.decode().replace("<", "\\u003c"))
    return HTMLResponse(body, headers={**HEADERS, "content-security-policy": CSP,
                                       "cache-control": "no-cache"})


def _read(package: str, name: str) -> bytes:
    return files(package).joinpath(name).read_bytes()


async def _asset(request: Request) -> Response:
    entry = ASSETS.get(request.path_params["name"])
    if entry is None:
        return Response("Not found.", status_code=404, media_type="text/plain")
    package, media = entry
    return Response(_read(package, request.path_params["name"]), media_type=media,
                    headers={**HEADERS, "cache-control": "public, max-age=3600"})


def graphiql_routes() -> list[Route]:
    """`/graphiql/<file>`: GraphiQL's build, React, and Kilde's start-up script."""
    return [Route("/graphiql/{name}", _asset)]

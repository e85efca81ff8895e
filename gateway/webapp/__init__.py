"""The legevakt web app: a static page at `/app`, served by the demo.

Sits beside the GraphQL endpoint at the HTTP edge: gateway/demo/routes.py mounts
`app_routes()` next to the demo's token helper. The page itself talks only to the public
GraphQL API with a bearer token, as any vendor's app would.
"""

from __future__ import annotations

from gateway.webapp.routes import ASSETS, app_routes

__all__ = ["ASSETS", "app_routes"]

"""The legevakt web app: a static page at `/app` and, in demo mode, its token helper.

Sits beside the GraphQL endpoint at the HTTP edge: `gateway.app.create_app` mounts
`app_routes()` and, outside production, `demo_routes(settings)`. The page itself talks only to
the public GraphQL API with a bearer token, as any vendor's app would.
"""

from __future__ import annotations

from gateway.webapp.routes import ASSETS, app_routes, demo_routes

__all__ = ["ASSETS", "app_routes", "demo_routes"]

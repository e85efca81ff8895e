"""GraphiQL, served from this package: no CDN, so the IDE works on a machine with no internet.

Sits at the HTTP edge beside `/graphql`: a browser asking `/graphql` for HTML gets `page()`,
which loads GraphiQL's production build and React from `assets/` (vendored from the npm
registry by `vendor/graphiql/refresh.sh`, licences in assets/LICENSES.txt) and Kilde's small
start-up script. In the demo, a persona picker above the IDE fills the Authorization header with
a demo token (`POST /_demo/token`); elsewhere the user pastes their own HelseID token there.
Served only where GraphiQL is on (never in production).
"""

from __future__ import annotations

from gateway.graphiql.page import EXAMPLE_QUERY, graphiql_routes, page

__all__ = ["EXAMPLE_QUERY", "graphiql_routes", "page"]

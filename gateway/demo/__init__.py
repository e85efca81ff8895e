"""The demo: its signing key and personas (`tokens`), and the routes only a demo serves.

Outside the production app. Only the CLI's `demo` and `token` commands, `gateway.asgi` under an
explicit `KILDE_MODE=demo`, and tests import this package; `gateway.app` never does, so a
production process holds neither the demo key nor `sandbox` (tests/gateway/test_production.py
checks the import graph). The demo routes reach the app as `create_app(settings,
extra_routes=demo_routes(settings))`.
"""

from __future__ import annotations

from gateway.demo.routes import demo_routes
from gateway.demo.tokens import (
    DEMO_CLIENT_ID,
    DEMO_KID,
    PERSONAS,
    PRIVACY_OFFICER_PID,
    Persona,
    demo_jwks,
    mint_event_token,
    mint_token,
)

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_KID",
    "PERSONAS",
    "PRIVACY_OFFICER_PID",
    "Persona",
    "demo_jwks",
    "demo_routes",
    "mint_event_token",
    "mint_token",
]

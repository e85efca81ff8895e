"""The ASGI entry point for `kilde serve` (uvicorn imports it in each worker process).

Production unless told otherwise: the app is built from `KILDE_*` alone and imports neither
the demo nor `sandbox`. Only an explicit `KILDE_MODE=demo` adds the demo's routes (its JWKS,
tokens, web app), which `kilde serve` warns about at start. A serving process tunes the
garbage collector once started (gateway/gctune.py).
"""

from __future__ import annotations

from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import Settings


def build() -> Starlette:
    settings = Settings.from_env()
    if not settings.demo:
        return create_app(settings, tune_gc=True)
    from gateway.demo import demo_routes  # KILDE_MODE=demo only: never in production

    return create_app(settings, extra_routes=demo_routes(settings), tune_gc=True)


app = build()

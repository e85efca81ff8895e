"""The ASGI entry point for `kilde serve` (uvicorn imports it in each worker process)."""

from __future__ import annotations

from gateway.app import create_app
from gateway.settings import Settings

app = create_app(Settings.from_env())

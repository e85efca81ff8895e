"""Patient-context handover (SMART App Launch style): an EPJ hands a patient to an app.

Sits at the HTTP edge beside `/graphql`: `POST /launch` creates a short-lived, single-use
launch id bound to the user (routes.py); `launchContext(launch)` in GraphQL redeems it
(store.py); `/.well-known/smart-configuration` says what Kilde supports.
"""

from __future__ import annotations

from gateway.launch.routes import handle_launch, smart_configuration
from gateway.launch.store import LaunchContext, LaunchStore, LaunchUnavailableError

__all__ = ["LaunchContext", "LaunchStore", "LaunchUnavailableError", "handle_launch",
           "smart_configuration"]

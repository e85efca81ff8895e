"""Live updates: what changed for which patient, heard from the sources and told to clients.

Sits beside the GraphQL endpoint. Changes come from `POST /events` (the municipal event store),
from FHIR stores' subscription notifications (`POST /events/fhir`), and from Kilde's own writes
(`Services.changes.publish`); the `ChangeBus` hands each to this replica's watchers and relays it
to the other replicas over Redis pub/sub (`relay.py`). A change says what changed (patient,
source, categories, time), never the clinical content: a client re-queries what it needs. The
`patientUpdates` subscription (`schema/subscription.py`) decides every change for its watcher
with the same policies a query uses; the WebSocket door is `gateway/live/socket.py`.
"""

from gateway.live.bus import ChangeBus
from gateway.live.change import ORIGINS, Change

__all__ = ["ORIGINS", "Change", "ChangeBus"]

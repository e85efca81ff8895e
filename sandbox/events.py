"""The municipal event store's notifier (hendelseslager): tells Kilde that a patient's data changed.

Sits beside the simulated stores: when the sandbox's data changes (a write to a municipal
store, a change made from a control endpoint), `EventSender.changed()` posts

    {"source": "municipal", "patient": "<nin>", "categories": [...], "municipality": "0301"}

to Kilde's `POST /events` (`KILDE_SANDBOX__EVENTS_URL`; empty: no events are sent) as the
event store does in a real municipality: with its own machine token from the HelseID simulator
(client credentials, persona `hendelseslager`, scope kilde/events.write), DPoP-bound, a fresh
proof per request. Sending never holds up the change: it runs in the background, tries three
times (Kilde answers 503 while its cache cannot record the change) and logs, without the
patient, when it gives up. `drain()` waits for what is under way (tests, shutdown).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping, Sequence

import httpx

from connectors.credentials import dpop_proof, generate_key
from sandbox.helseid.issuer import KILDE_AUDIENCE, HelseId

log = logging.getLogger("kilde.sandbox.events")

ATTEMPTS = 3
BACKOFF_SECONDS = 0.2
# the sandbox root of the request that made the change (its HelseID issuer is under it)
current_root: contextvars.ContextVar[str] = contextvars.ContextVar("sandbox_root", default="")


# what Kilde calls the municipal store's resource types (an unknown type: every category)
RESOURCE_CATEGORIES: Mapping[str, str] = {
    "Consent": "treatment_limitations", "Flag": "critical_information",
    "AllergyIntolerance": "critical_information", "EpisodeOfCare": "municipal_services",
    "Condition": "conditions", "MedicationAdministration": "medications",
    "DocumentReference": "documents", "Composition": "documents",
}


def events_url_from_env(environ: Mapping[str, str]) -> str:
    return environ.get("KILDE_SANDBOX__EVENTS_URL", "").strip()


class EventSender:
    """Posts "data changed" to Kilde's /events at `url` with the event store's token."""

    def __init__(self, url: str, helseid: HelseId, *, timeout: float = 5.0) -> None:
        self.url = url
        self.helseid = helseid
        self.timeout = timeout
        self.key = generate_key()  # the event store's DPoP key, for this process
        self.sent = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def changed(self, nin: str, *, municipality: str | None,
                categories: Sequence[str] = (), source: str = "municipal") -> None:
        """Tell Kilde, in the background; call from inside the request that made the change."""
        issuer = self.helseid.fixed_issuer or f"{current_root.get()}/helseid"
        event: dict[str, object] = {"source": source, "patient": nin,
                                    "categories": list(categories)}
        if municipality is not None:
            event["municipality"] = municipality
        task = asyncio.get_running_loop().create_task(self._send(event, issuer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def store_changed(self, number: str, nin: str, resource_type: str) -> None:
        """A municipal store's hook (`sandbox.municipal.create_app(on_change=...)`): store
        `number` stored a `resource_type` for patient `nin`."""
        category = RESOURCE_CATEGORIES.get(resource_type)
        self.changed(nin, municipality=number, categories=(category,) if category else ())

    async def _send(self, event: dict[str, object], issuer: str) -> None:
        token = self.helseid.persona_token("hendelseslager", issuer=issuer,
                                           audience=KILDE_AUDIENCE, jkt=self.key.thumbprint,
                                           lifetime=300)
        problem = ""
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            for attempt in range(ATTEMPTS):
                if attempt:
                    await asyncio.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
                try:
                    r = await http.post(self.url, json=event, headers={
                        "authorization": f"DPoP {token}",
                        "dpop": dpop_proof(self.key, "POST", self.url, access_token=token)})
                except httpx.HTTPError as exc:
                    problem = type(exc).__name__
                    continue
                if r.status_code == 202:
                    self.sent += 1
                    return
                problem = f"HTTP {r.status_code}"
                if r.status_code < 500:
                    break  # refused: sending it again will not help
        self.failed += 1
        log.warning("event for source %s not delivered to Kilde (%s)", event["source"], problem)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

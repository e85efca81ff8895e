"""What each municipal store declares it can do: its CapabilityStatement, fetched once and kept.

Sits under `connectors.municipal.connector`, which asks `CapabilityCache.get` before it plans a
store's searches. `GET [base]/metadata` is fetched inside the request's own budget, kept for
`ttl` seconds and shared by concurrent requests (one fetch in flight per store). A store whose
metadata cannot be read is treated as the most conservative server (no batch, no chaining,
only the standard R4 search parameters) for a short while, then asked again: the request goes
on, only slower. A store that answers its metadata with something that is no usable
CapabilityStatement (not JSON, another resource, no `rest` in server mode) is `unusable`: the
connector answers that store `INVALID` (kept for the short while too), since a base URL that
serves garbage at `/metadata` cannot be trusted to serve a patient's records.

What Kilde reads from it: `rest.interaction` `batch`; per resource type the `searchParam`
names, and chained search where the chained name itself (`patient.identifier`) is listed
(R4 has no other declaration of chaining a client can rely on); and the types it creates with
a conditional create (`interaction` `create` and `conditionalCreate: true`), the only ones
Kilde writes. A type the statement does not list cannot be searched; a type listed without
any `searchParam` is taken to support the standard R4 ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors import ConnectorError, UpstreamInvalidError
from connectors.credentials import UpstreamAuth
from connectors.fhir import request_json

# The R4 search parameters Kilde uses, assumed when a store does not say what it supports.
STANDARD_PARAMETERS: Mapping[str, frozenset[str]] = {
    "Patient": frozenset({"identifier", "_id"}),
    "Consent": frozenset({"patient", "scope", "_id"}),
    "EpisodeOfCare": frozenset({"patient", "_id"}),
    "Condition": frozenset({"patient", "_id"}),
    "MedicationAdministration": frozenset({"patient", "_id"}),
    "DocumentReference": frozenset({"patient", "_id"}),
    "AllergyIntolerance": frozenset({"patient", "_id"}),
    "Flag": frozenset({"patient", "_id"}),
}


@dataclass(frozen=True, slots=True)
class StoreCapabilities:
    """The parts of a store's CapabilityStatement the connector plans with.

    >>> StoreCapabilities().supports("Consent", "scope")
    True
    """

    batch: bool = False
    parameters: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: dict(STANDARD_PARAMETERS))
    declared: bool = False  # False: the statement could not be read; standard R4 assumed
    # types the store creates with `If-None-Exist` (interaction create + conditionalCreate)
    conditional_create: frozenset[str] = frozenset()
    unusable: bool = False  # the store answered its metadata with garbage

    def supports(self, resource_type: str, parameter: str) -> bool:
        return parameter in self.parameters.get(resource_type, frozenset())

    def chains(self, resource_type: str) -> bool:
        return self.supports(resource_type, "patient.identifier")


def parse_capabilities(body: Any) -> StoreCapabilities:
    """A CapabilityStatement as `StoreCapabilities`; anything else gives the conservative default."""
    unusable = StoreCapabilities(unusable=True)
    if not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
        return unusable
    rests = body.get("rest")
    rest = next((r for r in rests if isinstance(r, dict) and r.get("mode", "server") == "server"),
                None) if isinstance(rests, list) else None
    if rest is None:
        return unusable
    interactions = {i.get("code") for i in _list(rest.get("interaction")) if isinstance(i, dict)}
    parameters: dict[str, frozenset[str]] = {}
    creates: set[str] = set()
    for resource in _list(rest.get("resource")):
        if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
            continue
        kinds = {i.get("code") for i in _list(resource.get("interaction")) if isinstance(i, dict)}
        if "create" in kinds and resource.get("conditionalCreate") is True:
            creates.add(resource["type"])
        declared = _list(resource.get("searchParam"))
        names: set[str] = {p["name"] for p in declared
                           if isinstance(p, dict) and isinstance(p.get("name"), str)}
        if not declared:
            names = set(STANDARD_PARAMETERS.get(resource["type"], ()))
        parameters[resource["type"]] = frozenset(names) | {"_id"}
    return StoreCapabilities(batch="batch" in interactions, parameters=parameters, declared=True,
                             conditional_create=frozenset(creates))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class CapabilityCache:
    """The capabilities of every store, by base URL, fetched on first use and kept `ttl` seconds."""

    def __init__(self, http: httpx.AsyncClient, source: str, *, ttl: float = 300.0,
                 retry_after: float = 30.0) -> None:
        self._http = http
        self._source = source
        self._ttl = ttl
        self._retry_after = retry_after
        self._known: dict[str, tuple[float, StoreCapabilities]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _fresh(self, base: str) -> StoreCapabilities | None:
        known = self._known.get(base)
        return known[1] if known is not None and known[0] > time.monotonic() else None

    async def get(self, base: str, *, timeout: float, headers: Mapping[str, str],
                  auth: UpstreamAuth | None = None) -> StoreCapabilities:
        if (known := self._fresh(base)) is not None:
            return known
        # One fetch per store at a time, in the caller's own task (so a cancelled request
        # leaves nothing running); the others wait for it and read what it kept.
        lock = self._locks.setdefault(base, asyncio.Lock())
        async with lock:
            if (known := self._fresh(base)) is not None:
                return known
            return await self._fetch(base, timeout, headers, auth)

    async def _fetch(self, base: str, timeout: float, headers: Mapping[str, str],
                     auth: UpstreamAuth | None) -> StoreCapabilities:
        try:
            body = await request_json(self._http, self._source, "GET", f"{base}/metadata",
                                      timeout=timeout, headers=headers, auth=auth)
        except UpstreamInvalidError:  # 200 with a body that is not JSON
            capabilities, ttl = StoreCapabilities(unusable=True), self._retry_after
        except ConnectorError:
            capabilities, ttl = StoreCapabilities(), self._retry_after
        else:
            capabilities = parse_capabilities(body)
            ttl = self._ttl if capabilities.declared else self._retry_after
        self._known[base] = (time.monotonic() + ttl, capabilities)
        return capabilities
